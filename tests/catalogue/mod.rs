//! The recipe catalogue: every built-in recipe deployed with fake CLIs on `PATH` (argv
//! transcripts pinned as snapshots), dry runs that run nothing, real-tool checks of the
//! artefacts (`dpkg-deb`, `rpm`, `ruby -c`, `sha256sum`), failure paths, the generated recipe
//! pages, and a project-local recipe.

mod check;
pub(crate) mod containers;
mod custom;
mod docs;
mod fakes;
pub(crate) mod harness;
mod packages;
mod snapshots;
