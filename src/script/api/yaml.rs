//! `yaml::` — parse and stringify YAML (through the same value model as JSON).

use rhai::{Dynamic, Module, NativeCallContext};

use super::{RResult, from_json, func, rt, to_json};

/// Parse YAML text into a Rhai value (shared with `fs::read_yaml`).
pub fn parse(text: &str) -> Result<Dynamic, String> {
    serde_yaml::from_str::<serde_json::Value>(text)
        .map(from_json)
        .map_err(|e| format!("invalid YAML: {e}"))
}

pub fn module() -> Module {
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
            to_json(&v)
                .and_then(|j| serde_yaml::to_string(&j).map_err(|e| e.to_string()))
                .map_err(|e| rt(&ctx, e))
        }
    );
    m
}
