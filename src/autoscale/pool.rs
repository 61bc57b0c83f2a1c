//! The pools file (`pilum-scale.yaml`): its schema, loading and validation.
//!
//! A pool is one scaled value: a Pulumi config key in one stack, the resources a targeted
//! `pulumi up` touches, hard bounds, cooldowns, a maximum step and the strategy that proposes
//! values. Loading never panics: every problem becomes a [`ConfigError`] with the file, line and
//! column, a `help:` line and, for misspelt keys, a suggestion.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::autoscale::schedule::{Schedule, ScheduleSpec};
use crate::diagnostic::{closest, snippet};

/// The whole pools file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolsFile {
    /// SNS topics every pool accepts (a pool may add its own with `topics`).
    #[serde(default)]
    pub sns_topics: Vec<String>,
    pub pools: BTreeMap<String, PoolSpec>,
}

/// One pool as written in the file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PoolSpec {
    /// The Pulumi project directory, relative to the pools file.
    pub project: PathBuf,
    pub stack: String,
    /// The config key, `project:key` or a bare key namespaced by Pulumi.
    pub key: String,
    /// URNs passed to `pulumi up --target`.
    pub targets: Vec<String>,
    pub min: i64,
    pub max: i64,
    #[serde(default, deserialize_with = "crate::duration::deserialize")]
    pub cooldown_up: Duration,
    #[serde(default = "default_cooldown_down", deserialize_with = "crate::duration::deserialize")]
    pub cooldown_down: Duration,
    /// The largest change one decision may make (default: unlimited).
    #[serde(default)]
    pub max_step: Option<i64>,
    /// A built-in strategy name (`incremental`, `absolute`) or a path to a `.rhai` file.
    #[serde(default = "default_strategy")]
    pub strategy: String,
    /// Free-form parameters handed to the strategy as `ctx.pool.params`.
    #[serde(default)]
    pub params: serde_json::Map<String, serde_json::Value>,
    /// Per-alarm (CloudWatch `AlarmName`, Alertmanager `alertname`) directions.
    #[serde(default)]
    pub alarms: BTreeMap<String, Directive>,
    /// What a CloudWatch `OK` does besides clearing the alarm (default: nothing).
    #[serde(default)]
    pub on_ok: Option<Directive>,
    /// Extra SNS topics accepted for this pool.
    #[serde(default)]
    pub topics: Vec<String>,
    /// Cron windows with a value, raised as `schedule` level signals while open.
    #[serde(default)]
    pub schedules: Vec<ScheduleSpec>,
}

/// A direction and size for a signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Directive {
    pub action: Action,
    #[serde(default)]
    pub step: Option<i64>,
    #[serde(default)]
    pub value: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Up,
    Down,
    Set,
}

impl Action {
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "up" => Some(Self::Up),
            "down" => Some(Self::Down),
            "set" => Some(Self::Set),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Down => "down",
            Self::Set => "set",
        }
    }
}

impl Directive {
    /// Check that the directive is complete: `up`/`down` need a positive step, `set` a value.
    pub fn validate(&self) -> Result<(), String> {
        match self.action {
            Action::Up | Action::Down => match self.step {
                Some(s) if s > 0 => Ok(()),
                Some(s) => Err(format!("`step` must be positive, got {s}")),
                None => Err(format!("action `{}` needs a `step`", self.action.as_str())),
            },
            Action::Set => match self.value {
                Some(_) => Ok(()),
                None => Err("action `set` needs a `value`".into()),
            },
        }
    }
}

fn default_cooldown_down() -> Duration {
    Duration::from_secs(300)
}

fn default_strategy() -> String {
    "incremental".into()
}

/// A problem in the pools file, with where it is and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
    pub help: Option<String>,
    pub suggestion: Option<String>,
    pub snippet: Option<String>,
}

impl ConfigError {
    fn new(file: &Path, message: impl Into<String>) -> Self {
        Self {
            file: file.to_path_buf(),
            line: None,
            column: None,
            message: message.into(),
            help: None,
            suggestion: None,
            snippet: None,
        }
    }

    fn at(mut self, source: &str, line: Option<usize>, column: Option<usize>) -> Self {
        self.line = line;
        self.column = column;
        self.snippet = line.and_then(|l| snippet(source, l, column.unwrap_or(1)));
        self
    }

    fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
            if let Some(c) = self.column {
                write!(f, ":{c}")?;
            }
        }
        write!(f, ": {}", self.message)?;
        if let Some(h) = &self.help {
            write!(f, "\nhelp: {h}")?;
        }
        if let Some(s) = &self.suggestion {
            write!(f, "\ndid you mean `{s}`?")?;
        }
        if let Some(s) = &self.snippet {
            write!(f, "\n{s}")?;
        }
        Ok(())
    }
}

/// A validated pool, ready for the scaler.
#[derive(Debug, Clone)]
pub struct Pool {
    pub name: String,
    /// Absolute (or pools-file-relative resolved) project directory.
    pub project_dir: PathBuf,
    pub spec: PoolSpec,
    /// Every SNS topic this pool accepts.
    pub topics: Vec<String>,
    /// The compiled `schedules`, in file order.
    pub schedules: Vec<Schedule>,
}

impl Pool {
    /// The apply lane: pools on one stack share it.
    pub fn stack_id(&self) -> String {
        format!("{}#{}", self.project_dir.display(), self.spec.stack)
    }
}

/// The loaded pools, in name order.
#[derive(Debug, Clone)]
pub struct Pools {
    pub file: PathBuf,
    pub pools: Vec<Pool>,
}

impl Pools {
    pub fn get(&self, name: &str) -> Option<&Pool> {
        self.pools.iter().find(|p| p.name == name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.pools.iter().map(|p| p.name.as_str())
    }
}

/// Read and validate a pools file. Errors are all the problems found (structure errors stop at
/// the first, since the YAML parser does).
pub fn load(file: &Path) -> Result<Pools, Vec<ConfigError>> {
    let source = std::fs::read_to_string(file).map_err(|e| {
        vec![
            ConfigError::new(file, format!("cannot read pools file: {e}"))
                .help("pass the pools file with `--config <file>` (default `pilum-scale.yaml`)"),
        ]
    })?;
    parse(file, &source)
}

/// Validate pools file text (`file` is used for locations and relative paths).
pub fn parse(file: &Path, source: &str) -> Result<Pools, Vec<ConfigError>> {
    let raw: PoolsFile =
        serde_yaml::from_str(source).map_err(|e| vec![yaml_error(file, source, &e)])?;
    validate(file, source, raw)
}

/// Validate an already-deserialised file (used by `--rules-from-output`, where `source` is the
/// JSON text of the stack output).
pub fn validate(file: &Path, source: &str, raw: PoolsFile) -> Result<Pools, Vec<ConfigError>> {
    let base = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut errors = Vec::new();
    let mut pools = Vec::new();
    if raw.pools.is_empty() {
        errors.push(
            ConfigError::new(file, "no pools defined")
                .help("add at least one pool under `pools:`; see docs/scaling.md"),
        );
    }
    for (name, spec) in raw.pools {
        let line = find_pool_line(source, &name);
        let field_at = |field: &str| find_field_line(source, line, field);
        let mut err = |field: &str, message: String, help: &str| {
            let (l, c) = field_at(field).map_or((line, None), |(l, c)| (Some(l), Some(c)));
            errors.push(ConfigError::new(file, message).at(source, l, c).help(help));
        };
        if !valid_name(&name) {
            err(
                "",
                format!("pool name `{name}` is not valid"),
                "use letters, digits, `-` and `_` (it appears in URLs and metric labels)",
            );
        }
        if spec.min > spec.max {
            err(
                "min",
                format!("pool `{name}` has `min` ({}) greater than `max` ({})", spec.min, spec.max),
                "swap the bounds or lower `min`",
            );
        }
        if spec.min < 0 {
            err(
                "min",
                format!("pool `{name}` has a negative `min` ({})", spec.min),
                "use 0 or more",
            );
        }
        if let Some(step) = spec.max_step
            && step <= 0
        {
            err(
                "max_step",
                format!("pool `{name}` has `max_step` {step}"),
                "use a positive step or remove it",
            );
        }
        if spec.targets.is_empty() {
            err(
                "targets",
                format!("pool `{name}` has no `targets`"),
                "list the URNs `pulumi up --target` should update (see `pulumi stack --show-urns`)",
            );
        }
        for t in &spec.targets {
            if !t.starts_with("urn:pulumi:") {
                err(
                    "targets",
                    format!("pool `{name}` target `{t}` is not a Pulumi URN"),
                    "URNs start with `urn:pulumi:`",
                );
            }
        }
        if spec.key.trim().is_empty() {
            err(
                "key",
                format!("pool `{name}` has an empty `key`"),
                "name the Pulumi config key, e.g. `infra:workers`",
            );
        }
        for (alarm, d) in &spec.alarms {
            if let Err(m) = d.validate() {
                err(
                    "alarms",
                    format!("pool `{name}` alarm `{alarm}`: {m}"),
                    "e.g. `{ action: up, step: 2 }`",
                );
            }
        }
        if let Some(d) = &spec.on_ok
            && let Err(m) = d.validate()
        {
            err("on_ok", format!("pool `{name}` `on_ok`: {m}"), "e.g. `{ action: down, step: 1 }`");
        }
        if let Err(e) = crate::autoscale::strategy::resolve(&base, &spec.strategy) {
            err(
                "strategy",
                format!("pool `{name}`: {e}"),
                "use `incremental`, `absolute`, `target-tracking`, `step`, `schedule-floor` or a path to a `.rhai` file",
            );
        }
        let mut schedules = Vec::new();
        for (i, sched) in spec.schedules.iter().enumerate() {
            if spec.schedules[..i].iter().any(|o| o.name == sched.name) {
                let (l, c) = find_schedule_field(source, line, &sched.name, "name")
                    .map_or((line, None), |(l, c)| (Some(l), Some(c)));
                errors.push(
                    ConfigError::new(
                        file,
                        format!("pool `{name}` has two schedules named `{}`", sched.name),
                    )
                    .at(source, l, c)
                    .help("give every schedule of a pool its own `name`"),
                );
                continue;
            }
            match Schedule::compile(sched) {
                Ok(s) => schedules.push(s),
                Err(e) => {
                    let (l, c) = find_schedule_field(source, line, &sched.name, e.field.as_str())
                        .map_or((line, None), |(l, c)| (Some(l), Some(c)));
                    errors.push(
                        ConfigError::new(file, format!("pool `{name}`: {}", e.message))
                            .at(source, l, c)
                            .help(e.help),
                    );
                }
            }
        }
        let project_dir = if spec.project.is_absolute() {
            spec.project.clone()
        } else {
            base.join(&spec.project)
        };
        let mut topics = raw.sns_topics.clone();
        topics.extend(spec.topics.iter().cloned());
        pools.push(Pool { name, project_dir, spec, topics, schedules });
    }
    if errors.is_empty() { Ok(Pools { file: file.to_path_buf(), pools }) } else { Err(errors) }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The line of `  <name>:` under `pools:` (1-based), if present in the text.
fn find_pool_line(source: &str, name: &str) -> Option<usize> {
    let mut in_pools = false;
    for (i, line) in source.lines().enumerate() {
        let trimmed = line.trim_start();
        if line.starts_with("pools:") {
            in_pools = true;
            continue;
        }
        if in_pools && !line.starts_with(' ') && !trimmed.is_empty() && !trimmed.starts_with('#') {
            in_pools = false;
        }
        if in_pools
            && let Some(rest) =
                trimmed.strip_prefix(name).or_else(|| trimmed.strip_prefix(&format!("\"{name}\"")))
            && rest.trim_start().starts_with(':')
            && line.len() - trimmed.len() > 0
        {
            return Some(i + 1);
        }
    }
    None
}

/// The first `<field>:` line after a pool's line, before the next pool (line, column).
fn find_field_line(source: &str, pool_line: Option<usize>, field: &str) -> Option<(usize, usize)> {
    let start = pool_line?;
    if field.is_empty() {
        return None;
    }
    let pool_indent = source.lines().nth(start - 1).map(|l| l.len() - l.trim_start().len())?;
    for (i, line) in source.lines().enumerate().skip(start) {
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if indent <= pool_indent {
            break;
        }
        if trimmed.strip_prefix(field).is_some_and(|r| r.trim_start().starts_with(':')) {
            return Some((i + 1, indent + 1));
        }
    }
    None
}

/// Where a schedule's field is (line, column): the schedule is found by its `name:` within
/// the pool, block or flow style, then the field on that line or the lines after it, up to the
/// next schedule.
fn find_schedule_field(
    source: &str,
    pool_line: Option<usize>,
    schedule: &str,
    field: &str,
) -> Option<(usize, usize)> {
    let start = pool_line?;
    let lines: Vec<&str> = source.lines().collect();
    let pool_indent = lines.get(start - 1).map(|l| l.len() - l.trim_start().len())?;
    let name_re = regex::Regex::new(&format!(
        r#"(?:^|[\s{{,-])name\s*:\s*["']?{}["']?\s*(?:[,}}#]|$)"#,
        regex::escape(schedule)
    ))
    .ok()?;
    let field_re =
        regex::Regex::new(&format!(r"(?:^|[\s{{,-]){}\s*:", regex::escape(field))).ok()?;
    let mut found = None;
    for (i, line) in lines.iter().enumerate().skip(start) {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if line.len() - trimmed.len() <= pool_indent {
            break;
        }
        if found.is_none() {
            if name_re.is_match(line) {
                found = Some(i);
            } else {
                continue;
            }
        } else if line.contains("name:") {
            break;
        }
        if let Some(m) = field_re.find(line) {
            let at = m.start() + m.as_str().find(field).unwrap_or(0);
            return Some((i + 1, at + 1));
        }
    }
    found.map(|i| (i + 1, lines[i].len() - lines[i].trim_start().len() + 1))
}

/// Turn a serde_yaml error into a located error with a suggestion for unknown fields.
fn yaml_error(file: &Path, source: &str, e: &serde_yaml::Error) -> ConfigError {
    let full = e.to_string();
    // serde_yaml appends " at line L column C"; the location is shown separately.
    let message = match full.find(" at line ") {
        Some(i) => full[..i].to_string(),
        None => full.clone(),
    };
    let loc = e.location();
    let mut err = ConfigError::new(file, message.clone()).at(
        source,
        loc.as_ref().map(|l| l.line()),
        loc.as_ref().map(|l| l.column()),
    );
    if let Some(caps) = regex::Regex::new(r"unknown field `([^`]*)`, expected (?:one of )?(.*)")
        .expect("static regex")
        .captures(&message)
    {
        let word = &caps[1];
        let expected: Vec<&str> =
            caps[2].split(", ").map(|s| s.trim_matches('`').trim_start_matches("or `")).collect();
        err.suggestion =
            closest(word, expected.iter().map(|s| s.trim_matches('`'))).map(str::to_string);
        err.help = Some(format!("remove `{word}` or use one of: {}", &caps[2]));
        if let Some(i) = message.find(", expected") {
            err.message = message[..i].to_string();
        }
    } else if message.contains("missing field `min`") || message.contains("missing field `max`") {
        err.help = Some("every pool needs both `min` and `max` bounds".into());
    } else if let Some(caps) = regex::Regex::new(r"missing field `(name|start|end|value)`")
        .expect("static regex")
        .captures(&message)
    {
        err.help = Some(format!(
            "add `{}` to the schedule, e.g. `{{ name: office-hours, start: \"0 8 * * 1-5\", end: \"0 18 * * 1-5\", timezone: Europe/Paris, value: 10 }}`",
            &caps[1]
        ));
    } else if let Some(caps) =
        regex::Regex::new(r"missing field `([^`]*)`").expect("static regex").captures(&message)
    {
        err.help = Some(format!("add `{}` to the pool", &caps[1]));
    } else {
        err.help = Some("see docs/scaling.md for the pools file format".into());
    }
    err
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "pools:\n  workers:\n    project: infra\n    stack: prod\n    key: infra:count\n    targets: [\"urn:pulumi:prod::infra::aws:x::w\"]\n    min: 1\n    max: 5\n    cooldown_up: 30s\n";

    #[test]
    fn loads_a_good_file() {
        let p = parse(Path::new("/x/pilum-scale.yaml"), GOOD).expect("valid");
        let w = p.get("workers").expect("pool");
        assert_eq!(w.spec.cooldown_up, Duration::from_secs(30));
        assert_eq!(w.spec.cooldown_down, Duration::from_secs(300));
        assert_eq!(w.project_dir, Path::new("/x/infra"));
        assert_eq!(w.spec.strategy, "incremental");
    }

    #[test]
    fn unknown_key_is_located_with_a_suggestion() {
        let src = GOOD.replace("    min: 1\n", "    mni: 1\n    min: 1\n");
        let errs = parse(Path::new("p.yaml"), &src).unwrap_err();
        assert_eq!(errs[0].line, Some(7));
        assert_eq!(errs[0].suggestion.as_deref(), Some("min"));
        assert!(errs[0].to_string().contains("unknown field `mni`"), "{}", errs[0]);
    }

    #[test]
    fn min_above_max_points_at_min() {
        let src = GOOD.replace("min: 1", "min: 9");
        let errs = parse(Path::new("p.yaml"), &src).unwrap_err();
        assert_eq!(errs[0].line, Some(7));
        assert!(errs[0].message.contains("greater than `max`"));
    }

    #[test]
    fn missing_bound_is_reported() {
        let src = GOOD.replace("    max: 5\n", "");
        let errs = parse(Path::new("p.yaml"), &src).unwrap_err();
        assert!(errs[0].message.contains("missing field `max`"), "{}", errs[0]);
        assert!(errs[0].line.is_some());
    }

    #[test]
    fn durations() {
        assert_eq!(crate::duration::parse("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(crate::duration::parse("5m").unwrap(), Duration::from_secs(300));
        assert!(crate::duration::parse("5 parsecs").is_err());
    }
}
