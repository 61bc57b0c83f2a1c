//! A recipe's declaration: what `fn recipe()` returns (name, provider, kind, fields, steps),
//! checked and turned into typed data. Reading it never runs a command: `recipe()` and
//! `plan(svc)` are evaluated by the declaration engine, which has no process, file or network API.

use std::path::PathBuf;
use std::time::Duration;

use rhai::{Dynamic, Map};

use crate::diagnostic::{Diagnostic, Problem, find_position};

use super::value::type_name;

/// A field's declared type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldType {
    String,
    Int,
    Float,
    Bool,
    Array,
    Map,
    Any,
}

impl FieldType {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "string" => Self::String,
            "int" | "integer" => Self::Int,
            "float" | "number" => Self::Float,
            "bool" | "boolean" => Self::Bool,
            "array" | "list" => Self::Array,
            "map" | "object" => Self::Map,
            "any" => Self::Any,
            _ => return None,
        })
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Int => "int",
            Self::Float => "float",
            Self::Bool => "bool",
            Self::Array => "array",
            Self::Map => "map",
            Self::Any => "any",
        }
    }

    /// Whether `v` has this type (an int is accepted as a float).
    pub(crate) fn accepts(self, v: &Dynamic) -> bool {
        match self {
            Self::String => v.is_string(),
            Self::Int => v.is_int(),
            Self::Float => v.is_float() || v.is_int(),
            Self::Bool => v.is_bool(),
            Self::Array => v.is_array(),
            Self::Map => v.is_map(),
            Self::Any => true,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Field {
    pub name: String,
    pub ty: FieldType,
    pub required: bool,
    pub default: Option<Dynamic>,
    pub values: Vec<Dynamic>,
    pub secret: bool,
    pub description: String,
}

/// Where a step's commands run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum StepDir {
    Service,
    Root,
}

#[derive(Debug, Clone)]
pub(crate) struct Step {
    pub name: String,
    /// Never empty: the first tag is the step's phase.
    pub tags: Vec<String>,
    /// The function doing the work.
    pub run: String,
    pub timeout: Option<Duration>,
    pub retries: Option<u32>,
    pub dir: StepDir,
    pub per_region: bool,
    /// The whole declaration map, extra keys included (`ctx.step`).
    pub decl: Map,
}

impl Step {
    pub(crate) fn phase(&self) -> &str {
        &self.tags[0]
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Declaration {
    pub name: String,
    pub description: String,
    pub provider: Option<String>,
    pub kind: Option<String>,
    pub section: String,
    pub fields: Vec<Field>,
    pub steps: Vec<Step>,
}

/// A duration from a recipe value: seconds as a number, or text in the one grammar
/// (`crate::duration`): `"90s"`, `"10m"`, `"1m30s"`.
pub(crate) fn parse_duration(v: &Dynamic) -> Result<Duration, crate::duration::DurationError> {
    if let Some(i) = v.clone().try_cast::<rhai::INT>() {
        return crate::duration::from_secs_i64(i);
    }
    if let Some(f) = v.clone().try_cast::<rhai::FLOAT>() {
        return crate::duration::from_secs_f64(f);
    }
    match v.clone().into_string() {
        Ok(s) => crate::duration::parse(&s),
        Err(_) => Err(crate::duration::DurationError::BadNumber { text: v.to_string() }),
    }
}

/// Reads a declaration map; problems become diagnostics pointing into the recipe source.
pub(crate) struct Reader<'a> {
    pub file: PathBuf,
    pub source: &'a str,
    pub diags: Vec<Diagnostic>,
    /// For a problem with one key of one step: its index in `diags`, the step and the key, so
    /// a step `plan(svc)` built from a service's own fields can be reported in its `pilum.yaml`.
    pub step_keys: Vec<(usize, String, &'static str)>,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(file: PathBuf, source: &'a str) -> Self {
        Self { file, source, diags: Vec::new(), step_keys: Vec::new() }
    }

    fn step_err(&mut self, step: &str, key: &'static str, problem: Problem) {
        self.step_keys.push((self.diags.len(), step.to_string(), key));
        self.err(&format!("{key}:"), problem);
    }

    /// `problem` at the first `near` in the recipe's text (else at `fn recipe`).
    fn err(&mut self, near: &str, problem: Problem) {
        let (l, c) = find_position(self.source, near)
            .or_else(|| find_position(self.source, "fn recipe"))
            .unwrap_or((1, 1));
        self.diags.push(Diagnostic::of(&self.file, problem).at(self.source, l, c));
    }

    fn string(&mut self, m: &Map, key: &str, required: bool) -> Option<String> {
        match m.get(key) {
            None => {
                if required {
                    self.err("fn recipe", Problem::DeclarationMissing { key: key.to_string() });
                }
                None
            }
            Some(v) if v.is_unit() => None,
            Some(v) => match v.clone().into_string() {
                Ok(s) => Some(s),
                Err(t) => {
                    let p =
                        Problem::DeclarationNotString { key: key.to_string(), ty: t.to_string() };
                    self.err(&format!("{key}:"), p);
                    None
                }
            },
        }
    }

    pub(crate) fn declaration(&mut self, m: &Map) -> Option<Declaration> {
        let name = self.string(m, "name", true)?;
        let description = self.string(m, "description", false).unwrap_or_default();
        let provider = self.string(m, "provider", false);
        let kind = self.string(m, "kind", false);
        let section = self.string(m, "section", false).unwrap_or_else(|| name.replace('-', "_"));
        let mut fields = Vec::new();
        match m.get("fields") {
            None => {}
            Some(v) if v.is_array() => {
                for f in v.read_lock::<rhai::Array>().expect("checked is_array").iter() {
                    if let Some(f) = self.field(f) {
                        fields.push(f);
                    }
                }
            }
            Some(v) => self.err(
                "fields:",
                Problem::DeclarationNotList { key: "fields", ty: type_name(v).to_string() },
            ),
        }
        let steps = match m.get("steps") {
            None => Vec::new(),
            Some(v) => self.steps(v),
        };
        Some(Declaration { name, description, provider, kind, section, fields, steps })
    }

    fn field(&mut self, f: &Dynamic) -> Option<Field> {
        let Some(m) = f.read_lock::<Map>().map(|m| m.clone()) else {
            self.err(
                "fields:",
                Problem::DeclarationItemNotMap { what: "field", ty: type_name(f).to_string() },
            );
            return None;
        };
        let name = self.string(&m, "name", true)?;
        let ty_name = self.string(&m, "type", false).unwrap_or_else(|| "any".into());
        let Some(ty) = FieldType::parse(&ty_name) else {
            let p = Problem::UnknownFieldType { field: name.clone(), ty: ty_name.clone() };
            self.err(&format!("\"{ty_name}\""), p);
            return None;
        };
        let required = m.get("required").is_some_and(|v| v.as_bool().unwrap_or(false));
        let secret = m.get("secret").is_some_and(|v| v.as_bool().unwrap_or(false));
        let default = m.get("default").filter(|v| !v.is_unit()).cloned();
        if let Some(d) = &default
            && !ty.accepts(d)
        {
            let p = Problem::DefaultType {
                field: name.clone(),
                default: type_name(d).to_string(),
                ty: ty.as_str(),
            };
            self.err(&format!("\"{name}\""), p);
        }
        let values = m
            .get("values")
            .and_then(|v| v.read_lock::<rhai::Array>().map(|a| a.clone()))
            .unwrap_or_default();
        let description = self.string(&m, "description", false).unwrap_or_default();
        Some(Field { name, ty, required, default, values, secret, description })
    }

    /// Steps from `steps:` in `recipe()` or from `plan(svc)`.
    pub(crate) fn steps(&mut self, v: &Dynamic) -> Vec<Step> {
        let Some(arr) = v.read_lock::<rhai::Array>().map(|a| a.clone()) else {
            self.err(
                "steps:",
                Problem::DeclarationNotList { key: "steps", ty: type_name(v).to_string() },
            );
            return Vec::new();
        };
        let mut out: Vec<Step> = Vec::new();
        for s in &arr {
            let Some(m) = s.read_lock::<Map>().map(|m| m.clone()) else {
                self.err(
                    "steps:",
                    Problem::DeclarationItemNotMap { what: "step", ty: type_name(s).to_string() },
                );
                continue;
            };
            let Some(name) = self.string(&m, "name", true) else { continue };
            if out.iter().any(|o| o.name == name) {
                self.err(&format!("\"{name}\""), Problem::DuplicateStep { step: name.clone() });
                continue;
            }
            let mut tags: Vec<String> = match m.get("tags") {
                None => Vec::new(),
                Some(t) => match t.read_lock::<rhai::Array>() {
                    Some(a) => a.iter().filter_map(|x| x.clone().into_string().ok()).collect(),
                    None => match t.clone().into_string() {
                        Ok(s) => vec![s],
                        Err(_) => Vec::new(),
                    },
                },
            };
            if tags.is_empty() {
                tags.push(name.clone());
            }
            let run = self.string(&m, "run", false).unwrap_or_else(|| name.clone());
            let timeout = match m.get("timeout") {
                None => None,
                Some(v) if v.is_unit() => None,
                Some(v) => {
                    match parse_duration(v).and_then(|d| {
                        if d.is_zero() {
                            Err(crate::duration::DurationError::Zero { text: v.to_string() })
                        } else {
                            Ok(d)
                        }
                    }) {
                        Ok(d) => Some(d),
                        Err(error) => {
                            let p = Problem::StepTimeout { step: name.clone(), error };
                            self.step_err(&name, "timeout", p);
                            None
                        }
                    }
                }
            };
            let retries = match m.get("retries") {
                None => None,
                Some(v) => match v.as_int().ok().and_then(|i| u32::try_from(i).ok()) {
                    Some(r) => Some(r),
                    None => {
                        let p = Problem::StepRetries { step: name.clone(), value: v.to_string() };
                        self.step_err(&name, "retries", p);
                        None
                    }
                },
            };
            let dir = match self.string(&m, "dir", false).as_deref() {
                None | Some("service") => StepDir::Service,
                Some("root") => StepDir::Root,
                Some(other) => {
                    let p = Problem::StepDir { step: name.clone(), value: other.to_string() };
                    self.step_err(&name, "dir", p);
                    StepDir::Service
                }
            };
            let per_region = m.get("per_region").is_some_and(|v| v.as_bool().unwrap_or(false));
            out.push(Step { name, tags, run, timeout, retries, dir, per_region, decl: m });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration(&Dynamic::from(5_i64)), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration(&Dynamic::from("10m")), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration(&Dynamic::from("1m30s")), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration(&Dynamic::from("0.5")), Ok(Duration::from_millis(500)));
        assert!(parse_duration(&Dynamic::from("soon")).is_err());
        assert!(parse_duration(&Dynamic::from(f64::INFINITY)).is_err());
        assert!(parse_duration(&Dynamic::from(i64::MAX)).is_err());
        assert!(parse_duration(&Dynamic::from("18446744073709551615s")).is_err());
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

            /// Any number or text a recipe or a `pilum.yaml` can hold is a duration within the
            /// bound or an error: never a panic, never an overflow.
            #[test]
            fn durations_are_bounded_or_refused(i in any::<i64>(), f in any::<f64>(), text in "[0-9.a-z -]{0,24}") {
                for v in [Dynamic::from(i), Dynamic::from(f), Dynamic::from(text.clone())] {
                    if let Ok(d) = parse_duration(&v) {
                        prop_assert!(d <= crate::duration::MAX, "{v}: {d:?}");
                    }
                }
            }

            #[test]
            fn formatted_durations_read_back(ms in 0u64..=crate::duration::MAX.as_millis() as u64) {
                let d = Duration::from_millis(ms);
                let text = crate::duration::format(d);
                prop_assert_eq!(crate::duration::parse(&text), Ok(d), "{}", text);
            }
        }
    }
}
