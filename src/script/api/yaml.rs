//! `yaml::` — parse and stringify YAML (through the same value model as JSON).

use rhai::{Dynamic, Module, NativeCallContext};

use super::{RResult, func, rt};
use crate::script::value::{from_yaml, to_json};

/// Parse YAML text into a Rhai value (shared with `fs::read_yaml`).
pub(crate) fn parse(text: &str) -> Result<Dynamic, String> {
    crate::yaml::check_depth(text).map_err(|e| format!("invalid YAML: {e}"))?;
    crate::script::memory::check_room(
        text.len().saturating_mul(crate::script::memory::PARSED_PER_BYTE),
        "parsing this YAML",
    )?;
    serde_yaml::from_str::<serde_yaml::Value>(text)
        .map(|v| from_yaml(&v))
        .map_err(|e| format!("invalid YAML: {e}"))
}

pub(crate) fn module() -> Module {
    let mut m = Module::new();
    func!(
        &mut m,
        "parse",
        ["text: String", "?"],
        r#"
Parse YAML text into maps, arrays and scalars.

```rhai
let cfg = yaml::parse("name: api\nreplicas: 2\n");
print(cfg.replicas);
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
YAML text of a value.

```rhai
fs::write("values.yaml", yaml::stringify(#{ image: "api:1.2.3" }));
```"#,
        |ctx: NativeCallContext, v: Dynamic| -> RResult<String> {
            let j = to_json(&v).map_err(|e| rt(&ctx, e.to_string()))?;
            serde_yaml::to_string(&j).map_err(|e| rt(&ctx, e.to_string()))
        }
    );
    m
}
