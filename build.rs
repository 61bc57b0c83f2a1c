//! Build script: embeds every `recipes/*.rhai` as a built-in recipe. Adding a recipe is
//! dropping a file into `recipes/`; the list is generated, never maintained by hand.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    // Read at run time, not with `env!`: a build-script binary reused from another checkout
    // (a copied or shared target directory) must still embed *this* checkout's recipes.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let dir = Path::new(&manifest_dir).join("recipes");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read the built-in recipes in {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    files.retain(|p| p.extension().is_some_and(|x| x == "rhai"));
    files.sort();
    // `local` is the default recipe: a build without it would fail every deploy at run time.
    assert!(
        files.iter().any(|f| f.file_stem().is_some_and(|s| s == "local")),
        "no `local.rhai` among the built-in recipes in {}",
        dir.display()
    );
    let mut out = String::from(
        "/// Built-in recipes: (name, source), sorted by name.\npub static RECIPES: &[(&str, &str)] = &[\n",
    );
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
        let name = f.file_stem().and_then(|s| s.to_str()).expect("recipe file names are UTF-8");
        writeln!(out, "    ({name:?}, include_str!({:?})),", f.display().to_string())
            .expect("write to string");
    }
    out.push_str("];\n");
    let dest = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join("builtin_recipes.rs");
    std::fs::write(dest, out).expect("write builtin_recipes.rs");
}
