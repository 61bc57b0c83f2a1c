//! `${VAR}` and `${VAR:-default}` expansion of `pilum.yaml` string values from the environment,
//! applied after parsing so an expanded value can never change the YAML structure. `$${` is a
//! literal `${`. An unset variable without a default is an error naming the variable. Every
//! expanded value keeps its path and the text as written, so an error about it can show
//! `${TOKEN}` instead of the token.

use serde_yaml::Value;

use crate::yaml::SegBuf;

/// Expand one string. `lookup` returns the variable's value (the process environment in pilum).
/// On an unset variable without default, returns its name.
pub(crate) fn expand(s: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    if !s.contains('$') {
        return Ok(s.to_string());
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(lit) = after.strip_prefix("${") {
            out.push_str("${");
            rest = lit;
            continue;
        }
        let Some(body) = after.strip_prefix('{') else {
            out.push('$');
            rest = after;
            continue;
        };
        let Some(end) = body.find('}') else {
            out.push('$');
            rest = after;
            continue;
        };
        let inner = &body[..end];
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        let valid = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        if !valid {
            out.push('$');
            rest = after;
            continue;
        }
        match (lookup(name).filter(|v| !v.is_empty() || default.is_none()), default) {
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => return Err(name.to_string()),
        }
        rest = &body[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// What expanding a tree did: the unset variables (each with the path of its first use) and
/// every value that changed, with its path and the text as written.
#[derive(Debug, Default, Clone)]
pub(crate) struct Expansion {
    pub missing: Vec<(String, Vec<SegBuf>)>,
    pub templates: Vec<(Vec<SegBuf>, String)>,
}

/// Expand every string (values, not keys) in a YAML tree.
pub(crate) fn expand_tree(v: &mut Value, lookup: &dyn Fn(&str) -> Option<String>) -> Expansion {
    let mut out = Expansion::default();
    walk(v, lookup, &mut Vec::new(), &mut out);
    out
}

/// One step of the path being walked, borrowed until a value needs recording.
#[derive(Clone, Copy)]
enum At<'a> {
    Key(&'a Value),
    Index(usize),
}

fn owned(path: &[At]) -> Vec<SegBuf> {
    path.iter()
        .map(|a| match a {
            At::Key(k) => SegBuf::Key(key_text(k)),
            At::Index(i) => SegBuf::Index(*i),
        })
        .collect()
}

fn walk<'a>(
    v: &'a mut Value,
    lookup: &dyn Fn(&str) -> Option<String>,
    path: &mut Vec<At<'a>>,
    out: &mut Expansion,
) {
    match v {
        Value::String(s) if !s.contains('$') => {}
        Value::String(s) => match expand(s, lookup) {
            Ok(e) => {
                if e != *s {
                    out.templates.push((owned(path), std::mem::replace(s, e)));
                }
            }
            Err(name) => {
                if !out.missing.iter().any(|(n, _)| *n == name) {
                    out.missing.push((name, owned(path)));
                }
            }
        },
        Value::Sequence(seq) => {
            for (i, x) in seq.iter_mut().enumerate() {
                path.push(At::Index(i));
                walk(x, lookup, path, out);
                path.pop();
            }
        }
        Value::Mapping(m) => {
            for (k, x) in m.iter_mut() {
                path.push(At::Key(k));
                walk(x, lookup, path, out);
                path.pop();
            }
        }
        Value::Tagged(t) => walk(&mut t.value, lookup, path, out),
        _ => {}
    }
}

/// A mapping key as text (`1`, `true` and `~` keys as YAML spells them).
pub(crate) fn key_text(k: &Value) -> String {
    match k {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "~".into(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "REGION" => Some("eu".into()),
            "EMPTY" => Some(String::new()),
            "TOKEN" => Some("ghp_secret".into()),
            _ => None,
        }
    }

    #[test]
    fn expands_set_default_and_literal() {
        assert_eq!(expand("r-${REGION}", &env).unwrap(), "r-eu");
        assert_eq!(expand("${NOPE:-us}", &env).unwrap(), "us");
        assert_eq!(expand("${EMPTY:-x}", &env).unwrap(), "x");
        assert_eq!(expand("${EMPTY}", &env).unwrap(), "");
        assert_eq!(expand("$${REGION} $5 ${", &env).unwrap(), "${REGION} $5 ${");
    }

    #[test]
    fn unset_without_default_is_an_error() {
        assert_eq!(expand("a ${NOPE} b", &env), Err("NOPE".to_string()));
    }

    #[test]
    fn the_tree_keeps_what_was_written_and_where() {
        let mut v: Value =
            serde_yaml::from_str("a: [x, \"${TOKEN}\"]\nb: {c: \"${NOPE}\"}\nd: plain\n").unwrap();
        let e = expand_tree(&mut v, &env);
        assert_eq!(
            e.templates,
            vec![(vec![SegBuf::Key("a".into()), SegBuf::Index(1)], "${TOKEN}".to_string())]
        );
        assert_eq!(
            e.missing,
            vec![("NOPE".to_string(), vec![SegBuf::Key("b".into()), SegBuf::Key("c".into())])]
        );
        assert_eq!(v["a"][1].as_str(), Some("ghp_secret"));
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

            /// Expansion never panics, leaves text without `$` alone, and an unset variable is
            /// reported by a name that appears in the input.
            #[test]
            fn expansion_is_total(s in "([a-z ]|\\$|\\{|\\}|:-|REGION|NOPE|EMPTY|TOKEN){0,40}") {
                match expand(&s, &env) {
                    Ok(out) => {
                        if !s.contains('$') {
                            prop_assert_eq!(out, s);
                        }
                    }
                    Err(name) => prop_assert!(s.contains(&format!("${{{name}")), "{name} in {s}"),
                }
            }
        }
    }
}
