//! The `pilum` binary: ship and scale services from a monorepo.
//!
//! `main` only maps the result of [`run::run`] to an exit code; every error is printed once,
//! in `run`. See `src/README.md` for a map of the source folders.

mod autoscale;
mod backoff;
mod ci;
mod cli;
mod commands;
mod diagnostic;
mod duration;
mod embedded;
mod error;
mod hex;
mod http;
mod names;
mod notify;
mod orchestrator;
mod output;
mod process;
mod pulumi;
mod recipe;
mod redact;
mod run;
mod script;
mod server;
mod service;
mod state;
mod sync;
mod ui;
mod yaml;

fn main() {
    std::process::exit(run::run());
}
