//! `${VAR}` and `${VAR:-default}` expansion of `pilum.yaml` string values from the environment,
//! applied after parsing so an expanded value can never change the YAML structure. `$${` is a
//! literal `${`. An unset variable without a default is an error naming the variable.

/// Expand one string. `lookup` returns the variable's value (the process environment in pilum).
/// On an unset variable without default, returns its name.
pub fn expand(s: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
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

/// Expand every string (values, not keys) in a YAML tree; collects the unset variable names.
pub fn expand_value(
    v: &mut serde_yaml::Value,
    lookup: &dyn Fn(&str) -> Option<String>,
    missing: &mut Vec<String>,
) {
    match v {
        serde_yaml::Value::String(s) => match expand(s, lookup) {
            Ok(e) => *s = e,
            Err(name) => {
                if !missing.contains(&name) {
                    missing.push(name);
                }
            }
        },
        serde_yaml::Value::Sequence(seq) => {
            for x in seq {
                expand_value(x, lookup, missing);
            }
        }
        serde_yaml::Value::Mapping(m) => {
            for (_, x) in m.iter_mut() {
                expand_value(x, lookup, missing);
            }
        }
        serde_yaml::Value::Tagged(t) => expand_value(&mut t.value, lookup, missing),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "REGION" => Some("eu".into()),
            "EMPTY" => Some(String::new()),
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
}
