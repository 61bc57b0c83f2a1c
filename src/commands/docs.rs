//! `pilum docs [--out DIR] [--check] [--builtin]`: one Markdown page per recipe, generated from
//! its declaration by `recipe::docs`, for the project's recipes and the built-in ones.

use std::path::PathBuf;

use crate::cli::DocsArgs;
use crate::error::Error;
use crate::output::Output;
use crate::recipe::docs::{self, DocsConfig};

pub(crate) fn run(dir: Option<PathBuf>, args: DocsArgs, out: &Output) -> Result<(), Error> {
    let cfg = DocsConfig {
        root: crate::script::runner::project_root(dir.as_deref()),
        out: args.out,
        check: args.check,
        builtin_only: args.builtin,
    };
    docs::run(&cfg, out).map(|_| ())
}
