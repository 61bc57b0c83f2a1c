//! `pilum report`: the runs saved in `.pilum/runs/` listed (`--list`), or one drawn again as
//! the run report, on stdout or into `-o FILE`. And the end of `build`, `publish`, `push` and
//! `deploy` ([`finish`]): the run's recorder is saved as a run (not for dry runs), `--report
//! FILE` is written, and under GitHub Actions the report's summary joins the step summary with
//! a hint to upload the file. Neither fails a run: a file that cannot be written is a warning.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::cli::ReportArgs;
use crate::error::Error;
use crate::output::Output;
use crate::state::runs;
use crate::ui::report::gantt;
use crate::ui::report::record::{Recorder, Run, Totals};

/// `pilum report`: list the saved runs, or draw one (the latest by default).
pub(crate) fn run(dir: Option<PathBuf>, a: &ReportArgs, out: &Output) -> Result<(), Error> {
    let root = crate::service::discover::project_root(dir.as_deref()).map_err(Error::usage)?;
    let ids = runs::list(&root)
        .map_err(|e| Error::usage(format!("cannot list the saved runs in `.pilum/runs/`: {e}")))?;
    if a.list {
        list(out, &root, &ids);
        return Ok(());
    }
    let id = match &a.run {
        Some(id) => id.clone(),
        None => ids.last().cloned().ok_or_else(|| {
            Error::usage(
                "there is no saved run in `.pilum/runs/`\nhelp: `pilum deploy` (also `build`, `publish`, `push`) saves every run it makes; the report of a run in progress is `--report FILE`",
            )
        })?,
    };
    let run = load(&root, &id, &ids)?;
    if out.json {
        out.json_line(&run);
        return Ok(());
    }
    let html = gantt::html(&run);
    match &a.output {
        Some(path) => {
            write(path, &html)
                .map_err(|e| Error::usage(format!("cannot write `{}`: {e}", path.display())))?;
            out.info(&format!("run report of `{id}`: {}", path.display()));
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(html.as_bytes());
        }
    }
    Ok(())
}

/// Read and check saved run `id`.
fn load(root: &Path, id: &str, ids: &[String]) -> Result<Run, Error> {
    let text = runs::read(root, id).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            let mut msg = format!(
                "there is no saved run `{id}`\nhelp: `pilum report --list` shows the saved runs"
            );
            if let Some(c) = crate::diagnostic::closest(id, ids.iter().map(String::as_str)) {
                msg.push_str(&format!("\ndid you mean `{c}`?"));
            }
            Error::usage(msg)
        } else {
            Error::usage(format!("cannot read the saved run: {e}"))
        }
    })?;
    let damaged = |why: String| {
        Error::usage(format!(
            "the saved run `{id}` cannot be drawn: {why}\nhelp: it was written by another version of pilum, or changed since; delete `.pilum/runs/{id}.json`"
        ))
    };
    #[derive(Deserialize)]
    struct Head {
        format: u32,
    }
    let head: Head = serde_json::from_str(&text).map_err(|e| damaged(e.to_string()))?;
    if head.format != crate::ui::report::record::FORMAT {
        return Err(damaged(format!(
            "it has format {} (this pilum reads format {})",
            head.format,
            crate::ui::report::record::FORMAT
        )));
    }
    let run: Run = serde_json::from_str(&text).map_err(|e| damaged(e.to_string()))?;
    run.check().map_err(damaged)?;
    Ok(run)
}

/// What `--list` shows of a run.
#[derive(Deserialize)]
struct Listed {
    command: String,
    tag: String,
    started: String,
    summary: Option<Totals>,
    tasks: Vec<serde::de::IgnoredAny>,
}

fn list(out: &Output, root: &Path, ids: &[String]) {
    let header = ["RUN", "COMMAND", "STATUS", "TAG", "TASKS", "TOOK", "STARTED"];
    let mut rows = vec![header.map(String::from).to_vec()];
    for id in ids {
        let Ok(l) = runs::read(root, id)
            .map_err(|_| ())
            .and_then(|t| serde_json::from_str::<Listed>(&t).map_err(|_| ()))
        else {
            if out.json {
                out.json_line(&serde_json::json!({"id": id, "status": "unreadable"}));
            } else {
                rows.push(vec![id.clone(), String::new(), "unreadable".into()]);
            }
            continue;
        };
        let status = l.summary.as_ref().map_or("incomplete", |s| s.status.as_str());
        let wall = l.summary.as_ref().map(|s| s.wall_ms);
        if out.json {
            out.json_line(&serde_json::json!({
                "id": id, "command": l.command, "status": status, "tag": l.tag,
                "tasks": l.tasks.len(), "wall_ms": wall, "started": l.started,
            }));
        } else {
            rows.push(vec![
                id.clone(),
                l.command,
                status.to_string(),
                l.tag,
                l.tasks.len().to_string(),
                wall.map_or(String::new(), |ms| {
                    crate::ui::render::human(std::time::Duration::from_millis(ms))
                }),
                l.started,
            ]);
        }
    }
    if out.json {
        return;
    }
    if ids.is_empty() {
        out.info("no saved runs in `.pilum/runs/` (every `pilum deploy`, `build`, `publish` and `push` saves one)");
        return;
    }
    super::print_table(out, &[0; 7], &rows);
}

/// Where `--report` writes: the page and the JSON outcome, each at most once.
#[derive(Debug, Default)]
pub(crate) struct Reports {
    /// `.html`/`.htm`: the run report drawn by [`gantt::html`].
    pub html: Option<PathBuf>,
    /// `.json`: the outcome written by `report::Reporting` (what the GitHub Action reads).
    pub json: Option<PathBuf>,
}

/// Each `--report` must name an `.html` or a `.json` file (at most one of each) in a directory
/// that exists: checked before anything runs, so a typo does not cost a deploy its report.
pub(crate) fn check_report(paths: &[PathBuf]) -> Result<Reports, Error> {
    let mut reports = Reports::default();
    for path in paths {
        let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
        let slot = match ext.as_deref() {
            Some("html" | "htm") => &mut reports.html,
            Some("json") => &mut reports.json,
            _ => {
                return Err(Error::usage(format!(
                    "`--report {}`: the report is an HTML page (`.html`) or the outcome as JSON (`.json`)\nhelp: name the file `run.html` or `outcome.json`; give `--report` twice for both",
                    path.display()
                )));
            }
        };
        if let Some(first) = slot.as_ref() {
            return Err(Error::usage(format!(
                "`--report {}` and `--report {}` are the same kind of report\nhelp: give at most one `.html` and one `.json`",
                first.display(),
                path.display()
            )));
        }
        if path.is_dir() {
            return Err(Error::usage(format!(
                "`--report {}` is a directory\nhelp: name a file, e.g. `--report run.html`",
                path.display()
            )));
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
            && !parent.is_dir()
        {
            return Err(Error::usage(format!(
                "`--report {}`: the directory `{}` does not exist\nhelp: create it first, or write the report elsewhere",
                path.display(),
                parent.display()
            )));
        }
        *slot = Some(path.clone());
    }
    Ok(reports)
}

/// `--report` on a command that runs nothing is refused, not ignored.
pub(crate) fn no_report(command: &str, paths: &[PathBuf]) -> Result<(), Error> {
    match paths.first() {
        None => Ok(()),
        Some(_) => Err(Error::usage(format!(
            "`--report` draws a run, and `pilum {command}` runs nothing\nhelp: pass it to `pilum deploy` (or `build`, `publish`, `push`, `dry-run`)"
        ))),
    }
}

/// The end of a run (see the module documentation). `dir`: the `-C` directory.
pub(crate) fn finish(dir: Option<&Path>, recorder: &Recorder, report: Option<&Path>, out: &Output) {
    let run = recorder.finish();
    if run.tasks.is_empty() {
        return;
    }
    let mut saved = None;
    if !run.dry_run
        && let Ok(root) = crate::service::discover::project_root(dir)
    {
        let json = serde_json::to_vec(&run).expect("a run serializes: plain data, string keys");
        match runs::save(
            &root,
            &run.command,
            crate::redact::redact(&String::from_utf8_lossy(&json)).as_bytes(),
        ) {
            Ok(id) => saved = Some(id),
            Err(e) => out.warn(&format!("cannot save the run in `.pilum/runs/`: {e}")),
        }
    }
    let Some(path) = report else { return };
    if let Err(e) = write(path, &gantt::html(&run)) {
        out.warn(&format!("cannot write the run report `{}`: {e}", path.display()));
        return;
    }
    let again =
        saved.map(|id| format!(" (`pilum report {id}` draws it again)")).unwrap_or_default();
    out.info(&format!("run report: {}{again}", path.display()));
    if crate::ui::github::active()
        && let Some(summary) = std::env::var_os("GITHUB_STEP_SUMMARY")
    {
        let md = gantt::markdown(&run, &path.display().to_string());
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(summary)
            .and_then(|mut f| f.write_all(format!("\n{md}").as_bytes()));
        if let Err(e) = appended {
            out.warn(&format!("cannot add the run report to `$GITHUB_STEP_SUMMARY`: {e}"));
        }
    }
}

fn write(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}
