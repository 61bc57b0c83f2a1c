//! `json::` — parse and stringify JSON.

use rhai::{Dynamic, Module, NativeCallContext};

use super::{RResult, func, rt};
use crate::script::memory;
use crate::script::value::to_json;

/// Parse JSON text into a Rhai value (shared with `fs::read_json`).
pub(crate) fn parse(text: &str) -> Result<Dynamic, String> {
    memory::check_room(text.len().saturating_mul(memory::PARSED_PER_BYTE), "parsing this JSON")?;
    serde_json::from_str::<Dynamic>(text).map_err(|e| format!("invalid JSON: {e}"))
}

pub(crate) fn module() -> Module {
    let mut m = Module::new();
    func!(
        &mut m,
        "parse",
        ["text: String", "?"],
        r#"
Parse JSON text into maps, arrays, strings, numbers, bools and `()` for null.

```rhai
let v = json::parse(`{"replicas": 3}`);
print(v.replicas);
```"#,
        |ctx: NativeCallContext, text: &str| -> RResult<Dynamic> {
            parse(text).map_err(|e| rt(&ctx, e))
        }
    );
    func!(
        &mut m,
        "stringify",
        ["value: ?", "String"],
        r#"
Compact JSON text of a value.

```rhai
let body = json::stringify(#{ service: "api", replicas: 3 });
```"#,
        |ctx: NativeCallContext, v: Dynamic| -> RResult<String> {
            to_json(&v).map(|j| j.to_string()).map_err(|e| rt(&ctx, e.to_string()))
        }
    );
    func!(
        &mut m,
        "pretty",
        ["value: ?", "String"],
        r#"
Indented JSON text of a value.

```rhai
fs::write("plan.json", json::pretty(plan));
```"#,
        |ctx: NativeCallContext, v: Dynamic| -> RResult<String> {
            let j = to_json(&v).map_err(|e| rt(&ctx, e.to_string()))?;
            Ok(serde_json::to_string_pretty(&j).expect("JSON values serialize"))
        }
    );
    m
}
