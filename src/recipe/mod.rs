//! Recipes: load built-in and project recipes, read their declared fields and steps, and
//! validate services against them before anything runs, and call their hooks (`status`, `logs`,
//! `rollback`). The format is `docs/recipes.md`.

pub mod catalog;
pub mod declaration;
pub mod docs;
pub mod hooks;
pub mod host;
pub mod locate;
pub mod runner;
pub mod validate;
pub mod value;

pub use catalog::{Catalog, Recipe, ResolveError};
pub use declaration::Step;
