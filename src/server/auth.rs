//! Bearer-token authentication for mutating routes. Several tokens may be valid at once (for
//! rotation); comparison is constant-time in the token's contents. `Authorization: Basic`
//! with the token as password is accepted too,
//! because SNS subscriptions can only carry credentials in the endpoint URL.

use axum::http::HeaderMap;
use base64::Engine as _;
use subtle::ConstantTimeEq;

/// The accepted tokens.
#[derive(Clone)]
pub(crate) struct Tokens {
    tokens: Vec<Vec<u8>>,
    /// `--insecure-no-auth`: every request is accepted.
    pub disabled: bool,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokens({} configured)", self.tokens.len())
    }
}

/// Why a request was not authenticated.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Denied {
    /// No credentials: 401.
    Missing,
    /// Wrong credentials: 403.
    Wrong,
}

impl Tokens {
    pub(crate) fn new(tokens: &[String], disabled: bool) -> Self {
        Self {
            tokens: tokens
                .iter()
                .filter(|t| !t.is_empty())
                .map(|t| t.as_bytes().to_vec())
                .collect(),
            disabled,
        }
    }

    /// Whether `presented` is one of the tokens (constant-time in the contents).
    pub(crate) fn accepts(&self, presented: &str) -> bool {
        if self.disabled {
            return true;
        }
        let mut ok = subtle::Choice::from(0u8);
        for t in &self.tokens {
            ok |= t.as_slice().ct_eq(presented.as_bytes());
        }
        bool::from(ok)
    }

    /// Check a request's `Authorization` header.
    pub(crate) fn check(&self, headers: &HeaderMap) -> Result<(), Denied> {
        if self.disabled {
            return Ok(());
        }
        let Some(value) =
            headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok())
        else {
            return Err(Denied::Missing);
        };
        let presented = if let Some(t) = value.strip_prefix("Bearer ") {
            t.trim().to_string()
        } else if let Some(b) = value.strip_prefix("Basic ") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .map_err(|_| Denied::Wrong)?;
            let text = String::from_utf8(decoded).map_err(|_| Denied::Wrong)?;
            text.split_once(':').map(|(_, p)| p.to_string()).ok_or(Denied::Wrong)?
        } else {
            return Err(Denied::Missing);
        };
        // Compared against every token without short-circuiting (see `accepts`).
        if self.accepts(&presented) { Ok(()) } else { Err(Denied::Wrong) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(axum::http::header::AUTHORIZATION, v.parse().expect("header"));
        h
    }

    #[test]
    fn rotation_and_errors() {
        let t = Tokens::new(&["old".into(), "new".into()], false);
        assert_eq!(t.check(&headers("Bearer old")), Ok(()));
        assert_eq!(t.check(&headers("Bearer new")), Ok(()));
        assert_eq!(t.check(&headers("Bearer nope")), Err(Denied::Wrong));
        assert_eq!(t.check(&HeaderMap::new()), Err(Denied::Missing));
        let basic = base64::engine::general_purpose::STANDARD.encode("sns:new");
        assert_eq!(t.check(&headers(&format!("Basic {basic}"))), Ok(()));
    }
}
