//! Build script: embeds every Rhai source shipped in the binary, in tables generated from the
//! files on disk (`src/embedded.rs` includes them): `recipes/*.rhai` (built-in recipes),
//! `stdlib/*.rhai` (importable modules), `stdlib/notify/*.rhai` (notifiers) and `scripts/*.rhai`
//! (scaling strategies). Adding one is dropping a file into its directory; no list is
//! maintained by hand.

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

/// `pub static NAME: &[(&str, &str)]` of (file stem, file text), sorted by name.
fn table(out: &mut String, name: &str, doc: &str, files: &[PathBuf]) {
    writeln!(
        out,
        "/// {doc}: (name, source), sorted by name.\npub static {name}: &[(&str, &str)] = &["
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
}
