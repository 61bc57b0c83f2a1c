//! The `pilum.yaml` schema: refuse deep nesting, parse, apply `--env` overrides (deep merge of
//! `environments.<name>`), expand `${VAR}`, and read the keys pilum itself understands.
//! Everything else (the recipe's section, `build:`) stays in [`Service::config`] for the recipe;
//! a key that is neither pilum's nor the recipe's is an error ([`unknown_keys`]). A file with
//! `targets:` yields one service per target. Problems are collected as [`Diagnostic`]s with line
//! numbers, pointing where the value was written (the `environments.<env>` override, the target,
//! or the base).
//!
//! Names that end up in paths (the service name, target names, regions, environment names) pass
//! [`crate::names::check`]; `env:` keys and `secrets:` entries must be usable environment
//! variable names; the values of listed `secrets:` are registered for masking as they are read.
//!
//! In this file: [`Service`] and where its values were written ([`Service::position`]);
//! [`load`] (depth, syntax, `environments:`, expansion, `targets:`); `read` (one service's own
//! keys); [`unknown_keys`]; then the tests: examples, the corpus of past failures
//! (`tests/fixtures/corpus/pilum-yaml/`) and property tests over mutated files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_yaml::{Mapping, Value};

use super::expand::{expand_tree, key_text};
use crate::diagnostic::{Diagnostic, EnvNameError, Problem, check_env_name, closest};
use crate::yaml::{Outline, Seg, SegBuf, segs};

/// Keys pilum reads itself; any other top-level key must be the recipe's section.
pub(crate) const KNOWN_KEYS: &[&str] = &[
    "name",
    "description",
    "recipe",
    "provider",
    "service",
    "region",
    "regions",
    "depends_on",
    "env",
    "secrets",
    "build",
    "environments",
    "targets",
    "watch",
    "tags",
];

/// The recipe a service asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RecipeRef {
    Name(String),
    /// `provider:` and optional `service:` (the recipe's kind).
    Provider {
        provider: String,
        kind: Option<String>,
    },
}

impl std::fmt::Display for RecipeRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecipeRef::Name(n) => f.write_str(n),
            RecipeRef::Provider { provider, kind: Some(k) } => write!(f, "{provider}/{k}"),
            RecipeRef::Provider { provider, kind: None } => f.write_str(provider),
        }
    }
}

/// A top-level key of a `pilum.yaml` that pilum does not read itself (a recipe's section, or a
/// typo), and where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExtraKey {
    pub key: String,
    /// The key's path in the file: `[key]`, `[targets, 1, key]`, `[environments, prod, key]`.
    pub path: Vec<SegBuf>,
    /// Set when the key was written in this service's own `targets[i]` entry.
    pub in_target: bool,
}

/// One deployable unit: a `pilum.yaml` (or one of its `targets:`).
#[derive(Debug, Clone)]
pub(crate) struct Service {
    pub name: String,
    /// The file's `name:`; equals `name` unless the service is one of several `targets:`.
    pub base_name: String,
    /// The service directory relative to the project root (`.` for the root itself).
    pub dir: PathBuf,
    /// The `pilum.yaml` path relative to the project root.
    pub file: PathBuf,
    /// The file's text, for line numbers in later diagnostics.
    pub text: Arc<str>,
    pub recipe: RecipeRef,
    pub regions: Vec<String>,
    pub depends_on: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub secrets: Vec<String>,
    pub watch: Vec<String>,
    pub tags: Vec<String>,
    /// The names under `environments:` (for a warning when `--env` names none of them).
    pub environments: Vec<String>,
    /// The whole file after `--env` overrides and expansion (without `environments:`/`targets:`).
    pub config: Mapping,
    /// The index of this service in the file's `targets:`.
    pub target: Option<usize>,
    /// The `--env` whose `environments.<name>` override applies to this file.
    pub override_env: Option<String>,
    /// Values that came from `${VAR}`: their path in [`Service::config`] and the text as written.
    pub templates: Vec<(Vec<SegBuf>, String)>,
    /// Keys pilum does not read itself (see [`unknown_keys`]).
    pub extra_keys: Vec<ExtraKey>,
}

impl Service {
    /// `problem` at the key `path` of this service's configuration.
    pub(crate) fn diag(&self, path: &[&str], problem: Problem) -> Diagnostic {
        let segs: Vec<Seg> = path.iter().map(|k| Seg::Key(k)).collect();
        self.report(&segs, problem)
    }

    /// `problem` at the key (or item) `path` of this service's configuration.
    pub(crate) fn report(&self, path: &[Seg], problem: Problem) -> Diagnostic {
        let (line, col) = self.position(path, false);
        Diagnostic::of(&self.file, problem).at(&self.text, line, col)
    }

    /// `problem` at the value at `path` (the quote of `name: "../x"`).
    pub(crate) fn report_value(&self, path: &[Seg], problem: Problem) -> Diagnostic {
        let (line, col) = self.position(path, true);
        Diagnostic::of(&self.file, problem).at(&self.text, line, col)
    }

    /// Where `path` (of [`Service::config`]) was written: in the `--env` override, in this
    /// target's entry, or in the base, whichever holds most of the path.
    pub(crate) fn position(&self, path: &[Seg], value: bool) -> (usize, usize) {
        let Ok(outline) = Outline::parse(&self.text) else { return (1, 1) };
        locate(&outline, path, self.override_env.as_deref(), self.target, value)
    }

    /// `value` as the user wrote it when it came from `${VAR}` (the template, never the
    /// variable's value), else `value` itself.
    pub(crate) fn shown(&self, path: &[Seg], value: &str) -> String {
        self.templates
            .iter()
            .find(|(p, _)| segs(p) == path)
            .map_or_else(|| value.to_string(), |(_, t)| t.clone())
    }

    /// The path of entry `i` of a list-or-string key (`depends_on: x` or `depends_on: [x, y]`).
    pub(crate) fn item_path<'a>(&self, key: &'a str, i: usize) -> Vec<Seg<'a>> {
        match self.config.get(key) {
            Some(Value::Sequence(_)) => vec![Seg::Key(key), Seg::Index(i)],
            _ => vec![Seg::Key(key)],
        }
    }
}

/// The best position of `path` in a file whose service may be a target (`targets[i]`) with an
/// environment override (`environments.<env>`): the candidate holding the longest part of the
/// path wins; the override first, then the target, then the base.
fn locate(
    outline: &Outline,
    path: &[Seg],
    env: Option<&str>,
    target: Option<usize>,
    value: bool,
) -> (usize, usize) {
    let mut prefixes: Vec<Vec<Seg>> = Vec::new();
    if let Some(e) = env {
        if let Some(t) = target {
            prefixes.push(vec![
                Seg::Key("environments"),
                Seg::Key(e),
                Seg::Key("targets"),
                Seg::Index(t),
            ]);
        }
        prefixes.push(vec![Seg::Key("environments"), Seg::Key(e)]);
    }
    if let Some(t) = target {
        prefixes.push(vec![Seg::Key("targets"), Seg::Index(t)]);
    }
    prefixes.push(Vec::new());
    let mut best: Option<(usize, crate::yaml::Located)> = None;
    for prefix in prefixes {
        let full: Vec<Seg> = prefix.iter().chain(path).copied().collect();
        let found = outline.locate(&full);
        if found.matched < prefix.len() {
            continue;
        }
        let own = found.matched - prefix.len();
        if best.as_ref().is_none_or(|(b, _)| own > *b) {
            best = Some((own, found));
        }
    }
    match best {
        Some((own, l)) => {
            let m = if value && own == path.len() { l.value } else { l.key };
            (m.line, m.col)
        }
        None => (1, 1),
    }
}

/// Parse one `pilum.yaml`. `file` is relative to the project root; `lookup` reads the environment.
pub(crate) fn load(
    file: &Path,
    text: &str,
    environment: Option<&str>,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Service>, Vec<Diagnostic>> {
    let text: Arc<str> = Arc::from(text);
    let root = parse(file, &text).map_err(|d| vec![*d])?;
    let Value::Mapping(mut map) = root else {
        return Err(vec![
            Diagnostic::of(file, Problem::NotAMapping { file: "pilum.yaml" }).at(&text, 1, 1),
        ]);
    };
    let mut diags = Vec::new();
    // Positions are looked up in the text only when something is wrong.
    let outline = std::cell::OnceCell::new();
    let at = |path: &[Seg], p: Problem| -> Diagnostic {
        let o = outline.get_or_init(|| Outline::parse(&text).unwrap_or_default());
        let (l, c) = locate(o, path, None, None, false);
        Diagnostic::of(file, p).at(&text, l, c)
    };

    // `environments:`: every override must be a mapping with a valid name, whichever is used.
    let envs = map.remove("environments");
    let mut env_names = Vec::new();
    let mut override_env = None;
    match &envs {
        None | Some(Value::Null) => {}
        Some(Value::Mapping(envs)) => {
            for (k, over) in envs {
                let Some(name) = k.as_str() else {
                    diags.push(at(
                        &[Seg::Key("environments")],
                        Problem::NotAString {
                            field: format!("environment name `{}`", key_text(k)),
                        },
                    ));
                    continue;
                };
                env_names.push(name.to_string());
                if let Err(error) = crate::names::check(name) {
                    let p =
                        Problem::BadName { what: "environment", value: name.to_string(), error };
                    diags.push(at(&[Seg::Key("environments"), Seg::Key(name)], p));
                }
                match over {
                    Value::Mapping(over) => {
                        if environment == Some(name) {
                            deep_merge(&mut map, over);
                            override_env = Some(name.to_string());
                        }
                    }
                    Value::Null => {}
                    _ => diags.push(at(
                        &[Seg::Key("environments"), Seg::Key(name)],
                        Problem::NotAMappingField {
                            field: format!("environments.{name}"),
                            example: "environments: { prod: { region: europe-west1 } }",
                        },
                    )),
                }
            }
        }
        Some(_) => diags.push(at(
            &[Seg::Key("environments")],
            Problem::NotAMappingField {
                field: "environments".into(),
                example: "environments: { prod: { region: europe-west1 } }",
            },
        )),
    }
    let env_prefix: Vec<SegBuf> = match &override_env {
        Some(e) => vec![SegBuf::Key("environments".into()), SegBuf::Key(e.clone())],
        None => Vec::new(),
    };

    let mut expanded = Value::Mapping(map);
    let expansion = expand_tree(&mut expanded, lookup);
    let Value::Mapping(mut map) = expanded else { unreachable!("expansion keeps the shape") };
    for (var, path) in &expansion.missing {
        let o = outline.get_or_init(|| Outline::parse(&text).unwrap_or_default());
        let (l, c) = locate(o, &segs(path), override_env.as_deref(), None, true);
        diags.push(
            Diagnostic::of(file, Problem::UnsetVariable { var: var.clone() }).at(&text, l, c),
        );
    }

    // Keys pilum does not read, wherever they were written, for `unknown_keys`.
    let mut base_extra = Vec::new();
    for k in map.keys().map(key_text) {
        if KNOWN_KEYS.contains(&k.as_str()) {
            continue;
        }
        // A key only in the override is reported there; one in the base, in the base.
        let mut path = Vec::new();
        if override_env.is_some() && !base_has(&text, &k, &outline) {
            path = env_prefix.clone();
        }
        path.push(SegBuf::Key(k.clone()));
        base_extra.push(ExtraKey { key: k, path, in_target: false });
    }

    let targets = map.remove("targets");
    let mut services = Vec::new();
    let ctx = Ctx {
        file,
        text: &text,
        lookup,
        override_env: override_env.clone(),
        templates: &expansion.templates,
    };
    match targets {
        None | Some(Value::Null) => {
            if let Some(s) = read(&ctx, map, None, &mut diags) {
                services.push(Service {
                    environments: env_names.clone(),
                    extra_keys: base_extra,
                    ..s
                });
            }
        }
        Some(Value::Sequence(targets)) => {
            for (i, t) in targets.iter().enumerate() {
                let Value::Mapping(t) = t else {
                    diags.push(at(
                        &[Seg::Key("targets"), Seg::Index(i)],
                        Problem::NotAMappingField {
                            field: format!("targets[{i}]"),
                            example: "targets: [{ recipe: local }, { recipe: shell, shell: {...} }]",
                        },
                    ));
                    continue;
                };
                let mut merged = map.clone();
                deep_merge(&mut merged, t);
                let label_key = ["name", "recipe", "provider"]
                    .into_iter()
                    .find(|k| t.get(*k).and_then(Value::as_str).is_some());
                let label = label_key
                    .and_then(|k| t.get(k))
                    .and_then(Value::as_str)
                    .map_or_else(|| i.to_string(), str::to_string);
                // The target's `name` labels it; the service keeps the file's name as a base.
                if let Some(base) = map.get("name") {
                    merged.insert("name".into(), base.clone());
                }
                let mut extra = base_extra.clone();
                for k in t.keys().map(key_text).filter(|k| !KNOWN_KEYS.contains(&k.as_str())) {
                    extra.retain(|e| e.key != k);
                    let path = vec![
                        SegBuf::Key("targets".into()),
                        SegBuf::Index(i),
                        SegBuf::Key(k.clone()),
                    ];
                    extra.push(ExtraKey { key: k, path, in_target: true });
                }
                let target = Target { index: i, label, label_key };
                if let Some(s) = read(&ctx, merged, Some(&target), &mut diags) {
                    services.push(Service {
                        environments: env_names.clone(),
                        extra_keys: extra,
                        ..s
                    });
                }
            }
        }
        Some(_) => diags.push(at(
            &[Seg::Key("targets")],
            Problem::NotAMappingField {
                field: "targets".into(),
                example: "targets: [{ recipe: local }, { recipe: shell, shell: {...} }]",
            },
        )),
    }
    if diags.is_empty() {
        return Ok(services);
    }
    // In the order of the file; targets can repeat a base problem, shown once.
    diags.sort_by_key(|d| (d.line, d.col));
    diags.dedup();
    Err(diags)
}

/// Whether the file's base (outside `environments:`) has top-level key `k`.
fn base_has(text: &str, k: &str, outline: &std::cell::OnceCell<Outline>) -> bool {
    let o = outline.get_or_init(|| Outline::parse(text).unwrap_or_default());
    o.locate(&[Seg::Key(k)]).matched == 1
}

/// Refuse deep nesting, then parse; syntax errors point at a line that exists.
fn parse(file: &Path, text: &str) -> Result<Value, Box<Diagnostic>> {
    if let Err(e) = crate::yaml::check_depth(text) {
        let d = Diagnostic::of(file, Problem::TooDeep { limit: crate::yaml::MAX_DEPTH });
        return Err(Box::new(d.at(text, e.line, e.col)));
    }
    serde_yaml::from_str(text).map_err(|e| {
        if let Some(s) = crate::yaml::syntax_error(text) {
            let m = s.position();
            return Box::new(Diagnostic::of(file, Problem::Syntax(s)).at(text, m.line, m.col));
        }
        // Well-formed YAML that serde_yaml still refuses (a duplicate key, …).
        let (line, col) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
        let msg = e.to_string();
        let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
        Box::new(Diagnostic::of(file, Problem::Yaml(msg)).at(text, line, col))
    })
}

/// What every service of one file shares while it is read.
struct Ctx<'a> {
    file: &'a Path,
    text: &'a Arc<str>,
    lookup: &'a dyn Fn(&str) -> Option<String>,
    override_env: Option<String>,
    /// Expanded values by their path in the file's merged mapping (`targets[i]…` for targets).
    templates: &'a [(Vec<SegBuf>, String)],
}

/// One entry of `targets:`: its index, and its label (`name`, else `recipe`, else `provider`,
/// else the index) with the key it came from.
struct Target {
    index: usize,
    label: String,
    label_key: Option<&'static str>,
}

fn read(
    ctx: &Ctx,
    map: Mapping,
    target: Option<&Target>,
    diags: &mut Vec<Diagnostic>,
) -> Option<Service> {
    let file = ctx.file;
    let text = ctx.text;
    // The expanded values of this service, by their path in its own configuration.
    let templates: Vec<(Vec<SegBuf>, String)> = ctx
        .templates
        .iter()
        .filter_map(|(p, t)| match (target, p.as_slice()) {
            (Some(tg), [SegBuf::Key(k), SegBuf::Index(i), rest @ ..]) if k == "targets" => {
                (*i == tg.index).then(|| (rest.to_vec(), t.clone()))
            }
            (_, [SegBuf::Key(k), ..]) if k == "targets" => None,
            _ => Some((p.clone(), t.clone())),
        })
        .collect();
    let mut s = Service {
        name: String::new(),
        base_name: String::new(),
        dir: file
            .parent()
            .map(Path::to_path_buf)
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from(".")),
        file: file.to_path_buf(),
        text: text.clone(),
        recipe: RecipeRef::Name("local".into()),
        regions: Vec::new(),
        depends_on: Vec::new(),
        env: BTreeMap::new(),
        secrets: Vec::new(),
        watch: Vec::new(),
        tags: Vec::new(),
        environments: Vec::new(),
        config: map,
        target: target.map(|t| t.index),
        override_env: ctx.override_env.clone(),
        templates,
        extra_keys: Vec::new(),
    };
    let before = diags.len();
    let map = &s.config;
    let name = match map.get("name") {
        Some(Value::String(n)) if !n.trim().is_empty() => {
            if let Err(error) = crate::names::check(n) {
                let value = s.shown(&[Seg::Key("name")], n);
                diags.push(s.report_value(
                    &[Seg::Key("name")],
                    Problem::BadName { what: "service name", value, error },
                ));
            }
            n.clone()
        }
        Some(Value::String(_)) | Some(Value::Null) => {
            diags.push(s.report(&[Seg::Key("name")], Problem::NameEmpty));
            String::new()
        }
        Some(_) => {
            diags.push(
                s.report(&[Seg::Key("name")], Problem::NotAString { field: "field `name`".into() })
                    .help("e.g. `name: api`"),
            );
            String::new()
        }
        None => {
            diags.push(Diagnostic::of(file, Problem::NameMissing).at(text, 1, 1));
            String::new()
        }
    };
    if let Some(t) = target
        && let Err(error) = crate::names::check(&t.label)
    {
        // The label as written, when it came from `${VAR}`.
        let written = t.label_key.and_then(|k| {
            ctx.templates.iter().find_map(|(p, tpl)| {
                let here =
                    [SegBuf::Key("targets".into()), SegBuf::Index(t.index), SegBuf::Key(k.into())];
                (p.as_slice() == here).then(|| tpl.clone())
            })
        });
        let mut path = vec![Seg::Key("targets"), Seg::Index(t.index)];
        if let Some(k) = t.label_key {
            path.push(Seg::Key(k));
        }
        let (l, c) = crate::yaml::value_position(text, &path);
        diags.push(
            Diagnostic::of(
                file,
                Problem::BadName {
                    what: "target name",
                    value: written.unwrap_or_else(|| t.label.clone()),
                    error,
                },
            )
            .at(text, l, c),
        );
    }
    let str_of = |key: &'static str, diags: &mut Vec<Diagnostic>| -> Option<String> {
        match map.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(v)) => Some(v.clone()),
            Some(_) => {
                diags.push(s.report(
                    &[Seg::Key(key)],
                    Problem::NotAString { field: format!("field `{key}`") },
                ));
                None
            }
        }
    };
    let recipe =
        match (str_of("recipe", diags), str_of("provider", diags), str_of("service", diags)) {
            (Some(r), _, _) => RecipeRef::Name(r),
            (None, Some(p), kind) => RecipeRef::Provider { provider: p, kind },
            (None, None, _) => RecipeRef::Name("local".into()),
        };
    let region = str_of("region", diags);
    let region_items = list_of(&s, "regions", diags);
    let mut regions: Vec<String> = Vec::new();
    let checked_regions =
        region.map(|r| (r, vec![Seg::Key("region")])).into_iter().chain(region_items);
    for (r, path) in checked_regions {
        if let Err(error) = crate::names::check(&r) {
            let value = s.shown(&path, &r);
            diags.push(s.report_value(&path, Problem::BadName { what: "region", value, error }));
        }
        if !regions.contains(&r) {
            regions.push(r);
        }
    }
    let depends_on = list_of(&s, "depends_on", diags).into_iter().map(|(v, _)| v).collect();
    let secrets = secrets_of(&s, ctx.lookup, diags);
    let watch = list_of(&s, "watch", diags).into_iter().map(|(v, _)| v).collect();
    let tags = list_of(&s, "tags", diags).into_iter().map(|(v, _)| v).collect();
    let mut env = BTreeMap::new();
    match map.get("env") {
        None | Some(Value::Null) => {}
        Some(Value::Mapping(m)) => {
            for (k, v) in m {
                let key = key_text(k);
                let why = if k.is_string() || k.is_number() || k.is_bool() {
                    check_env_name(&key).err()
                } else {
                    Some(EnvNameError::NotAString)
                };
                if let Some(why) = why {
                    diags.push(s.report(
                        &[Seg::Key("env"), Seg::Key(&key)],
                        Problem::BadEnvName { key: key.clone(), why },
                    ));
                    continue;
                }
                match scalar(v) {
                    Some(v) => {
                        env.insert(key, v);
                    }
                    None => diags.push(s.report(
                        &[Seg::Key("env"), Seg::Key(&key)],
                        Problem::EnvValue { key: key.clone() },
                    )),
                }
            }
        }
        Some(_) => diags.push(s.report(
            &[Seg::Key("env")],
            Problem::NotAMappingField { field: "env".into(), example: "env: { LOG_LEVEL: debug }" },
        )),
    }
    if diags.len() > before {
        return None;
    }
    let full = match target {
        Some(t) => format!("{name}.{}", t.label),
        None => name.clone(),
    };
    s.name = full;
    s.base_name = name;
    s.recipe = recipe;
    s.regions = regions;
    s.depends_on = depends_on;
    s.env = env;
    s.secrets = secrets;
    s.watch = watch;
    s.tags = tags;
    Some(s)
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A key that may be one string or a list of strings: each entry with its path.
fn list_of<'a>(
    s: &Service,
    key: &'a str,
    diags: &mut Vec<Diagnostic>,
) -> Vec<(String, Vec<Seg<'a>>)> {
    let bad = |diags: &mut Vec<Diagnostic>| {
        diags.push(s.report(&[Seg::Key(key)], Problem::NotAStringList { field: key.to_string() }));
    };
    match s.config.get(key) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(v)) => vec![(v.clone(), vec![Seg::Key(key)])],
        Some(Value::Sequence(seq)) => {
            let out: Vec<(String, Vec<Seg>)> = seq
                .iter()
                .enumerate()
                .filter_map(|(i, v)| scalar(v).map(|v| (v, vec![Seg::Key(key), Seg::Index(i)])))
                .collect();
            if out.len() != seq.len() {
                bad(diags);
            }
            out
        }
        Some(_) => {
            bad(diags);
            Vec::new()
        }
    }
}

/// `secrets:`: names of environment variables (strings, usable as names). The values of those
/// that are set are registered for masking now, before anything can print them.
fn secrets_of(
    s: &Service,
    lookup: &dyn Fn(&str) -> Option<String>,
    diags: &mut Vec<Diagnostic>,
) -> Vec<String> {
    let items: Vec<(&Value, Vec<Seg>)> = match s.config.get("secrets") {
        None | Some(Value::Null) => Vec::new(),
        Some(v @ Value::String(_)) => vec![(v, vec![Seg::Key("secrets")])],
        Some(Value::Sequence(seq)) => seq
            .iter()
            .enumerate()
            .map(|(i, v)| (v, vec![Seg::Key("secrets"), Seg::Index(i)]))
            .collect(),
        Some(_) => {
            diags.push(s.report(
                &[Seg::Key("secrets")],
                Problem::NotAStringList { field: "secrets".into() },
            ));
            Vec::new()
        }
    };
    let mut out = Vec::new();
    for (v, path) in items {
        let checked = match v {
            Value::String(name) => check_env_name(name).map(|()| name.clone()),
            _ => Err(EnvNameError::NotAString),
        };
        match checked {
            Ok(name) => {
                if let Some(value) = lookup(&name) {
                    crate::redact::register(&value);
                }
                out.push(name);
            }
            Err(why) => {
                let value = s.shown(&path, &scalar(v).unwrap_or_else(|| "…".into()));
                diags.push(s.report_value(&path, Problem::BadSecretName { value, why }));
            }
        }
    }
    out
}

/// Top-level keys of the selected services' files that neither pilum nor any recipe reading
/// the file uses: errors, with a suggestion (a typo of `build` must not deploy nothing).
/// `section_of(i)` is the section and name of service `i`'s recipe. A key in the base of a file
/// with `targets:` is fine when any target's recipe reads it.
pub(crate) fn unknown_keys(
    services: &[Service],
    selected: &[usize],
    section_of: &dyn Fn(usize) -> Option<(String, String)>,
) -> Vec<Diagnostic> {
    let mut out: Vec<Diagnostic> = Vec::new();
    let mut done: std::collections::HashSet<(&Path, &[SegBuf])> = Default::default();
    for &i in selected {
        let s = &services[i];
        let Some((section, recipe)) = section_of(i) else { continue };
        for extra in &s.extra_keys {
            if extra.key == section || done.contains(&(s.file.as_path(), extra.path.as_slice())) {
                continue;
            }
            if !extra.in_target && s.target.is_some() {
                // Read by a sibling target's recipe? A file's targets are loaded side by side.
                let same = |j: &usize| services[*j].file == s.file;
                let before = (0..i).rev().take_while(same);
                let after = (i + 1..services.len()).take_while(same);
                let read_by = |j: usize| section_of(j).is_some_and(|(sec, _)| sec == extra.key);
                if before.chain(after).any(read_by) {
                    continue;
                }
            }
            done.insert((s.file.as_path(), extra.path.as_slice()));
            let mut candidates: Vec<&str> = KNOWN_KEYS.to_vec();
            candidates.push(&section);
            let (l, c) = crate::yaml::position(&s.text, &segs(&extra.path));
            out.push(
                Diagnostic::of(
                    &s.file,
                    Problem::UnknownKey {
                        key: extra.key.clone(),
                        file: s.file.display().to_string(),
                        section: section.clone(),
                        recipe: recipe.clone(),
                    },
                )
                .at(&s.text, l, c)
                .suggest(closest(&extra.key, candidates)),
            );
        }
    }
    out
}

/// Merge `over` into `base`: mappings merge recursively, anything else replaces.
pub(crate) fn deep_merge(base: &mut Mapping, over: &Mapping) {
    for (k, v) in over {
        match (base.get_mut(k), v) {
            (Some(Value::Mapping(b)), Value::Mapping(o)) => deep_merge(b, o),
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "TEAM" => Some("core".to_string()),
            "TOKEN" => Some("ghp_loadersecret42".to_string()),
            _ => None,
        }
    }

    fn one(text: &str, e: Option<&str>) -> Result<Vec<Service>, Vec<Diagnostic>> {
        load(Path::new("svc/pilum.yaml"), text, e, &env)
    }

    fn errs(text: &str) -> Vec<Diagnostic> {
        one(text, None).unwrap_err()
    }

    #[test]
    fn environment_overrides_deep_merge() {
        let text = "name: api\nregion: us\nlocal:\n  a: 1\n  b: 2\nenvironments:\n  prod:\n    region: eu\n    local:\n      b: 3\n";
        let s = &one(text, Some("prod")).unwrap()[0];
        assert_eq!(s.regions, vec!["eu"]);
        let local = s.config.get("local").unwrap();
        assert_eq!(local.get("a").unwrap().as_i64(), Some(1));
        assert_eq!(local.get("b").unwrap().as_i64(), Some(3));
        assert!(s.config.get("environments").is_none());
        // A problem in an overridden value points into the override.
        assert_eq!(s.position(&[Seg::Key("region")], false), (8, 5));
        assert_eq!(s.position(&[Seg::Key("local"), Seg::Key("a")], false), (4, 3));
        let s = &one(text, None).unwrap()[0];
        assert_eq!(s.regions, vec!["us"]);
    }

    #[test]
    fn missing_name_and_unset_variable_are_reported_together() {
        let errs = errs("recipe: local\nenv:\n  OWNER: ${OWNER}\n");
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs[1].message.contains("`OWNER`") && errs[1].line == 3, "{errs:?}");
        assert_eq!(errs[1].col, 10, "the value, not the key: {errs:?}");
        assert!(errs[0].message.contains("`name`"), "{errs:?}");
    }

    #[test]
    fn yaml_syntax_error_has_line() {
        let errs = errs("name: api\nenv: [a,\n  b: c\n");
        assert_eq!(errs.len(), 1);
        assert!(errs[0].message.starts_with("invalid YAML"), "{errs:?}");
        assert!(errs[0].line >= 2, "{errs:?}");
    }

    #[test]
    fn an_unclosed_bracket_on_the_last_line_points_at_it() {
        let errs = errs("name: c\nrecipe: shell\nshell:\n  build: [true\n");
        assert_eq!((errs[0].line, errs[0].col), (4, 10), "{errs:?}");
        assert_eq!(errs[0].source.as_deref(), Some("  build: [true"));
        assert!(errs[0].message.contains("flow sequence"), "{errs:?}");
    }

    #[test]
    fn deep_nesting_is_refused_before_parsing() {
        let text = format!("name: a\nx: {}1{}\n", "[".repeat(30_000), "]".repeat(30_000));
        let errs = errs(&text);
        assert!(errs[0].message.contains("nesting deeper than 64"), "{errs:?}");
        assert_eq!(errs[0].line, 2);
    }

    #[test]
    fn names_that_could_climb_out_of_a_directory_are_refused_where_written() {
        let e = errs("name: \"../../../victim\"\n");
        assert!(e[0].message.contains("service name `../../../victim`"), "{e:?}");
        assert_eq!((e[0].line, e[0].col), (1, 7));
        assert_eq!(e[0].help.as_deref(), Some(crate::names::RULE));
        let e = errs("name: a\nregions: [eu, \"a/b\"]\nenvironments:\n  ../prod: {}\n");
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(
            e.iter().any(|e| e.message.contains("region `a/b`") && e.line == 2 && e.col == 15),
            "{e:?}"
        );
        assert!(
            e.iter().any(|e| e.message.contains("environment `../prod`") && e.line == 4),
            "{e:?}"
        );
        let e = errs("name: a\ntargets:\n  - name: ok\n  - name: ../x\n");
        assert!(e[0].message.contains("target name `../x`") && e[0].line == 4, "{e:?}");
    }

    #[test]
    fn env_names_and_secrets_must_be_usable() {
        let e = errs("name: a\nenv:\n  \"\": x\n  \"A=B\": y\nsecrets: [1, OK]\n");
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(e[0].message.contains("`` in `env` is empty") && e[0].line == 3, "{e:?}");
        assert!(e[1].message.contains("`A=B` in `env` contains `=`") && e[1].line == 4, "{e:?}");
        assert!(e[2].message.contains("`secrets` entry `1` is not a string"), "{e:?}");
        assert_eq!((e[2].line, e[2].col), (5, 11));
        assert!(e.iter().all(|e| e.help.is_some()), "{e:?}");
    }

    #[test]
    fn an_expanded_value_is_shown_as_written() {
        let s =
            &one("name: a\ndepends_on: [x, \"${TOKEN}\"]\nsecrets: [TOKEN]\n", None).unwrap()[0];
        assert_eq!(s.depends_on[1], "ghp_loadersecret42");
        let p = s.item_path("depends_on", 1);
        assert_eq!(s.shown(&p, &s.depends_on[1]), "${TOKEN}");
        assert_eq!(s.shown(&s.item_path("depends_on", 0), "x"), "x");
        // Listed secrets are masked from now on.
        assert_eq!(crate::redact::redact("t=ghp_loadersecret42"), "t=***");
    }

    #[test]
    fn targets_make_one_service_each() {
        let text =
            "name: cli\ntargets:\n  - recipe: local\n  - recipe: shell\n    shell: {build: make}\n";
        let s = one(text, None).unwrap();
        assert_eq!(
            s.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["cli.local", "cli.shell"]
        );
        assert_eq!(s[1].recipe, RecipeRef::Name("shell".into()));
        assert_eq!(s[1].base_name, "cli");
        assert_eq!(s[1].position(&[Seg::Key("shell"), Seg::Key("build")], false), (5, 13));
    }

    #[test]
    fn unknown_keys_are_errors_that_suggest() {
        let s = one("name: a\nbuidl:\n  command: make\nbuild: {}\n", None).unwrap();
        let local = |_: usize| Some(("build".to_string(), "local".to_string()));
        let d = unknown_keys(&s, &[0], &local);
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!((d[0].line, d[0].did_you_mean.as_deref()), (2, Some("build")));
        // A base key that a sibling target's recipe reads is not unknown.
        let text =
            "name: cli\nshell: {build: make}\ntargets:\n  - recipe: local\n  - recipe: shell\n";
        let s = one(text, None).unwrap();
        let by = |i: usize| {
            Some(if i == 0 {
                ("build".into(), "local".into())
            } else {
                ("shell".into(), "shell".into())
            })
        };
        assert!(unknown_keys(&s, &[0, 1], &by).is_empty());
    }

    #[test]
    fn provider_and_kind_select_a_recipe() {
        let s = &one(
            "name: a\nprovider: gcp\nservice: cloud-run\nenv: {TEAM: \"${TEAM}\", N: 3}\n",
            None,
        )
        .unwrap()[0];
        assert_eq!(
            s.recipe,
            RecipeRef::Provider { provider: "gcp".into(), kind: Some("cloud-run".into()) }
        );
        assert_eq!(s.env.get("TEAM").map(String::as_str), Some("core"));
        assert_eq!(s.env.get("N").map(String::as_str), Some("3"));
    }

    /// Run `f` on its own thread and wait for it with a deadline: the loader must answer in
    /// bounded time (a quadratic or runaway parse fails here instead of hanging the suite).
    fn within_deadline<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(std::time::Duration::from_secs(20))
            .expect("the loader answered within the deadline (and did not panic)")
    }

    /// Every rejection points at a line of the file (or the file itself), with a message.
    fn check_located(text: &str, result: &Result<Vec<Service>, Vec<Diagnostic>>) {
        let lines = text.lines().count().max(1);
        if let Err(diags) = result {
            assert!(!diags.is_empty());
            for d in diags {
                assert_eq!(d.file, Path::new("svc/pilum.yaml"));
                assert!(d.line >= 1 && d.line <= lines, "line {} of {lines}: {d}", d.line);
                assert!(d.col >= 1, "{d}");
                assert!(!d.message.is_empty());
                assert!(!d.to_string().contains("ghp_loadersecret42"), "a value leaked: {d}");
            }
        }
    }

    fn load_checked(text: String) {
        let t = text.clone();
        let result = within_deadline(move || one(&t, Some("prod")));
        check_located(&text, &result);
    }

    /// Inputs that once crashed, hung or misreported the loader, replayed on every run.
    #[test]
    fn the_corpus_of_past_failures_loads_or_is_rejected_with_a_location() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/corpus/pilum-yaml");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).expect("the corpus directory exists") {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            load_checked(String::from_utf8_lossy(&bytes).into_owned());
            n += 1;
        }
        assert!(n >= 10, "corpus has {n} files");
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        const SEED: &str = "name: api\nrecipe: shell\nregions: [eu, us]\ndepends_on: [db]\nenv:\n  A: \"${TEAM}\"\nsecrets: [TOKEN]\nshell:\n  build: make\n  steps:\n    - {name: x, timeout: 5m}\ntargets:\n  - recipe: shell\nenvironments:\n  prod:\n    region: eu\n";

        /// Pieces a mutation inserts: YAML syntax, variables, odd characters.
        fn piece() -> impl Strategy<Value = String> {
            prop_oneof![
                prop::sample::select(vec![
                    "[",
                    "]",
                    "{",
                    "}",
                    ":",
                    ": ",
                    "- ",
                    ",",
                    "\"",
                    "'",
                    "#",
                    "&a ",
                    "*a",
                    "!tag ",
                    "|",
                    ">",
                    "\n",
                    "\n  ",
                    "\t",
                    "? ",
                    "${TOKEN}",
                    "${NOPE}",
                    "$${X}",
                    "..",
                    "/",
                    "=",
                    "~",
                    "1e300",
                    ".inf",
                    "-1",
                    "\u{0}",
                    "\u{7}",
                    "é",
                    "targets:",
                    "environments:",
                    "env:",
                    "secrets:",
                    "name:",
                    "<<: ",
                ])
                .prop_map(str::to_string),
                "[a-z_]{1,8}",
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

            #[test]
            fn the_loader_never_panics_and_locates_every_rejection(
                edits in prop::collection::vec((any::<prop::sample::Index>(), piece(), 0usize..4), 1..8)
            ) {
                let mut text = SEED.to_string();
                for (at, piece, cut) in edits {
                    let mut i = at.index(text.len() + 1);
                    while !text.is_char_boundary(i) {
                        i -= 1;
                    }
                    let mut end = (i + cut).min(text.len());
                    while !text.is_char_boundary(end) {
                        end -= 1;
                    }
                    text.replace_range(i..end, &piece);
                }
                load_checked(text);
            }

            #[test]
            fn nesting_of_any_depth_is_answered(depth in 0usize..5000, flow in any::<bool>()) {
                let text = if flow {
                    format!("name: a\nx: {}1{}\n", "[".repeat(depth), "]".repeat(depth))
                } else {
                    format!("name: a\nx: {}1\n", "- ".repeat(depth))
                };
                load_checked(text);
            }
        }
    }
}
