//! The recipe catalogue: built-in recipes embedded from `recipes/` at build time (see
//! `build.rs`), plus `.rhai` files in the project's `recipes/` directory and `--recipe-path`
//! directories, which add to or override built-ins by name. A recipe is compiled once, on first
//! use, into one shared AST that every task of every service using it runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rhai::{AST, Dynamic, Map};

use crate::diagnostic::{Problem, closest};
use crate::service::{Diagnostic, RecipeRef, Service};
use crate::yaml::SegBuf;

use super::declaration::{Declaration, Reader, Step};
use super::host;

use crate::embedded::{self as builtin, RECIPE_PREFIX as BUILTIN_PREFIX};

/// Hook functions later commands will call (`status`, `logs`, `rollback`); not usable as steps.
pub(crate) const RESERVED_HOOKS: &[&str] = &["status", "logs", "rollback"];

/// Where a recipe comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Origin {
    Builtin,
    /// A project file; `overrides` when a built-in of the same name exists.
    File {
        path: PathBuf,
        overrides: bool,
    },
}

impl Origin {
    pub(crate) fn label(&self) -> String {
        match self {
            Origin::Builtin => "built-in".into(),
            Origin::File { path, overrides: true } => {
                format!("{} (overrides built-in)", path.display())
            }
            Origin::File { path, .. } => path.display().to_string(),
        }
    }
}

/// A compiled recipe with its declaration.
#[derive(Debug)]
pub(crate) struct Recipe {
    pub decl: Declaration,
    pub ast: Arc<AST>,
    pub origin: Origin,
    /// The path shown in diagnostics.
    pub file: PathBuf,
    pub source: Arc<str>,
    /// The AST's source name, for error rendering.
    pub ast_source: String,
    /// Whether the recipe defines `fn plan(svc)` (steps depend on the service).
    pub has_plan: bool,
}

#[cfg(test)]
impl Recipe {
    /// A builtin recipe `t` with these steps and no code: what planning and execution tests need.
    pub(crate) fn for_tests(steps: Vec<Step>) -> Arc<Recipe> {
        Arc::new(Recipe {
            decl: Declaration {
                name: "t".into(),
                description: String::new(),
                provider: None,
                kind: None,
                section: "t".into(),
                fields: Vec::new(),
                steps,
            },
            ast: Arc::new(AST::empty()),
            origin: Origin::Builtin,
            file: PathBuf::from("t.rhai"),
            source: Arc::from(""),
            ast_source: "t.rhai".into(),
            has_plan: false,
        })
    }
}

impl Recipe {
    /// The steps for service `s`: `plan(svc)` when defined, else the declared steps. A problem
    /// in a step that `plan(svc)` built from the service's own fields (a `shell.steps` entry's `timeout`, the section's default
    /// `timeout`) is reported where the service wrote the value, in its `pilum.yaml`.
    pub(crate) fn steps_for_service(
        &self,
        s: &Service,
        svc: Map,
    ) -> Result<Vec<Step>, Vec<Diagnostic>> {
        if !self.has_plan {
            return Ok(self.decl.steps.clone());
        }
        let v: Dynamic = host::call_declaration(&self.ast, "plan", (Dynamic::from(svc),))
            .map_err(|e| vec![self.script_error("plan", &e)])?;
        let mut r = Reader::new(self.file.clone(), &self.source);
        let steps = r.steps(&v);
        if r.diags.is_empty() {
            return Ok(steps);
        }
        let section = self.decl.section.as_str();
        for (i, step, key) in &r.step_keys {
            if let Some(path) = written_at(&s.config, section, step, key) {
                let (line, col) = s.position(&crate::yaml::segs(&path), true);
                let problem = r.diags[*i].problem.clone();
                r.diags[*i] = Diagnostic::of(&s.file, problem).at(&s.text, line, col);
            }
        }
        Err(r.diags)
    }

    fn script_error(&self, func: &str, e: &rhai::EvalAltResult) -> Diagnostic {
        declaration_error(&self.decl.name, &self.file, &self.source, &self.ast_source, func, e)
    }
}

/// Where in a service's configuration `key` of step `step` was written: a mapping under the
/// recipe's `section` with `name: <step>` and that key, else the section's own `key` (the
/// default of its steps).
fn written_at(
    config: &serde_yaml::Mapping,
    section: &str,
    step: &str,
    key: &str,
) -> Option<Vec<SegBuf>> {
    fn find(v: &serde_yaml::Value, step: &str, key: &str, path: &mut Vec<SegBuf>) -> bool {
        match v {
            serde_yaml::Value::Mapping(m) => {
                if m.get("name").and_then(|n| n.as_str()) == Some(step) && m.contains_key(key) {
                    path.push(SegBuf::Key(key.to_string()));
                    return true;
                }
                for (k, x) in m {
                    path.push(SegBuf::Key(crate::service::expand::key_text(k)));
                    if find(x, step, key, path) {
                        return true;
                    }
                    path.pop();
                }
                false
            }
            serde_yaml::Value::Sequence(items) => {
                for (i, x) in items.iter().enumerate() {
                    path.push(SegBuf::Index(i));
                    if find(x, step, key, path) {
                        return true;
                    }
                    path.pop();
                }
                false
            }
            _ => false,
        }
    }
    let top = config.get(section)?;
    let mut path = vec![SegBuf::Key(section.to_string())];
    if find(top, step, key, &mut path) {
        return Some(path);
    }
    top.get(key).map(|_| vec![SegBuf::Key(section.to_string()), SegBuf::Key(key.to_string())])
}

struct Entry {
    name: String,
    /// The AST's source name: the absolute path, or the built-in name.
    ast_source: String,
    origin: Origin,
    file: PathBuf,
    source: Arc<str>,
    loaded: OnceLock<Result<Arc<Recipe>, Vec<Diagnostic>>>,
}

/// A recipe, or why it cannot be used.
pub(crate) type Loaded = Result<Arc<Recipe>, Vec<Diagnostic>>;

/// Every recipe available to a project, by name.
pub(crate) struct Catalog {
    entries: BTreeMap<String, Entry>,
}

impl Catalog {
    /// Built-ins, then `<root>/recipes/*.rhai`, then each of `extra` (later wins by name).
    pub(crate) fn load(root: &Path, extra: &[PathBuf]) -> Result<Self, Vec<Diagnostic>> {
        let mut entries = BTreeMap::new();
        for (name, src) in builtin::RECIPES {
            entries.insert(
                (*name).to_string(),
                Entry {
                    name: (*name).to_string(),
                    origin: Origin::Builtin,
                    file: PathBuf::from(format!("{BUILTIN_PREFIX}{name}.rhai")),
                    ast_source: format!("{BUILTIN_PREFIX}{name}.rhai"),
                    source: Arc::from(*src),
                    loaded: OnceLock::new(),
                },
            );
        }
        let mut diags = Vec::new();
        let mut dirs = vec![(root.join("recipes"), false)];
        dirs.extend(
            extra.iter().map(|d| (if d.is_absolute() { d.clone() } else { root.join(d) }, true)),
        );
        for (dir, explicit) in dirs {
            let rd = match std::fs::read_dir(&dir) {
                Ok(rd) => rd,
                Err(_) if !explicit => continue,
                Err(e) => {
                    let p = Problem::UnreadableRecipe {
                        what: "recipe directory",
                        path: dir.display().to_string(),
                        error: e.to_string(),
                    };
                    diags.push(Diagnostic::of(&dir, p));
                    continue;
                }
            };
            let mut files: Vec<PathBuf> = rd
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "rhai"))
                .collect();
            files.sort();
            for path in files {
                let Some(name) = path.file_stem().and_then(|s| s.to_str()).map(str::to_string)
                else {
                    continue;
                };
                let shown =
                    path.strip_prefix(root).map_or_else(|_| path.clone(), Path::to_path_buf);
                match std::fs::read_to_string(&path) {
                    Ok(src) => {
                        let overrides = entries.get(&name).is_some_and(|e: &Entry| {
                            e.origin == Origin::Builtin
                                || matches!(e.origin, Origin::File { overrides: true, .. })
                        });
                        entries.insert(
                            name.clone(),
                            Entry {
                                name,
                                origin: Origin::File { path: shown.clone(), overrides },
                                file: shown,
                                ast_source: path.display().to_string(),
                                source: Arc::from(src),
                                loaded: OnceLock::new(),
                            },
                        );
                    }
                    Err(e) => {
                        let p = Problem::UnreadableRecipe {
                            what: "recipe",
                            path: shown.display().to_string(),
                            error: e.to_string(),
                        };
                        diags.push(Diagnostic::of(&shown, p));
                    }
                }
            }
        }
        if diags.is_empty() { Ok(Self { entries }) } else { Err(diags) }
    }

    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// Load (compile and read the declaration of) the recipe called `name`.
    pub(crate) fn get(&self, name: &str) -> Option<Result<Arc<Recipe>, Vec<Diagnostic>>> {
        let e = self.entries.get(name)?;
        Some(e.loaded.get_or_init(|| compile(e)).clone())
    }

    /// Every recipe, loaded, with its load result.
    pub(crate) fn all(&self) -> Vec<(&str, Loaded)> {
        self.entries
            .keys()
            .map(|n| (n.as_str(), self.get(n).expect("listed name exists")))
            .collect()
    }

    /// The recipe a service asks for.
    pub(crate) fn resolve(&self, r: &RecipeRef) -> Result<Arc<Recipe>, ResolveError> {
        match r {
            RecipeRef::Name(n) => match self.get(n) {
                Some(Ok(rec)) => Ok(rec),
                Some(Err(d)) => Err(ResolveError::Broken(d)),
                None => Err(ResolveError::Unknown {
                    what: format!("unknown recipe `{n}`"),
                    suggestion: closest(n, self.names()).map(str::to_string),
                }),
            },
            RecipeRef::Provider { provider, kind } => {
                // The recipe named after the provider (or `<provider>-<kind>`) is checked first,
                // so the common case compiles one recipe, not the whole catalogue.
                let guess = match kind {
                    Some(k) => format!("{provider}-{k}"),
                    None => provider.clone(),
                };
                if let Some(Ok(r)) = self.get(&guess)
                    && r.decl.provider.as_deref() == Some(provider.as_str())
                    && (kind.is_none() || r.decl.kind.as_deref() == kind.as_deref())
                {
                    return Ok(r);
                }
                let mut matches = Vec::new();
                for (_, res) in self.all() {
                    let Ok(rec) = res else { continue };
                    if rec.decl.provider.as_deref() != Some(provider) {
                        continue;
                    }
                    match kind {
                        Some(k) if rec.decl.kind.as_deref() == Some(k) => matches.push(rec),
                        None => matches.push(rec),
                        _ => {}
                    }
                }
                // Without `service:`, a provider with one recipe (or one named like it) is enough.
                if matches.len() > 1
                    && kind.is_none()
                    && let Some(exact) = matches.iter().find(|m| m.decl.name == *provider)
                {
                    return Ok(exact.clone());
                }
                match matches.len() {
                    1 => Ok(matches.remove(0)),
                    0 => {
                        let providers: Vec<String> = self
                            .all()
                            .into_iter()
                            .filter_map(|(_, r)| r.ok()?.decl.provider.clone())
                            .collect();
                        Err(ResolveError::Unknown {
                            what: format!(
                                "no recipe for provider `{provider}`{}",
                                kind.as_ref()
                                    .map(|k| format!(" and service `{k}`"))
                                    .unwrap_or_default()
                            ),
                            suggestion: closest(provider, providers.iter().map(String::as_str))
                                .map(str::to_string),
                        })
                    }
                    _ => Err(ResolveError::Unknown {
                        what: format!(
                            "provider `{provider}` has several recipes ({}); add `service:` or `recipe:`",
                            matches
                                .iter()
                                .map(|m| format!("`{}`", m.decl.name))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                        suggestion: None,
                    }),
                }
            }
        }
    }
}

/// Why a service's recipe could not be found.
#[derive(Debug)]
pub(crate) enum ResolveError {
    Unknown { what: String, suggestion: Option<String> },
    Broken(Vec<Diagnostic>),
}

fn compile(e: &Entry) -> Result<Arc<Recipe>, Vec<Diagnostic>> {
    let ast = host::compile(&e.source, &e.ast_source).map_err(|err| {
        let pos = err.position();
        let p = Problem::RecipeDoesNotCompile {
            recipe: e.name.clone(),
            error: err.err_type().to_string(),
        };
        let d = Diagnostic::of(&e.file, p);
        vec![match pos.line() {
            Some(l) => d.at(&e.source, l, pos.position().unwrap_or(1)),
            None => d,
        }]
    })?;
    let here = |p: Problem| {
        let (l, c) = crate::diagnostic::find_position(&e.source, "fn recipe").unwrap_or((1, 1));
        Diagnostic::of(&e.file, p).at(&e.source, l, c)
    };
    let has = |name: &str, arity: usize| {
        ast.iter_functions().any(|f| f.name == name && f.params.len() == arity)
    };
    if !has("recipe", 0) {
        return Err(vec![here(Problem::NoRecipeFunction { recipe: e.name.clone() })]);
    }
    let v: Dynamic = host::call_declaration(&ast, "recipe", ()).map_err(|err| {
        vec![declaration_error(&e.name, &e.file, &e.source, &e.ast_source, "recipe", &err)]
    })?;
    let Some(map) = v.read_lock::<Map>().map(|m| m.clone()) else {
        let p = Problem::RecipeNotAMap { recipe: e.name.clone(), ty: v.type_name().to_string() };
        return Err(vec![here(p)]);
    };
    let mut reader = Reader::new(e.file.clone(), &e.source);
    let decl = reader.declaration(&map);
    let mut diags = reader.diags;
    let Some(decl) = decl else { return Err(diags) };
    if decl.name != e.name {
        diags.push(here(Problem::RecipeNameMismatch {
            file: e.file.display().to_string(),
            declared: decl.name.clone(),
        }));
    }
    let has_plan = has("plan", 1);
    // Both problems point at the step's `run:` string in the declaration.
    let step_diag = |s: &Step, reserved: bool| {
        let (l, c) = crate::diagnostic::find_position(&e.source, &format!("\"{}\"", s.run))
            .unwrap_or((1, 1));
        let (step, run) = (s.name.clone(), s.run.clone());
        let p = if reserved {
            Problem::ReservedStepFunction { step, run }
        } else {
            Problem::MissingStepFunction { step, run }
        };
        Diagnostic::of(&e.file, p).at(&e.source, l, c)
    };
    for s in &decl.steps {
        if RESERVED_HOOKS.contains(&s.run.as_str()) {
            diags.push(step_diag(s, true));
            continue;
        }
        if !has(&s.run, 1) {
            diags.push(step_diag(s, false));
        }
    }
    if !diags.is_empty() {
        return Err(diags);
    }
    Ok(Arc::new(Recipe {
        decl,
        ast: Arc::new(ast),
        origin: e.origin.clone(),
        file: e.file.clone(),
        source: e.source.clone(),
        ast_source: e.ast_source.clone(),
        has_plan,
    }))
}

/// A failed `recipe()` or `plan()`: the script error's first line, pointing at where it happened
/// (or at the function when the error has no position, e.g. the operation limit).
fn declaration_error(
    name: &str,
    file: &Path,
    source: &str,
    ast_source: &str,
    func: &str,
    err: &rhai::EvalAltResult,
) -> Diagnostic {
    let rendered = host::render_error(err, ast_source);
    let first = rendered.lines().next().unwrap_or("script error").to_string();
    let p = Problem::DeclarationFailed {
        recipe: name.to_string(),
        func: func.to_string(),
        error: first,
    };
    let d = Diagnostic::of(file, p);
    let mut inner = err;
    while let rhai::EvalAltResult::ErrorInFunctionCall(_, _, e, _) = inner {
        inner = e;
    }
    let pos = inner.position();
    match pos.line() {
        Some(l) => d.at(source, l, pos.position().unwrap_or(1)),
        None => {
            let (l, c) =
                crate::diagnostic::find_position(source, &format!("fn {func}")).unwrap_or((1, 1));
            d.at(source, l, c)
        }
    }
}
