//! The deployment environment of the running GitHub Actions job. GitHub gives steps no
//! variable or context with it (actions/runner#1369), so pilum reads the workflow file the run
//! was started from: `GITHUB_WORKFLOW_REF` names it (`owner/repo/.github/workflows/deploy.yml@
//! refs/heads/main`), `GITHUB_WORKSPACE` is the checkout it is in, and `GITHUB_JOB` is the job's
//! id, whose `environment:` (a name, or a map with `name:`) is the answer.
//!
//! Limits, said as they are: an `environment:` that is an expression (`${{ … }}`) cannot be
//! evaluated here; a job of a reusable workflow is not in the caller's file; a workflow file
//! missing from the checkout (a sparse or absent checkout) cannot be read. Each is
//! [`JobEnvironment::Unknown`] with the reason, and the approval gate then asks for `--yes`.

use std::path::{Path, PathBuf};

use super::Lookup;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum JobEnvironment {
    /// The job has no `environment:`.
    None,
    /// `environment: production` (or `environment: {name: production}`).
    Named(String),
    /// It cannot be told, and why.
    Unknown(String),
}

/// The workflow file of the run, relative to the checkout.
fn workflow_file(workflow_ref: &str) -> Option<PathBuf> {
    let path = workflow_ref.split('@').next()?;
    // `owner/repo/<path>`.
    let mut parts = path.splitn(3, '/');
    let (_, _, file) = (parts.next()?, parts.next()?, parts.next()?);
    let file = Path::new(file);
    let inside = file.components().all(|c| matches!(c, std::path::Component::Normal(_)));
    (inside && file.starts_with(".github/workflows")).then(|| file.to_path_buf())
}

/// The running job's environment, from the workflow file.
pub(crate) fn job_environment(env: Lookup<'_>) -> JobEnvironment {
    let unknown = |why: String| JobEnvironment::Unknown(why);
    let (Some(wref), Some(job)) = (env("GITHUB_WORKFLOW_REF"), env("GITHUB_JOB")) else {
        return unknown("`GITHUB_WORKFLOW_REF` or `GITHUB_JOB` is not set".into());
    };
    let Some(rel) = workflow_file(&wref) else {
        return unknown(format!("`GITHUB_WORKFLOW_REF` (`{wref}`) does not name a workflow file"));
    };
    let workspace =
        env("GITHUB_WORKSPACE").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    let path = workspace.join(&rel);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            return unknown(format!("cannot read `{}` from the checkout: {e}", rel.display()));
        }
    };
    if crate::yaml::check_depth(&text).is_err() {
        return unknown(format!("`{}` is nested too deeply to read", rel.display()));
    }
    let doc: serde_yaml::Value = match serde_yaml::from_str(&text) {
        Ok(v) => v,
        Err(e) => return unknown(format!("`{}` is not valid YAML: {e}", rel.display())),
    };
    let Some(job_def) = doc.get("jobs").and_then(|j| j.get(job.as_str())) else {
        return unknown(format!(
            "job `{job}` is not in `{}` (a job of a reusable workflow is in the called file)",
            rel.display()
        ));
    };
    let name = match job_def.get("environment") {
        None | Some(serde_yaml::Value::Null) => return JobEnvironment::None,
        Some(serde_yaml::Value::String(s)) => s.clone(),
        Some(m @ serde_yaml::Value::Mapping(_)) => match m.get("name") {
            Some(serde_yaml::Value::String(s)) => s.clone(),
            _ => return unknown(format!("job `{job}`'s `environment:` has no `name:`")),
        },
        Some(_) => return unknown(format!("job `{job}`'s `environment:` is not a name")),
    };
    if name.contains("${{") {
        return unknown(format!(
            "job `{job}`'s environment is the expression `{name}`, which pilum cannot evaluate"
        ));
    }
    JobEnvironment::Named(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(pairs: &'a [(&'a str, String)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
    }

    #[test]
    fn reads_the_job_environment() {
        let dir = tempfile::tempdir().expect("dir");
        let wf = dir.path().join(".github/workflows");
        std::fs::create_dir_all(&wf).expect("mkdir");
        std::fs::write(
            wf.join("deploy.yml"),
            "jobs:\n  prod:\n    environment: production\n  staging:\n    environment:\n      name: staging\n      url: https://s.example\n  build:\n    runs-on: ubuntu-latest\n  preview:\n    environment: pr-${{ github.event.number }}\n",
        )
        .expect("write");
        let ws = dir.path().display().to_string();
        let case = |job: &str| {
            let pairs = [
                (
                    "GITHUB_WORKFLOW_REF",
                    "acme/shop/.github/workflows/deploy.yml@refs/heads/main".to_string(),
                ),
                ("GITHUB_JOB", job.to_string()),
                ("GITHUB_WORKSPACE", ws.clone()),
            ];
            job_environment(&lookup(&pairs))
        };
        assert_eq!(case("prod"), JobEnvironment::Named("production".into()));
        assert_eq!(case("staging"), JobEnvironment::Named("staging".into()));
        assert_eq!(case("build"), JobEnvironment::None);
        assert!(matches!(case("preview"), JobEnvironment::Unknown(w) if w.contains("expression")));
        assert!(matches!(case("other"), JobEnvironment::Unknown(w) if w.contains("reusable")));
        assert!(matches!(job_environment(&lookup(&[])), JobEnvironment::Unknown(_)));
        assert_eq!(workflow_file("a/b/../../etc/passwd@x"), None);
        assert_eq!(
            workflow_file("a/b/.github/workflows/x.yml@refs/tags/v1"),
            Some(PathBuf::from(".github/workflows/x.yml"))
        );
    }
}
