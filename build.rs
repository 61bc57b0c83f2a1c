//! Build script: embeds every `recipes/*.rhai` as a built-in recipe. Adding a recipe is
//! dropping a file into `recipes/`; the list is generated, never maintained by hand.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|x| x == "rhai"));
    files.sort();
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
