//! `pilum clean`: remove `.pilum/deployments/<service>` of the selected services. Every path is
//! checked by `state::guard` first: a name or a symlink that leads outside `.pilum/` is refused,
//! never followed.

use std::path::PathBuf;

use super::{pipeline, select_config};
use crate::cli::SelectArgs;
use crate::error::Error;
use crate::output::Output;
use crate::state::guard::pilum_path;

pub(crate) fn run(dir: Option<PathBuf>, args: &SelectArgs, out: &Output) -> Result<(), Error> {
    let cfg = select_config(dir, args);
    let loaded = pipeline::load(&cfg)?;
    let root = &loaded.project.root;
    let mut removed = Vec::new();
    for sel in &loaded.selected {
        let name = &loaded.project.services[sel.index].name;
        let p = pilum_path(root, PathBuf::from("deployments").join(name))
            .map_err(|e| Error::failure(e.to_string()))?;
        if p.exists() {
            std::fs::remove_dir_all(&p)
                .map_err(|e| Error::failure(format!("cannot remove `{}`: {e}", p.display())))?;
            removed.push(name.clone());
        }
    }
    if out.json {
        out.json_line(&serde_json::json!({"removed": removed}));
    } else if !out.quiet {
        out.stdout_line(&format!(
            "removed local deployments of {}",
            crate::ui::render::count(removed.len(), "service")
        ));
    }
    Ok(())
}
