//! `pilum locks [list]` and `pilum locks release KEY --force`: the deploy locks of the state
//! backend (`crate::state::lock`), who holds them and who waits.

use std::path::PathBuf;

use super::pipeline::{self, Config};
use crate::cli::{LocksArgs, LocksCommand};
use crate::error::Error;
use crate::output::Output;
use crate::state::lock::LockKey;

pub(crate) fn run(dir: Option<PathBuf>, a: &LocksArgs, out: &Output) -> Result<(), Error> {
    let root = crate::service::discover::project_root(dir.as_deref()).map_err(Error::usage)?;
    let cfg = Config { dir, state: a.state.clone(), ..Config::default() };
    let backend = pipeline::open_state(&cfg, &root)?;
    match &a.command {
        None | Some(LocksCommand::List) => {
            let held = backend.lock_list().map_err(Error::failure)?;
            if out.json {
                for h in &held {
                    out.json_line(h);
                }
                return Ok(());
            }
            if held.is_empty() {
                out.info(&format!("no deploy locks are held in `{}`", backend.location()));
                return Ok(());
            }
            let mut rows = vec![["LOCK", "FENCE", "WAITING", "HOLDER"].map(String::from).to_vec()];
            for h in &held {
                let mut holder = h
                    .holder
                    .as_ref()
                    .map_or_else(|| "(free)".into(), super::super::state::lock::Holder::describe);
                if let Some(ms) = h.expires_ms {
                    holder.push_str(&format!(
                        "; lease ends in {}",
                        crate::duration::format(std::time::Duration::from_millis(ms))
                    ));
                }
                rows.push(vec![
                    h.key.to_string(),
                    h.fence.map_or_else(|| "-".into(), |f| f.to_string()),
                    h.waiting.to_string(),
                    holder,
                ]);
            }
            for line in crate::ui::table::lines(&[], &rows) {
                out.stdout_line(&line);
            }
            Ok(())
        }
        Some(LocksCommand::Release { key, force }) => {
            let key = LockKey::parse(key).map_err(Error::usage)?;
            if !force {
                return Err(Error::usage(format!(
                    "releasing `{key}` takes it from whoever holds it\nhelp: pass `--force` once you know that run is gone (`pilum locks` shows the holder)"
                )));
            }
            let old = backend.lock_break(&key).map_err(Error::usage)?;
            let what = match &old {
                Some(h) => format!("released the deploy lock `{key}`, held by {}", h.describe()),
                None => format!("the deploy lock `{key}` was not held"),
            };
            if out.json {
                out.json_line(&serde_json::json!({"released": key.to_string(), "holder": old}));
            } else {
                out.info(&what);
            }
            Ok(())
        }
    }
}
