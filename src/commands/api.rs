//! `pilum api [--markdown] [--definitions DIR]`: the script API reference
//! (`script::reference`) as text, Markdown or one JSON array, or `.d.rhai` definitions written
//! for editors.

use crate::cli::ApiArgs;
use crate::error::Error;
use crate::output::Output;
use crate::script::reference;

pub(crate) fn run(args: &ApiArgs, out: &Output) -> Result<(), Error> {
    if let Some(dir) = &args.definitions {
        reference::write_definitions(dir)?;
        out.info(&format!("wrote `.d.rhai` definitions to `{}`", dir.display()));
        return Ok(());
    }
    if out.json {
        let v: Vec<_> = reference::functions()
            .into_iter()
            .map(|f| serde_json::json!({"namespace": f.namespace, "signature": f.signature, "doc": f.doc}))
            .collect();
        out.json_line(&serde_json::Value::Array(v));
        return Ok(());
    }
    let text = if args.markdown { reference::markdown() } else { reference::text() };
    out.stdout_line(text.trim_end());
    Ok(())
}
