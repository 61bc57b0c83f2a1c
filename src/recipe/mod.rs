//! Recipes: load built-in and project recipes, read their declared fields and steps, and validate services against them before anything runs.
