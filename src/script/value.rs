//! The one bridge between Rhai values and data (JSON, YAML, anything `serde` can walk), built on
//! `rhai::serde`. Every conversion in pilum goes through it: the `json::`/`yaml::` API, files
//! read by `fs::`, Pulumi output, `pilum.yaml` values handed to recipes, the plan and events.
//!
//! The policy, in one place:
//!
//! - **Into Rhai** ([`to_dynamic`], [`from_yaml`]): `null` becomes `()`; an integer that fits
//!   `i64` becomes an `int`, any other number a `float`; strings, arrays and maps as they are.
//!   YAML keys that are not strings (`1:`, `true:`) become their text, and YAML tags are
//!   dropped (`!Ref x` is `x`).
//! - **Out of Rhai** ([`to_json`]): exact or an error. JSON has no `NaN`, no infinities and no
//!   functions, so a value holding one (or a blob, a timestamp, a custom type) is refused with
//!   the place it sits at (``value `replicas` is NaN, which JSON cannot hold``) rather than
//!   silently turned into `null` or a string — a script that sends `NaN` replicas to Pulumi has
//!   a bug worth hearing about.

use std::fmt;

use rhai::{Array, Dynamic, Map};
use serde::ser::{Error as _, SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

/// A value that cannot be converted, with where it is and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ValueError {
    /// `replicas`, `items[2]`; empty for the value itself.
    pub at: String,
    pub why: String,
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.at.is_empty() {
            write!(f, "the value {}", self.why)
        } else {
            write!(f, "value `{}` {}", self.at, self.why)
        }
    }
}

impl std::error::Error for ValueError {}

/// Data → Rhai, through `rhai::serde`.
pub(crate) fn to_dynamic<T: Serialize + ?Sized>(v: &T) -> Result<Dynamic, ValueError> {
    rhai::serde::to_dynamic(v).map_err(|e| ValueError {
        at: String::new(),
        why: format!("cannot become a script value: {e}"),
    })
}

/// A YAML value → Rhai (keys as text, tags dropped; see the module doc).
pub(crate) fn from_yaml(v: &serde_yaml::Value) -> Dynamic {
    to_dynamic(&PlainYaml(v)).expect("plain YAML has string keys and only data")
}

/// Rhai → JSON: exact, or the first value JSON cannot hold.
pub(crate) fn to_json(v: &Dynamic) -> Result<serde_json::Value, ValueError> {
    serde_json::to_value(Strict { v, at: &At::Root }).map_err(|e| {
        // `Strict` reports "<path>\t<why>" so the path survives serde's error type.
        let text = e.to_string();
        match text.split_once('\t') {
            Some((at, why)) => ValueError { at: at.to_string(), why: why.to_string() },
            None => ValueError { at: String::new(), why: text },
        }
    })
}

/// Where a value sits inside the one being converted.
enum At<'a> {
    Root,
    Key(&'a At<'a>, &'a str),
    Index(&'a At<'a>, usize),
}

impl fmt::Display for At<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            At::Root => Ok(()),
            At::Key(At::Root, k) => write!(f, "{k}"),
            At::Key(parent, k) => write!(f, "{parent}.{k}"),
            At::Index(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

/// Serializes a Rhai value, refusing what JSON cannot hold.
struct Strict<'a> {
    v: &'a Dynamic,
    at: &'a At<'a>,
}

impl Serialize for Strict<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let refuse = |why: String| S::Error::custom(format!("{}\t{why}", self.at));
        let v = self.v;
        if v.is_shared() {
            let inner = v.flatten_clone();
            return Strict { v: &inner, at: self.at }.serialize(ser);
        }
        if v.is_unit() {
            return ser.serialize_unit();
        }
        if let Ok(b) = v.as_bool() {
            return ser.serialize_bool(b);
        }
        if let Ok(i) = v.as_int() {
            return ser.serialize_i64(i);
        }
        if let Ok(x) = v.as_float() {
            if x.is_finite() {
                return ser.serialize_f64(x);
            }
            let name = if x.is_nan() {
                "NaN"
            } else if x > 0.0 {
                "infinity"
            } else {
                "-infinity"
            };
            return Err(refuse(format!("is {name}, which JSON cannot hold")));
        }
        if let Ok(c) = v.as_char() {
            return ser.serialize_char(c);
        }
        if let Some(s) = v.read_lock::<rhai::ImmutableString>() {
            return ser.serialize_str(&s);
        }
        if let Some(a) = v.read_lock::<Array>() {
            let mut seq = ser.serialize_seq(Some(a.len()))?;
            for (i, item) in a.iter().enumerate() {
                seq.serialize_element(&Strict { v: item, at: &At::Index(self.at, i) })?;
            }
            return seq.end();
        }
        if let Some(m) = v.read_lock::<Map>() {
            let mut map = ser.serialize_map(Some(m.len()))?;
            for (k, item) in m.iter() {
                map.serialize_entry(k.as_str(), &Strict { v: item, at: &At::Key(self.at, k) })?;
            }
            return map.end();
        }
        let what = if v.is_fnptr() {
            "is a function pointer".to_string()
        } else {
            format!("is a `{}`", v.type_name())
        };
        Err(refuse(format!("{what}, which JSON cannot hold")))
    }
}

/// A YAML value seen as plain data: keys as text, tags dropped.
struct PlainYaml<'a>(&'a serde_yaml::Value);

impl Serialize for PlainYaml<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use serde_yaml::Value as Y;
        match self.0 {
            Y::Sequence(items) => ser.collect_seq(items.iter().map(PlainYaml)),
            Y::Mapping(m) => {
                let mut map = ser.serialize_map(Some(m.len()))?;
                for (k, v) in m {
                    let key = match k {
                        Y::String(s) => s.clone(),
                        other => serde_yaml::to_string(other)
                            .map(|t| t.trim_end().to_string())
                            .map_err(S::Error::custom)?,
                    };
                    map.serialize_entry(&key, &PlainYaml(v))?;
                }
                map.end()
            }
            Y::Tagged(t) => PlainYaml(&t.value).serialize(ser),
            scalar => scalar.serialize(ser),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(src: &str) -> Dynamic {
        rhai::Engine::new().eval::<Dynamic>(src).expect("evaluates")
    }

    #[test]
    fn json_round_trips_through_rhai_values() {
        let v: serde_json::Value = serde_json::from_str(
            r#"{"a":[1,2.5,true,null,"s"],"b":{"c":-3},"big":18446744073709551615}"#,
        )
        .expect("json");
        let d = to_dynamic(&v).expect("converts");
        let m = d.clone().cast::<Map>();
        assert!(m["a"].clone().cast::<Array>()[3].is_unit(), "null is ()");
        assert!(m["big"].is_float(), "beyond i64 is a float");
        let back = to_json(&d).expect("back");
        assert_eq!(back["a"], v["a"]);
        assert_eq!(back["b"], v["b"]);
    }

    #[test]
    fn what_json_cannot_hold_is_refused_with_its_place() {
        let err = to_json(&eval("#{ pool: #{ replicas: [1, 0.0 / 0.0] } }")).expect_err("NaN");
        assert_eq!(err.at, "pool.replicas[1]");
        assert_eq!(err.to_string(), "value `pool.replicas[1]` is NaN, which JSON cannot hold");
        let err = to_json(&eval("1.0 / 0.0")).expect_err("inf");
        assert_eq!(err.to_string(), "the value is infinity, which JSON cannot hold");
        let err = to_json(&eval("fn g() {} #{ f: Fn(\"g\") }")).expect_err("fn");
        assert_eq!(err.to_string(), "value `f` is a function pointer, which JSON cannot hold");
        let err = to_json(&eval("[blob(2)]")).expect_err("blob");
        assert!(err.to_string().contains("`blob`"), "{err}");
        assert_eq!(to_json(&eval("'x'")).expect("char"), serde_json::json!("x"));
    }

    #[test]
    fn yaml_keys_become_text_and_tags_drop() {
        let y: serde_yaml::Value =
            serde_yaml::from_str("a: 1\n2: two\ntrue: yes\nt: !Ref x\nl: [x, 2.5]\nn: ~\n")
                .expect("yaml");
        let d = from_yaml(&y);
        let j = to_json(&d).expect("json");
        assert_eq!(
            j,
            serde_json::json!({"a": 1, "2": "two", "true": "yes", "t": "x", "l": ["x", 2.5], "n": null})
        );
    }
}
