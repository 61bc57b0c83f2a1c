//! The deploy pipeline end to end: real `pilum` runs on temporary monorepos whose steps call fake
//! CLIs that record their argv with timestamps. One file per area.

mod commands;
mod errors;
mod execution;
mod output;
mod selection;

use crate::common::Test;

/// A project recipe with one required field.
pub(crate) const NEEDS_APP: &str = r#"
fn recipe() {
    #{ name: "needs-app", section: "app", fields: [ #{ name: "id", type: "string", required: true, description: "the app id" } ],
       steps: [ #{ name: "build", tags: ["build"] } ] }
}
fn build(ctx) { }
"#;

/// A `shell` service whose build, push and deploy steps call the fake `step` CLI.
pub(crate) fn shell_service(name: &str, deps: &[&str]) -> String {
    format!(
        "name: {name}\nrecipe: shell\ndepends_on: [{}]\nshell:\n  build: step {name} build\n  push: step {name} push\n  deploy: step {name} deploy\n",
        deps.join(", ")
    )
}

/// A project with a fake `step SERVICE STEP` CLI that takes `ms` milliseconds and records its
/// end in `.calls/step.end`.
pub(crate) fn project(ms: u64) -> Test {
    let t = Test::new().file(".gitignore", ".bin/\n.calls/\n.pilum/\n");
    let end = t.path().join(".calls").join("step.end");
    let body = format!(
        "sleep {}\nprintf '%s\\t%s\\t%s\\n' \"$(date +%s%N)\" \"$1\" \"$2\" >> '{}'",
        ms as f64 / 1000.0,
        end.display()
    );
    t.fake("step", &body)
}

/// (service, step, start ns, end ns) for every finished `step` call.
pub(crate) fn spans(t: &Test) -> Vec<(String, String, u128, u128)> {
    let starts = t.timed_calls("step");
    let ends = std::fs::read_to_string(t.path().join(".calls/step.end")).unwrap_or_default();
    starts
        .into_iter()
        .filter_map(|(s, argv)| {
            let end = ends.lines().find_map(|l| {
                let p: Vec<&str> = l.split('\t').collect();
                (p.len() == 3 && p[1] == argv[0] && p[2] == argv[1])
                    .then(|| p[0].parse::<u128>().expect("ns"))
            })?;
            Some((argv[0].clone(), argv[1].clone(), s, end))
        })
        .collect()
}

/// Every stdout line parsed as JSON (panics on a line that is not).
pub(crate) fn ndjson(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}\n--- stdout\n{stdout}"))
        })
        .collect()
}

pub(crate) fn events<'a>(v: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
    v.iter().filter(|e| e["event"] == kind).collect()
}
