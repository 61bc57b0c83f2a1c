//! The extension hook: layers above `script` add functions to every full-profile engine without
//! `script` importing them. The app layer registers the deploy pipeline's `services()`,
//! `changed_services()` and `deploy()` this way (`crate::commands::script_api`); the strategy
//! profile never gets extensions.

use std::sync::{Arc, RwLock};

use rhai::Engine;

use super::Host;
use crate::sync::RwLockExt;

/// Adds functions or modules to an engine being built, for the run's host.
pub(crate) type Extension = fn(&mut Engine, &Arc<Host>);

static EXTENSIONS: RwLock<Vec<(&str, Extension)>> = RwLock::new(Vec::new());

/// Register `extension` under `name` for every full-profile engine built from now on. A name
/// registered twice keeps its first extension.
pub(crate) fn add(name: &'static str, extension: Extension) {
    let mut all = EXTENSIONS.write_locked();
    if !all.iter().any(|(n, _)| *n == name) {
        all.push((name, extension));
    }
}

/// Apply every registered extension, in registration order (called by the engine builder).
pub(super) fn apply(engine: &mut Engine, host: &Arc<Host>) {
    let all = EXTENSIONS.read_locked().clone();
    for (_, extension) in all {
        extension(engine, host);
    }
}
