//! Where recipes meet the script host: compiling a recipe into its shared AST and evaluating
//! its declaration (`recipe()`, `plan(svc)`) in the declaration profile, which has no process,
//! file or network API, so reading a recipe can never run anything.

use std::sync::OnceLock;

use rhai::{AST, Dynamic, Engine, EvalAltResult, FuncArgs, ParseError};

/// The declaration engine. Limits keep a runaway `recipe()` from hanging `pilum list`.
fn declaration_engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut e = Engine::new();
        e.set_max_operations(1_000_000);
        e.set_max_call_levels(64);
        e.set_max_expr_depths(128, 64);
        e.set_max_string_size(1 << 20);
        e.set_max_array_size(100_000);
        e.set_max_map_size(100_000);
        e.on_print(|_| {});
        e.on_debug(|_, _, _| {});
        e
    })
}

/// Compile a recipe's source once; the AST is shared by every task that runs the recipe.
pub fn compile(source: &str) -> Result<AST, ParseError> {
    declaration_engine().compile(source)
}

/// Call a declaration function (`recipe`, `plan`) without running the script's top level.
pub fn call_declaration(ast: &AST, name: &str, args: impl FuncArgs) -> Result<Dynamic, Box<EvalAltResult>> {
    let opts = rhai::CallFnOptions::new().eval_ast(false).rewind_scope(true);
    declaration_engine().call_fn_with_options(opts, &mut rhai::Scope::new(), ast, name, args)
}
