//! Rendering script errors for humans: the message, `--> path:line:col`, the source line with a
//! caret, any `help:` lines, then the chain of script function calls (innermost first).
//!
//! Rhai wraps an error raised inside a script function in `ErrorInFunctionCall` frames (one per
//! call, each with the call site) and errors inside an imported module in `ErrorInModule`; the
//! innermost error's position is relative to the source of the innermost frame. API functions
//! build their errors from `NativeCallContext::call_position()`, so they point at the call.

use std::path::Path;

use rhai::{EvalAltResult, ParseError, Position};

use super::{Stop, modules};
use crate::diagnostic::{closest, snippet};
use crate::redact;

/// One frame of the call chain: `name` was called at `source:pos`.
struct Frame {
    what: String,
    source: String,
    pos: Position,
}

/// Render a runtime (or wrapped parse) error of a script whose AST source is `source`.
pub(crate) fn render(err: &EvalAltResult, source: &str) -> String {
    let mut frames = Vec::new();
    let mut cur_source = source.to_string();
    let mut e = err;
    loop {
        match e {
            EvalAltResult::ErrorInFunctionCall(name, fn_src, inner, pos) => {
                let what = if name.starts_with("anon$") {
                    "in a closure".to_string()
                } else {
                    format!("in `{name}`")
                };
                frames.push(Frame { what, source: cur_source.clone(), pos: *pos });
                if !fn_src.is_empty() {
                    cur_source = fn_src.clone();
                }
                e = inner;
            }
            EvalAltResult::ErrorInModule(key, inner, pos) => {
                let name = if key.starts_with("<stdlib>") { key.clone() } else { display(key) };
                frames.push(Frame {
                    what: format!("in module `{name}`, imported"),
                    source: cur_source.clone(),
                    pos: *pos,
                });
                cur_source = key.clone();
                e = inner;
            }
            _ => break,
        }
    }
    let message = message_of(e);
    let pos = match e {
        EvalAltResult::ErrorParsing(_, p) => *p,
        other => other.position(),
    };
    let mut out = String::new();
    let mut lines = message.lines();
    out.push_str(lines.next().unwrap_or("script failed"));
    out.push_str(&pointer(&cur_source, pos));
    for l in lines {
        out.push('\n');
        out.push_str(l);
    }
    // Frames were collected outermost first; show the innermost call first, like a backtrace.
    for f in frames.iter().rev() {
        let verb = if f.what.ends_with("imported") { "" } else { " called" };
        out.push_str(&format!("\n  = note: {}{verb} from {}", f.what, location(&f.source, f.pos)));
    }
    redact::redact(&out).into_owned()
}

/// Render a parse error of the script whose AST source name is `source`.
pub(crate) fn render_parse(err: &ParseError, source: &str) -> String {
    let msg = lower_first(&err.0.to_string());
    let out = format!("{msg}{}", pointer(source, err.1));
    redact::redact(&out).into_owned()
}

/// The message of the innermost error, lowercase first letter, without Rhai's position suffix.
fn message_of(e: &EvalAltResult) -> String {
    match e {
        EvalAltResult::ErrorRuntime(v, _) => {
            if v.is_string() {
                v.clone().into_string().unwrap_or_default()
            } else if v.is_unit() {
                "script error".to_string()
            } else {
                format!("script error: {v}")
            }
        }
        EvalAltResult::ErrorTerminated(v, _) => match v.clone().try_cast::<Stop>() {
            Some(Stop::TimedOut(d)) => format!(
                "script timed out after {}\nhelp: raise the limit with `--timeout`",
                crate::process::secs(d)
            ),
            Some(Stop::Cancelled) => "script was cancelled".to_string(),
            Some(Stop::Exit(c)) => format!("script exited with code {c}"),
            Some(Stop::OutOfMemory(limit)) => format!(
                "script held more than {} of memory\nhelp: is a loop growing a list, map or string without end?",
                super::memory::format_bytes(limit)
            ),
            None => "script terminated".to_string(),
        },
        EvalAltResult::ErrorTooManyOperations(_) => {
            "script exceeded its operation limit\nhelp: an endless loop? raise the limit with `--max-operations` if the work is real".to_string()
        }
        EvalAltResult::ErrorStackOverflow(_) => {
            "script exceeded the maximum call depth\nhelp: is a function calling itself without end?".to_string()
        }
        EvalAltResult::ErrorParsing(p, _) => lower_first(&p.to_string()),
        EvalAltResult::ErrorVariableNotFound(name, _) => format!("variable `{name}` is not defined"),
        EvalAltResult::ErrorFunctionNotFound(sig, _) => {
            let mut msg = format!("function not found: `{sig}`");
            if let Some(hint) = api_hint(sig) {
                msg.push('\n');
                msg.push_str(&hint);
            }
            msg
        }
        other => {
            let text = other.to_string();
            // Rhai appends " (line N, position M)"; the location is rendered separately.
            let text = match text.rfind(" (line ") {
                Some(i) if text.ends_with(')') => text[..i].to_string(),
                _ => text,
            };
            lower_first(&text)
        }
    }
}

/// For a namespaced call that matched nothing (`exec::rn (array)`), suggest the closest API
/// function, or list the arities that exist when only the arguments were wrong.
fn api_hint(sig: &str) -> Option<String> {
    let name = sig.split([' ', '(']).next()?.trim();
    let (ns, _) = name.split_once("::")?;
    let known = super::reference::functions();
    let names: Vec<String> = known
        .iter()
        .filter(|f| f.namespace == ns)
        .map(|f| f.signature.split('(').next().unwrap_or_default().to_string())
        .collect();
    if names.iter().any(|n| n == name) {
        let sigs: Vec<String> = known
            .iter()
            .filter(|f| f.signature.starts_with(&format!("{name}(")))
            .map(|f| format!("`{}`", f.signature))
            .collect();
        return Some(format!(
            "help: the arguments do not match; `{name}` is {}",
            sigs.join(" or ")
        ));
    }
    closest(name, names.iter().map(String::as_str)).map(|s| format!("help: did you mean `{s}`?"))
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) if f.is_uppercase() && c.clone().next().is_some_and(char::is_lowercase) => {
            f.to_lowercase().chain(c).collect()
        }
        _ => s.to_string(),
    }
}

/// An AST source name for humans: stdlib names as they are, files relative to the current dir.
pub(crate) fn display(source: &str) -> String {
    if source.starts_with("<stdlib>") || source.is_empty() {
        return source.to_string();
    }
    let cwd = std::env::current_dir().ok();
    let cwd = cwd.as_deref().and_then(|c| c.canonicalize().ok());
    let p = Path::new(source);
    match cwd {
        Some(c) => super::display_path(p, &c),
        None => source.to_string(),
    }
}

fn location(source: &str, pos: Position) -> String {
    let name = if source.is_empty() { "<script>".to_string() } else { display(source) };
    match (pos.line(), pos.position()) {
        (Some(l), Some(c)) => format!("{name}:{l}:{c}"),
        (Some(l), None) => format!("{name}:{l}"),
        _ => name,
    }
}

/// `\n --> path:line:col` plus the source line and a caret, when known.
fn pointer(source: &str, pos: Position) -> String {
    if pos.is_none() {
        return if source.is_empty() {
            String::new()
        } else {
            format!("\n --> {}", display(source))
        };
    }
    let mut out = format!("\n --> {}", location(source, pos));
    let Some(line) = pos.line() else { return out };
    let Some(text) = modules::source_text(source) else { return out };
    if let Some(s) = snippet(&text, line, pos.position().unwrap_or(1)) {
        out.push('\n');
        out.push_str(&s);
    }
    out
}
