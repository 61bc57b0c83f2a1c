//! The `notify:` list of `pilum-project.yaml`: which notifier, where it sends (a URL, or the
//! name of the environment variable holding a secret one), the signing secret's variable, the
//! events it wants, and options passed to the script as they are. Checked when the project is
//! loaded ([`Entry::check`]); resolved against the environment when a run starts
//! ([`Entry::resolve`]), where a missing variable skips that notifier with a warning instead
//! of failing the run (pull requests from forks have no secrets).

use std::time::Duration;

use serde::Deserialize;

use super::event::Kind;

/// One entry of `notify:`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct Entry {
    /// The notifier script: a built-in (`webhook`, `slack`, `discord`, `teams`) or
    /// `notifiers/<name>.rhai` of the project.
    pub notifier: String,
    /// What messages call this entry (default: the notifier); unique in the list.
    pub name: Option<String>,
    /// The receiver's URL, when it is not a secret.
    pub url: Option<String>,
    /// The environment variable holding the URL (masked in all output).
    pub url_env: Option<String>,
    /// The environment variable holding a signing secret (`webhook` signs with it).
    pub secret_env: Option<String>,
    /// Event names; `["*"]` for all. Default: `run_finished`, `run_failed`.
    pub events: Option<Vec<String>>,
    /// `lock_wait` is sent once the run has waited this long for the deploy lock (default 1m).
    #[serde(default, deserialize_with = "optional_duration")]
    pub lock_wait: Option<Duration>,
    /// Passed to the notifier script as `config.options`.
    #[serde(default)]
    pub options: serde_json::Value,
}

fn optional_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    crate::duration::deserialize(d).map(Some)
}

/// The default wait before `lock_wait` is sent.
pub(crate) const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(60);

/// A problem with one entry; all wording is in `Display`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Problem {
    UnknownNotifier { name: String, known: Vec<String> },
    UnknownEvent { event: String },
    NoUrl { name: String },
    TwoUrls { name: String },
    BadName { what: &'static str, value: String, why: String },
    Duplicate { name: String },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::UnknownNotifier { name, known } => write!(
                f,
                "unknown notifier `{name}` (known: {})",
                known.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
            ),
            Problem::UnknownEvent { event } => write!(
                f,
                "unknown event `{event}` (events: {}, or `*`)",
                Kind::ALL.iter().map(|k| format!("`{}`", k.name())).collect::<Vec<_>>().join(", ")
            ),
            Problem::NoUrl { name } => write!(f, "notifier `{name}` needs `url` or `url_env`"),
            Problem::TwoUrls { name } => {
                write!(f, "notifier `{name}` has both `url` and `url_env`; keep one")
            }
            Problem::BadName { what, value, why } => write!(f, "{what} `{value}` {why}"),
            Problem::Duplicate { name } => {
                write!(f, "two notifiers are called `{name}`; give one a `name:` of its own")
            }
        }
    }
}

impl Problem {
    /// The text to point at in the file.
    pub(crate) fn needle(&self) -> Option<String> {
        match self {
            Problem::UnknownNotifier { name, .. } => Some(name.clone()),
            Problem::UnknownEvent { event } => Some(event.clone()),
            Problem::BadName { value, .. } => Some(value.clone()),
            Problem::NoUrl { name } | Problem::TwoUrls { name } | Problem::Duplicate { name } => {
                Some(name.clone())
            }
        }
    }

    /// The closest known name, for "did you mean".
    pub(crate) fn suggestion(&self) -> Option<String> {
        match self {
            Problem::UnknownNotifier { name, known } => {
                crate::diagnostic::closest(name, known.iter().map(String::as_str))
                    .map(str::to_string)
            }
            Problem::UnknownEvent { event } => {
                crate::diagnostic::closest(event, Kind::ALL.iter().map(|k| k.name()))
                    .map(str::to_string)
            }
            _ => None,
        }
    }
}

/// A resolved entry: what the dispatcher needs to deliver.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub name: String,
    pub notifier: String,
    pub url: String,
    pub secret: Option<String>,
    pub events: Vec<Kind>,
    pub lock_wait: Duration,
    pub options: serde_json::Value,
}

impl Entry {
    pub(crate) fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.notifier)
    }

    /// The subscribed events (`*` is every event).
    pub(crate) fn kinds(&self) -> Vec<Kind> {
        match &self.events {
            None => Kind::DEFAULT.to_vec(),
            Some(list) if list.iter().any(|e| e == "*") => Kind::ALL.to_vec(),
            Some(list) => list.iter().filter_map(|e| Kind::parse(e)).collect(),
        }
    }

    /// Every problem of this entry; `known` are the notifier names that exist.
    pub(crate) fn check(&self, known: &[String]) -> Vec<Problem> {
        let mut out = Vec::new();
        if !known.contains(&self.notifier) {
            out.push(Problem::UnknownNotifier {
                name: self.notifier.clone(),
                known: known.to_vec(),
            });
        }
        if let Some(n) = &self.name
            && let Err(e) = crate::names::check(n)
        {
            out.push(Problem::BadName {
                what: "notifier name",
                value: n.clone(),
                why: e.to_string(),
            });
        }
        for (what, var) in [("`url_env`", &self.url_env), ("`secret_env`", &self.secret_env)] {
            if let Some(v) = var {
                let ok = !v.is_empty()
                    && !v.starts_with(|c: char| c.is_ascii_digit())
                    && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !ok {
                    out.push(Problem::BadName {
                        what,
                        value: v.clone(),
                        why: "is not an environment variable name (letters, digits and `_`, not starting with a digit)".into(),
                    });
                }
            }
        }
        match (&self.url, &self.url_env) {
            (None, None) => out.push(Problem::NoUrl { name: self.display_name().to_string() }),
            (Some(_), Some(_)) => {
                out.push(Problem::TwoUrls { name: self.display_name().to_string() });
            }
            (Some(u), None) => {
                if let Err(e) = crate::http::check_url(u) {
                    out.push(Problem::BadName {
                        what: "`url`",
                        value: u.clone(),
                        why: format!("is refused: {e}"),
                    });
                }
            }
            (None, Some(_)) => {}
        }
        for e in self.events.iter().flatten() {
            if e != "*" && Kind::parse(e).is_none() {
                out.push(Problem::UnknownEvent { event: e.clone() });
            }
        }
        out
    }

    /// The entry with its variables read, or the warning saying why it is skipped. The URL and
    /// the secret are registered for masking.
    pub(crate) fn resolve(
        &self,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Target, String> {
        let name = self.display_name().to_string();
        let read = |var: &str| -> Result<String, String> {
            match lookup(var).filter(|v| !v.is_empty()) {
                Some(v) => {
                    crate::redact::register(&v);
                    Ok(v)
                }
                None => Err(format!(
                    "notifier `{name}`: `{var}` is not set; its notifications are skipped"
                )),
            }
        };
        let url = match (&self.url, &self.url_env) {
            (Some(u), _) => u.clone(),
            (None, Some(var)) => {
                let u = read(var)?;
                crate::http::check_url(&u).map_err(|e| {
                    format!("notifier `{name}`: the URL in `{var}` is refused ({e}); its notifications are skipped")
                })?;
                u
            }
            (None, None) => return Err(format!("notifier `{name}` has no URL; skipped")),
        };
        let secret = match &self.secret_env {
            Some(var) => Some(read(var)?),
            None => None,
        };
        Ok(Target {
            name,
            notifier: self.notifier.clone(),
            url,
            secret,
            events: self.kinds(),
            lock_wait: self.lock_wait.unwrap_or(DEFAULT_LOCK_WAIT),
            options: self.options.clone(),
        })
    }
}

/// Problems of the whole list: each entry's, and names used twice.
pub(crate) fn check_all(entries: &[Entry], known: &[String]) -> Vec<Problem> {
    let mut out: Vec<Problem> = entries.iter().flat_map(|e| e.check(known)).collect();
    let mut seen = std::collections::HashSet::new();
    for e in entries {
        if !seen.insert(e.display_name()) {
            out.push(Problem::Duplicate { name: e.display_name().to_string() });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(yaml: &str) -> Entry {
        serde_yaml::from_str(yaml).expect("entry")
    }

    #[test]
    fn entries_are_checked() {
        let known = vec!["slack".to_string(), "webhook".to_string()];
        let e = entry("notifier: slak\nevents: [run_faild, '*']\n");
        let p = e.check(&known);
        assert_eq!(p.len(), 3, "{p:?}");
        assert_eq!(p[0].suggestion().as_deref(), Some("slack"));
        assert!(p[1].to_string().contains("needs `url` or `url_env`"));
        assert_eq!(p[2].suggestion().as_deref(), Some("run_failed"));
        let e = entry("notifier: webhook\nurl: ftp://x\nsecret_env: 1BAD\n");
        let p = e.check(&known);
        assert_eq!(p.len(), 2, "{p:?}");
        let twice =
            [entry("notifier: slack\nurl_env: A\n"), entry("notifier: slack\nurl_env: B\n")];
        assert!(matches!(check_all(&twice, &known).as_slice(), [Problem::Duplicate { .. }]));
        assert!(serde_yaml::from_str::<Entry>("notifier: slack\nurl: x\nevent: []\n").is_err());
    }

    #[test]
    fn a_missing_variable_skips_the_notifier() {
        let e = entry("notifier: slack\nurl_env: SLACK_URL\nevents: ['*']\n");
        let err = e.resolve(&|_| None).expect_err("unset");
        assert!(err.contains("`SLACK_URL` is not set"), "{err}");
        let t = e
            .resolve(&|_| Some("https://hooks.slack.invalid/services/T1/B2/secret-part".into()))
            .expect("set");
        assert_eq!(t.events.len(), Kind::ALL.len());
        assert_eq!(crate::redact::redact(&t.url), crate::redact::MASK);
        assert_eq!(
            entry("notifier: slack\nurl: https://x.invalid\n").kinds(),
            Kind::DEFAULT.to_vec()
        );
    }
}
