//! Where recipes meet the script host. Recipes are compiled once by an engine of the full
//! profile (so `exec::`, `fs::`… resolve under strict variables) and their declarations
//! (`recipe()`, `plan(svc)`) are evaluated by an engine of the strategy profile, which has no
//! process, file, env, git or network API: reading a recipe can never run anything. Both
//! engines come from the one builder, `script::engine::build`.

use std::sync::{Arc, OnceLock};

use rhai::{AST, Dynamic, Engine, EvalAltResult, FuncArgs, ParseError};

use crate::script::engine::{self, Limits, Profile};
use crate::script::{Host, NullSink};

fn null_host() -> Arc<Host> {
    Arc::new(Host::new(".", Arc::new(NullSink)))
}

/// Compiles recipes; never evaluates them (the AST runs on the run's own engine).
fn compile_engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| engine::build(&null_host(), Profile::Full(Limits::full())))
}

/// Evaluates declarations: pure data, small budget.
fn declaration_engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| engine::build(&null_host(), Profile::Strategy(Limits::strategy())))
}

/// Compile a recipe's source once; the AST is shared by every task that runs the recipe.
/// `source` names it in error locations (a path, or `<built-in>/recipes/<name>.rhai`).
pub(crate) fn compile(text: &str, source: &str) -> Result<AST, ParseError> {
    let mut ast = compile_engine().compile(text)?;
    ast.set_source(source);
    Ok(ast)
}

/// Call a declaration function (`recipe`, `plan`) without running the script's top level.
pub(crate) fn call_declaration(
    ast: &AST,
    name: &str,
    args: impl FuncArgs,
) -> Result<Dynamic, Box<EvalAltResult>> {
    let opts = rhai::CallFnOptions::new().eval_ast(false).rewind_scope(true);
    declaration_engine().call_fn_with_options(opts, &mut rhai::Scope::new(), ast, name, args)
}

/// Render a script error with its location and snippet.
pub(crate) fn render_error(err: &EvalAltResult, source: &str) -> String {
    crate::script::error::render(err, source)
}
