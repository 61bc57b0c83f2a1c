//! Diagnostics are shared by every subsystem and live in [`crate::diagnostic`]; this path
//! re-exports them because the orchestrator and recipe catalogue still import them from here.

pub use crate::diagnostic::*;
