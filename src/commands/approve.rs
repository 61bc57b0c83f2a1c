//! The approval gate: an environment with `approval: required` (`pilum-project.yaml`) is
//! deployed to only once someone agreed. In this order:
//!
//! 1. `--yes` approves (the person running pilum, or the CI job definition, said so);
//! 2. in CI, a job that runs in that very deployment environment was let through by the CI
//!    system's own protection rules (GitHub Actions: `environment:` of the job, read from the
//!    workflow file, `ci::workflow`; GitLab CI, Azure Pipelines, Bitbucket Pipelines: the job's
//!    environment variable); a job in another environment, or in none, is refused;
//! 3. on a terminal, pilum shows what will deploy and asks;
//! 4. otherwise it refuses with exit 2.
//!
//! Only runs with tasks past the build and push phases need approval: dry runs, plans,
//! `build`, `push` and `publish` do not.

use std::io::{BufRead, IsTerminal, Read};

use super::settings::{Approval, Settings};
use crate::ci::workflow::{self, JobEnvironment};
use crate::ci::{self, Lookup, Provider};
use crate::error::Error;
use crate::orchestrator::plan::Plan;
use crate::output::Output;

const HELP: &str = "help: pass `--yes` to approve, or run the deploy in a CI job whose deployment \
                    environment is protected (`docs/ci.md`, \"Approvals\")";

/// Approve `plan` or say why not (exit 2).
pub(crate) fn check(
    settings: &Settings,
    plan: &Plan,
    yes: bool,
    out: &Output,
    env: Lookup<'_>,
) -> Result<(), Error> {
    let Some(name) = plan.environment.as_deref() else { return Ok(()) };
    // Building and pushing change nothing users see: only the deploy phase (and custom
    // phases after it) need the approval.
    let deploys =
        plan.tasks.iter().any(|t| !matches!(plan.phases[t.phase].as_str(), "build" | "push"));
    if plan.dry_run || !deploys || settings.approval(Some(name)) != Approval::Required {
        return Ok(());
    }
    if yes {
        out.info(&format!("environment `{name}` requires approval: approved with `--yes`"));
        return Ok(());
    }
    if let Some(c) = ci::detect(env) {
        let (job_env, source) = if c.provider == Provider::GithubActions {
            let job = env("GITHUB_JOB").unwrap_or_default();
            (workflow::job_environment(env), format!("GitHub Actions job `{job}`"))
        } else {
            let e = c.environment.clone().map_or(JobEnvironment::None, JobEnvironment::Named);
            (e, format!("this {} job", c.provider.name()))
        };
        return match job_env {
            JobEnvironment::Named(n) if n == name => {
                out.info(&format!(
                    "environment `{name}` requires approval: approved by the protection rules of {source}'s environment `{n}`"
                ));
                Ok(())
            }
            JobEnvironment::Named(n) => Err(Error::usage(format!(
                "environment `{name}` requires approval, and {source} runs in environment `{n}`, not `{name}`\n{HELP}"
            ))),
            JobEnvironment::None => Err(Error::usage(format!(
                "environment `{name}` requires approval, and {source} has no deployment environment\n{HELP}"
            ))),
            JobEnvironment::Unknown(why) => Err(Error::usage(format!(
                "environment `{name}` requires approval, and the environment of {source} cannot be told: {why}\n{HELP}"
            ))),
        };
    }
    if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
        return ask(plan, name, out);
    }
    Err(Error::usage(format!(
        "environment `{name}` requires approval, and there is no terminal to ask on\n{HELP}"
    )))
}

/// Show what will deploy and ask on the terminal.
fn ask(plan: &Plan, name: &str, out: &Output) -> Result<(), Error> {
    let bold = Output::err_style().bold();
    out.stderr_line(&format!(
        "{} will deploy {} to `{name}` (tag `{}`, {} tasks):",
        bold.apply_to("approval required:"),
        plural(plan.services.len()),
        plan.tag,
        plan.tasks.len()
    ));
    for s in &plan.services {
        out.stderr_line(&format!("  {:<24} {}", s.name, s.recipe.decl.name));
    }
    out.stderr_text(&format!("deploy to `{name}`? [y/N] "));
    let mut answer = String::new();
    // One line, bounded: a terminal line is short, and EOF ends it.
    let read = std::io::stdin().lock().take(1024).read_line(&mut answer);
    match (read, answer.trim().to_ascii_lowercase().as_str()) {
        (Ok(_), "y" | "yes") => Ok(()),
        _ => Err(Error::usage(format!("deploy to `{name}` was not approved; nothing ran"))),
    }
}

fn plural(n: usize) -> String {
    if n == 1 { "1 service".into() } else { format!("{n} services") }
}
