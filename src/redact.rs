//! The global secret registry. Values registered here — a service's `secrets:`, `env::secret`,
//! Pulumi secrets, and every environment variable whose *name* looks secret ([`looks_secret`])
//! — are replaced by `***` in every byte pilum prints: human output, streamed command lines,
//! error messages and snippets, and `--json`.
//!
//! A multi-line secret (a PEM key, a JSON credential) is registered whole and line by line:
//! output is streamed and rendered one line at a time (child output, a numbered error snippet),
//! so the whole value never appears in one piece there, while each of its lines does.
//!
//! The registry is process-wide on purpose: a secret registered by one parallel task must be
//! masked in the output of every other task too. Matching is one Aho-Corasick pass over the
//! text, longest match first, so a secret containing another is masked whole.

use std::borrow::Cow;
use std::sync::{LazyLock, RwLock};

use crate::sync::RwLockExt;
use aho_corasick::{AhoCorasick, MatchKind};

/// What a secret is replaced with.
pub(crate) const MASK: &str = "***";

/// Secrets shorter than this are not masked: masking `a` or `1` would mangle every line while
/// protecting nothing.
const MIN_LEN: usize = 3;

/// A line of a multi-line secret is masked on its own from this length: `{`, `}` or a short
/// last base64 line protect nothing and would mangle ordinary output.
pub(crate) const MIN_LINE_LEN: usize = 8;

/// A variable masked because of its name ([`looks_secret`]) is masked from this length:
/// `CACHE_KEY=1` or `SKIP_TOKEN=true` hold no secret, and masking `true` everywhere would
/// garble the output. Listed secrets and `env::secret` mask from [`MIN_LEN`].
pub(crate) const MIN_AUTO_LEN: usize = 6;

/// The variable naming variables that must not be masked automatically (`NAME,NAME`, or `*`).
pub(crate) const OPT_OUT_VAR: &str = "PILUM_NO_AUTO_MASK";

#[derive(Default)]
struct Registry {
    secrets: Vec<String>,
    matcher: Option<AhoCorasick>,
}

static REGISTRY: RwLock<Registry> = RwLock::new(Registry { secrets: Vec::new(), matcher: None });

/// Register a secret value: the whole value and, when it has several lines, each line of at
/// least [`MIN_LINE_LEN`] characters. Very short values are ignored; duplicates kept once.
pub(crate) fn register(secret: &str) {
    let whole = secret.trim_end_matches(['\n', '\r']);
    let mut new: Vec<&str> = Vec::new();
    if whole.len() >= MIN_LEN {
        new.push(whole);
    }
    if whole.contains('\n') {
        new.extend(whole.lines().map(str::trim).filter(|l| l.len() >= MIN_LINE_LEN));
    }
    if new.is_empty() {
        return;
    }
    let mut reg = REGISTRY.write_locked();
    let before = reg.secrets.len();
    for s in new {
        if !reg.secrets.iter().any(|k| k == s) {
            reg.secrets.push(s.to_string());
        }
    }
    if reg.secrets.len() == before {
        return;
    }
    reg.matcher = Some(
        AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&reg.secrets)
            .expect("a few literal secrets always build a matcher"),
    );
}

/// Register `value` if `name` looks secret ([`looks_secret`]) and is not opted out through
/// [`OPT_OUT_VAR`]. Used wherever a script reads the environment or hands one to a child.
pub(crate) fn register_if_secret(name: &str, value: &str) {
    if value.trim().len() >= MIN_AUTO_LEN && looks_secret(name) && !opted_out(name) {
        register(value);
    }
}

/// Register every variable of pilum's own environment whose name looks secret: children inherit
/// them, so they are masked even when no script reads them.
pub(crate) fn register_secret_environment() {
    for (name, value) in std::env::vars_os() {
        if let (Some(n), Some(v)) = (name.to_str(), value.to_str()) {
            register_if_secret(n, v);
        }
    }
}

/// The rule for names that hold secrets, as CI systems apply it (case does not matter):
/// a name that contains `SECRET`, `PASSWORD` or `PASSWD`; or ends in `_TOKEN`, `_KEY`, `_PAT`,
/// `_PASS`, `_CREDENTIALS` or `_AUTH`; or is `TOKEN`, `KEY`, `PASS`, `CREDENTIALS` itself. So
/// `GITHUB_TOKEN`, `AWS_SECRET_ACCESS_KEY`, `AZURE_CLIENT_SECRET`, `NPM_TOKEN`, `DB_PASSWORD`,
/// `STRIPE_API_KEY` and `GOOGLE_CREDENTIALS` are masked; `AWS_ACCESS_KEY_ID`, `TOKEN_URL` and
/// names ending in `_PUBLIC_KEY` are not.
pub(crate) fn looks_secret(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    if n.ends_with("_PUBLIC_KEY") {
        return false;
    }
    const ANYWHERE: [&str; 3] = ["SECRET", "PASSWORD", "PASSWD"];
    const SUFFIX: [&str; 6] = ["TOKEN", "KEY", "PAT", "PASS", "CREDENTIALS", "AUTH"];
    ANYWHERE.iter().any(|w| n.contains(w))
        || SUFFIX
            .iter()
            .any(|w| n == *w || (n.ends_with(w) && n[..n.len() - w.len()].ends_with('_')))
}

/// Whether `name` is listed in [`OPT_OUT_VAR`] (or it says `*`).
fn opted_out(name: &str) -> bool {
    static LIST: LazyLock<Vec<String>> = LazyLock::new(|| {
        std::env::var(OPT_OUT_VAR)
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_ascii_uppercase())
            .filter(|s| !s.is_empty())
            .collect()
    });
    let n = name.to_ascii_uppercase();
    LIST.iter().any(|l| l == "*" || *l == n)
}

/// Mask every registered secret in `text`. Borrows when nothing matches (the common case).
pub(crate) fn redact(text: &str) -> Cow<'_, str> {
    let reg = REGISTRY.read_locked();
    match &reg.matcher {
        Some(m) if m.is_match(text) => {
            let masks = vec![MASK; reg.secrets.len()];
            Cow::Owned(m.replace_all(text, &masks))
        }
        _ => Cow::Borrowed(text),
    }
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

    #[test]
    fn multi_line_secrets_are_masked_line_by_line_and_whole() {
        let pem = "-----BEGIN TEST KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\r\nKUpRKfFLfRYC9AIKjbJTWit+CqvjWYzvQwECAwEAAQ\nab==\n-----END TEST KEY-----\n";
        register(pem);
        // The whole value, once.
        assert_eq!(redact(&format!("key: {pem}")), "key: ***\n");
        // Each line on its own, as streamed output and numbered snippets show it.
        for line in pem.lines().map(str::trim).filter(|l| l.len() >= MIN_LINE_LEN) {
            let shown = redact(&format!("  12 | {line}")).into_owned();
            assert_eq!(shown, "  12 | ***", "{line}");
        }
        // A line shorter than the minimum is left alone (it protects nothing).
        assert_eq!(redact("ab=="), "ab==");
        let json = "{\n  \"type\": \"service_account\",\n  \"private_key_id\": \"0123456789abcdef0123\",\n}";
        register(json);
        assert_eq!(redact("x \"private_key_id\": \"0123456789abcdef0123\", y"), "x *** y");
        assert_eq!(redact("{"), "{");
    }

    #[test]
    fn secret_looking_names_follow_one_rule() {
        for name in [
            "GITHUB_TOKEN",
            "gh_token",
            "AWS_SECRET_ACCESS_KEY",
            "AZURE_CLIENT_SECRET",
            "CLIENT_SECRET_VALUE",
            "DB_PASSWORD",
            "MYSQL_PASSWD",
            "STRIPE_API_KEY",
            "GOOGLE_CREDENTIALS",
            "NPM_TOKEN",
            "TOKEN",
            "REDIS_PASS",
            "GITLAB_PAT",
            "NPM_AUTH",
        ] {
            assert!(looks_secret(name), "{name}");
        }
        for name in [
            "AWS_ACCESS_KEY_ID",
            "TOKEN_URL",
            "HOME",
            "PATH",
            "SSH_PUBLIC_KEY",
            "KEYBOARD",
            "MONKEY",
            "COMPASS",
        ] {
            assert!(!looks_secret(name), "{name}");
        }
    }

    #[test]
    fn short_values_of_secret_looking_names_are_not_masked() {
        register_if_secret("CACHE_KEY", "true");
        assert_eq!(redact("it is true"), "it is true");
        register_if_secret("DEPLOY_TOKEN", "dt-0123456789");
        register_if_secret("REGION", "eu-west-1-long-value");
        assert_eq!(redact("dt-0123456789 eu-west-1-long-value"), "*** eu-west-1-long-value");
    }
}
