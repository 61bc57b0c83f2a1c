//! Where the state lives: `file` (the default, under the project's `.pilum/`) or a Redis URL,
//! `redis://[user:pass@]host:port/db` (`rediss://` for TLS), optionally with `?namespace=NAME`
//! when several projects share one Redis database. It comes from `--state`, else
//! `PILUM_STATE`, else `state:` in `pilum-project.yaml`, else `file`.
//!
//! The password never appears in anything pilum prints: it is registered with
//! [`crate::redact`] as soon as the URL is parsed, and [`Location`]'s `Display` shows `***` in
//! its place.

use std::fmt;

/// The environment variable naming the state backend.
pub(crate) const ENV: &str = "PILUM_STATE";

/// The namespace of Redis keys when the URL names none.
pub(crate) const DEFAULT_NAMESPACE: &str = "pilum";

/// Where the state lives.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Location {
    /// `.pilum/` under the project root.
    File,
    Redis(RedisUrl),
}

/// A parsed Redis URL.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct RedisUrl {
    /// The URL handed to the client: no `namespace` parameter, the password still in it.
    pub connect: String,
    /// The same URL with the password masked, for messages.
    pub shown: String,
    /// The prefix of every key pilum writes.
    pub namespace: String,
    pub tls: bool,
}

/// Why a state URL was refused. All wording is in `Display`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LocationError {
    Scheme { scheme: String },
    Invalid { why: String },
    Namespace { name: String, why: String },
    UnknownParameter { name: String },
}

impl fmt::Display for LocationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Scheme { scheme } => write!(
                f,
                "state backend `{scheme}://…` is not supported\nhelp: use `file` (the default, `.pilum/`) or `redis://[user:pass@]host:port/db` (`rediss://` for TLS)"
            ),
            Self::Invalid { why } => write!(
                f,
                "the state URL is not valid: {why}\nhelp: write `redis://[user:pass@]host:port/db`, e.g. `redis://127.0.0.1:6379/0`"
            ),
            Self::Namespace { name, why } => {
                write!(f, "the state URL's namespace `{name}` {why}\nhelp: {}", crate::names::RULE)
            }
            Self::UnknownParameter { name } => write!(
                f,
                "the state URL has an unknown parameter `{name}`\nhelp: the only parameter pilum reads is `namespace` (`redis://host:6379/0?namespace=shop`)"
            ),
        }
    }
}

impl std::error::Error for LocationError {}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::File => f.write_str("file"),
            Location::Redis(r) => f.write_str(&r.shown),
        }
    }
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Location({self})")
    }
}

impl Location {
    /// Parse `file` or a Redis URL. A password in it is registered for masking first, so no
    /// later message can print it, this function's errors included.
    pub(crate) fn parse(text: &str) -> Result<Location, LocationError> {
        let text = text.trim();
        if text.is_empty() || text == "file" || text == "file:" {
            return Ok(Location::File);
        }
        let scheme = text.split_once("://").map_or(text, |(s, _)| s);
        if scheme != "redis" && scheme != "rediss" {
            return Err(LocationError::Scheme { scheme: scheme.to_string() });
        }
        // Before anything can fail and print: the password, as written and decoded.
        if let Some(pass) = raw_password(text) {
            crate::redact::register(pass);
            if let Ok(decoded) = percent_decode(pass) {
                crate::redact::register(&decoded);
            }
        }
        let mut url = url::Url::parse(text).map_err(|e| LocationError::Invalid {
            why: crate::redact::redact(&e.to_string()).into_owned(),
        })?;
        if url.host_str().is_none_or(str::is_empty) {
            return Err(LocationError::Invalid { why: "it names no host".into() });
        }
        let db = url.path().trim_start_matches('/');
        if !db.is_empty() && db.parse::<u16>().is_err() {
            return Err(LocationError::Invalid {
                why: format!("the database `{db}` is not a number"),
            });
        }
        let mut namespace = DEFAULT_NAMESPACE.to_string();
        let mut kept = Vec::new();
        for (k, v) in url.query_pairs() {
            match k.as_ref() {
                "namespace" => namespace = v.into_owned(),
                // The client's own parameter (RESP3).
                "protocol" => kept.push((k.into_owned(), v.into_owned())),
                other => return Err(LocationError::UnknownParameter { name: other.to_string() }),
            }
        }
        if let Err(e) = crate::names::check(&namespace) {
            return Err(LocationError::Namespace { name: namespace, why: e.to_string() });
        }
        if kept.is_empty() {
            url.set_query(None);
        } else {
            url.query_pairs_mut().clear().extend_pairs(kept);
        }
        let connect = url.to_string();
        let mut shown = url.clone();
        if shown.password().is_some() {
            let _ = shown.set_password(Some("***"));
        }
        let mut shown = shown.to_string();
        if namespace != DEFAULT_NAMESPACE {
            shown.push_str(if shown.contains('?') { "&" } else { "?" });
            shown.push_str(&format!("namespace={namespace}"));
        }
        Ok(Location::Redis(RedisUrl { connect, shown, namespace, tls: scheme == "rediss" }))
    }

    /// From the flag, else `PILUM_STATE`, else the project's `state:` setting, else `file`.
    pub(crate) fn resolve(
        flag: Option<&str>,
        setting: Option<&str>,
    ) -> Result<Location, LocationError> {
        let env = std::env::var(ENV).ok().filter(|v| !v.trim().is_empty());
        match flag.or(env.as_deref()).or(setting) {
            Some(t) => Location::parse(t),
            None => Ok(Location::File),
        }
    }
}

/// The password part of `scheme://user:pass@host…`, as written.
fn raw_password(text: &str) -> Option<&str> {
    let rest = text.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let userinfo = authority.rsplit_once('@')?.0;
    let pass = userinfo.split_once(':').map_or(userinfo, |(_, p)| p);
    (!pass.is_empty()).then_some(pass)
}

fn percent_decode(s: &str) -> Result<String, ()> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).map_err(|_| ())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| ())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_is_the_default_and_redis_urls_are_parsed() {
        assert_eq!(Location::parse("file").unwrap(), Location::File);
        assert_eq!(Location::parse("").unwrap(), Location::File);
        let Location::Redis(r) = Location::parse("redis://127.0.0.1:6379/3").unwrap() else {
            panic!("not redis")
        };
        assert_eq!(r.namespace, "pilum");
        assert_eq!(r.connect, "redis://127.0.0.1:6379/3");
        assert!(!r.tls);
        let Location::Redis(r) = Location::parse("rediss://h:6380/0?namespace=shop").unwrap()
        else {
            panic!("not redis")
        };
        assert!(r.tls);
        assert_eq!(r.namespace, "shop");
        assert_eq!(r.connect, "rediss://h:6380/0");
        assert_eq!(r.shown, "rediss://h:6380/0?namespace=shop");
    }

    #[test]
    fn the_password_is_never_shown() {
        let l = Location::parse("redis://deployer:s3cr%40tpw@10.0.0.1:6379/0").unwrap();
        let shown = l.to_string();
        assert_eq!(shown, "redis://deployer:***@10.0.0.1:6379/0");
        assert_eq!(crate::redact::redact("x s3cr%40tpw s3cr@tpw"), "x *** ***");
        let Location::Redis(r) = l else { panic!("not redis") };
        assert!(r.connect.contains("s3cr%40tpw"));
        // A broken URL's error does not print it either.
        let e = Location::parse("redis://u:hunter22@[::1/0").unwrap_err().to_string();
        assert!(!e.contains("hunter22"), "{e}");
    }

    #[test]
    fn bad_urls_are_refused_with_help() {
        for (text, want) in [
            ("postgres://x", "not supported"),
            ("redis://:6379/0", "not valid"),
            ("redis://h:6379/zero", "is not a number"),
            ("redis://h:6379/0?namespace=../x", "namespace"),
            ("redis://h:6379/0?prefix=x", "unknown parameter `prefix`"),
        ] {
            let e = Location::parse(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e}");
            assert!(e.contains("help:"), "{text}: {e}");
        }
    }
}
