//! The Pulumi CLI layer: argv builders for exactly the commands and flags in
//! `REFERENCE.md`, parsers for their JSON, lock-conflict detection, and the temporary-config
//! preview. Plain Rust, shared by the Rhai `pulumi::` namespace and the autoscaler's actuator;
//! running the argv is [`crate::process`]'s job (see [`command`]).
//!
//! Every argv starts with `pulumi`, then the subcommand and its arguments, then the common
//! flags in a fixed order: `--cwd`, `--stack`, `--config-file` (where the command accepts it),
//! `--non-interactive`, `--color never`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::process::{self, Finished, ProcessError};

/// Options shared by the commands; each builder uses the ones that apply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Opts {
    /// `--cwd`: the Pulumi project directory.
    pub cwd: Option<PathBuf>,
    /// `--stack`.
    pub stack: Option<String>,
    /// `--config-file`: another stack config file (`config`, `preview`, `up`, `refresh`).
    pub config_file: Option<PathBuf>,
    /// `--target <urn>` (repeated) for `up` and `preview`.
    pub targets: Vec<String>,
    /// `--target-dependents` for `up`.
    pub target_dependents: bool,
    /// `--message` for `up`.
    pub message: Option<String>,
    /// `--path` for `config get/set/set-all` (keys are property paths).
    pub path: bool,
    /// `--secret` instead of `--plaintext` for `config set`.
    pub secret: bool,
    /// `--diff` for `preview`.
    pub diff: bool,
    /// `--expect-no-changes` for `preview`.
    pub expect_no_changes: bool,
}

/// Errors of this layer. Wording lives in `Display`.
#[derive(Debug)]
pub(crate) enum PulumiError {
    Process(ProcessError),
    /// `pulumi` exited non-zero.
    Failed {
        argv: Vec<String>,
        code: Option<i32>,
        tail: Vec<String>,
        lock_conflict: bool,
    },
    /// Its JSON did not parse.
    BadJson {
        what: &'static str,
        error: String,
    },
    /// A precondition on the options.
    Usage(String),
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
}

impl fmt::Display for PulumiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PulumiError::Process(e) => e.fmt(f),
            PulumiError::Failed { argv, code, tail, lock_conflict } => {
                let code = code.map_or("a signal".to_string(), |c| format!("exit code {c}"));
                write!(f, "command `{}` failed with {code}", process::display_argv(argv))?;
                if !tail.is_empty() {
                    f.write_str("\n  last output lines:")?;
                    for l in tail {
                        write!(f, "\n  | {l}")?;
                    }
                }
                if *lock_conflict {
                    f.write_str("\nhelp: another update holds the stack lock; retry when it finishes (a killed `pulumi` may need `pulumi cancel`)")?;
                }
                Ok(())
            }
            PulumiError::BadJson { what, error } => {
                write!(f, "cannot parse the JSON of `pulumi {what}`: {error}")
            }
            PulumiError::Usage(m) => f.write_str(m),
            PulumiError::Io { path, error } => write!(f, "`{}`: {error}", path.display()),
        }
    }
}

impl std::error::Error for PulumiError {}

impl From<ProcessError> for PulumiError {
    fn from(e: ProcessError) -> Self {
        PulumiError::Process(e)
    }
}

/// Whether `stderr` is one of the two "another update is running" texts — the only failures
/// worth retrying.
pub(crate) fn is_lock_conflict(stderr: &str) -> bool {
    if stderr.contains("[409] Conflict: Another update is currently in progress.") {
        return true;
    }
    let needle = "the stack is currently locked by ";
    stderr.match_indices(needle).any(|(i, _)| {
        let rest = &stderr[i + needle.len()..];
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        digits > 0 && rest[digits..].starts_with(" lock(s)")
    })
}

fn base(sub: &[&str]) -> Vec<String> {
    let mut v = vec!["pulumi".to_string()];
    v.extend(sub.iter().map(std::string::ToString::to_string));
    v
}

/// Append the common flags. `config_file` is skipped for commands that do not accept it.
fn common(argv: &mut Vec<String>, o: &Opts, config_file: bool) {
    if let Some(cwd) = &o.cwd {
        argv.extend(["--cwd".into(), cwd.display().to_string()]);
    }
    if let Some(s) = &o.stack {
        argv.extend(["--stack".into(), s.clone()]);
    }
    if config_file && let Some(f) = &o.config_file {
        argv.extend(["--config-file".into(), f.display().to_string()]);
    }
    argv.extend(["--non-interactive".into(), "--color".into(), "never".into()]);
}

/// `pulumi config get <key> --json [--path]`.
pub(crate) fn config_get_argv(key: &str, o: &Opts) -> Vec<String> {
    let mut a = base(&["config", "get"]);
    if key.starts_with('-') {
        a.push("--".into()); // never happens for real keys; keeps a key from becoming a flag
    }
    a.push(key.into());
    a.push("--json".into());
    if o.path {
        a.push("--path".into());
    }
    common(&mut a, o, true);
    a
}

/// `pulumi config set <key> <value> [--path] --plaintext|--secret`. A value starting with `-`
/// (a negative number) goes after `--` so it is not read as a flag.
pub(crate) fn config_set_argv(key: &str, value: &str, o: &Opts) -> Vec<String> {
    let mut flags = Vec::new();
    if o.path {
        flags.push("--path".to_string());
    }
    flags.push(if o.secret { "--secret" } else { "--plaintext" }.to_string());
    let mut a = base(&["config", "set"]);
    if value.starts_with('-') || key.starts_with('-') {
        a.extend(flags);
        common(&mut a, o, true);
        a.extend(["--".into(), key.into(), value.into()]);
    } else {
        a.extend([key.into(), value.into()]);
        a.extend(flags);
        common(&mut a, o, true);
    }
    a
}

/// `pulumi config set-all [--path] --plaintext k=v --plaintext k2=v2` (keys in sorted order).
pub(crate) fn config_set_all_argv(values: &BTreeMap<String, String>, o: &Opts) -> Vec<String> {
    let mut a = base(&["config", "set-all"]);
    if o.path {
        a.push("--path".into());
    }
    for (k, v) in values {
        a.extend(["--plaintext".into(), format!("{k}={v}")]);
    }
    common(&mut a, o, true);
    a
}

/// `pulumi up --yes --skip-preview [--target <urn>]… [--target-dependents] [--message …]`.
pub(crate) fn up_argv(o: &Opts) -> Vec<String> {
    let mut a = base(&["up", "--yes", "--skip-preview"]);
    for t in &o.targets {
        a.extend(["--target".into(), t.clone()]);
    }
    if o.target_dependents {
        a.push("--target-dependents".into());
    }
    if let Some(m) = &o.message {
        a.extend(["--message".into(), m.clone()]);
    }
    common(&mut a, o, true);
    a
}

/// `pulumi preview --json [--target <urn>]… [--diff] [--expect-no-changes]`.
pub(crate) fn preview_argv(o: &Opts) -> Vec<String> {
    let mut a = base(&["preview", "--json"]);
    for t in &o.targets {
        a.extend(["--target".into(), t.clone()]);
    }
    if o.diff {
        a.push("--diff".into());
    }
    if o.expect_no_changes {
        a.push("--expect-no-changes".into());
    }
    common(&mut a, o, true);
    a
}

/// `pulumi refresh --preview-only --json [--target <urn>]…`: drift without writing state.
pub(crate) fn refresh_preview_argv(o: &Opts) -> Vec<String> {
    let mut a = base(&["refresh", "--preview-only", "--json"]);
    for t in &o.targets {
        a.extend(["--target".into(), t.clone()]);
    }
    common(&mut a, o, true);
    a
}

/// `pulumi refresh --yes --skip-preview [--target <urn>]…`: the state follows the cloud.
pub(crate) fn refresh_argv(o: &Opts) -> Vec<String> {
    let mut a = base(&["refresh", "--yes", "--skip-preview"]);
    for t in &o.targets {
        a.extend(["--target".into(), t.clone()]);
    }
    common(&mut a, o, true);
    a
}

/// `pulumi stack output [name] --json` (no `--config-file`: `stack output` does not take one).
pub(crate) fn outputs_argv(name: Option<&str>, o: &Opts) -> Vec<String> {
    let mut a = base(&["stack", "output"]);
    if let Some(n) = name {
        a.push(n.into());
    }
    a.push("--json".into());
    common(&mut a, o, false);
    a
}

/// `pulumi config refresh [--force]`: rewrite the local stack file from the last deployment.
pub(crate) fn config_refresh_argv(force: bool, o: &Opts) -> Vec<String> {
    let mut a = base(&["config", "refresh"]);
    if force {
        a.push("--force".into());
    }
    common(&mut a, o, true);
    a
}

/// A [`process::Command`] for an argv built here. Add cancel/deadline/on_line as needed; use
/// `spawn()` + `Child::interrupt()` for long updates (SIGINT first: a killed `pulumi` can leave
/// the stack locked).
pub(crate) fn command(argv: Vec<String>) -> process::Command {
    process::Command::new(argv)
}

/// Run a built argv with `cmd` as the template (dir/env/cancel already set) and turn a non-zero
/// exit into [`PulumiError::Failed`].
pub(crate) fn run_checked(cmd: process::Command) -> Result<Finished, PulumiError> {
    let out = cmd.run()?;
    if out.success() {
        return Ok(out);
    }
    let lock_conflict = is_lock_conflict(&out.stderr);
    Err(PulumiError::Failed { argv: out.argv, code: out.code, tail: out.tail, lock_conflict })
}

/// `pulumi config get --json` output.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct ConfigValue {
    pub value: String,
    #[serde(default)]
    pub secret: bool,
}

pub(crate) fn parse_config_get(stdout: &str) -> Result<ConfigValue, PulumiError> {
    #[derive(Deserialize)]
    struct Raw {
        value: serde_json::Value,
        #[serde(default)]
        secret: bool,
    }
    let raw: Raw = serde_json::from_str(stdout.trim())
        .map_err(|e| PulumiError::BadJson { what: "config get", error: e.to_string() })?;
    let value = match raw.value {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    };
    Ok(ConfigValue { value, secret: raw.secret })
}

/// Whether a failed `config get` means "no such key" (not an error for callers).
pub(crate) fn is_missing_key(stderr: &str) -> bool {
    stderr.contains("configuration key") && stderr.contains("not found")
}

/// One step of a preview.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub(crate) struct Step {
    pub op: String,
    pub urn: String,
    #[serde(default, rename = "diffReasons")]
    pub diff_reasons: Vec<String>,
}

/// The parts of `pulumi preview --json` pilum uses; `raw` keeps the whole document.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Preview {
    pub steps: Vec<Step>,
    pub change_summary: BTreeMap<String, i64>,
    pub raw: serde_json::Value,
}

pub(crate) fn parse_preview(stdout: &str) -> Result<Preview, PulumiError> {
    let raw: serde_json::Value = serde_json::from_str(stdout.trim())
        .map_err(|e| PulumiError::BadJson { what: "preview", error: e.to_string() })?;
    let steps = match raw.get("steps") {
        Some(s) => serde_json::from_value(s.clone())
            .map_err(|e| PulumiError::BadJson { what: "preview", error: e.to_string() })?,
        None => Vec::new(),
    };
    let change_summary = match raw.get("changeSummary") {
        Some(s) => serde_json::from_value(s.clone())
            .map_err(|e| PulumiError::BadJson { what: "preview", error: e.to_string() })?,
        None => BTreeMap::new(),
    };
    Ok(Preview { steps, change_summary, raw })
}

/// The stack config file `Pulumi.<stack>.yaml` in `dir` (`org/project/dev` → `dev`).
pub(crate) fn stack_file(dir: &Path, stack: &str) -> PathBuf {
    let short = stack.rsplit('/').next().unwrap_or(stack);
    dir.join(format!("Pulumi.{short}.yaml"))
}

/// A dry run of config changes that never touches `Pulumi.<stack>.yaml`: copy it to a temporary
/// file, `config set-all --config-file <tmp>`, then `preview --config-file <tmp>`.
/// (`preview -c key=value` would save into the stack file.)
///
/// `make` builds the process for each argv (directory, env, cancellation); `dir` is where the
/// stack file lives (the Pulumi project, `o.cwd` when set).
pub(crate) fn preview_with_config(
    values: &BTreeMap<String, String>,
    o: &Opts,
    dir: &Path,
    make: impl Fn(Vec<String>) -> process::Command,
) -> Result<Preview, PulumiError> {
    let stack = o.stack.as_deref().ok_or_else(|| {
        PulumiError::Usage(
            "a preview with config changes needs `stack` (to find `Pulumi.<stack>.yaml`)".into(),
        )
    })?;
    let file = stack_file(dir, stack);
    let tmp = tempfile::Builder::new()
        .prefix("pilum-preview-")
        .suffix(".yaml")
        .tempfile()
        .map_err(|error| PulumiError::Io { path: std::env::temp_dir(), error })?;
    // A stack without a file yet has no config: start from an empty one.
    let text = match std::fs::read(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(error) => return Err(PulumiError::Io { path: file, error }),
    };
    std::fs::write(tmp.path(), text)
        .map_err(|error| PulumiError::Io { path: tmp.path().to_path_buf(), error })?;
    let o = Opts { config_file: Some(tmp.path().to_path_buf()), ..o.clone() };
    if !values.is_empty() {
        run_checked(make(config_set_all_argv(values, &o)))?;
    }
    let out = run_checked(make(preview_argv(&o)))?;
    parse_preview(&out.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> Opts {
        Opts { cwd: Some("infra".into()), stack: Some("prod".into()), ..Opts::default() }
    }

    #[test]
    fn argv_shapes() {
        assert_eq!(
            config_set_argv("web:replicas", "3", &opts()).join(" "),
            "pulumi config set web:replicas 3 --plaintext --cwd infra --stack prod --non-interactive --color never"
        );
        assert_eq!(
            config_set_argv("n", "-1", &Opts::default()).join(" "),
            "pulumi config set --plaintext --non-interactive --color never -- n -1"
        );
        let o = Opts { targets: vec!["urn:a".into()], message: Some("scale".into()), ..opts() };
        assert_eq!(
            up_argv(&o).join(" "),
            "pulumi up --yes --skip-preview --target urn:a --message scale --cwd infra --stack prod --non-interactive --color never"
        );
        assert_eq!(
            outputs_argv(None, &Opts { config_file: Some("x".into()), ..opts() }).join(" "),
            "pulumi stack output --json --cwd infra --stack prod --non-interactive --color never"
        );
    }

    #[test]
    fn lock_texts() {
        assert!(is_lock_conflict(
            "error: [409] Conflict: Another update is currently in progress."
        ));
        assert!(is_lock_conflict("error: the stack is currently locked by 1 lock(s). Either wait"));
        assert!(!is_lock_conflict("error: the stack is currently locked by someone"));
        assert!(!is_lock_conflict("error: conflict"));
    }

    #[test]
    fn parses_preview_and_config() {
        let p = parse_preview(
            r#"{"steps":[{"op":"update","urn":"urn:x","diffReasons":["desiredCount"]}],"changeSummary":{"update":1,"same":4}}"#,
        )
        .expect("parses");
        assert_eq!(p.steps[0].diff_reasons, vec!["desiredCount"]);
        assert_eq!(p.change_summary.get("update"), Some(&1));
        assert_eq!(parse_config_get(r#"{"value":"3","secret":false}"#).expect("parses").value, "3");
        assert!(parse_preview("not json").is_err());
    }
}
