//! `log::` — leveled messages to pilum's output (prefixed with the task label when run by the
//! orchestrator). Secrets are masked.

use std::sync::Arc;

use rhai::{Dynamic, Module};

use super::func;
use crate::redact;
use crate::script::{Event, Host, LogLevel};

pub(crate) fn module(host: &Arc<Host>) -> Module {
    let mut m = Module::new();
    let levels = [
        (
            LogLevel::Info,
            "info",
            "An informational message.\n\n```rhai\nlog::info(`building ${name}`);\n```",
        ),
        (
            LogLevel::Warn,
            "warn",
            "A warning (shown even without `-v`).\n\n```rhai\nlog::warn(\"no tests found\");\n```",
        ),
        (
            LogLevel::Error,
            "error",
            "An error message; does not stop the script (use `throw` for that).\n\n```rhai\nlog::error(\"upload failed, retrying\");\n```",
        ),
    ];
    for (level, name, docs) in levels {
        let h = host.clone();
        func!(&mut m, name, ["message: ?", "()"], docs, move |message: Dynamic| {
            let text = message.to_string();
            h.emit(Event::Log { level, message: &redact::redact(&text) });
        });
    }
    m
}
