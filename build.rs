//! Build script: embeds every Rhai source shipped in the binary, in tables generated from the
//! files on disk (`src/embedded.rs` includes them): `recipes/*.rhai` (built-in recipes),
//! `stdlib/*.rhai` (importable modules), `stdlib/notify/*.rhai` (notifiers) and `scripts/*.rhai`
//! (scaling strategies). Adding one is dropping a file into its directory; no list is
//! maintained by hand.
//!
//! It links the `pilum` binary with packed relative relocations (DT_RELR, `-z
//! pack-relative-relocs`) when the host's C toolchain links such a program and the host's
//! dynamic loader runs it (GNU ld 2.38 or later, glibc 2.36 or later): the loader then reads a
//! 22 KB bitmap at start instead of a 1.3 MB relocation table, which is about 1.5 MB less
//! resident memory for the webhook server and a faster start. `PILUM_RELR=0` turns it off;
//! a cross build (another target) never uses it.
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

/// Whether the host's C compiler (`CC`, else `cc`, which also links Rust binaries by default)
/// links a position-independent program with packed relative relocations, the result has a
/// `DT_RELR` table, and it runs here.
fn relr_works(out_dir: &Path) -> bool {
    let src = out_dir.join("relr-probe.c");
    let exe = out_dir.join("relr-probe");
    // A pointer in initialised data: one relative relocation for the table to pack.
    let probe = "static int x; int *p = &x; int main(void) { return *p; }\n";
    if std::fs::write(&src, probe).is_err() {
        return false;
    }
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let linked = std::process::Command::new(cc)
        .args(["-fPIE", "-pie", "-Wl,-z,pack-relative-relocs", "-o"])
        .arg(&exe)
        .arg(&src)
        .output()
        .is_ok_and(|o| o.status.success() && o.stderr.is_empty());
    // An older linker only warns about an unknown `-z` option: look for the table itself.
    let packed = linked
        && std::process::Command::new("readelf")
            .arg("-d")
            .arg(&exe)
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("(RELR)"));
    packed && std::process::Command::new(&exe).status().is_ok_and(|s| s.success())
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
    println!("cargo:rerun-if-env-changed=PILUM_RELR");
    println!("cargo:rerun-if-env-changed=CC");
    let native = std::env::var("TARGET").ok() == std::env::var("HOST").ok()
        && std::env::var("TARGET").is_ok_and(|t| t.ends_with("-linux-gnu"));
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    if native && std::env::var("PILUM_RELR").as_deref() != Ok("0") && relr_works(&out_dir) {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
