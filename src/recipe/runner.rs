//! Runs recipe steps: calls a step's function on the shared compiled AST with the step context.
//! Placeholder until the script host lands; every attempt fails with an explanation.

use std::path::Path;

use rhai::Map;

use crate::orchestrator::execute::{Attempt, Runner, TaskFailure};
use crate::orchestrator::plan::Plan;

pub struct RecipeRunner;

impl RecipeRunner {
    pub fn new(_root: &Path, _plan: &Plan, _stream: bool) -> Self {
        Self
    }
}

impl Runner for RecipeRunner {
    fn run(&self, _a: &Attempt<'_>) -> Result<Option<Map>, TaskFailure> {
        Err(TaskFailure { message: "the script host is not available in this build".into(), timed_out: false, cancelled: false, tail: Vec::new() })
    }
}
