//! The sandboxed module resolver. `import "docker" as docker;` (a bare name) resolves a module
//! compiled into the binary from `stdlib/`; `import "./lib/util" as util;` resolves a project
//! file relative to the importing script (`.rhai` added when missing), read through the one
//! project sandbox (`sandbox.rs`). Absolute paths and paths that leave the project root —
//! through `..` or through a symlink, dangling or not — are refused, saying which symlink
//! points where; Rhai's own `FileModuleResolver` accepts both. Each module is compiled and
//! evaluated once and cached.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rhai::{Engine, EvalAltResult, Module, ModuleResolver, Position, Scope, Shared};

use super::sandbox::{self, How, Refusal, Sandbox};

/// The stdlib, embedded: `(name, source)`.
pub const STDLIB: &[(&str, &str)] = &[
    ("docker", include_str!("../../stdlib/docker.rhai")),
    ("retry", include_str!("../../stdlib/retry.rhai")),
    // The recipe catalogue's shared modules.
    ("checksum", include_str!("../../stdlib/checksum.rhai")),
    ("github", include_str!("../../stdlib/github.rhai")),
    ("pkg", include_str!("../../stdlib/pkg.rhai")),
    ("registry", include_str!("../../stdlib/registry.rhai")),
];

/// The `source` name given to a stdlib module's AST (shown in error locations).
pub fn stdlib_source(name: &str) -> String {
    format!("<stdlib>/{name}.rhai")
}

/// The text behind an AST source name: a stdlib module or a file on disk.
pub fn source_text(source: &str) -> Option<String> {
    if let Some(name) = source.strip_prefix("<stdlib>/").and_then(|s| s.strip_suffix(".rhai")) {
        return STDLIB.iter().find(|(n, _)| *n == name).map(|(_, t)| t.to_string());
    }
    if let Some(text) = crate::recipe::catalog::builtin_source(source) {
        return Some(text.to_string());
    }
    std::fs::read_to_string(source).ok()
}

pub struct Resolver {
    sandbox: Sandbox,
    cache: Mutex<HashMap<String, Shared<Module>>>,
}

thread_local! {
    /// Modules being evaluated on this thread, to report import cycles instead of recursing.
    static LOADING: std::cell::RefCell<HashSet<String>> = std::cell::RefCell::new(HashSet::new());
}

impl Resolver {
    pub fn new(root: &Path) -> Self {
        Self { sandbox: Sandbox::new(root), cache: Mutex::new(HashMap::new()) }
    }

    /// Where an import points: `(cache key and AST source name, text)`.
    fn locate(&self, source: Option<&str>, path: &str) -> Result<(String, String), String> {
        let is_path = path.starts_with("./") || path.starts_with("../") || path.contains('/');
        if !is_path {
            return match STDLIB.iter().find(|(n, _)| *n == path) {
                Some((n, text)) => Ok((stdlib_source(n), text.to_string())),
                None => {
                    let names: Vec<&str> = STDLIB.iter().map(|(n, _)| *n).collect();
                    let mut msg = format!("unknown stdlib module `{path}`");
                    if let Some(s) = crate::diagnostic::closest(path, names.iter().copied()) {
                        msg.push_str(&format!("\nhelp: did you mean `{s}`?"));
                    }
                    msg.push_str(&format!(
                        "\nhelp: the stdlib has {}; import a project file with a relative path such as `./{path}`",
                        names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
                    ));
                    Err(msg)
                }
            };
        }
        if Path::new(path).is_absolute() {
            return Err(format!(
                "import `{path}` is refused: absolute paths are outside the project\nhelp: import project modules relative to the importing script, e.g. `./lib/util`"
            ));
        }
        let root = self.sandbox.root();
        let base = match source {
            Some(s) if !s.starts_with("<stdlib>") && !s.is_empty() => {
                Path::new(s).parent().map(Path::to_path_buf).unwrap_or_else(|| root.to_path_buf())
            }
            _ => root.to_path_buf(),
        };
        let mut rel = PathBuf::from(path);
        if rel.extension().is_none() {
            rel.set_extension("rhai");
        }
        let refuse = |why: Refusal| {
            let help = match why {
                Refusal::Symlink { .. } | Refusal::Absolute { .. } | Refusal::Loop { .. } => {
                    "a symlink may only point inside it"
                }
                _ => "`..` may not leave it",
            };
            format!(
                "import `{path}` is refused: {why}\nhelp: keep modules inside the project (`{}`); {help}",
                root.display()
            )
        };
        let rel = rel.to_string_lossy();
        let full = self.sandbox.lexical(&base, &rel).map_err(refuse)?;
        let shown = crate::script::display_path(&full, root);
        let mut text = String::new();
        let read = self
            .sandbox
            .open(&full, How::Read)
            .and_then(|mut f| f.read_to_string(&mut text).map_err(sandbox::Error::Io));
        match read {
            Ok(_) => Ok((full.display().to_string(), text)),
            Err(sandbox::Error::Refused(why)) => Err(refuse(why)),
            Err(sandbox::Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => Err(format!(
                "module `{path}` not found (looked for `{shown}`)\nhelp: project imports are relative to the importing script"
            )),
            Err(sandbox::Error::Io(e)) => Err(format!("cannot read module `{shown}`: {e}")),
        }
    }
}

impl ModuleResolver for Resolver {
    fn resolve(
        &self,
        engine: &Engine,
        source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Result<Shared<Module>, Box<EvalAltResult>> {
        let (key, text) = self
            .locate(source, path)
            .map_err(|msg| EvalAltResult::ErrorRuntime(msg.into(), pos))?;
        if let Some(m) = self.cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return Ok(m.clone());
        }
        if !LOADING.with(|l| l.borrow_mut().insert(key.clone())) {
            return Err(EvalAltResult::ErrorRuntime(
                format!("import cycle: module `{path}` imports itself (directly or indirectly)")
                    .into(),
                pos,
            )
            .into());
        }
        let result = (|| {
            let mut ast = engine
                .compile(&text)
                .map_err(|e| EvalAltResult::ErrorInModule(key.clone(), e.into(), pos))?;
            ast.set_source(key.as_str());
            let mut module = Module::eval_ast_as_new(Scope::new(), &ast, engine)
                .map_err(|e| EvalAltResult::ErrorInModule(key.clone(), e, pos))?;
            module.set_id(key.as_str());
            module.build_index();
            Ok::<_, Box<EvalAltResult>>(Shared::new(module))
        })();
        LOADING.with(|l| l.borrow_mut().remove(&key));
        let module = result?;
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).insert(key, module.clone());
        Ok(module)
    }
}
