//! Build script: embeds every Rhai source shipped in the binary, in tables generated from the
//! files on disk (`src/embedded.rs` includes them): `recipes/*.rhai` (built-in recipes),
//! `stdlib/*.rhai` (importable modules), `stdlib/notify/*.rhai` (notifiers) and `scripts/*.rhai`
//! (scaling strategies). Adding one is dropping a file into its directory; no list is
//! maintained by hand.
//!
//! It also sets `PILUM_COMMIT` for `--version`: `PILUM_COMMIT` from the build's environment
//! when given (a distributor building from a tarball), else `git rev-parse --short HEAD` with
//! `-dirty` when a file the binary is built from has uncommitted changes, else nothing — a
//! build outside git (or without git installed) still succeeds.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The `.rhai` files of `dir`, sorted by name.
fn sources(dir: &Path) -> Vec<PathBuf> {
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read the built-in sources in {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    files.retain(|p| p.extension().is_some_and(|x| x == "rhai"));
    files.sort();
    files
}

/// `pub(crate) static NAME: &[(&str, &str)]` of (file stem, file text), sorted by name.
fn table(out: &mut String, name: &str, doc: &str, files: &[PathBuf]) {
    writeln!(
        out,
        "/// {doc}: (name, source), sorted by name.\npub(crate) static {name}: &[(&str, &str)] = &["
    )
    .expect("write to string");
    for f in files {
        println!("cargo:rerun-if-changed={}", f.display());
        let stem = f.file_stem().and_then(|s| s.to_str()).expect("source file names are UTF-8");
        writeln!(out, "    ({stem:?}, include_str!({:?})),", f.display().to_string())
            .expect("write to string");
    }
    out.push_str("];\n");
}

/// `git <args>` in `dir`: its trimmed stdout, `None` when git is missing or fails.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("git").arg("-C").arg(dir).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The commit the binary is built from, e.g. `1a2b3c4` or `1a2b3c4-dirty`.
fn commit(root: &Path) -> Option<String> {
    println!("cargo:rerun-if-env-changed=PILUM_COMMIT");
    if let Ok(given) = std::env::var("PILUM_COMMIT") {
        return Some(given).filter(|c| !c.is_empty());
    }
    let sha = git(root, &["rev-parse", "--short", "HEAD"]).filter(|s| !s.is_empty())?;
    // Rebuild when HEAD moves (a commit, a checkout) or an input of the build changes.
    for path in ["HEAD", "packed-refs"] {
        if let Some(p) = git(root, &["rev-parse", "--git-path", path]) {
            println!("cargo:rerun-if-changed={}", root.join(p).display());
        }
    }
    if let Some(reference) = git(root, &["symbolic-ref", "-q", "HEAD"])
        && let Some(p) = git(root, &["rev-parse", "--git-path", &reference])
    {
        println!("cargo:rerun-if-changed={}", root.join(p).display());
    }
    let inputs = ["src", "recipes", "stdlib", "scripts", "build.rs", "Cargo.toml", "Cargo.lock"];
    for i in inputs {
        println!("cargo:rerun-if-changed={}", root.join(i).display());
    }
    let mut status = vec!["status", "--porcelain", "--untracked-files=no", "--"];
    status.extend(inputs);
    let dirty = git(root, &status).is_some_and(|s| !s.is_empty());
    Some(if dirty { format!("{sha}-dirty") } else { sha })
}

fn main() {
    // Read at run time, not with `env!`: a build-script binary reused from another checkout
    // (a copied or shared target directory) must still embed *this* checkout's sources.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let root = Path::new(&manifest_dir);
    let recipes = sources(&root.join("recipes"));
    // `local` is the default recipe: a build without it would fail every deploy at run time.
    assert!(
        recipes.iter().any(|f| f.file_stem().is_some_and(|s| s == "local")),
        "no `local.rhai` among the built-in recipes in {}",
        root.join("recipes").display()
    );
    let mut out = String::new();
    table(&mut out, "RECIPES", "Built-in recipes", &recipes);
    table(
        &mut out,
        "STDLIB",
        "Stdlib modules (`import \"docker\" as docker;`)",
        &sources(&root.join("stdlib")),
    );
    table(&mut out, "STRATEGIES", "Built-in scaling strategies", &sources(&root.join("scripts")));
    // A directory of its own under `stdlib/`: notifiers are not importable modules.
    table(&mut out, "NOTIFIERS", "Built-in notifiers", &sources(&root.join("stdlib/notify")));
    let dest =
        Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("embedded.rs");
    std::fs::write(dest, out).expect("write embedded.rs");
    let version = match commit(root) {
        Some(c) => format!("{} ({c})", std::env::var("CARGO_PKG_VERSION").unwrap_or_default()),
        None => std::env::var("CARGO_PKG_VERSION").unwrap_or_default(),
    };
    println!("cargo:rustc-env=PILUM_VERSION={version}");
}
