//! pilum's integration tests: one test binary, one module per feature. Every test runs the real
//! `pilum` binary in a temporary project; cloud CLIs are faked by scripts first on `PATH` that
//! record their argv (see `common::Test::fake`).

mod catalogue;
mod ci;
mod common;
mod deploy;
mod hooks;
mod layering;
mod report;
mod run;
mod scale;
mod shipped;
mod state;
