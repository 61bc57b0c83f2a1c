//! Release and package recipes.
