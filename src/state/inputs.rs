//! The build cache's input hashes. A service's **input hash** covers what its build can depend
//! on: its files and `watch:` paths, the recipe's source and the modules it imports, the
//! resolved configuration, fields and environment (secret *names*, never values), the
//! environment and regions it is planned for, and pilum's version. Its **release hash** adds
//! the files and configuration of everything it depends on (transitively), so changing a
//! dependency re-runs the dependents' deploys while their builds stay cached.
//!
//! Files come from git's index without reading them: the index, read in process
//! ([`crate::service::gitindex`], or `git ls-files -s` for a repository that reader leaves to
//! git), gives each tracked file's object id; only files git reports as modified or untracked
//! are read and hashed. A
//! file belongs to the deepest service directory containing it (as for `--only-changed`);
//! `.pilum/` and the service's declared artefacts are never inputs. Outside git every file
//! (honouring `.gitignore`) is read.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::orchestrator::plan::{Plan, PlannedService};
use crate::recipe::Recipe;
use crate::service::{Project, Service};

/// Bumped when what goes into a hash changes, so old cache entries stop matching.
const SCHEME: &str = "pilum-inputs-1";

/// How many hex digits of a hash messages show.
pub(crate) const SHORT: usize = 12;

/// The hashes of one planned service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hashes {
    /// The build's inputs: the artefact cache key.
    pub input: String,
    /// The inputs plus those of every dependency: what "already live" compares.
    pub release: String,
}

/// The first [`SHORT`] hex digits.
pub(crate) fn short(hash: &str) -> &str {
    &hash[..SHORT.min(hash.len())]
}

/// The hashes of every planned service, in plan order.
pub(crate) fn hashes(project: &Project, plan: &Plan, worktree: Option<&[String]>) -> Vec<Hashes> {
    let root = &project.root;
    // Which project services need a source digest: the planned ones and their dependencies.
    let mut wanted: Vec<usize> = plan.services.iter().map(|s| s.project_index).collect();
    let mut seen = vec![false; project.services.len()];
    let mut i = 0;
    while i < wanted.len() {
        let s = wanted[i];
        i += 1;
        if std::mem::replace(&mut seen[s], true) {
            continue;
        }
        wanted.extend(project.deps[s].iter().copied());
    }
    // What a build writes is never an input of the next one.
    let mut outputs: HashMap<usize, Vec<String>> = HashMap::new();
    for ps in &plan.services {
        let decl = &ps.recipe.decl;
        let section = Some((decl.section.clone(), decl.name.clone()));
        let list = crate::service::select::artifacts(&project.services[ps.project_index], section);
        outputs.insert(ps.project_index, list);
    }
    let table = FileTable::read(root, scopes(project, &seen).as_deref(), worktree);
    let owned: Vec<(usize, Vec<usize>)> =
        table.owners(project, &seen, &outputs).into_iter().collect();
    // Each service's digests are independent of the others': computed on every core (a
    // thousand services' configurations serialised and hashed are most of a cached run).
    let sources: HashMap<usize, String> = crate::sync::par_map(&owned, 64, |(s, files)| {
        (*s, source_digest(&project.services[*s], files, &table))
    })
    .into_iter()
    .collect();
    let mut recipes: HashMap<&Path, String> = HashMap::new();
    for ps in &plan.services {
        recipes.entry(&ps.recipe.file).or_insert_with(|| recipe_digest(root, &ps.recipe));
    }
    crate::sync::par_map(&plan.services, 64, |ps| {
        let svc = &project.services[ps.project_index];
        let recipe = &recipes[ps.recipe.file.as_path()];
        let input = input_digest(svc, ps, plan, &sources[&ps.project_index], recipe);
        let mut h = Sha256::new();
        h.update(input.as_bytes());
        let mut deps: Vec<usize> = closure(project, ps.project_index);
        deps.sort_by(|a, b| project.services[*a].name.cmp(&project.services[*b].name));
        for d in deps {
            field(&mut h, &project.services[d].name);
            field(&mut h, &sources[&d]);
        }
        Hashes { input, release: hex(h) }
    })
}

/// The paths holding every file the `wanted` services can own: their directories and `watch:`
/// paths (a glob's literal leading directories), so git lists and checks only those rather than
/// the whole repository. `None`: the whole repository (a service at the root, a glob from the
/// root, or more than [`MAX_SCOPES`] paths).
fn scopes(project: &Project, wanted: &[bool]) -> Option<Vec<String>> {
    use crate::service::changed::normalize;
    let mut out = Vec::new();
    for svc in project.services.iter().zip(wanted).filter(|(_, w)| **w).map(|(s, _)| s) {
        let dir = normalize(&svc.dir.to_string_lossy());
        out.push(dir.clone());
        for w in &svc.watch {
            let path = normalize(&format!("{dir}/{w}"));
            let literal = match path.find(['*', '?', '[']) {
                Some(i) => path[..i].rfind('/').map_or("", |j| &path[..j]).to_string(),
                None => path,
            };
            out.push(literal);
        }
    }
    if out.iter().any(|p| p.is_empty() || p == ".") {
        return None;
    }
    out.sort();
    out.dedup();
    (out.len() <= MAX_SCOPES).then_some(out)
}

/// Above this many paths, git is asked about the whole repository: it matches every index entry
/// against every pathspec, so 1,000 services' directories cost more (216 ms on a 4,000-file
/// tree) than listing everything (60 ms), while 68 paths in a 104,000-file tree cost 106 ms
/// against 271 ms.
const MAX_SCOPES: usize = 128;

/// Everything `s` depends on, transitively, without `s`.
fn closure(project: &Project, s: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut seen = HashSet::from([s]);
    let mut stack = project.deps[s].clone();
    while let Some(d) = stack.pop() {
        if seen.insert(d) {
            out.push(d);
            stack.extend(project.deps[d].iter().copied());
        }
    }
    out
}

fn field(h: &mut Sha256, text: &str) {
    h.update((text.len() as u64).to_le_bytes());
    h.update(text.as_bytes());
}

fn hex(h: Sha256) -> String {
    crate::hex::encode(&h.finalize())
}

/// The service's files (path, id) and its configuration.
fn source_digest(svc: &Service, files: &[usize], table: &FileTable) -> String {
    let mut h = Sha256::new();
    field(&mut h, SCHEME);
    for &f in files {
        let (path, id) = &table.files[f];
        field(&mut h, path);
        field(&mut h, id);
    }
    field(&mut h, "config");
    let config = serde_json::to_value(&svc.config).unwrap_or_default();
    field(&mut h, &without_secrets(svc, &canonical(&config)));
    let env: BTreeMap<&String, &String> = svc.env.iter().collect();
    field(&mut h, &without_secrets(svc, &serde_json::to_string(&env).unwrap_or_default()));
    field(&mut h, &svc.secrets.join(","));
    field(&mut h, &svc.regions.join(","));
    hex(h)
}

fn input_digest(
    svc: &Service,
    ps: &PlannedService,
    plan: &Plan,
    source: &str,
    recipe: &str,
) -> String {
    let mut h = Sha256::new();
    field(&mut h, SCHEME);
    field(&mut h, env!("PILUM_VERSION"));
    field(&mut h, &ps.name);
    field(&mut h, source);
    field(&mut h, recipe);
    let fields = crate::script::value::to_json(&ps.fields.clone().into()).unwrap_or_default();
    field(&mut h, &without_secrets(svc, &canonical(&fields)));
    field(&mut h, plan.environment.as_deref().unwrap_or(""));
    field(&mut h, &ps.regions.join(","));
    hex(h)
}

/// JSON text with object keys sorted at every level.
fn canonical(v: &serde_json::Value) -> String {
    fn sort(v: &serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(m) => {
                let sorted: BTreeMap<&String, serde_json::Value> =
                    m.iter().map(|(k, v)| (k, sort(v))).collect();
                serde_json::to_value(sorted).unwrap_or_default()
            }
            serde_json::Value::Array(a) => serde_json::Value::Array(a.iter().map(sort).collect()),
            other => other.clone(),
        }
    }
    sort(v).to_string()
}

/// `text` with the value of each of the service's `secrets:` replaced by `${NAME}`, then every
/// other registered secret masked: a hash never depends on a secret's value, so rotating one
/// does not invalidate the cache, and nothing derived from a value is stored.
fn without_secrets(svc: &Service, text: &str) -> String {
    let mut secrets: Vec<(String, String)> = svc
        .secrets
        .iter()
        .filter_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()).map(|v| (n.clone(), v)))
        .collect();
    secrets.sort_by_key(|(_, v)| std::cmp::Reverse(v.len()));
    let mut out = text.to_string();
    for (name, value) in secrets {
        // The value as it appears inside JSON text.
        let quoted = serde_json::to_string(&value).unwrap_or_default();
        let inner = &quoted[1..quoted.len().saturating_sub(1).max(1)];
        out = out.replace(inner, &format!("${{{name}}}"));
    }
    crate::redact::redact(&out).into_owned()
}

/// The recipe's file name and source, and the sources of the modules it imports
/// (transitively): stdlib modules from the binary, project modules from disk.
fn recipe_digest(root: &Path, recipe: &Recipe) -> String {
    let mut h = Sha256::new();
    field(&mut h, SCHEME);
    field(&mut h, &recipe.file.display().to_string());
    field(&mut h, &recipe.source);
    let base = match &recipe.origin {
        crate::recipe::catalog::Origin::File { path, .. } => {
            path.parent().map(std::path::Path::to_path_buf).unwrap_or_default()
        }
        crate::recipe::catalog::Origin::Builtin => std::path::PathBuf::new(),
    };
    let mut seen = HashSet::new();
    let mut queue: Vec<(String, std::path::PathBuf, usize)> =
        imports(&recipe.source).into_iter().map(|m| (m, base.clone(), 0)).collect();
    while let Some((name, dir, depth)) = queue.pop() {
        if depth > 16 {
            continue;
        }
        let (key, text, next_dir) = if is_path(&name) {
            let mut p = dir.join(&name);
            if p.extension().is_none() {
                p.set_extension("rhai");
            }
            let full = if p.is_absolute() { p.clone() } else { root.join(&p) };
            let text = std::fs::read_to_string(&full).unwrap_or_default();
            (
                p.display().to_string(),
                text,
                p.parent().map(std::path::Path::to_path_buf).unwrap_or_default(),
            )
        } else {
            let text = crate::embedded::STDLIB
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, t)| t.to_string())
                .unwrap_or_default();
            (format!("<stdlib>/{name}"), text, dir.clone())
        };
        if !seen.insert(key.clone()) {
            continue;
        }
        field(&mut h, &key);
        field(&mut h, &text);
        queue.extend(imports(&text).into_iter().map(|m| (m, next_dir.clone(), depth + 1)));
    }
    hex(h)
}

fn is_path(module: &str) -> bool {
    module.starts_with('.') || module.contains('/')
}

/// The module names of `import "…"` statements (a commented-out one too: it only adds input).
fn imports(source: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = source;
    while let Some(i) = rest.find("import") {
        let after = &rest[i + "import".len()..];
        let before_ok = i == 0 || !rest.as_bytes()[i - 1].is_ascii_alphanumeric();
        let trimmed = after.trim_start();
        if before_ok
            && trimmed.starts_with('"')
            && let Some(end) = trimmed[1..].find('"')
        {
            out.push(trimmed[1..1 + end].to_string());
        }
        rest = after;
    }
    out
}

/// The paths (relative to `root`) whose work-tree content differs from the index, among
/// `git status --porcelain` `lines` (paths from the top level): modified, deleted or of
/// another type in the work tree, unmerged, and untracked; what `ls-files -m -d -o` lists.
/// Staged changes alone are not: the index's object id is already their content. `None`
/// when where `root` sits in the repository is not plain (the caller asks git).
fn dirty_in(root: &Path, lines: &[String], scopes: Option<&[String]>) -> Option<Vec<String>> {
    let prefix = crate::service::gitindex::prefix_of(root)?;
    let covered = covered_by(scopes);
    Some(
        lines
            .iter()
            .filter_map(|l| {
                let (code, path) = (l.get(..2)?, l.get(3..)?);
                let in_tree = code == "??" || code.as_bytes()[1] != b' ';
                let rel = path.strip_prefix(prefix.as_str())?;
                (in_tree && covered(rel)).then(|| rel.to_string())
            })
            .collect(),
    )
}

fn nul_split(out: &[u8]) -> Vec<String> {
    out.split(|&b| b == 0)
        .filter(|e| !e.is_empty())
        .map(|e| String::from_utf8_lossy(e).into_owned())
        .collect()
}

/// Whether a literal pathspec of `scopes` (`None`: everything) matches a path: the path itself
/// or anything under it.
fn covered_by(scopes: Option<&[String]>) -> impl Fn(&str) -> bool + '_ {
    let scopes: Option<HashSet<&str>> = scopes.map(|s| s.iter().map(String::as_str).collect());
    move |path: &str| {
        scopes.as_ref().is_none_or(|set| {
            std::iter::successors(Some(path), |p| p.rfind('/').map(|i| &p[..i]))
                .any(|p| set.contains(p))
        })
    }
}

/// The index's entries under `scopes` (literal paths; `None`: all), as `mode:oid` by path:
/// read in process, else from `ls-files --stage` (`ls` runs git with the scopes).
fn staged(
    root: &Path,
    scopes: Option<&[String]>,
    ls: &dyn Fn(&[&str]) -> Option<Vec<u8>>,
) -> Option<BTreeMap<String, String>> {
    match crate::service::gitindex::read(root) {
        Some(entries) => Some(in_scopes(entries, scopes)),
        None => Some(from_ls_stage(&ls(&["ls-files", "-s", "-z"])?)),
    }
}

/// The entries a literal pathspec of `scopes` matches: the path itself or anything under it.
fn in_scopes(
    entries: Vec<crate::service::gitindex::Entry>,
    scopes: Option<&[String]>,
) -> BTreeMap<String, String> {
    let covered = covered_by(scopes);
    entries
        .into_iter()
        .filter(|e| covered(&e.path))
        .map(|e| (e.path, format!("{}:{}", e.mode, e.oid)))
        .collect()
}

/// `git ls-files --stage -z` output as `mode:oid` by path.
fn from_ls_stage(out: &[u8]) -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    for entry in out.split(|&b| b == 0).filter(|e| !e.is_empty()) {
        let text = String::from_utf8_lossy(entry);
        let Some((meta, path)) = text.split_once('\t') else { continue };
        let mut parts = meta.split(' ');
        let mode = parts.next().unwrap_or_default();
        let oid = parts.next().unwrap_or_default();
        files.insert(path.to_string(), format!("{mode}:{oid}"));
    }
    files
}

/// Every file of the project with its id: git's object id for a clean tracked file, else
/// `sha256:` of its content (`deleted` when git lists it but it is gone).
struct FileTable {
    /// Sorted by path (root-relative, `/`-separated).
    files: Vec<(String, String)>,
}

impl FileTable {
    /// The files under `scopes` (`None`: all of them). `worktree`: the checkout's changes as
    /// `git status --porcelain` lines, when loading listed them (git is not asked again).
    fn read(root: &Path, scopes: Option<&[String]>, worktree: Option<&[String]>) -> Self {
        let mut files = if crate::service::discover::in_git(root) {
            Self::from_git(root, scopes, worktree).unwrap_or_else(|| Self::walk(root))
        } else {
            Self::walk(root)
        };
        files.retain(|(p, _)| !p.starts_with(".pilum/") && !p.contains("/.pilum/"));
        files.sort();
        files.dedup_by(|a, b| a.0 == b.0);
        Self { files }
    }

    fn from_git(
        root: &Path,
        scopes: Option<&[String]>,
        worktree: Option<&[String]>,
    ) -> Option<Vec<(String, String)>> {
        // Literal pathspecs: a directory named `a[1]` is not a pattern.
        let specs: Vec<String> = match scopes {
            Some(s) => s.iter().map(|p| format!(":(literal){p}")).collect(),
            None => vec![".".to_string()],
        };
        let ls = |opts: &[&str]| {
            let mut args = opts.to_vec();
            args.push("--");
            args.extend(specs.iter().map(String::as_str));
            args.push(":(exclude).pilum");
            git(root, &args)
        };
        // The work tree's changes: from the status lines loading listed, else from git while
        // the index's entries are read in process (or listed by git too, for a repository
        // the reader leaves to it).
        let (staged, dirty) = match worktree.and_then(|lines| dirty_in(root, lines, scopes)) {
            Some(dirty) => (staged(root, scopes, &ls), Some(dirty)),
            None => std::thread::scope(|s| {
                let dirty = s.spawn(|| {
                    ls(&["ls-files", "-m", "-o", "-d", "--exclude-standard", "-z"])
                        .map(|out| nul_split(&out))
                });
                (staged(root, scopes, &ls), dirty.join().expect("the git thread does not panic"))
            }),
        };
        let (mut files, dirty) = (staged?, dirty?);
        for path in dirty {
            let id = content_id(&root.join(&path));
            files.insert(path, id);
        }
        Some(files.into_iter().collect())
    }

    fn walk(root: &Path) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let walker = ignore::WalkBuilder::new(root)
            .hidden(false)
            .require_git(false)
            .filter_entry(|e| {
                let n = e.file_name();
                n != ".git" && n != ".pilum"
            })
            .build();
        for entry in walker.flatten() {
            if !entry.file_type().is_some_and(|t| t.is_file()) {
                continue;
            }
            let Ok(rel) = entry.path().strip_prefix(root) else { continue };
            let rel = rel.to_string_lossy().replace('\\', "/");
            out.push((rel, content_id(entry.path())));
        }
        out
    }

    /// Per wanted service: the indices of its files (its directory, deepest owner wins, and its
    /// `watch:` paths), declared artefacts left out.
    fn owners(
        &self,
        project: &Project,
        wanted: &[bool],
        outputs: &HashMap<usize, Vec<String>>,
    ) -> HashMap<usize, Vec<usize>> {
        use crate::service::changed::normalize;
        use crate::service::select::{path_matcher, under};
        let dirs: HashMap<String, usize> = project
            .services
            .iter()
            .enumerate()
            .map(|(i, s)| (normalize(&s.dir.to_string_lossy()), i))
            .collect();
        let mut out: HashMap<usize, Vec<usize>> =
            (0..project.services.len()).filter(|&i| wanted[i]).map(|i| (i, Vec::new())).collect();
        for (f, (path, _)) in self.files.iter().enumerate() {
            // The deepest service directory containing the file.
            let mut dir = path.as_str();
            let owner = loop {
                dir = match dir.rfind('/') {
                    Some(i) => &dir[..i],
                    None if !dir.is_empty() => "",
                    None => break None,
                };
                if let Some(&s) = dirs.get(dir) {
                    break Some(s);
                }
                if dir.is_empty() {
                    break None;
                }
            };
            if let Some(s) = owner
                && let Some(list) = out.get_mut(&s)
            {
                list.push(f);
            }
        }
        for (&s, list) in &mut out {
            let svc = &project.services[s];
            let dir = svc.dir.to_string_lossy();
            for w in &svc.watch {
                let (p, glob) = path_matcher(&format!("{dir}/{w}"));
                match glob {
                    Some(g) => list.extend(
                        self.files
                            .iter()
                            .enumerate()
                            .filter(|(_, f)| g.is_match(&f.0))
                            .map(|(i, _)| i),
                    ),
                    None => {
                        let start = self.files.partition_point(|f| f.0.as_str() < p.as_str());
                        list.extend(
                            (start..self.files.len()).take_while(|&i| under(&self.files[i].0, &p)),
                        );
                    }
                }
            }
            list.sort_unstable();
            list.dedup();
            if let Some(outs) = outputs.get(&s).filter(|o| !o.is_empty()) {
                let outs: Vec<_> = outs.iter().map(|o| path_matcher(o)).collect();
                list.retain(|&f| {
                    let path = &self.files[f].0;
                    !outs.iter().any(|(p, g)| {
                        g.as_ref().map_or_else(|| under(path, p), |g| g.is_match(path))
                    })
                });
            }
        }
        out
    }
}

/// `sha256:<hex>` of a file's content, `deleted` when it cannot be read.
fn content_id(path: &Path) -> String {
    let Ok(mut f) = crate::state::guard::open_regular(path) else {
        return if path.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink()) {
            format!("link:{}", std::fs::read_link(path).unwrap_or_default().display())
        } else {
            "deleted".into()
        };
    };
    let mut h = Sha256::new();
    if std::io::copy(&mut f, &mut h).is_err() {
        return "unreadable".into();
    }
    format!("sha256:{}", hex(h))
}

/// `git -C root <args>`'s stdout, when it succeeds.
pub(crate) fn git(root: &Path, args: &[&str]) -> Option<Vec<u8>> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    Some(out.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_read_in_process_gives_what_git_lists_for_the_same_scopes() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        let run = |args: &[&str]| crate::service::test_git(root, args);
        run(&["init", "-q"]);
        for p in ["svc/api/a.txt", "svc/api/src/b.rs", "svc/api2/c.txt", "svc/web/d.txt", "e.txt"] {
            std::fs::create_dir_all(root.join(p).parent().unwrap()).unwrap();
            std::fs::write(root.join(p), p).unwrap();
        }
        run(&["add", "."]);
        // A directory, a file, and a name that is a prefix of another directory's.
        let scopes: Vec<String> = ["svc/api", "svc/web/d.txt"].map(String::from).to_vec();
        let mut args = vec!["ls-files", "-s", "-z", "--"];
        let specs: Vec<String> = scopes.iter().map(|s| format!(":(literal){s}")).collect();
        args.extend(specs.iter().map(String::as_str));
        let listed = from_ls_stage(&git(root, &args).unwrap());
        let read = in_scopes(crate::service::gitindex::read(root).unwrap(), Some(&scopes));
        assert_eq!(read, listed);
        assert_eq!(read.len(), 3, "{read:?}");
        let all = from_ls_stage(&git(root, &["ls-files", "-s", "-z"]).unwrap());
        assert_eq!(in_scopes(crate::service::gitindex::read(root).unwrap(), None), all);
    }

    #[test]
    fn the_changed_files_from_status_lines_are_those_git_ls_files_lists() {
        let t = tempfile::tempdir().unwrap();
        let top = t.path();
        let run = |args: &[&str]| crate::service::test_git(top, args);
        run(&["init", "-q"]);
        for p in [
            "p/svc/modified.txt",
            "p/svc/deleted.txt",
            "p/svc/staged.txt",
            "p/svc/retyped.txt",
            "p/other/modified.txt",
            "outside.txt",
        ] {
            std::fs::create_dir_all(top.join(p).parent().unwrap()).unwrap();
            std::fs::write(top.join(p), p).unwrap();
        }
        std::fs::write(top.join(".gitignore"), "*.log\n").unwrap();
        run(&["add", "."]);
        run(&["commit", "-q", "-m", "one"]);
        std::fs::write(top.join("p/svc/modified.txt"), "changed").unwrap();
        std::fs::write(top.join("p/other/modified.txt"), "changed").unwrap();
        std::fs::remove_file(top.join("p/svc/deleted.txt")).unwrap();
        std::fs::write(top.join("p/svc/staged.txt"), "staged").unwrap();
        run(&["add", "p/svc/staged.txt"]);
        std::fs::remove_file(top.join("p/svc/retyped.txt")).unwrap();
        std::os::unix::fs::symlink("modified.txt", top.join("p/svc/retyped.txt")).unwrap();
        std::fs::create_dir_all(top.join("p/svc/new")).unwrap();
        std::fs::write(top.join("p/svc/new/untracked.txt"), "u").unwrap();
        std::fs::write(top.join("p/svc/ignored.log"), "i").unwrap();
        std::fs::write(top.join("outside.txt"), "changed").unwrap();
        // The project is `p/`; the scope is one service.
        let root = top.join("p");
        // As `commands::checkout::status` lists them.
        let args =
            [&crate::service::changed::STATUS[..], &["--", ".", ":(exclude).pilum"]].concat();
        let status = crate::service::changed::status_lines(&git(&root, &args).unwrap());
        let scopes = vec!["svc".to_string()];
        let mut from_status = dirty_in(&root, &status, Some(&scopes)).unwrap();
        from_status.sort();
        let listed = git(
            &root,
            &["ls-files", "-m", "-o", "-d", "--exclude-standard", "-z", "--", ":(literal)svc"],
        )
        .unwrap();
        let mut listed = nul_split(&listed);
        listed.sort();
        listed.dedup();
        assert_eq!(from_status, listed);
        assert_eq!(
            from_status,
            ["svc/deleted.txt", "svc/modified.txt", "svc/new/untracked.txt", "svc/retyped.txt"]
        );
    }

    #[test]
    fn imports_are_found() {
        let src = "import \"docker\" as docker;\n// import \"./lib/x\" as x;\nlet reimport = 1;\nimport  \"cloud\" as c;";
        assert_eq!(imports(src), ["docker", "./lib/x", "cloud"]);
    }

    /// A project of `n` services `s0…` under `svc/`, the first watching `../lib/*.rs`.
    fn services(n: usize) -> (tempfile::TempDir, Project) {
        let t = tempfile::tempdir().expect("temp dir");
        let mut files = Vec::new();
        for i in 0..n {
            let rel = std::path::PathBuf::from(format!("svc/s{i}/pilum.yaml"));
            std::fs::create_dir_all(t.path().join(rel.parent().unwrap())).unwrap();
            let watch = if i == 0 { "watch: ['../../lib/*.rs']\n" } else { "" };
            std::fs::write(t.path().join(&rel), format!("name: s{i}\n{watch}")).unwrap();
            files.push(rel);
        }
        let (project, diags) = Project::load(t.path(), None, files, Default::default());
        assert!(diags.is_empty(), "{diags:?}");
        (t, project)
    }

    #[test]
    fn scopes_are_the_services_paths_until_there_are_too_many() {
        let (_t, p) = services(3);
        let scoped = scopes(&p, &[true, false, true]).expect("scoped");
        assert_eq!(scoped, ["lib", "svc/s0", "svc/s2"]);
        let (_t, p) = services(MAX_SCOPES + 1);
        assert_eq!(scopes(&p, &[true; MAX_SCOPES + 1]), None, "the whole repository");
        assert!(scopes(&p, &[true, true]).is_some());
    }

    #[test]
    fn canonical_json_sorts_keys() {
        let a = serde_json::json!({"b": 1, "a": {"d": [1, {"z": 0, "y": 1}], "c": 2}});
        assert_eq!(canonical(&a), r#"{"a":{"c":2,"d":[1,{"y":1,"z":0}]},"b":1}"#);
    }
}
