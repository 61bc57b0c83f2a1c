//! The one rule for names that end up in paths, keys and URLs: service names, target names,
//! regions, environments, version tags, pool names. A name is 1–128 characters from
//! `[A-Za-z0-9._-]`, starts with a letter or digit, and is not `.`/`..` and contains no `..`
//! (so it can never climb out of the directory it is joined onto, whatever the platform).

use std::fmt;

/// The longest accepted name.
pub(crate) const MAX_LEN: usize = 128;

/// Why a name was refused. All wording is in `Display`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NameError {
    Empty,
    TooLong { len: usize },
    BadStart { first: char },
    BadChar { ch: char },
    DotDot,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "is empty"),
            Self::TooLong { len } => write!(f, "is {len} characters long (at most {MAX_LEN})"),
            Self::BadStart { first } => {
                write!(
                    f,
                    "starts with `{}` (it must start with a letter or digit)",
                    first.escape_default()
                )
            }
            Self::BadChar { ch } => write!(
                f,
                "contains `{}` (allowed: letters, digits, `.`, `_` and `-`)",
                ch.escape_default()
            ),
            Self::DotDot => write!(f, "contains `..`"),
        }
    }
}

impl std::error::Error for NameError {}

/// The character set, for `help:` lines and docs.
pub(crate) const RULE: &str = "names use letters, digits, `.`, `_` and `-`, start with a letter or digit, \
                        contain no `..`, and are at most 128 characters";

/// Check one name against the rule.
pub(crate) fn check(name: &str) -> Result<(), NameError> {
    let Some(first) = name.chars().next() else {
        return Err(NameError::Empty);
    };
    if name.len() > MAX_LEN {
        return Err(NameError::TooLong { len: name.chars().count() });
    }
    if !first.is_ascii_alphanumeric() {
        return Err(NameError::BadStart { first });
    }
    if let Some(ch) =
        name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(NameError::BadChar { ch });
    }
    if name.contains("..") {
        return Err(NameError::DotDot);
    }
    Ok(())
}

/// For clap: `#[arg(value_parser = crate::names::flag)]`.
pub(crate) fn flag(text: &str) -> Result<String, String> {
    check(text).map(|()| text.to_string()).map_err(|e| format!("`{text}` {e}; {RULE}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for ok in ["web", "api-users", "v1.2.3", "eu_west_1", "1st", "a"] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn refuses_anything_that_could_be_a_path() {
        for bad in
            ["", "../x", "..", ".", "a/b", "a\\b", "-rf", ".hidden", "a..b", "a b", "x\n", "é"]
        {
            assert!(check(bad).is_err(), "{bad:?}");
        }
        assert_eq!(check(&"a".repeat(129)), Err(NameError::TooLong { len: 129 }));
    }

    mod props {
        use super::*;
        use proptest::prelude::*;
        use std::path::{Component, Path};

        proptest! {
            #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

            /// An accepted name is one plain path component, whatever it is joined onto.
            #[test]
            fn accepted_names_are_one_plain_component(s in "\\PC{0,20}|[a-zA-Z0-9._/-]{0,20}") {
                if check(&s).is_ok() {
                    let parts: Vec<Component> = Path::new(&s).components().collect();
                    prop_assert_eq!(parts.len(), 1, "{}", s);
                    prop_assert!(matches!(parts[0], Component::Normal(_)), "{}", s);
                    prop_assert!(!s.contains("..") && s.len() <= MAX_LEN);
                } else {
                    prop_assert!(!flag(&s).unwrap_err().is_empty());
                }
            }
        }
    }
}
