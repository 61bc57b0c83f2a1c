//! Conversions between the data shapes the pipeline passes around: `pilum.yaml` values
//! (`serde_yaml`), script values (`rhai::Dynamic`) and event/plan JSON (`serde_json`).

use rhai::{Array, Dynamic, Map};
use serde_yaml::Value as Yaml;

pub fn yaml_to_dynamic(v: &Yaml) -> Dynamic {
    match v {
        Yaml::Null => Dynamic::UNIT,
        Yaml::Bool(b) => (*b).into(),
        Yaml::Number(n) => match n.as_i64() {
            Some(i) => i.into(),
            None => n.as_f64().unwrap_or(f64::NAN).into(),
        },
        Yaml::String(s) => s.clone().into(),
        Yaml::Sequence(seq) => seq.iter().map(yaml_to_dynamic).collect::<Array>().into(),
        Yaml::Mapping(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let key = match k {
                    Yaml::String(s) => s.clone(),
                    other => serde_yaml::to_string(other).unwrap_or_default().trim().to_string(),
                };
                out.insert(key.into(), yaml_to_dynamic(v));
            }
            out.into()
        }
        Yaml::Tagged(t) => yaml_to_dynamic(&t.value),
    }
}

pub fn dynamic_to_json(v: &Dynamic) -> serde_json::Value {
    use serde_json::Value as J;
    if v.is_unit() {
        J::Null
    } else if let Some(b) = v.clone().try_cast::<bool>() {
        J::Bool(b)
    } else if let Some(i) = v.clone().try_cast::<rhai::INT>() {
        J::from(i)
    } else if let Some(f) = v.clone().try_cast::<rhai::FLOAT>() {
        J::from(f)
    } else if v.is_string() {
        J::String(v.clone().into_string().unwrap_or_default())
    } else if v.is_array() {
        J::Array(
            v.read_lock::<Array>()
                .map_or_else(Vec::new, |a| a.iter().map(dynamic_to_json).collect()),
        )
    } else if v.is_map() {
        let mut out = serde_json::Map::new();
        if let Some(m) = v.read_lock::<Map>() {
            for (k, x) in m.iter() {
                out.insert(k.to_string(), dynamic_to_json(x));
            }
        }
        J::Object(out)
    } else {
        J::String(v.to_string())
    }
}

pub fn json_to_dynamic(v: &serde_json::Value) -> Dynamic {
    use serde_json::Value as J;
    match v {
        J::Null => Dynamic::UNIT,
        J::Bool(b) => (*b).into(),
        J::Number(n) => match n.as_i64() {
            Some(i) => i.into(),
            None => n.as_f64().unwrap_or(f64::NAN).into(),
        },
        J::String(s) => s.clone().into(),
        J::Array(a) => a.iter().map(json_to_dynamic).collect::<Array>().into(),
        J::Object(o) => {
            let mut m = Map::new();
            for (k, x) in o {
                m.insert(k.as_str().into(), json_to_dynamic(x));
            }
            m.into()
        }
    }
}

/// The name of a value's type as recipe fields spell it.
pub fn type_name(v: &Dynamic) -> &'static str {
    if v.is_unit() {
        "null"
    } else if v.is_bool() {
        "bool"
    } else if v.is_int() {
        "int"
    } else if v.is_float() {
        "float"
    } else if v.is_string() {
        "string"
    } else if v.is_array() {
        "array"
    } else if v.is_map() {
        "map"
    } else {
        "value"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_round_trips_through_json() {
        let y: Yaml = serde_yaml::from_str("a: 1\nb: [x, true, 2.5]\nc: null\n").unwrap();
        let d = yaml_to_dynamic(&y);
        let j = dynamic_to_json(&d);
        assert_eq!(j, serde_json::json!({"a": 1, "b": ["x", true, 2.5], "c": null}));
        assert_eq!(dynamic_to_json(&json_to_dynamic(&j)), j);
    }
}
