//! Recipes: load built-in and project recipes, read their declared fields and steps, and
//! validate services against them before anything runs, and call their hooks (`status`, `logs`,
//! `rollback`). The format is `docs/recipes.md`.

pub(crate) mod catalog;
pub(crate) mod declaration;
pub(crate) mod docs;
pub(crate) mod hooks;
pub(crate) mod host;
pub(crate) mod locate;
pub(crate) mod runner;
pub(crate) mod validate;
pub(crate) mod value;

pub(crate) use catalog::{Catalog, Recipe, ResolveError};
pub(crate) use declaration::Step;
