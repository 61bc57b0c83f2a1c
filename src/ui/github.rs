//! GitHub Actions: workflow commands (`::group::`, `::error file=…,line=…::`) and the Markdown
//! step summary. A task's group is one block of text, written with one call, so groups of tasks
//! finishing at once never interleave; annotation paths are relative to the workspace, which is
//! what GitHub matches against the repository's files.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use super::render::{count, human};
use crate::orchestrator::event::Summary;
use crate::output::Output;

/// Whether pilum runs under GitHub Actions.
pub(crate) fn active() -> bool {
    std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true")
}

/// `::group::title`, the lines, `::endgroup::`, as one block (no trailing newline).
pub(crate) fn group(title: &str, lines: &[String]) -> String {
    let mut block = format!("::group::{title}");
    for l in lines {
        block.push('\n');
        block.push_str(l);
    }
    block.push_str("\n::endgroup::");
    block
}

/// An `::error` annotation with `title`, at `(file, line, col)` when given (`file` absolute or
/// relative to the current directory; a line or column of 0 is left out).
pub(crate) fn error(title: &str, at: Option<(&Path, usize, usize)>, message: &str) -> String {
    let mut props = Vec::new();
    if let Some((file, line, col)) = at {
        props.push(format!("file={}", property(&workspace_path(file))));
        if line > 0 {
            props.push(format!("line={line}"));
            if col > 0 {
                props.push(format!("col={col}"));
            }
        }
    }
    props.push(format!("title={}", property(title)));
    format!("::error {}::{}", props.join(","), data(message))
}

/// `file` relative to `$GITHUB_WORKSPACE` (else the current directory) when inside it.
fn workspace_path(file: &Path) -> String {
    let base = std::env::var_os("GITHUB_WORKSPACE")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::current_dir().ok());
    let canonical = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    let file = canonical(file);
    base.and_then(|b| file.strip_prefix(canonical(&b)).ok().map(Path::to_path_buf))
        .unwrap_or(file)
        .display()
        .to_string()
}

/// A workflow command's message: `%`, CR and LF escaped.
fn data(s: &str) -> String {
    s.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

/// A workflow command's property value: also `:` and `,` escaped.
fn property(s: &str) -> String {
    data(s).replace(':', "%3A").replace(',', "%2C")
}

/// Append the run's Markdown table to `$GITHUB_STEP_SUMMARY`.
pub(crate) fn step_summary(verb: &str, s: &Summary) {
    let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY") else { return };
    let dry = if s.dry_run { " (dry run)" } else { "" };
    let mut md = format!(
        "### pilum {verb}{dry}: {}\n\n{} ({} ok, {} failed, {} skipped), {} ({} ok, {} failed, {} skipped) in {}\n\n| service | status |\n|---|---|\n",
        s.status(),
        count(s.services.total, "service"),
        s.services.ok,
        s.services.failed,
        s.services.skipped,
        count(s.tasks.total, "task"),
        s.tasks.ok,
        s.tasks.failed,
        s.tasks.skipped,
        human(Duration::from_millis(s.wall_ms))
    );
    for (name, st) in &s.service_status {
        let icon = match st.as_str() {
            "ok" => "✅",
            "failed" => "❌",
            "interrupted" => "⏹️",
            _ => "⏭️",
        };
        md.push_str(&format!("| `{name}` | {icon} {st} |\n"));
    }
    for f in &s.failures {
        let at = f.at.as_ref().map(|a| format!(" ({}:{})", a.file, a.line)).unwrap_or_default();
        md.push_str(&format!("\n**`{}`**{at}: {}\n", f.task, f.error.lines().next().unwrap_or("")));
    }
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
        let _ = f.write_all(Output::clean(&md).as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotations_escape_their_message_and_properties() {
        let at = Path::new("/nowhere/a,b:c.yaml");
        let line = error("pilum a/build", Some((at, 4, 3)), "50% done\nthen failed");
        assert_eq!(
            line,
            "::error file=/nowhere/a%2Cb%3Ac.yaml,line=4,col=3,title=pilum a/build::50%25 done%0Athen failed"
        );
        assert_eq!(error("t", None, "m"), "::error title=t::m");
        assert_eq!(group("a (ok)", &["x".into()]), "::group::a (ok)\nx\n::endgroup::");
    }
}
