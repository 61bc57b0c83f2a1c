//! pilum in CI: notifications (loopback receivers checking each payload, the signature,
//! retries and the flush bound), GitHub commit statuses and deployments against a loopback
//! API, CI detection per provider, the approval gate, matrix shards, and the Action and the
//! example workflows of `docs/ci.md`.

mod action;
mod approve;
mod detect;
mod github;
mod notify;
mod shard;

use crate::common::Test;

/// A project recipe: `build` does nothing, `deploy` returns `#{ url }` or fails with `error`.
pub(crate) const SITE: &str = r#"
fn recipe() {
    #{ name: "site", section: "site",
       fields: [
           #{ name: "error", type: "string", description: "fail the deploy with this message" },
       ],
       steps: [ #{ name: "build", tags: ["build"] }, #{ name: "deploy", tags: ["deploy"] } ] }
}
fn build(ctx) { }
fn deploy(ctx) {
    if ctx.fields.error != () { throw ctx.fields.error; }
    #{ url: `https://${ctx.service}.example.test` }
}
"#;

/// A project with `pilum-project.yaml` = `settings` and services `api` (deploys) and, when
/// `failing` is given, `web` (whose deploy fails with that message).
pub(crate) fn project(settings: &str, failing: Option<&str>) -> Test {
    let mut t =
        Test::new().file("pilum-project.yaml", settings).file("recipes/site.rhai", SITE).file(
            "api/pilum.yaml",
            "name: api\nrecipe: site\nenvironments:\n  production: {}\n  staging: {}\n",
        );
    if let Some(message) = failing {
        let yaml = serde_yaml::to_string(&serde_json::json!({
            "name": "web", "recipe": "site", "site": {"error": message},
            "environments": {"production": {}, "staging": {}},
        }))
        .expect("yaml");
        t = t.file("web/pilum.yaml", &yaml);
    }
    t
}
