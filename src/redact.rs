//! The global secret registry. Values read through `env::secret` (or registered by Rust code,
//! e.g. tokens from configuration) are replaced by `***` in every byte pilum prints: human
//! output, streamed command lines, error messages and `--json`.
//!
//! The registry is process-wide on purpose: a secret registered by one parallel task must be
//! masked in the output of every other task too.

use std::borrow::Cow;
use std::sync::RwLock;

/// What a secret is replaced with.
pub const MASK: &str = "***";

/// Secrets shorter than this are not masked: masking `a` or `1` would mangle every line while
/// protecting nothing.
const MIN_LEN: usize = 3;

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Register a secret value. Empty and very short values are ignored; duplicates are kept once.
pub fn register(secret: &str) {
    let secret = secret.trim_end_matches(['\n', '\r']);
    if secret.len() < MIN_LEN {
        return;
    }
    let mut all = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    if all.iter().any(|s| s == secret) {
        return;
    }
    all.push(secret.to_string());
    // Longest first, so a secret containing another is masked whole.
    all.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// Mask every registered secret in `text`. Borrows when nothing matches (the common case).
pub fn redact(text: &str) -> Cow<'_, str> {
    let all = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    if all.is_empty() || !all.iter().any(|s| text.contains(s.as_str())) {
        return Cow::Borrowed(text);
    }
    let mut out = text.to_string();
    for s in all.iter() {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), MASK);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_registered_values_longest_first() {
        register("hunter2-token");
        register("hunter2");
        register("x");
        assert_eq!(redact("a hunter2-token b hunter2 x"), "a *** b *** x");
        assert!(matches!(redact("nothing here"), Cow::Borrowed(_)));
    }
}
