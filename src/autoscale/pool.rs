//! The pools file (`pilum-scale.yaml`): its schema, loading and validation.
//!
//! A pool is one scaled value: a Pulumi config key in one stack, the resources a targeted
//! `pulumi up` touches, hard bounds, cooldowns, a maximum step and the strategy that proposes
//! values. Loading never panics and reports every problem at once: each is a [`Diagnostic`] with
//! the file, line and column (found by the field's path, see `locate.rs`), a `help:` line and,
//! for misspelt keys, a suggestion. The file is parsed into a YAML value first (after the
//! nesting check), then checked field by field, so one bad field never hides another.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::autoscale::locate::{self, Seg};
use crate::autoscale::schedule::{Schedule, ScheduleSpec};
use crate::autoscale::signal::MAX_MAGNITUDE;
use crate::autoscale::strategy::Strategy;
use crate::diagnostic::{Diagnostic, PoolsItem, Problem, closest};

/// The whole pools file. The loader reads the top level field by field (so every problem is
/// reported); this struct is its schema, and gives the known keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[expect(dead_code, reason = "the schema of the top level, read for its field names")]
pub(crate) struct PoolsFile {
    /// SNS topics every pool accepts (a pool may add its own with `topics`).
    #[serde(default)]
    pub sns_topics: Vec<String>,
    /// ChatOps notifiers for the scaler's events.
    #[serde(default)]
    pub notify: Vec<crate::notify::config::Entry>,
    pub pools: BTreeMap<String, PoolSpec>,
}

/// One pool as written in the file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PoolSpec {
    /// The Pulumi project directory, relative to the pools file.
    pub project: PathBuf,
    pub stack: String,
    /// The config key, `project:key` or a bare key namespaced by Pulumi.
    pub key: String,
    /// URNs passed to `pulumi up --target`.
    pub targets: Vec<String>,
    pub min: i64,
    pub max: i64,
    /// After a scale-up, only a larger step proceeds (by the difference) for this long; a
    /// still-firing alarm therefore steps again once per `cooldown_up`. Default 5 minutes (as
    /// AWS's default cooldown), so a firing alarm does not walk the pool to `max` tick by tick.
    #[serde(default = "default_cooldown_up", deserialize_with = "crate::duration::deserialize")]
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
    /// KEDA-like: when the signal sources are silent (or only say `INSUFFICIENT_DATA`) for
    /// longer than `after`, go to `value`.
    #[serde(default)]
    pub fallback: Option<Fallback>,
    /// Composite scaling: more config keys driven by the same decision, each with its bounds.
    #[serde(default)]
    pub keys: BTreeMap<String, KeySpec>,
    /// Drift auto-refresh: how often to compare the stack with the cloud, and what to do.
    #[serde(default)]
    pub drift: Option<crate::autoscale::drift::DriftSpec>,
}

/// One more config key of a composite pool: an expression of the pool's value, or a value the
/// strategy returns in `values`, clamped to its own bounds.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeySpec {
    /// A Rhai expression of `value` (the pool's value after the guardrails) and `params`.
    #[serde(default)]
    pub expr: Option<String>,
    /// The name of a value the strategy returns in `values` (kept when it returns none).
    #[serde(default)]
    pub from: Option<String>,
    pub min: i64,
    pub max: i64,
    /// More URNs for the one `pulumi up` (added to the pool's `targets`).
    #[serde(default)]
    pub targets: Vec<String>,
}

/// A compiled [`KeySpec`].
#[derive(Debug, Clone)]
pub(crate) struct Key {
    pub key: String,
    pub spec: KeySpec,
    pub expr: Option<crate::autoscale::strategy::Expr>,
}

/// `fallback: { after: 10m, value: 4 }`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct Fallback {
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub after: Duration,
    pub value: i64,
}

/// A direction and size for a signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Directive {
    pub action: Action,
    #[serde(default)]
    pub step: Option<i64>,
    #[serde(default)]
    pub value: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Action {
    Up,
    Down,
    Set,
}

impl Action {
    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "up" => Some(Self::Up),
            "down" => Some(Self::Down),
            "set" => Some(Self::Set),
            _ => None,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Down => "down",
            Self::Set => "set",
        }
    }
}

impl Directive {
    /// Check that the directive is complete and bounded: `up`/`down` need a step between 1 and
    /// [`MAX_MAGNITUDE`], `set` a value between 0 and [`MAX_MAGNITUDE`].
    pub(crate) fn validate(&self) -> Result<(), String> {
        let bounded = |field, v| {
            crate::autoscale::signal::bounded(field, v, i64::from(field == "step"), MAX_MAGNITUDE)
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        // Every number given is bounded, whether or not this action reads it: a signal keeps
        // both, and a strategy may look at either.
        if let Some(s) = self.step {
            bounded("step", s)?;
        }
        if let Some(v) = self.value {
            bounded("value", v)?;
        }
        match self.action {
            Action::Up | Action::Down => match self.step {
                Some(s) => bounded("step", s),
                None => Err(format!("action `{}` needs a `step`", self.action.as_str())),
            },
            Action::Set => match self.value {
                Some(v) => bounded("value", v),
                None => Err("action `set` needs a `value`".into()),
            },
        }
    }
}

fn default_cooldown_up() -> Duration {
    Duration::from_secs(300)
}

fn default_cooldown_down() -> Duration {
    Duration::from_secs(300)
}

fn default_strategy() -> String {
    "incremental".into()
}

/// A validated pool, ready for the scaler.
#[derive(Debug, Clone)]
pub(crate) struct Pool {
    pub name: String,
    /// Absolute (or pools-file-relative resolved) project directory.
    pub project_dir: PathBuf,
    pub spec: PoolSpec,
    /// Every SNS topic this pool accepts.
    pub topics: Vec<String>,
    /// The compiled `schedules`, in file order.
    pub schedules: Vec<Schedule>,
    /// The compiled strategy.
    pub strategy: Strategy,
    /// Composite scaling: the other keys, in name order.
    pub keys: Vec<Key>,
}

impl Pool {
    /// The apply lane: pools on one stack share it.
    pub(crate) fn stack_id(&self) -> String {
        format!("{}#{}", self.project_dir.display(), self.spec.stack)
    }
}

/// The loaded pools, in name order.
#[derive(Debug, Clone)]
pub(crate) struct Pools {
    pub file: PathBuf,
    pub pools: Vec<Pool>,
    /// ChatOps: the notifiers the scaler's events go to (`notify:`, as in `pilum-project.yaml`).
    pub notify: Vec<crate::notify::config::Entry>,
}

impl Pools {
    pub(crate) fn get(&self, name: &str) -> Option<&Pool> {
        self.pools.iter().find(|p| p.name == name)
    }

    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.pools.iter().map(|p| p.name.as_str())
    }
}

/// Read and validate a pools file, compiling every strategy. Errors are every problem found,
/// each located in the file.
pub(crate) fn load(file: &Path) -> Result<Pools, Vec<Diagnostic>> {
    let source = std::fs::read_to_string(file).map_err(|e| {
        vec![Diagnostic::of(file, Problem::PoolsUnreadable { error: e.to_string() })]
    })?;
    parse(file, &source)
}

/// Validate pools file text (`file` is used for locations and relative paths).
pub(crate) fn parse(file: &Path, source: &str) -> Result<Pools, Vec<Diagnostic>> {
    if let Err(deep) = crate::yaml::check_depth(source) {
        return Err(vec![
            Diagnostic::of(file, Problem::PoolsTooDeep { limit: crate::yaml::MAX_DEPTH })
                .at(source, deep.line, deep.col),
        ]);
    }
    let value: serde_yaml::Value = serde_yaml::from_str(source).map_err(|e| {
        // libyaml's own report, with the construct left open (an unclosed `[` at the end of
        // the file points at the `[`), as for `pilum.yaml`.
        let d = if let Some(syntax) = crate::yaml::syntax_error(source) {
            let m = syntax.position();
            Diagnostic::of(file, Problem::Syntax(syntax)).at(source, m.line, m.col)
        } else {
            // Well-formed YAML that serde_yaml still refuses (a duplicate key, …); some errors
            // (a second document) come without a position: the start of the file.
            let (line, col) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
            let text = e.to_string();
            let message = text.split(" at line ").next().unwrap_or(&text).to_string();
            Diagnostic::of(file, Problem::Yaml(message)).at(source, line, col)
        };
        vec![d.help("see docs/scaling.md for the pools file format")]
    })?;
    validate(file, source, &value)
}

/// The names of a struct's fields, straight from its `Deserialize` derive: the candidates for
/// "did you mean" and the known keys for unknown-key errors.
fn fields_of<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
    use serde::de::{Error as _, Visitor};
    struct Names<'a>(&'a mut &'static [&'static str]);
    impl<'de> serde::Deserializer<'de> for Names<'_> {
        type Error = serde::de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(Self::Error::custom("not a struct"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(Self::Error::custom("fields recorded"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Names(&mut fields));
    fields
}

/// Collects the problems of one file, each located by its path in the text.
struct Problems<'a> {
    file: &'a Path,
    source: &'a str,
    list: Vec<Diagnostic>,
}

impl Problems<'_> {
    fn at(&mut self, path: &[Seg<'_>], problem: Problem) -> &mut Diagnostic {
        let mut d = Diagnostic::of(self.file, problem);
        // Not found (a missing key of the top level): the start of the file.
        let fallback = (!self.source.trim().is_empty()).then_some((1, 1));
        if let Some((line, col)) = locate::position(self.source, path).or(fallback) {
            d = d.at(self.source, line, col);
        }
        self.list.push(d);
        self.list.last_mut().expect("just pushed")
    }

    /// Report keys of `map` that `T` does not have, with the closest known key.
    fn unknown_keys<T: serde::de::DeserializeOwned>(
        &mut self,
        map: &serde_yaml::Mapping,
        path: &[Seg<'_>],
        item: &PoolsItem,
    ) -> bool {
        let known = fields_of::<T>();
        let mut ok = true;
        for k in map.keys() {
            let Some(name) = k.as_str() else {
                self.at(path, Problem::PoolsKeyNotText { item: item.clone() });
                ok = false;
                continue;
            };
            if known.contains(&name) {
                continue;
            }
            ok = false;
            let mut at: Vec<Seg<'_>> = path.to_vec();
            at.push(Seg::Key(name));
            let problem =
                Problem::PoolsUnknownField { item: item.clone(), field: name.to_string(), known };
            let d = self.at(&at, problem);
            d.did_you_mean = closest(name, known.iter().copied()).map(str::to_string);
        }
        ok
    }

    /// Report each of `required` that `map` lacks, at `path`.
    fn missing_keys(
        &mut self,
        map: &serde_yaml::Mapping,
        required: &[&str],
        path: &[Seg<'_>],
        item: &PoolsItem,
    ) -> bool {
        let mut ok = true;
        for field in required {
            if !map.contains_key(*field) {
                let problem =
                    Problem::PoolsMissingField { item: item.clone(), field: field.to_string() };
                self.at(path, problem);
                ok = false;
            }
        }
        ok
    }

    /// Deserialize `value` as `T`, reporting a failure at `path`.
    fn typed<T: serde::de::DeserializeOwned>(
        &mut self,
        value: &serde_yaml::Value,
        path: &[Seg<'_>],
        item: PoolsItem,
    ) -> Option<T> {
        match serde_yaml::from_value::<T>(value.clone()) {
            Ok(t) => Some(t),
            Err(e) => {
                self.at(path, Problem::PoolsBadValue { item, field: None, error: e.to_string() });
                None
            }
        }
    }

    /// Report `problem` of pool `pool` at `path`, worded as [`Problem::InPool`].
    fn in_pool(&mut self, path: &[Seg<'_>], pool: &str, problem: Problem) -> &mut Diagnostic {
        self.at(path, Problem::InPool { pool: pool.to_string(), problem: Box::new(problem) })
    }
}

/// A value that fills every required field of a pool, so one field at a time can be checked.
fn probe_base() -> serde_yaml::Mapping {
    let mut m = serde_yaml::Mapping::new();
    for (k, v) in [
        ("project", serde_yaml::Value::from(".")),
        ("stack", "s".into()),
        ("key", "k".into()),
        ("targets", serde_yaml::Value::Sequence(vec!["urn:pulumi:x".into()])),
        ("min", 0.into()),
        ("max", 1.into()),
    ] {
        m.insert(k.into(), v);
    }
    m
}

/// Check one pool's structure field by field, so every bad field is reported with its path
/// (not serde's first error only). Returns the typed spec when everything is right.
fn pool_spec(p: &mut Problems<'_>, name: &str, value: &serde_yaml::Value) -> Option<PoolSpec> {
    use Seg::Key;
    let at = [Key("pools"), Key(name)];
    let item = PoolsItem::Pool(name.to_string());
    let Some(map) = value.as_mapping() else {
        p.at(&at, Problem::PoolsNotAMap { item });
        return None;
    };
    // Unknown keys are reported but do not stop the other checks of the pool.
    p.unknown_keys::<PoolSpec>(map, &at, &item);
    let known: serde_yaml::Mapping = map
        .iter()
        .filter(|(k, _)| k.as_str().is_some_and(|f| fields_of::<PoolSpec>().contains(&f)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut ok = true;
    let required = ["project", "stack", "key", "targets", "min", "max"];
    ok &= p.missing_keys(&known, &required, &at, &item);
    for (k, v) in &known {
        let Some(field) = k.as_str() else { continue };
        let path = [Key("pools"), Key(name), Key(field)];
        match field {
            "alarms" if v.is_mapping() => {
                for (alarm, d) in v.as_mapping().into_iter().flatten() {
                    let alarm = alarm.as_str().unwrap_or("?");
                    let path = [Key("pools"), Key(name), Key("alarms"), Key(alarm)];
                    let item =
                        PoolsItem::Alarm { pool: name.to_string(), alarm: alarm.to_string() };
                    if let Some(m) = d.as_mapping() {
                        ok &= p.unknown_keys::<Directive>(m, &path, &item);
                    }
                    ok &= p.typed::<Directive>(d, &path, item).is_some();
                }
            }
            "schedules" if v.is_sequence() => {
                for (i, item) in v.as_sequence().into_iter().flatten().enumerate() {
                    let path = [Key("pools"), Key(name), Key("schedules"), Seg::Index(i)];
                    let what = PoolsItem::Schedule { pool: name.to_string(), number: i + 1 };
                    if let Some(m) = item.as_mapping() {
                        ok &= p.unknown_keys::<ScheduleSpec>(m, &path, &what);
                        let required = ["name", "start", "end", "value"];
                        if !p.missing_keys(m, &required, &path, &what) {
                            ok = false;
                            continue;
                        }
                    }
                    ok &= p.typed::<ScheduleSpec>(item, &path, what).is_some();
                }
            }
            _ => {
                // The field alone on top of a valid pool: its own error, with its path.
                let mut probe = probe_base();
                probe.insert(k.clone(), v.clone());
                if let Err(e) =
                    serde_yaml::from_value::<PoolSpec>(serde_yaml::Value::Mapping(probe))
                {
                    let field = Some(field.to_string());
                    p.at(
                        &path,
                        Problem::PoolsBadValue { item: item.clone(), field, error: e.to_string() },
                    );
                    ok = false;
                }
            }
        }
    }
    if !ok {
        return None;
    }
    match serde_yaml::from_value::<PoolSpec>(serde_yaml::Value::Mapping(known)) {
        Ok(spec) => Some(spec),
        Err(e) => {
            // Only a missing field is left (every present one was checked above).
            p.at(&at, Problem::PoolsBadValue { item, field: None, error: e.to_string() });
            None
        }
    }
}

/// Whether `arn` looks like an SNS topic ARN: `arn:<partition>:sns:<region>:<account>:<name>`.
fn is_topic_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.split(':').collect();
    parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "sns"
        && !parts[3].is_empty()
        && parts[4].len() == 12
        && parts[4].bytes().all(|b| b.is_ascii_digit())
        && !parts[5].is_empty()
}

/// Validate a parsed pools file (also used by `--rules-from-output`, where `source` is the JSON
/// text of the stack output). Every problem is reported; strategies are compiled too.
pub(crate) fn validate(
    file: &Path,
    source: &str,
    value: &serde_yaml::Value,
) -> Result<Pools, Vec<Diagnostic>> {
    use Seg::Key;
    let base = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut p = Problems { file, source, list: Vec::new() };
    let Some(top) = value.as_mapping() else {
        p.at(&[], Problem::PoolsNotAMap { item: PoolsItem::File });
        return Err(p.list);
    };
    p.unknown_keys::<PoolsFile>(top, &[], &PoolsItem::File);
    let sns_topics: Vec<String> = match top.get("sns_topics") {
        Some(v) => {
            p.typed(v, &[Key("sns_topics")], PoolsItem::Section("sns_topics")).unwrap_or_default()
        }
        None => Vec::new(),
    };
    for (i, t) in sns_topics.iter().enumerate() {
        if !is_topic_arn(t) {
            p.at(&[Key("sns_topics"), Seg::Index(i)], Problem::NotATopicArn { arn: t.clone() });
        }
    }
    let raw_pools = match top.get("pools") {
        Some(serde_yaml::Value::Mapping(m)) if !m.is_empty() => m.clone(),
        Some(serde_yaml::Value::Mapping(_)) | None => {
            p.at(&[Key("pools")], Problem::NoPools);
            return Err(p.list);
        }
        Some(_) => {
            p.at(&[Key("pools")], Problem::PoolsNotAMap { item: PoolsItem::Section("pools") });
            return Err(p.list);
        }
    };
    let mut pools: Vec<Pool> = Vec::new();
    let mut seen_keys: BTreeMap<(PathBuf, String, String), String> = BTreeMap::new();
    for (k, v) in &raw_pools {
        let Some(name) = k.as_str() else {
            p.at(&[Key("pools")], Problem::PoolNameNotText);
            continue;
        };
        let at = |field: &'static str| [Key("pools"), Key(name), Key(field)];
        if let Err(error) = crate::names::check(name) {
            let problem = Problem::BadName { what: "pool name", value: name.to_string(), error };
            p.at(&[Key("pools"), Key(name)], problem);
        }
        let Some(spec) = pool_spec(&mut p, name, v) else { continue };
        check_spec(&mut p, name, &spec);
        let project_dir = if spec.project.is_absolute() {
            spec.project.clone()
        } else {
            base.join(&spec.project)
        };
        let shared = (project_dir.clone(), spec.stack.clone(), spec.key.clone());
        if let Some(other) = seen_keys.get(&shared) {
            let problem = Problem::SharedKey {
                first: other.clone(),
                second: name.to_string(),
                key: spec.key.clone(),
                stack: spec.stack.clone(),
            };
            p.at(&at("key"), problem);
        } else {
            seen_keys.insert(shared, name.to_string());
        }
        let mut schedules = Vec::new();
        for (i, sched) in spec.schedules.iter().enumerate() {
            let item = |field: &'static str| {
                [Key("pools"), Key(name), Key("schedules"), Seg::Index(i), Key(field)]
            };
            if spec.schedules[..i].iter().any(|o| o.name == sched.name) {
                let problem = Problem::DuplicateSchedule {
                    pool: name.to_string(),
                    schedule: sched.name.clone(),
                };
                p.at(&item("name"), problem);
                continue;
            }
            if !(spec.min..=spec.max).contains(&sched.value) {
                let problem = Problem::ScheduleOutsideBounds {
                    schedule: sched.name.clone(),
                    value: sched.value,
                    min: spec.min,
                    max: spec.max,
                };
                p.in_pool(&item("value"), name, problem);
            }
            match Schedule::compile(sched) {
                Ok(s) => schedules.push(s),
                Err(e) => {
                    let (field, d) = *e;
                    let mut d2 = d.in_pool(name);
                    d2.file = file.to_path_buf();
                    if let Some((l, c)) = locate::position(source, &item(field.as_str())) {
                        d2 = d2.at(source, l, c);
                    }
                    p.list.push(d2);
                }
            }
        }
        let strategy = match crate::autoscale::strategy::resolve(&base, &spec.strategy) {
            Err(suggestion) => {
                // The built-in names come from the embedded table, as the docs' list does.
                let builtins = crate::autoscale::strategy::BUILTINS.iter().map(|(n, _)| *n);
                let problem = Problem::UnknownStrategy {
                    strategy: spec.strategy.clone(),
                    builtins: builtins.collect(),
                };
                let d = p.in_pool(&at("strategy"), name, problem);
                d.did_you_mean = suggestion.map(str::to_string);
                None
            }
            Ok(src) => match Strategy::load(&src, &spec.strategy, &base) {
                Ok(s) => Some(s),
                Err(d) => {
                    p.list.push(d.in_pool(name));
                    None
                }
            },
        };
        let mut keys = Vec::new();
        for (key, ks) in &spec.keys {
            let item =
                |field: &'static str| [Key("pools"), Key(name), Key("keys"), Key(key), Key(field)];
            let at_key = [Key("pools"), Key(name), Key("keys"), Key(key)];
            let shared = (project_dir.clone(), spec.stack.clone(), key.clone());
            if key.trim().is_empty() || *key == spec.key {
                p.in_pool(&at_key, name, Problem::KeysEntryIsOwnKey { key: key.clone() });
                continue;
            }
            if let Some(other) = seen_keys.get(&shared) {
                let problem = Problem::SharedKey {
                    first: other.clone(),
                    second: name.to_string(),
                    key: key.clone(),
                    stack: spec.stack.clone(),
                };
                p.at(&at_key, problem);
            } else {
                seen_keys.insert(shared, name.to_string());
            }
            if ks.expr.is_some() == ks.from.is_some() {
                p.in_pool(&at_key, name, Problem::KeyNeedsOneSource { key: key.clone() });
            }
            if ks.min > ks.max || ks.min < 0 || ks.max > MAX_MAGNITUDE {
                let problem = Problem::KeyBounds {
                    key: key.clone(),
                    min: ks.min,
                    max: ks.max,
                    limit: MAX_MAGNITUDE,
                };
                p.in_pool(&item("min"), name, problem);
            }
            for (i, t) in ks.targets.iter().enumerate() {
                if !t.starts_with("urn:pulumi:") {
                    p.at(
                        &[
                            Key("pools"),
                            Key(name),
                            Key("keys"),
                            Key(key),
                            Key("targets"),
                            Seg::Index(i),
                        ],
                        Problem::NotAUrn {
                            item: PoolsItem::Key { pool: name.to_string(), key: key.clone() },
                            target: t.clone(),
                        },
                    );
                }
            }
            let expr = match &ks.expr {
                Some(text) => match crate::autoscale::strategy::Expr::compile(text, &base) {
                    Ok(e) => Some(e),
                    Err(e) => {
                        let problem = Problem::KeyExprDoesNotCompile {
                            key: key.clone(),
                            error: e.to_string(),
                        };
                        p.in_pool(&item("expr"), name, problem);
                        None
                    }
                },
                None => None,
            };
            keys.push(crate::autoscale::pool::Key { key: key.clone(), spec: ks.clone(), expr });
        }
        let Some(strategy) = strategy else { continue };
        let mut topics = sns_topics.clone();
        topics.extend(spec.topics.iter().cloned());
        pools.push(Pool {
            name: name.to_string(),
            project_dir,
            spec,
            topics,
            schedules,
            strategy,
            keys,
        });
    }
    let notify: Vec<crate::notify::config::Entry> = match top.get("notify") {
        Some(v) => p.typed(v, &[Key("notify")], PoolsItem::Section("notify")).unwrap_or_default(),
        None => Vec::new(),
    };
    let known = crate::notify::known(&base);
    for (i, e) in notify.iter().enumerate() {
        for problem in e.check(&known) {
            let notifier = e.display_name().to_string();
            let d = p.at(
                &[Key("notify"), Seg::Index(i)],
                Problem::ScaleNotifier { notifier, error: problem.to_string() },
            );
            d.did_you_mean = problem.suggestion();
        }
        for ev in e.events.iter().flatten() {
            if let Some(k) = crate::notify::Kind::parse(ev)
                && !crate::notify::Kind::SCALE.contains(&k)
            {
                let problem = Problem::ScaleNotifierDeployEvent {
                    notifier: e.display_name().to_string(),
                    event: ev.clone(),
                    scale_events: crate::notify::Kind::SCALE.iter().map(|k| k.name()).collect(),
                };
                p.at(&[Key("notify"), Seg::Index(i)], problem);
            }
        }
    }
    if p.list.is_empty() {
        Ok(Pools { file: file.to_path_buf(), pools, notify })
    } else {
        Err(p.list)
    }
}

/// The checks on one typed pool: bounds, steps, names, directions.
fn check_spec(p: &mut Problems<'_>, name: &str, spec: &PoolSpec) {
    use Seg::Key;
    let at = |field: &'static str| [Key("pools"), Key(name), Key(field)];
    let pool = || name.to_string();
    let limit = MAX_MAGNITUDE;
    if spec.min > spec.max {
        p.at(&at("min"), Problem::MinAboveMax { pool: pool(), min: spec.min, max: spec.max });
    }
    // `min` above the limit is `max` above it too, or `min` above `max`: one report is enough.
    let range =
        |field, value, min| Problem::OutOfRange { pool: pool(), field, value, min, max: limit };
    if spec.min < 0 {
        p.at(&at("min"), range("min", spec.min, 0));
    }
    if spec.max > limit {
        p.at(&at("max"), range("max", spec.max, 0));
    }
    if let Some(step) = spec.max_step
        && !(1..=limit).contains(&step)
    {
        p.at(&at("max_step"), range("max_step", step, 1));
    }
    if spec.targets.is_empty() {
        p.at(&at("targets"), Problem::NoTargets { pool: pool() });
    }
    for (i, t) in spec.targets.iter().enumerate() {
        if !t.starts_with("urn:pulumi:") {
            p.at(
                &[Key("pools"), Key(name), Key("targets"), Seg::Index(i)],
                Problem::NotAUrn { item: PoolsItem::Pool(pool()), target: t.clone() },
            );
        }
    }
    for (field, v) in [("stack", &spec.stack), ("key", &spec.key)] {
        if v.trim().is_empty() {
            p.at(&at(field), Problem::EmptyPoolField { pool: pool(), field });
        }
    }
    for (i, t) in spec.topics.iter().enumerate() {
        if !is_topic_arn(t) {
            p.in_pool(
                &[Key("pools"), Key(name), Key("topics"), Seg::Index(i)],
                name,
                Problem::NotATopicArn { arn: t.clone() },
            );
        }
    }
    for (alarm, d) in &spec.alarms {
        if let Err(error) = d.validate() {
            p.at(
                &[Key("pools"), Key(name), Key("alarms"), Key(alarm)],
                Problem::BadDirective {
                    item: PoolsItem::Alarm { pool: pool(), alarm: alarm.clone() },
                    error,
                },
            );
        }
    }
    if let Some(d) = &spec.drift {
        if d.every.is_zero() {
            p.in_pool(
                &[Key("pools"), Key(name), Key("drift"), Key("every")],
                name,
                Problem::NeedsPositive { section: "drift", field: "every" },
            );
        }
        if d.policy == crate::autoscale::drift::Policy::Adopt && d.property.is_none() {
            p.in_pool(&at("drift"), name, Problem::AdoptNeedsProperty);
        }
    }
    if let Some(f) = &spec.fallback {
        if !(spec.min..=spec.max).contains(&f.value) {
            p.in_pool(
                &[Key("pools"), Key(name), Key("fallback"), Key("value")],
                name,
                Problem::FallbackOutsideBounds { value: f.value, min: spec.min, max: spec.max },
            );
        }
        if f.after.is_zero() {
            p.in_pool(
                &[Key("pools"), Key(name), Key("fallback"), Key("after")],
                name,
                Problem::NeedsPositive { section: "fallback", field: "after" },
            );
        }
    }
    if let Some(d) = &spec.on_ok
        && let Err(error) = d.validate()
    {
        p.at(&at("on_ok"), Problem::BadDirective { item: PoolsItem::OnOk { pool: pool() }, error });
    }
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
        assert_eq!(errs[0].line, 7);
        assert_eq!(errs[0].did_you_mean.as_deref(), Some("min"));
        assert!(errs[0].to_string().contains("unknown field `mni`"), "{}", errs[0]);
    }

    #[test]
    fn min_above_max_points_at_min() {
        let src = GOOD.replace("min: 1", "min: 9");
        let errs = parse(Path::new("p.yaml"), &src).unwrap_err();
        assert_eq!(errs[0].line, 7);
        assert!(errs[0].message.contains("greater than `max`"));
    }

    #[test]
    fn numbers_out_of_range_name_their_range() {
        let src = GOOD.replace("min: 1", "min: -1").replace("max: 5", "max: 2000000")
            + "    max_step: 0\n    fallback: { after: 1m, value: 3000000 }\n";
        let errs = parse(Path::new("p.yaml"), &src).unwrap_err();
        let all: Vec<(&str, Option<&str>)> =
            errs.iter().map(|e| (e.message.as_str(), e.help.as_deref())).collect();
        for expected in [
            (
                "pool `workers` has `min` -1, outside [0, 1000000]",
                "use a `min` between 0 and 1000000",
            ),
            (
                "pool `workers` has `max` 2000000, outside [0, 1000000]",
                "use a `max` between 0 and 1000000",
            ),
            (
                "pool `workers` has `max_step` 0, outside [1, 1000000]",
                "use a step between 1 and 1000000, or remove it",
            ),
            (
                "pool `workers`: `fallback` has `value` 3000000 outside the pool's bounds [-1, 2000000]",
                "use a value between the pool's `min` and `max`",
            ),
        ] {
            assert!(all.contains(&(expected.0, Some(expected.1))), "{expected:?} in {all:#?}");
        }
        assert_eq!(
            errs.iter().find(|e| e.message.contains("`max_step`")).map(|e| e.line),
            Some(10)
        );
    }

    #[test]
    fn nested_items_are_named_in_their_messages() {
        let src = GOOD.to_string()
            + "    topics: [nope]\n    alarms:\n      High: { action: up }\n    on_ok: { action: set }\n    keys:\n      infra:db: { from: q, min: 0, max: 1, targets: [x] }\n";
        let errs = parse(Path::new("p.yaml"), &src).unwrap_err();
        let all: Vec<&str> = errs.iter().map(|e| e.message.as_str()).collect();
        for expected in [
            "pool `workers`: `nope` is not an SNS topic ARN",
            "pool `workers` alarm `High`: action `up` needs a `step`",
            "pool `workers` `on_ok`: action `set` needs a `value`",
            "pool `workers` key `infra:db` target `x` is not a Pulumi URN",
        ] {
            assert!(all.contains(&expected), "{expected} in {all:#?}");
        }
        let help = |part: &str| {
            errs.iter().find(|e| e.message.contains(part)).and_then(|e| e.help.clone())
        };
        assert_eq!(help("alarm `High`").as_deref(), Some("e.g. `{ action: up, step: 2 }`"));
        assert_eq!(help("`on_ok`").as_deref(), Some("e.g. `{ action: down, step: 1 }`"));
        assert!(help("SNS topic").is_some_and(|h| h.contains("arn:aws:sns:us-east-1:")));
    }

    #[test]
    fn missing_bound_is_reported() {
        let src = GOOD.replace("    max: 5\n", "");
        let errs = parse(Path::new("p.yaml"), &src).unwrap_err();
        assert!(errs[0].message.contains("missing field `max`"), "{}", errs[0]);
        assert_eq!(errs[0].line, 2);
    }

    #[test]
    fn every_problem_is_reported_at_once_with_its_field() {
        let src = format!(
            "sns_topics: [not-an-arn]\n{}  other:\n    project: infra\n    stack: \"\"\n    key: infra:count\n    targets: [\"urn:pulumi:x\"]\n    min: 1\n    max: 5\n    cooldown_up: -1\n    cooldown_down: .inf\n    schedules:\n      - {{ name: s, start: \"0 8 * * *\", end: \"0 9 * * *\", value: 50 }}\n",
            GOOD.replace("stack: prod", "stack: \"\"")
        );
        let errs = parse(Path::new("p.yaml"), &src).unwrap_err();
        let all: Vec<String> = errs.iter().map(ToString::to_string).collect();
        let has = |part: &str| assert!(all.iter().any(|e| e.contains(part)), "{part} in {all:#?}");
        has("`not-an-arn` is not an SNS topic ARN");
        has("field `cooldown_up`: duration `-1` is negative");
        has("field `cooldown_down`");
        // The typed checks of `other` stop at its bad fields; `workers` goes on.
        has("pool `workers` has an empty `stack`");
        for e in &errs {
            assert!(e.line > 0, "every problem has a line: {e}");
        }
        let fixed = src
            .replace("cooldown_up: -1", "cooldown_up: 1s")
            .replace("cooldown_down: .inf", "cooldown_down: 1s")
            .replace("stack: \"\"", "stack: prod");
        let errs = parse(Path::new("p.yaml"), &fixed).unwrap_err();
        let all: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert!(
            all.iter().any(|e| e.contains("both scale `infra:count` on stack `prod`")),
            "{all:#?}"
        );
        assert!(
            all.iter().any(|e| e.contains("`value` 50 outside the pool's bounds [1, 5]")),
            "{all:#?}"
        );
    }

    #[test]
    fn deep_nesting_is_refused_before_parsing() {
        let src = format!("pools: {}1{}\n", "[".repeat(30_000), "]".repeat(30_000));
        let errs = parse(Path::new("p.yaml"), &src).unwrap_err();
        assert!(errs[0].message.contains("nested too deeply"), "{}", errs[0]);
        assert_eq!(errs[0].line, 1);
    }

    /// The committed inputs that once failed (panicked, hung or were accepted): each is
    /// rejected, quickly, with every problem located.
    #[test]
    fn the_corpus_is_rejected_with_locations() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/corpus/pools");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).expect("corpus dir") {
            let path = entry.expect("entry").path();
            let text = std::fs::read_to_string(&path).expect("corpus file");
            let started = std::time::Instant::now();
            let errs = parse(Path::new("/x/pilum-scale.yaml"), &text)
                .expect_err(&format!("{} must be rejected", path.display()));
            assert!(started.elapsed() < Duration::from_secs(5), "{} took too long", path.display());
            for e in &errs {
                assert!(
                    e.line >= 1 || text.trim().is_empty(),
                    "{}: unlocated: {e}",
                    path.display()
                );
                assert!(e.help.is_some(), "{}: no help: {e}", path.display());
            }
            seen += 1;
        }
        assert!(seen >= 10, "the corpus is missing ({seen} files)");
    }

    mod props {
        use std::path::Path;
        use std::time::Duration;

        use proptest::prelude::*;

        use crate::autoscale::pool::parse;

        /// A complete pools file the mutations start from.
        const FULL: &str = "sns_topics: [\"arn:aws:sns:us-east-1:123456789012:t\"]\npools:\n  workers:\n    project: infra\n    stack: prod\n    key: infra:count\n    targets: [\"urn:pulumi:prod::infra::aws:x::w\"]\n    min: 1\n    max: 5\n    cooldown_up: 30s\n    cooldown_down: 5m\n    max_step: 2\n    alarms:\n      High: { action: up, step: 2 }\n    on_ok: { action: down, step: 1 }\n    schedules:\n      - { name: office, start: \"0 8 * * 1-5\", end: \"0 18 * * 1-5\", timezone: Europe/Paris, value: 3 }\n";

        const TOKENS: &[&str] = &[
            ".inf",
            "1e300",
            "-1",
            "9223372036854775807",
            "-9223372036854775808",
            "[",
            "{",
            "]",
            "}",
            ":",
            "- ",
            "\n",
            "  ",
            "\"",
            "'",
            "#",
            "&a ",
            "*a",
            "!!str ",
            "~",
            ",",
            "cooldwon_up: 1\n",
            "schedules: [{name: x}]",
            "\t",
            "0x10",
            "NaN",
            "999999999999999999h",
        ];

        #[derive(Debug, Clone)]
        enum Edit {
            Insert(prop::sample::Index, usize),
            Delete(prop::sample::Index, usize),
        }

        fn edit() -> impl Strategy<Value = Edit> {
            prop_oneof![
                (any::<prop::sample::Index>(), 0..TOKENS.len())
                    .prop_map(|(i, t)| Edit::Insert(i, t)),
                (any::<prop::sample::Index>(), 1..20usize).prop_map(|(i, n)| Edit::Delete(i, n)),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

            /// Mutated pools files never panic, finish quickly, and every rejection is
            /// located with a `help:`.
            #[test]
            fn mutated_files_never_panic_and_rejections_are_located(edits in prop::collection::vec(edit(), 0..6)) {
                let mut text = FULL.to_string();
                for e in edits {
                    match e {
                        Edit::Insert(at, t) => {
                            let i = at.index(text.len() + 1);
                            text.insert_str(i, TOKENS[t]);
                        }
                        Edit::Delete(at, n) => {
                            let i = at.index(text.len().max(1)).min(text.len());
                            let end = (i + n).min(text.len());
                            text.replace_range(i..end, "");
                        }
                    }
                }
                let started = std::time::Instant::now();
                let result = parse(Path::new("/x/pilum-scale.yaml"), &text);
                prop_assert!(started.elapsed() < Duration::from_secs(5));
                if let Err(errs) = result {
                    prop_assert!(!errs.is_empty());
                    for e in &errs {
                        prop_assert!(e.line >= 1 || text.trim().is_empty(), "unlocated: {} in\n{}", e, text);
                        prop_assert!(e.help.is_some(), "no help: {}", e);
                    }
                }
            }
        }
    }

    #[test]
    fn durations() {
        assert_eq!(crate::duration::parse("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(crate::duration::parse("5m").unwrap(), Duration::from_secs(300));
        assert!(crate::duration::parse("5 parsecs").is_err());
    }
}
