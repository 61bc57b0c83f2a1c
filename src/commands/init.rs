//! `pilum init`: write a `pilum.yaml` for a recipe from the catalogue. In order: the answers
//! given as flags (`--name`, `--recipe`, `--set`) are checked against the recipe ([`answers`]),
//! what is still missing is asked on a terminal ([`Prompt`]), a file that `pilum check` would
//! refuse is never written ([`require_complete`]), and the YAML is rendered with every value
//! checked against its field's type ([`render`]). A typo at a prompt asks again, with a "did you
//! mean"; defaults are shown as they would be written in YAML. Finally `.pilum/` and the
//! service's declared artefacts are added to the project's `.gitignore` ([`ignore_outputs`]).

use std::path::PathBuf;

use console::{Style, Term};

use crate::cli::InitArgs;
use crate::commands::pipeline;
use crate::error::Error;
use crate::output::Output;
use crate::recipe::Recipe;
use crate::recipe::declaration::FieldType;

pub(crate) fn run(dir: Option<PathBuf>, args: &InitArgs, out: &Output) -> Result<(), Error> {
    let cwd = std::env::current_dir().map_err(Error::failure)?;
    let base = dir.clone().unwrap_or_else(|| cwd.clone());
    let target = match &args.path {
        Some(p) if p.is_absolute() => p.clone(),
        Some(p) => base.join(p),
        None => base.clone(),
    };
    let file = target.join("pilum.yaml");
    if file.exists() && !args.force {
        return Err(Error::usage(format!(
            "`{}` already exists\nhelp: pass `--force` to overwrite it",
            file.display()
        )));
    }
    let root = crate::service::discover::project_root(dir.as_deref()).map_err(Error::usage)?;
    let catalog = crate::recipe::Catalog::load(&root, &[]).map_err(|d| pipeline::usage(&d))?;
    let prompt = Prompt::new(!args.no_input && !out.json, out);

    let dir_name = target.file_name().and_then(|n| n.to_str()).unwrap_or("service").to_string();
    let name = match &args.name {
        Some(n) => n.clone(),
        None if prompt.interactive() => prompt.ask("service name", &dir_name)?,
        None => dir_name,
    };
    let recipe_name = match &args.recipe {
        Some(r) => r.clone(),
        None if prompt.interactive() => ask_recipe(&prompt, &catalog)?,
        None => "local".into(),
    };
    let recipe = match catalog.get(&recipe_name) {
        Some(Ok(r)) => r,
        Some(Err(d)) => return Err(pipeline::usage(&d)),
        None => return Err(Error::usage(unknown_recipe(&recipe_name, &catalog))),
    };

    let answers = gather(&prompt, &args.set, &recipe)?;
    let yaml = render(&name, &recipe, &answers)?;

    std::fs::create_dir_all(&target)
        .map_err(|e| Error::failure(format!("cannot create `{}`: {e}", target.display())))?;
    std::fs::write(&file, &yaml)
        .map_err(|e| Error::failure(format!("cannot write `{}`: {e}", file.display())))?;
    let ignored = ignore_outputs(&root, &target, &recipe, &answers)?;
    let written = Written { root: &root, file: &file, name: &name, recipe: &recipe, ignored };
    report(out, &written, &answers);
    Ok(())
}

/// The answers from `--set`, then the prompts (or, without a terminal, the required fields
/// left unanswered); an error unless every required field has one.
fn gather(prompt: &Prompt<'_>, sets: &[String], recipe: &Recipe) -> Result<Answers, Error> {
    let mut answers = answers(sets, recipe)?;
    if prompt.interactive() {
        ask_missing(prompt, recipe, &mut answers)?;
    } else {
        let missing: Vec<String> = recipe
            .decl
            .fields
            .iter()
            .filter(|f| f.required && !answers.has(&f.name))
            .map(|f| f.name.clone())
            .collect();
        answers.missing = missing;
    }
    require_complete(recipe, &answers)?;
    Ok(answers)
}

/// What `pilum init` wrote, for its report.
struct Written<'a> {
    root: &'a std::path::Path,
    file: &'a std::path::Path,
    name: &'a str,
    recipe: &'a Recipe,
    ignored: Vec<String>,
}

/// `✓ wrote …` (and the `.gitignore` lines added), or one JSON object with `--json`.
fn report(out: &Output, w: &Written<'_>, answers: &Answers) {
    if out.json {
        // The regions as `pilum.yaml` reads them: `region` first, then `regions`.
        let region = &answers.region;
        let all: Vec<&String> = region
            .iter()
            .chain(answers.regions.iter().filter(|r| Some(*r) != region.as_ref()))
            .collect();
        out.json_line(&serde_json::json!({"file": w.file.display().to_string(), "name": w.name, "recipe": w.recipe.decl.name, "regions": all, "gitignore": w.ignored}));
    } else if !out.quiet {
        let tick = Style::new().green().apply_to("✓");
        out.stdout_line(&format!("{tick} wrote {}", w.file.display()));
        if !w.ignored.is_empty() {
            let lines: Vec<String> = w.ignored.iter().map(|l| format!("`{l}`")).collect();
            out.stdout_line(&format!(
                "{tick} added {} to {}",
                lines.join(", "),
                w.root.join(".gitignore").display()
            ));
        }
    }
}

/// How often a prompt asks again after an answer it cannot take.
const ATTEMPTS: usize = 5;

/// The recipe catalogue, aligned however long the names, then the question until the answer
/// names a recipe.
fn ask_recipe(prompt: &Prompt<'_>, catalog: &crate::recipe::Catalog) -> Result<String, Error> {
    prompt.say("recipes:");
    let all = catalog.all();
    let width = all.iter().map(|(n, _)| n.chars().count()).max().unwrap_or(0);
    for (n, r) in &all {
        if let Ok(r) = r {
            prompt.say(&format!("  {n:<width$}  {}", r.decl.description));
        }
    }
    for _ in 1..ATTEMPTS {
        let answer = prompt.ask("recipe", "local")?;
        if catalog.get(&answer).is_some() {
            return Ok(answer);
        }
        let hint = crate::diagnostic::closest(&answer, catalog.names())
            .map(|c| format!("; did you mean `{c}`?"))
            .unwrap_or_else(|| "; pick one from the list above".to_string());
        prompt.say(&format!("unknown recipe `{answer}`{hint}"));
    }
    let answer = prompt.ask("recipe", "local")?;
    if catalog.get(&answer).is_some() {
        return Ok(answer);
    }
    Err(Error::usage(unknown_recipe(&answer, catalog)))
}

fn unknown_recipe(name: &str, catalog: &crate::recipe::Catalog) -> String {
    let mut msg = format!(
        "unknown recipe `{name}`\nhelp: `pilum list --recipes` shows the available recipes"
    );
    if let Some(c) = crate::diagnostic::closest(name, catalog.names()) {
        msg.push_str(&format!("\ndid you mean `{c}`?"));
    }
    msg
}

/// Add `.pilum/` and the service's declared artefacts (the recipe's `artifacts` field, as
/// paths from the project root) to the `.gitignore` at `root`, creating it if needed. Lines
/// already there are not added again. Returns the lines added.
fn ignore_outputs(
    root: &std::path::Path,
    service_dir: &std::path::Path,
    recipe: &Recipe,
    a: &Answers,
) -> Result<Vec<String>, Error> {
    let path = root.join(".gitignore");
    let existing = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(Error::failure(format!("cannot read `{}`: {e}", path.display()))),
    };
    let have: Vec<&str> = existing.lines().map(str::trim).collect();
    let mut wanted = Vec::new();
    if !have.iter().any(|l| {
        matches!(*l, ".pilum" | ".pilum/" | "/.pilum" | "/.pilum/" | "**/.pilum" | "**/.pilum/")
    }) {
        wanted.push(".pilum/".to_string());
    }
    let dir = service_dir
        .canonicalize()
        .ok()
        .and_then(|d| d.strip_prefix(root).ok().map(std::path::Path::to_path_buf));
    if let Some(dir) = dir {
        for pattern in artefacts(recipe, a) {
            let rel = if dir.as_os_str().is_empty() {
                pattern
            } else {
                format!("{}/{pattern}", dir.display())
            };
            if !have.contains(&rel.as_str()) && !wanted.contains(&rel) {
                wanted.push(rel);
            }
        }
    }
    if wanted.is_empty() {
        return Ok(wanted);
    }
    let mut text = existing.clone();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    for l in &wanted {
        text.push_str(l);
        text.push('\n');
    }
    std::fs::write(&path, text)
        .map_err(|e| Error::failure(format!("cannot write `{}`: {e}", path.display())))?;
    Ok(wanted)
}

/// The artefacts the new service declares: its `artifacts` field (given, else the default),
/// relative to the service directory; paths leaving it are left out.
fn artefacts(recipe: &Recipe, a: &Answers) -> Vec<String> {
    let Some(f) = recipe.decl.fields.iter().find(|f| f.name == "artifacts") else {
        return Vec::new();
    };
    let given = a.values.iter().find(|(k, _)| k == "artifacts").map(|(_, v)| v.clone());
    let list: Vec<String> = match given {
        Some(v) => {
            let yaml = field_yaml(f.ty, &v);
            serde_yaml::from_str::<Vec<String>>(&yaml).unwrap_or_default()
        }
        None => f
            .default
            .as_ref()
            .and_then(|d| d.clone().into_typed_array::<rhai::ImmutableString>().ok())
            .map(|v| v.iter().map(std::string::ToString::to_string).collect())
            .unwrap_or_default(),
    };
    list.into_iter()
        .map(|p| p.trim_start_matches("./").to_string())
        .filter(|p| !p.is_empty() && !p.starts_with('/') && !p.split('/').any(|c| c == ".."))
        .collect()
}

/// Questions on the terminal: only when both stdin and stdout are terminals (and neither
/// `--no-input` nor `--json`). Questions and the recipe list go to stderr through `Output`.
struct Prompt<'a> {
    term: Option<Term>,
    out: &'a Output,
}

impl<'a> Prompt<'a> {
    fn new(allowed: bool, out: &'a Output) -> Self {
        let term = Term::stderr();
        let interactive = allowed && term.is_term() && Term::stdout().is_term();
        Self { term: interactive.then_some(term), out }
    }

    fn interactive(&self) -> bool {
        self.term.is_some()
    }

    fn say(&self, line: &str) {
        self.out.stderr_line(line);
    }

    /// Ask one question; an empty answer takes `default`.
    fn ask(&self, prompt: &str, default: &str) -> Result<String, Error> {
        let Some(term) = &self.term else { return Ok(default.to_string()) };
        self.out.stderr_text(&format!(
            "{prompt}{}: ",
            if default.is_empty() { String::new() } else { format!(" (default: {default})") }
        ));
        let line =
            term.read_line().map_err(|e| Error::failure(format!("cannot read input: {e}")))?;
        Ok(if line.trim().is_empty() { default.to_string() } else { line.trim().to_string() })
    }
}

/// What goes into the file besides the name and recipe.
#[derive(Debug, Default)]
struct Answers {
    /// Recipe fields, in the order given.
    values: Vec<(String, String)>,
    /// `region`/`regions` are pilum.yaml's own top-level keys, not recipe fields.
    region: Option<String>,
    regions: Vec<String>,
    /// Required fields nobody gave.
    missing: Vec<String>,
}

impl Answers {
    fn has(&self, field: &str) -> bool {
        self.values.iter().any(|(k, _)| k == field)
    }

    fn has_region(&self) -> bool {
        self.region.is_some() || !self.regions.is_empty()
    }
}

/// The `--set key=value` flags, each checked against the recipe's fields.
fn answers(sets: &[String], recipe: &Recipe) -> Result<Answers, Error> {
    let mut a = Answers::default();
    for kv in sets {
        let Some((k, v)) = kv.split_once('=') else {
            return Err(Error::usage(format!("`--set {kv}` must be `key=value`")));
        };
        if k == "region" || k == "regions" {
            let list = region_list(v);
            if list.is_empty() {
                return Err(Error::usage(format!(
                    "`--set {k}=` needs a region\nhelp: e.g. `--set region=europe-west1` or `--set regions=europe-west1,us-east1`"
                )));
            }
            match (k, list.as_slice()) {
                ("region", [one]) => a.region = Some(one.clone()),
                ("region", _) => {
                    return Err(Error::usage(format!(
                        "`region` is one region, not `{v}`\nhelp: use `--set regions={v}` for several"
                    )));
                }
                _ => a.regions = list,
            }
            continue;
        }
        if !recipe.decl.fields.iter().any(|f| f.name == k) {
            let mut msg = format!("recipe `{}` has no field `{k}`", recipe.decl.name);
            if let Some(c) =
                crate::diagnostic::closest(k, recipe.decl.fields.iter().map(|f| f.name.as_str()))
            {
                msg.push_str(&format!("\ndid you mean `{c}`?"));
            }
            return Err(Error::usage(msg));
        }
        a.values.push((k.to_string(), v.to_string()));
    }
    Ok(a)
}

/// Ask for every field not given as a flag (required ones left empty are missing), then for
/// regions when the recipe has per-region steps.
fn ask_missing(prompt: &Prompt<'_>, recipe: &Recipe, a: &mut Answers) -> Result<(), Error> {
    for f in &recipe.decl.fields {
        if a.has(&f.name) {
            continue;
        }
        let default = f.default.as_ref().map(yaml_flow).unwrap_or_default();
        let question = format!(
            "{} ({}{}) {}",
            f.name,
            f.ty.as_str(),
            if f.required { ", required" } else { "" },
            f.description
        );
        let mut v = prompt.ask(&question, &default)?;
        for _ in 1..ATTEMPTS {
            match check_value(f, &v) {
                Err(e) if !v.is_empty() && v != default => {
                    prompt.say(&e.message.replace("\nhelp: ", "; "));
                    v = prompt.ask(&question, &default)?;
                }
                _ => break,
            }
        }
        if !v.is_empty() && v != default {
            a.values.push((f.name.clone(), v));
        } else if v.is_empty() && f.required {
            a.missing.push(f.name.clone());
        }
    }
    let per_region = per_region_steps(recipe);
    if !per_region.is_empty() && !a.has_region() {
        let answer = prompt.ask(
            &format!("regions (comma-separated; {} run once per region)", per_region.join(", ")),
            "",
        )?;
        match region_list(&answer).as_slice() {
            [] => {}
            [one] => a.region = Some(one.clone()),
            list => a.regions = list.to_vec(),
        }
    }
    Ok(())
}

/// The recipe's declared per-region steps, as `` `name` ``. A recipe with `fn plan(svc)`
/// decides its steps per service; only its declared steps can be looked at here.
fn per_region_steps(recipe: &Recipe) -> Vec<String> {
    recipe.decl.steps.iter().filter(|s| s.per_region).map(|s| format!("`{}`", s.name)).collect()
}

/// `pilum check` refuses a missing required field and a per-region step on a service without
/// regions, so `init` must not write such a file.
fn require_complete(recipe: &Recipe, a: &Answers) -> Result<(), Error> {
    let per_region = per_region_steps(recipe);
    let needs_region = !per_region.is_empty() && !a.has_region();
    if a.missing.is_empty() && !needs_region {
        return Ok(());
    }
    let mut what: Vec<String> = a.missing.iter().map(|m| format!("`{m}`")).collect();
    let mut pass: Vec<String> = a.missing.iter().map(|m| format!("`--set {m}=<value>`")).collect();
    let mut or_several = "";
    if needs_region {
        what.push(format!("a region (steps {} run once per region)", per_region.join(", ")));
        pass.push("`--set region=<region>`".into());
        or_several = " (several: `--set regions=<a>,<b>`)";
    }
    Err(Error::usage(format!(
        "recipe `{}` requires {}\nhelp: pass {}{or_several}",
        recipe.decl.name,
        what.join(", "),
        pass.join(" ")
    )))
}

/// The file's text. Every value is rendered as its field's type and read back to check it.
fn render(name: &str, recipe: &Recipe, a: &Answers) -> Result<String, Error> {
    let mut yaml = format!("name: {}\nrecipe: {}\n", yaml_scalar(name), recipe.decl.name);
    if let Some(r) = &a.region {
        yaml.push_str(&format!("region: {}\n", yaml_scalar(r)));
    }
    if !a.regions.is_empty() {
        let items: Vec<String> = a.regions.iter().map(|r| yaml_scalar(r)).collect();
        yaml.push_str(&format!("regions: [{}]\n", items.join(", ")));
    }
    if !a.values.is_empty() {
        yaml.push_str(&format!("{}:\n", recipe.decl.section));
        for (k, v) in &a.values {
            let f = recipe.decl.fields.iter().find(|f| f.name == *k).expect("checked by `answers`");
            yaml.push_str(&format!("  {k}: {}\n", check_value(f, v)?));
        }
    }
    Ok(yaml)
}

/// `v` rendered as YAML for field `f`, checked against the field's type.
fn check_value(f: &crate::recipe::declaration::Field, v: &str) -> Result<String, Error> {
    let k = &f.name;
    // Values are read as YAML: refuse pathological nesting before the parser sees it.
    crate::yaml::check_depth(v)
        .map_err(|e| Error::usage(format!("`{k}` has {e}\nhelp: give a flatter value")))?;
    let rendered = field_yaml(f.ty, v);
    let parsed = serde_yaml::from_str::<serde_yaml::Value>(&rendered)
        .map(|y| crate::recipe::value::yaml_to_dynamic(&y));
    if !parsed.as_ref().is_ok_and(|d| f.ty.accepts(d)) {
        return Err(Error::usage(format!(
            "`{k}` must be {} {}, not `{v}`\nhelp: {}",
            if f.ty.as_str().starts_with(['a', 'i']) { "an" } else { "a" },
            f.ty.as_str(),
            if f.description.is_empty() {
                "see `pilum list --recipes --json`".to_string()
            } else {
                f.description.clone()
            }
        )));
    }
    Ok(rendered)
}

/// A default as it would be written in `pilum.yaml`: YAML flow style (`[]`, `{}`,
/// `[a, b]`, `{k: v}`), strings as they are.
fn yaml_flow(d: &rhai::Dynamic) -> String {
    fn flow(v: &serde_json::Value) -> String {
        match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => "null".into(),
            serde_json::Value::Array(items) => {
                format!("[{}]", items.iter().map(flow).collect::<Vec<_>>().join(", "))
            }
            serde_json::Value::Object(m) => format!(
                "{{{}}}",
                m.iter().map(|(k, v)| format!("{k}: {}", flow(v))).collect::<Vec<_>>().join(", ")
            ),
            other => other.to_string(),
        }
    }
    flow(&crate::script::value::to_json(d).unwrap_or_default())
}

/// A value given on the command line as YAML for a field of type `ty`: numbers and booleans
/// as they are, `a, b` as a list, structured values as written, anything else quoted as needed.
fn field_yaml(ty: FieldType, v: &str) -> String {
    let yaml = || serde_yaml::from_str::<serde_yaml::Value>(v);
    match ty {
        FieldType::Int | FieldType::Float | FieldType::Bool
            if yaml().is_ok_and(|x| !x.is_string()) =>
        {
            v.to_string()
        }
        FieldType::Array if !yaml().is_ok_and(|x| x.is_sequence()) => {
            // `a, b` (or a single `a`) as a list.
            let items: Vec<String> =
                v.split(',').map(str::trim).filter(|x| !x.is_empty()).map(yaml_scalar).collect();
            format!("[{}]", items.join(", "))
        }
        FieldType::Array | FieldType::Map | FieldType::Any => v.to_string(),
        _ => yaml_scalar(v),
    }
}

/// `a,b`, `a, b` or `[a, b]` as a list of regions.
fn region_list(v: &str) -> Vec<String> {
    let v = v.trim();
    let v = v.strip_prefix('[').and_then(|v| v.strip_suffix(']')).unwrap_or(v);
    v.split(',').map(str::trim).filter(|r| !r.is_empty()).map(str::to_string).collect()
}

fn yaml_scalar(s: &str) -> String {
    serde_yaml::to_string(s).map(|y| y.trim_end().to_string()).unwrap_or_else(|_| format!("{s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_render_as_their_field_type() {
        assert_eq!(field_yaml(FieldType::Int, "3"), "3");
        assert_eq!(field_yaml(FieldType::Int, "three"), "three");
        assert_eq!(field_yaml(FieldType::Array, "a, b"), "[a, b]");
        assert_eq!(field_yaml(FieldType::Array, "[a]"), "[a]");
        assert_eq!(field_yaml(FieldType::String, "true"), "'true'");
        assert_eq!(region_list("[eu, us]"), ["eu", "us"]);
        assert!(region_list(" , ").is_empty());
    }
}
