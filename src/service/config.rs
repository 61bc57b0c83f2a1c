//! The `pilum.yaml` schema: parse, apply `--env` overrides (deep merge of `environments.<name>`),
//! expand `${VAR}`, and read the keys pilum itself understands. Everything else (the recipe's
//! section, `build:`) stays in [`Service::config`] for the recipe. A file with `targets:` yields
//! one service per target. Problems are collected as [`Diagnostic`]s with line numbers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_yaml::{Mapping, Value};

use super::expand::expand_value;
use crate::diagnostic::{Diagnostic, find_position, key_position};

/// Keys pilum reads itself; any other top-level key must be the recipe's section.
pub const KNOWN_KEYS: &[&str] = &[
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
pub enum RecipeRef {
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

/// One deployable unit: a `pilum.yaml` (or one of its `targets:`).
#[derive(Debug, Clone)]
pub struct Service {
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
}

impl Service {
    pub fn diag(&self, path: &[&str], message: impl Into<String>) -> Diagnostic {
        let (line, col) = key_position(&self.text, path);
        Diagnostic::new(&self.file, message).at(&self.text, line, col)
    }
}

/// Parse one `pilum.yaml`. `file` is relative to the project root; `lookup` reads the environment.
pub fn load(
    file: &Path,
    text: &str,
    environment: Option<&str>,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Service>, Vec<Diagnostic>> {
    let text: Arc<str> = Arc::from(text);
    let here =
        |line: usize, col: usize, msg: String| Diagnostic::new(file, msg).at(&text, line, col);
    let root: Value = match serde_yaml::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            let (line, col) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
            let msg = e.to_string();
            let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
            return Err(vec![
                here(line, col, format!("invalid YAML: {msg}"))
                    .help("fix the syntax; `pilum check` validates every `pilum.yaml`"),
            ]);
        }
    };
    let Value::Mapping(mut map) = root else {
        return Err(vec![
            here(1, 1, "`pilum.yaml` must be a mapping of keys to values".into())
                .help("start with `name: <service name>`"),
        ]);
    };
    let mut diags = Vec::new();

    // --env: deep-merge the environment's overrides over the base.
    let envs = map.remove("environments");
    if let (Some(name), Some(envs)) = (environment, &envs) {
        match envs {
            Value::Mapping(envs) => {
                if let Some(over) = envs.get(name) {
                    match over {
                        Value::Mapping(over) => deep_merge(&mut map, over),
                        Value::Null => {}
                        _ => {
                            let (l, c) = key_position(&text, &["environments", name]);
                            diags.push(here(
                                l,
                                c,
                                format!("`environments.{name}` must be a mapping"),
                            ));
                        }
                    }
                }
            }
            _ => {
                let (l, c) = key_position(&text, &["environments"]);
                diags.push(
                    here(l, c, "`environments` must be a mapping of environment names".into())
                        .help("e.g. `environments: { prod: { region: europe-west1 } }`"),
                );
            }
        }
    }

    let mut missing = Vec::new();
    let mut expanded = Value::Mapping(map);
    expand_value(&mut expanded, lookup, &mut missing);
    let Value::Mapping(mut map) = expanded else { unreachable!("expansion keeps the shape") };
    for var in missing {
        let (l, c) = find_position(&text, &format!("${{{var}")).unwrap_or((1, 1));
        diags.push(
            here(l, c, format!("environment variable `{var}` is not set"))
                .help(format!("export `{var}`, or give a default: `${{{var}:-value}}`")),
        );
    }

    let env_names: Vec<String> = match &envs {
        Some(Value::Mapping(m)) => {
            m.keys().filter_map(|k| k.as_str().map(str::to_string)).collect()
        }
        _ => Vec::new(),
    };
    let targets = map.remove("targets");
    let mut services = Vec::new();
    match targets {
        None | Some(Value::Null) => {
            if let Some(s) = read(file, &text, map, None, &mut diags) {
                services.push(Service { environments: env_names.clone(), ..s });
            }
        }
        Some(Value::Sequence(targets)) => {
            for (i, t) in targets.iter().enumerate() {
                let Value::Mapping(t) = t else {
                    let (l, c) = key_position(&text, &["targets"]);
                    diags.push(here(l, c, format!("`targets[{i}]` must be a mapping")));
                    continue;
                };
                let mut merged = map.clone();
                deep_merge(&mut merged, t);
                let label = t
                    .get("name")
                    .or_else(|| t.get("recipe"))
                    .or_else(|| t.get("provider"))
                    .and_then(Value::as_str)
                    .map_or_else(|| i.to_string(), str::to_string);
                // The target's `name` labels it; the service keeps the file's name as a base.
                if let Some(base) = map.get("name") {
                    merged.insert("name".into(), base.clone());
                }
                if let Some(s) = read(file, &text, merged, Some(&label), &mut diags) {
                    services.push(Service { environments: env_names.clone(), ..s });
                }
            }
        }
        Some(_) => {
            let (l, c) = key_position(&text, &["targets"]);
            diags.push(
                here(l, c, "`targets` must be a list of mappings".into())
                    .help("e.g. `targets: [{ recipe: local }, { recipe: shell, shell: {...} }]`"),
            );
        }
    }
    if diags.is_empty() { Ok(services) } else { Err(diags) }
}

fn read(
    file: &Path,
    text: &Arc<str>,
    map: Mapping,
    target: Option<&str>,
    diags: &mut Vec<Diagnostic>,
) -> Option<Service> {
    let at = |path: &[&str], msg: String| {
        let (l, c) = key_position(text, path);
        Diagnostic::new(file, msg).at(text, l, c)
    };
    let before = diags.len();
    let name = match map.get("name") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(Value::String(_)) | Some(Value::Null) => {
            diags.push(
                at(&["name"], "field `name` is empty".into())
                    .help("give the service a name: `name: api`"),
            );
            String::new()
        }
        Some(_) => {
            diags.push(
                at(&["name"], "field `name` must be a string".into()).help("e.g. `name: api`"),
            );
            String::new()
        }
        None => {
            diags.push(
                Diagnostic::new(file, "missing required field `name`")
                    .at(text, 1, 1)
                    .help("add `name: <service name>` at the top of the file"),
            );
            String::new()
        }
    };
    let str_of = |key: &str, diags: &mut Vec<Diagnostic>| -> Option<String> {
        match map.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                diags.push(at(&[key], format!("field `{key}` must be a string")));
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
    let mut regions = list_of(&map, "regions", file, text, diags);
    if let Some(r) = str_of("region", diags) {
        if !regions.contains(&r) {
            regions.insert(0, r);
        }
    }
    let depends_on = list_of(&map, "depends_on", file, text, diags);
    let secrets = list_of(&map, "secrets", file, text, diags);
    let watch = list_of(&map, "watch", file, text, diags);
    let tags = list_of(&map, "tags", file, text, diags);
    let mut env = BTreeMap::new();
    match map.get("env") {
        None | Some(Value::Null) => {}
        Some(Value::Mapping(m)) => {
            for (k, v) in m {
                let key =
                    k.as_str().map(str::to_string).unwrap_or_else(|| scalar(k).unwrap_or_default());
                match scalar(v) {
                    Some(v) => {
                        env.insert(key, v);
                    }
                    None => diags.push(at(
                        &["env", &key],
                        format!("`env.{key}` must be a string, number or bool"),
                    )),
                }
            }
        }
        Some(_) => {
            diags.push(at(&["env"], "field `env` must be a mapping of names to values".into()))
        }
    }
    if diags.len() > before {
        return None;
    }
    let dir = file.parent().map(Path::to_path_buf).filter(|d| !d.as_os_str().is_empty());
    let full = match target {
        Some(t) => format!("{name}.{t}"),
        None => name.clone(),
    };
    Some(Service {
        name: full,
        base_name: name,
        dir: dir.unwrap_or_else(|| PathBuf::from(".")),
        file: file.to_path_buf(),
        text: text.clone(),
        recipe,
        regions,
        depends_on,
        env,
        secrets,
        watch,
        tags,
        environments: Vec::new(),
        config: map,
    })
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A key that may be one string or a list of strings.
fn list_of(
    map: &Mapping,
    key: &str,
    file: &Path,
    text: &str,
    diags: &mut Vec<Diagnostic>,
) -> Vec<String> {
    let bad = |diags: &mut Vec<Diagnostic>| {
        let (l, c) = key_position(text, &[key]);
        diags.push(
            Diagnostic::new(file, format!("field `{key}` must be a string or a list of strings"))
                .at(text, l, c)
                .help(format!("e.g. `{key}: [a, b]`")),
        );
    };
    match map.get(key) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Sequence(seq)) => {
            let out: Vec<String> = seq.iter().filter_map(scalar).collect();
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

/// Merge `over` into `base`: mappings merge recursively, anything else replaces.
pub fn deep_merge(base: &mut Mapping, over: &Mapping) {
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
        (name == "TEAM").then(|| "core".to_string())
    }

    fn one(text: &str, e: Option<&str>) -> Result<Vec<Service>, Vec<Diagnostic>> {
        load(Path::new("svc/pilum.yaml"), text, e, &env)
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
        let s = &one(text, None).unwrap()[0];
        assert_eq!(s.regions, vec!["us"]);
    }

    #[test]
    fn missing_name_and_unset_variable_are_reported_together() {
        let errs = one("recipe: local\nenv:\n  OWNER: ${OWNER}\n", None).unwrap_err();
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs[0].message.contains("`OWNER`") && errs[0].line == 3, "{errs:?}");
        assert!(errs[1].message.contains("`name`"), "{errs:?}");
    }

    #[test]
    fn yaml_syntax_error_has_line() {
        let errs = one("name: api\nenv: [a,\n  b: c\n", None).unwrap_err();
        assert_eq!(errs.len(), 1);
        assert!(errs[0].message.starts_with("invalid YAML"), "{errs:?}");
        assert!(errs[0].line >= 2, "{errs:?}");
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
}
