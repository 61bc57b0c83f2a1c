//! Checking a service against its recipe before anything runs: the recipe's section in
//! `pilum.yaml` is type-checked field by field (required, type, allowed values, unknown keys),
//! defaults are applied, the recipe's own rules between fields run (`fn check_fields(fields)`),
//! and the service's steps are computed. For a real run, the environment variables its secret
//! fields name must be set (`missing_secrets`). Every problem carries the `pilum.yaml` path and
//! line.

use rhai::{Dynamic, Map};

use crate::diagnostic::{Diagnostic, Problem, closest};
use crate::service::Service;

use super::catalog::Recipe;
use super::host;

/// The recipe function holding its rules between fields.
pub(crate) const CHECK_FIELDS: &str = "check_fields";
use super::declaration::Step;
use super::value::{type_name, yaml_to_dynamic};

/// A service ready to plan: validated fields (defaults applied) and its steps.
#[derive(Debug, Clone)]
pub(crate) struct Checked {
    pub fields: Map,
    pub steps: Vec<Step>,
}

/// The service as `plan(svc)` sees it.
pub(crate) fn service_map(s: &Service, fields: &Map) -> Map {
    let mut m = Map::new();
    m.insert("name".into(), s.name.clone().into());
    m.insert("dir".into(), s.dir.to_string_lossy().into_owned().into());
    m.insert("fields".into(), fields.clone().into());
    m.insert("config".into(), yaml_to_dynamic(&serde_yaml::Value::Mapping(s.config.clone())));
    m.insert(
        "regions".into(),
        s.regions.iter().cloned().map(Dynamic::from).collect::<rhai::Array>().into(),
    );
    m
}

pub(crate) fn check(s: &Service, recipe: &Recipe) -> Result<Checked, Vec<Diagnostic>> {
    let decl = &recipe.decl;
    let section = decl.section.as_str();
    let mut diags = Vec::new();
    let given = match s.config.get(section) {
        None | Some(serde_yaml::Value::Null) => Map::new(),
        Some(serde_yaml::Value::Mapping(m)) => {
            yaml_to_dynamic(&serde_yaml::Value::Mapping(m.clone()))
                .try_cast::<Map>()
                .unwrap_or_default()
        }
        Some(other) => {
            diags.push(
                s.diag(
                    &[section],
                    Problem::SectionNotAMapping {
                        section: section.to_string(),
                        recipe: decl.name.clone(),
                    },
                )
                .help(format!(
                    "e.g. `{section}: {{ {}: ... }}`",
                    decl.fields.first().map_or("field", |f| f.name.as_str())
                )),
            );
            let _ = other;
            Map::new()
        }
    };
    let mut fields = Map::new();
    for f in &decl.fields {
        match given.get(f.name.as_str()) {
            Some(v) if !v.is_unit() => {
                if !f.ty.accepts(v) {
                    diags.push(
                        s.diag(
                            &[section, &f.name],
                            Problem::FieldType {
                                field: format!("{section}.{}", f.name),
                                ty: f.ty.as_str(),
                                got: type_name(v).into(),
                            },
                        )
                        .help(if f.description.is_empty() {
                            format!(
                                "see `pilum list --recipes` for the `{}` recipe's fields",
                                decl.name
                            )
                        } else {
                            f.description.clone()
                        }),
                    );
                } else if !f.values.is_empty()
                    && !f.values.iter().any(|a| a.to_string() == v.to_string())
                {
                    let allowed: Vec<String> =
                        f.values.iter().map(std::string::ToString::to_string).collect();
                    diags.push(
                        s.diag(
                            &[section, &f.name],
                            Problem::FieldNotAllowed {
                                field: format!("{section}.{}", f.name),
                                value: v.to_string(),
                            },
                        )
                        .help(format!("use one of: {}", allowed.join(", ")))
                        .suggest(closest(&v.to_string(), allowed.iter().map(String::as_str))),
                    );
                }
                let v = if f.ty == super::declaration::FieldType::Float && v.is_int() {
                    Dynamic::from(v.as_int().unwrap_or_default() as rhai::FLOAT)
                } else {
                    v.clone()
                };
                fields.insert(f.name.as_str().into(), v);
            }
            _ => {
                if f.required {
                    let at: &[&str] =
                        if s.config.contains_key(section) { &[section] } else { &["name"] };
                    diags.push(
                        s.diag(
                            at,
                            Problem::MissingField {
                                field: format!("{section}.{}", f.name),
                                recipe: decl.name.clone(),
                            },
                        )
                        .help(format!(
                            "add `{section}:\\n  {}: <{}>`{}",
                            f.name,
                            f.ty.as_str(),
                            if f.description.is_empty() {
                                String::new()
                            } else {
                                format!(" ({})", f.description)
                            }
                        )),
                    );
                }
                fields.insert(f.name.as_str().into(), f.default.clone().unwrap_or(Dynamic::UNIT));
            }
        }
    }
    for k in given.keys() {
        if !decl.fields.iter().any(|f| f.name == k.as_str()) {
            diags.push(
                s.diag(
                    &[section, k],
                    Problem::UnknownField {
                        field: format!("{section}.{k}"),
                        recipe: decl.name.clone(),
                    },
                )
                .help(format!(
                    "the recipe's fields are: {}",
                    decl.fields
                        .iter()
                        .map(|f| format!("`{}`", f.name))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
                .suggest(closest(k, decl.fields.iter().map(|f| f.name.as_str()))),
            );
        }
    }
    if diags.is_empty() {
        diags.extend(field_rules(s, recipe, &fields));
    }
    if !diags.is_empty() {
        return Err(diags);
    }
    let steps = recipe.steps_for_service(s, service_map(s, &fields))?;
    let mut step_diags = Vec::new();
    for st in &steps {
        if !recipe.ast.iter_functions().any(|f| f.name == st.run && f.params.len() == 1) {
            step_diags.push(s.diag(
                &[section],
                Problem::UndefinedStepFunction {
                    step: st.name.clone(),
                    service: s.name.clone(),
                    run: st.run.clone(),
                },
            ));
        }
        if st.per_region && s.regions.is_empty() {
            let problem = Problem::PerRegionWithoutRegions {
                step: st.name.clone(),
                recipe: decl.name.clone(),
                service: s.name.clone(),
            };
            step_diags.push(super::locate::step_diag(s, recipe, &st.name, problem));
        }
    }
    if !step_diags.is_empty() {
        return Err(step_diags);
    }
    Ok(Checked { fields, steps })
}

/// The recipe's own rules between fields: `fn check_fields(fields)`, called in the declaration
/// sandbox with the validated fields, returns an array of problems, each
/// `#{ field, message, help }` (`help` optional). A problem is reported at the field in
/// `pilum.yaml` (or at the recipe's section when the field is not written there) as
/// ``field `<section>.<field>` <message>``.
fn field_rules(s: &Service, recipe: &Recipe, fields: &Map) -> Vec<Diagnostic> {
    if !recipe.ast.iter_functions().any(|f| f.name == CHECK_FIELDS && f.params.len() == 1) {
        return Vec::new();
    }
    let section = recipe.decl.section.as_str();
    let name = &recipe.decl.name;
    let problems =
        match host::call_declaration(&recipe.ast, CHECK_FIELDS, (Dynamic::from(fields.clone()),)) {
            Ok(v) => v,
            Err(e) => {
                let rendered = host::render_error(&e, &recipe.ast_source);
                let first = rendered.lines().next().unwrap_or("script error").to_string();
                let (l, c) = crate::diagnostic::find_position(&recipe.source, "fn check_fields")
                    .unwrap_or((1, 1));
                let problem = Problem::DeclarationFailed {
                    recipe: name.clone(),
                    func: CHECK_FIELDS.to_string(),
                    error: first,
                };
                return vec![Diagnostic::of(&recipe.file, problem).at(&recipe.source, l, c)];
            }
        };
    let Some(list) = problems.read_lock::<rhai::Array>().map(|a| a.clone()) else {
        let ty = type_name(&problems).to_string();
        return vec![Diagnostic::of(
            &recipe.file,
            Problem::CheckFieldsNotAnArray { recipe: name.clone(), ty },
        )];
    };
    let given = |field: &str| {
        s.config
            .get(section)
            .and_then(serde_yaml::Value::as_mapping)
            .is_some_and(|m| m.contains_key(field))
    };
    list.iter()
        .map(|p| {
            let m = p.read_lock::<Map>().map(|m| m.clone()).unwrap_or_default();
            let get = |k: &str| m.get(k).map(std::string::ToString::to_string).unwrap_or_default();
            let (field, message, help) = (get("field"), get("message"), get("help"));
            let at: Vec<&str> = if given(&field) {
                vec![section, field.as_str()]
            } else if s.config.contains_key(section) {
                vec![section]
            } else {
                vec!["name"]
            };
            let d =
                s.diag(&at, Problem::FieldRule { field: format!("{section}.{field}"), message });
            if help.is_empty() { d } else { d.help(help) }
        })
        .collect()
}

/// For a real run: the environment variables named by the service's secret fields
/// (`secret: true`) that are not set. Each is refused before anything runs; `pilum plan`,
/// `check` and dry runs do not call this.
pub(crate) fn missing_secrets(s: &Service, recipe: &Recipe, fields: &Map) -> Vec<Diagnostic> {
    let section = recipe.decl.section.as_str();
    let mut diags = Vec::new();
    for f in recipe.decl.fields.iter().filter(|f| f.secret) {
        let Some(var) = fields.get(f.name.as_str()).and_then(|v| v.clone().into_string().ok())
        else {
            continue;
        };
        if var.is_empty() || std::env::var_os(&var).is_some_and(|v| !v.is_empty()) {
            continue;
        }
        let written = s
            .config
            .get(section)
            .and_then(serde_yaml::Value::as_mapping)
            .is_some_and(|m| m.contains_key(f.name.as_str()));
        let at: &[&str] = if written {
            &[section, &f.name]
        } else if s.config.contains_key(section) {
            &[section]
        } else {
            &["name"]
        };
        diags.push(
            s.diag(
                at,
                Problem::RecipeSecretNotSet {
                    var: var.clone(),
                    service: s.name.clone(),
                    field: format!("{section}.{}", f.name),
                    recipe: recipe.decl.name.clone(),
                },
            )
            .help(format!(
                "export `{var}` before deploying (in CI, from the secret store), or set `{section}.{}` to the variable that holds it; `pilum plan`, `pilum check` and `--dry-run` do not need it",
                f.name
            )),
        );
    }
    diags
}
