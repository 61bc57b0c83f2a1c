//! Every Rhai source compiled into the binary, in tables that `build.rs` generates from the
//! files on disk: `RECIPES` (`recipes/*.rhai`, the built-in deploy targets), `STDLIB`
//! (`stdlib/*.rhai`, modules any script imports by name), `NOTIFIERS` (`stdlib/notify/*.rhai`,
//! the built-in notifiers) and `STRATEGIES` (`scripts/*.rhai`, the built-in scaling
//! strategies). A leaf module: the recipe catalogue, the script resolver, the notifier runner
//! and the autoscaler all read it, none through another.

include!(concat!(env!("OUT_DIR"), "/embedded.rs"));

/// The source name of a built-in recipe's AST (`<built-in>/recipes/local.rhai`).
pub(crate) const RECIPE_PREFIX: &str = "<built-in>/recipes/";

/// The text of a built-in recipe by its source name, for error snippets.
pub(crate) fn recipe_source(source: &str) -> Option<&'static str> {
    let name = source.strip_prefix(RECIPE_PREFIX)?.strip_suffix(".rhai")?;
    RECIPES.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}
