//! Recipe-facing views of values: `pilum.yaml` values as script values (through the one bridge,
//! `script::value`) and the type names recipe fields are declared with.

use rhai::Dynamic;

/// `pilum.yaml` values → Rhai, through the one value bridge (`script::value`).
pub(crate) use crate::script::value::from_yaml as yaml_to_dynamic;

/// The name of a value's type as recipe fields spell it.
pub(crate) fn type_name(v: &Dynamic) -> &'static str {
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
