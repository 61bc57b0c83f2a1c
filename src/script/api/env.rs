//! `env::` — read environment variables. The call context's extra environment (a service's
//! `env:`) wins over the process environment. `env::secret` registers the value for redaction,
//! and so does every read of a variable whose name looks secret (`redact::looks_secret`:
//! `*_TOKEN`, `*SECRET*`, `*_PASSWORD`, `*_KEY`…), unless `PILUM_NO_AUTO_MASK` lists it.

use std::sync::Arc;

use rhai::{Dynamic, Module, NativeCallContext};

use super::{RResult, func, rt};
use crate::redact;
use crate::script::{Host, current};

fn lookup(name: &str) -> Option<String> {
    let call = current();
    let value = match call.env.iter().rev().find(|(k, _)| k == name) {
        Some((_, v)) => Some(v.clone()),
        None => std::env::var(name).ok(),
    };
    if let Some(v) = &value {
        redact::register_if_secret(name, v);
    }
    value
}

fn require(ctx: &NativeCallContext, name: &str) -> RResult<String> {
    lookup(name).ok_or_else(|| {
        rt(ctx, format!("environment variable `{name}` is not set\nhelp: export `{name}` before running pilum"))
    })
}

pub(crate) fn module(_host: &Arc<Host>) -> Module {
    let mut m = Module::new();
    func!(
        &mut m,
        "get",
        ["name: String", "?"],
        r#"
The value of an environment variable, or `()` when it is not set.

```rhai
let region = env::get("AWS_REGION");
if region == () { region = "us-east-1"; }
```"#,
        |name: &str| -> Dynamic { lookup(name).map_or(Dynamic::UNIT, Into::into) }
    );
    func!(
        &mut m,
        "get_or",
        ["name: String", "default: String", "String"],
        r#"
The value of an environment variable, or `default` when it is not set.

```rhai
let tag = env::get_or("IMAGE_TAG", "latest");
```"#,
        |name: &str, default: &str| -> String {
            lookup(name).unwrap_or_else(|| default.to_string())
        }
    );
    func!(
        &mut m,
        "require",
        ["name: String", "String"],
        r#"
The value of an environment variable; an error naming the variable when it is not set.

```rhai
let project = env::require("GCP_PROJECT");
```"#,
        |ctx: NativeCallContext, name: &str| require(&ctx, name)
    );
    func!(
        &mut m,
        "secret",
        ["name: String", "String"],
        r#"
Like `env::require`, and the value is registered as a secret: it is replaced by `***` in
everything pilum prints or writes (output, command lines, errors, `--json`).

```rhai
let token = env::secret("REGISTRY_TOKEN");
exec::run(["docker", "login", "-u", "ci", "-p", token, "ghcr.io"]);
```"#,
        |ctx: NativeCallContext, name: &str| -> RResult<String> {
            let v = require(&ctx, name)?;
            redact::register(&v);
            Ok(v)
        }
    );
    m
}
