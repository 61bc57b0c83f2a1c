//! `pilum check`: every selected service against its recipe; all problems at once, exit 1.

use std::path::PathBuf;

use console::Style;

use super::{pipeline, select_config, warn_all};
use crate::cli::SelectArgs;
use crate::error::{Error, exit};
use crate::output::Output;
use crate::ui::render::count;

/// `pilum check`: every selected service against its recipe; all problems at once.
pub(crate) fn run(dir: Option<PathBuf>, args: &SelectArgs, out: &Output) -> Result<(), Error> {
    let cfg = select_config(dir, args);
    let loaded = match pipeline::load_to_plan(&cfg) {
        Ok(l) => l,
        Err(e) => return Err(Error { code: exit::FAILURE, ..e }),
    };
    warn_all(out, &loaded.warnings);
    let plan = pipeline::plan(&cfg, &loaded).map_err(|e| Error { code: exit::FAILURE, ..e })?;
    if out.json {
        out.json_line(&serde_json::json!({"ok": true, "services": plan.services.len(), "tasks": plan.tasks.len()}));
    } else if !out.quiet {
        out.stdout_line(&format!(
            "{} {} valid ({} in {})",
            Style::new().green().apply_to("✓"),
            count(plan.services.len(), "service"),
            count(plan.tasks.len(), "task"),
            count(plan.phases.len(), "phase")
        ));
    }
    Ok(())
}
