//! Project-wide settings in `pilum-project.yaml` at the project root: `notify:` (the
//! notifiers, `crate::notify::config`), `notify_timeout:`, `github:` (commit statuses and
//! deployments, `crate::ci::github::Settings`), `environments.<name>.approval` and `state:` (the
//! state backend, `crate::state::location`). A missing
//! file is no settings; every problem is a located diagnostic (exit 2), all reported at once.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::diagnostic::{Diagnostic, Problem};

pub(crate) const FILE: &str = "pilum-project.yaml";

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct Settings {
    #[serde(default)]
    pub notify: Vec<crate::notify::config::Entry>,
    /// How long the end of a run waits for notifications and GitHub updates.
    #[serde(default, deserialize_with = "optional_duration")]
    pub notify_timeout: Option<Duration>,
    #[serde(default)]
    pub github: crate::ci::github::Settings,
    #[serde(default)]
    pub environments: BTreeMap<String, Environment>,
    /// The state backend (`file`, `redis://…`; `docs/state.md`), below `--state` and
    /// `PILUM_STATE`.
    #[serde(default)]
    pub state: Option<String>,
}

/// `environments.<name>` of `pilum-project.yaml`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct Environment {
    #[serde(default)]
    pub approval: Approval,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Approval {
    #[default]
    None,
    /// A person confirms before anything runs (`docs/ci.md`).
    Required,
}

fn optional_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    crate::duration::deserialize(d).map(Some)
}

impl Settings {
    /// Whether deploying to `environment` needs approval.
    pub(crate) fn approval(&self, environment: Option<&str>) -> Approval {
        environment.and_then(|e| self.environments.get(e)).map_or(Approval::None, |e| e.approval)
    }
}

/// Read and check the settings of the project at `root`.
pub(crate) fn load(root: &Path) -> Result<Settings, Vec<Diagnostic>> {
    let text = match std::fs::read_to_string(root.join(FILE)) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Settings::default()),
        Err(e) => {
            let problem = Problem::Unreadable { path: FILE.into(), error: e.to_string() };
            return Err(vec![Diagnostic::of(FILE, problem)]);
        }
    };
    if let Err(e) = crate::yaml::check_depth(&text) {
        return Err(vec![
            Diagnostic::of(FILE, Problem::TooDeep { limit: crate::yaml::MAX_DEPTH })
                .at(&text, e.line, e.col),
        ]);
    }
    let settings: Settings = match serde_yaml::from_str::<Option<Settings>>(&text) {
        Ok(s) => s.unwrap_or_default(),
        Err(e) => {
            let (line, col) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
            let msg = e.to_string();
            let error = msg.split(" at line ").next().unwrap_or(&msg).to_string();
            let keys = crate::service::discover::PROJECT_KEYS;
            let problem = Problem::BadSettings { file: FILE, error, keys };
            return Err(vec![Diagnostic::of(FILE, problem).at(&text, line, col)]);
        }
    };
    let known = crate::notify::known(root);
    let mut diags = Vec::new();
    for p in crate::notify::config::check_all(&settings.notify, &known) {
        let (line, col) = p
            .needle()
            .and_then(|n| crate::diagnostic::find_position(&text, &n))
            .unwrap_or((crate::diagnostic::key_position(&text, &["notify"]).0, 1));
        let mut d = Diagnostic::of(FILE, Problem::NotifyEntry { error: p.to_string() })
            .at(&text, line, col)
            .suggest(p.suggestion().as_deref());
        if matches!(p, crate::notify::config::Problem::UnknownNotifier { .. }) {
            d = d.help("add your own as `notifiers/<name>.rhai` (see `docs/notifications.md`)");
        }
        diags.push(d);
    }
    let names: Vec<&str> = settings.notify.iter().map(|e| e.notifier.as_str()).collect();
    for e in crate::notify::check_scripts(root, &names) {
        if !e.starts_with("unknown notifier") {
            diags.push(Diagnostic::of(FILE, Problem::NotifierScript { error: e }));
        }
    }
    for name in settings.environments.keys() {
        if let Err(e) = crate::names::check(name) {
            let (line, col) = crate::diagnostic::key_position(&text, &["environments", name]);
            let problem =
                Problem::BadName { what: "environment name", value: name.clone(), error: e };
            diags.push(Diagnostic::of(FILE, problem).at(&text, line, col));
        }
    }
    if diags.is_empty() { Ok(settings) } else { Err(diags) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> Result<Settings, Vec<Diagnostic>> {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join(FILE), text).expect("write");
        load(dir.path())
    }

    #[test]
    fn reads_every_section() {
        let s = load_text(
            "notify:\n  - notifier: slack\n    url_env: SLACK_URL\n    events: [run_failed]\nnotify_timeout: 3s\ngithub:\n  statuses: true\nenvironments:\n  production:\n    approval: required\n",
        )
        .expect("valid");
        assert_eq!(s.notify.len(), 1);
        assert_eq!(s.notify_timeout, Some(Duration::from_secs(3)));
        assert!(s.github.statuses && !s.github.deployments);
        assert_eq!(s.approval(Some("production")), Approval::Required);
        assert_eq!(s.approval(Some("staging")), Approval::None);
        assert_eq!(s.approval(None), Approval::None);
        assert_eq!(load_text("# nothing yet\n").expect("empty"), Settings::default());
    }

    #[test]
    fn problems_are_located() {
        let d = load_text("notify:\n  - notifier: slakc\n    url: https://x.invalid\n")
            .expect_err("unknown");
        assert_eq!((d[0].line, d[0].did_you_mean.as_deref()), (2, Some("slack")));
        let d = load_text("github:\n  status: true\n").expect_err("typo");
        assert_eq!(d[0].line, 2, "{d:?}");
        assert!(d[0].message.contains("unknown field `status`"), "{d:?}");
        let d = load_text("environments:\n  production:\n    approval: maybe\n")
            .expect_err("bad value");
        assert_eq!(d[0].line, 3, "{d:?}");
    }
}
