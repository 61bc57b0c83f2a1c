//! Services: discovery, the `pilum.yaml` schema, `${VAR}` expansion, selection and the
//! dependency graph. [`Project::load`] is the entry point: find, parse and link every service,
//! reporting all problems at once.

pub mod changed;
pub mod config;
pub mod diagnostic;
pub mod discover;
pub mod expand;
pub mod graph;
pub mod select;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub use config::{RecipeRef, Service};
pub use diagnostic::Diagnostic;

/// Every service of a project and their dependencies.
#[derive(Debug, Clone)]
pub struct Project {
    pub root: PathBuf,
    pub services: Vec<Service>,
    /// `deps[i]`: the services `services[i]` depends on.
    pub deps: Vec<Vec<usize>>,
}

impl Project {
    /// Discover and parse every `pilum.yaml` under `root` with `--env` overrides.
    pub fn load(root: &Path, environment: Option<&str>) -> Result<Self, Vec<Diagnostic>> {
        let files = discover::find(root);
        let lookup = |name: &str| std::env::var(name).ok();
        let mut services = Vec::new();
        let mut diags = Vec::new();
        for rel in files {
            let text = match std::fs::read_to_string(root.join(&rel)) {
                Ok(t) => t,
                Err(e) => {
                    diags.push(Diagnostic::new(
                        &rel,
                        format!("cannot read `{}`: {e}", rel.display()),
                    ));
                    continue;
                }
            };
            match config::load(&rel, &text, environment, &lookup) {
                Ok(s) => services.extend(s),
                Err(d) => diags.extend(d),
            }
        }
        let mut seen: HashMap<&str, &Service> = HashMap::new();
        for s in &services {
            if let Some(first) = seen.insert(&s.name, s) {
                diags.push(
                    s.diag(
                        &["name"],
                        format!(
                            "duplicate service name `{}`: used by `{}` and `{}`",
                            s.name,
                            first.file.display(),
                            s.file.display()
                        ),
                    )
                    .help("service names must be unique; rename one of them"),
                );
            }
        }
        if !diags.is_empty() {
            return Err(diags);
        }
        let deps = graph::build(&services)?;
        Ok(Self { root: root.to_path_buf(), services, deps })
    }
}
