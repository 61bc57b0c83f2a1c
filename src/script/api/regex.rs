//! `regex::` — Rust `regex` syntax: match, capture groups, replace. Compiled patterns are cached
//! (scripts call these in loops) with a size limit so a hostile pattern cannot exhaust memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rhai::{Array, Dynamic, Map, Module, NativeCallContext};

use super::{RResult, func, rt};
use crate::sync::LockExt;

static CACHE: Mutex<Option<HashMap<String, Arc<regex::Regex>>>> = Mutex::new(None);

fn compile(ctx: &NativeCallContext, pattern: &str) -> RResult<Arc<regex::Regex>> {
    let mut cache = CACHE.locked();
    let cache = cache.get_or_insert_with(HashMap::new);
    if let Some(r) = cache.get(pattern) {
        return Ok(r.clone());
    }
    let re = regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| rt(ctx, format!("invalid regex `{pattern}`: {e}")))?;
    let re = Arc::new(re);
    if cache.len() > 256 {
        cache.clear();
    }
    cache.insert(pattern.to_string(), re.clone());
    Ok(re)
}

pub(crate) fn module() -> Module {
    let mut m = Module::new();
    func!(
        &mut m,
        "is_match",
        ["text: String", "pattern: String", "bool"],
        r#"
Whether `pattern` matches anywhere in `text`.

```rhai
if regex::is_match(tag, "^v\\d+\\.\\d+\\.\\d+$") { print("release tag"); }
```"#,
        |ctx: NativeCallContext, text: &str, pattern: &str| -> RResult<bool> {
            Ok(compile(&ctx, pattern)?.is_match(text))
        }
    );
    func!(
        &mut m,
        "captures",
        ["text: String", "pattern: String", "?"],
        r#"
The first match's groups as an array (index 0 is the whole match, groups that did not take
part are `()`), or `()` when nothing matches.

```rhai
let c = regex::captures("v1.4.2", "^v(\\d+)\\.(\\d+)");
print(c[1]);   // "1"
```"#,
        |ctx: NativeCallContext, text: &str, pattern: &str| -> RResult<Dynamic> {
            let re = compile(&ctx, pattern)?;
            let Some(caps) = re.captures(text) else { return Ok(Dynamic::UNIT) };
            let groups: Array =
                caps.iter().map(|g| g.map_or(Dynamic::UNIT, |m| m.as_str().into())).collect();
            Ok(Dynamic::from_array(groups))
        }
    );
    func!(
        &mut m,
        "named_captures",
        ["text: String", "pattern: String", "?"],
        r#"
The first match's named groups as a map, or `()` when nothing matches.

```rhai
let v = regex::named_captures("v1.4.2", "^v(?<major>\\d+)\\.(?<minor>\\d+)");
print(v.major);   // "1"
```"#,
        |ctx: NativeCallContext, text: &str, pattern: &str| -> RResult<Dynamic> {
            let re = compile(&ctx, pattern)?;
            let Some(caps) = re.captures(text) else { return Ok(Dynamic::UNIT) };
            let mut names = Map::new();
            for n in re.capture_names().flatten() {
                names.insert(n.into(), caps.name(n).map_or(Dynamic::UNIT, |m| m.as_str().into()));
            }
            Ok(Dynamic::from_map(names))
        }
    );
    func!(
        &mut m,
        "replace_all",
        ["text: String", "pattern: String", "replacement: String", "String"],
        r#"
Replace every match; `$1` / `${name}` in the replacement refer to groups.

```rhai
let slug = regex::replace_all("My Service", "[^a-z0-9]+", "-");
```"#,
        |ctx: NativeCallContext, text: &str, pattern: &str, rep: &str| -> RResult<String> {
            Ok(compile(&ctx, pattern)?.replace_all(text, rep).into_owned())
        }
    );
    m
}
