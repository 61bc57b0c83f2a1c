//! The strict fake CLIs themselves: every contract parses, links its reference and covers the
//! commands the recipes run; a good command line passes, and an unknown flag, a missing
//! required flag or a malformed value fails with the real tool's kind of message and exit code.

use std::process::Command;

use super::harness::{CONTRACTS, strict_fake};

/// Run the strict fake on one command line: (exit code, stderr).
fn check(tool: &str, argv: &[&str]) -> (i32, String) {
    let out = Command::new(strict_fake())
        .arg(CONTRACTS)
        .arg(tool)
        .args(argv)
        .output()
        .expect("run the strict fake");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn contract(tool: &str) -> serde_yaml::Value {
    let path = format!("{CONTRACTS}/{tool}.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The commands the recipes run, which a contract must describe (issue 16's list and more).
const COVERED: &[(&str, &[&str])] = &[
    (
        "gcloud",
        &[
            "run deploy",
            "run jobs deploy",
            "run jobs execute",
            "run services update-traffic",
            "auth configure-docker",
            "artifacts repositories describe",
            "artifacts repositories create",
        ],
    ),
    ("sam", &["build", "deploy"]),
    (
        "aws",
        &[
            "ecs describe-services",
            "ecs describe-task-definition",
            "ecs register-task-definition",
            "ecs update-service",
            "ecr get-login-password",
            "cloudformation describe-stack-resources",
            "lambda get-alias",
        ],
    ),
    (
        "az",
        &[
            "containerapp update",
            "containerapp revision list",
            "containerapp revision show",
            "containerapp revision set-mode",
            "containerapp revision label add",
            "containerapp registry set",
            "acr login",
        ],
    ),
    ("flyctl", &["deploy", "auth docker"]),
    ("kubectl", &["apply", "rollout status"]),
    ("gh", &["release create", "release view", "release upload", "repo view", "api"]),
    ("pulumi", &["config set", "config refresh", "up"]),
    ("cargo", &["metadata", "package", "publish"]),
    ("uv", &["build", "publish"]),
    ("twine", &["check", "upload"]),
    ("dotnet", &["pack", "nuget push"]),
    ("choco", &["pack", "push"]),
    ("npm", &["ci", "run", "publish"]),
    ("docker", &["build", "buildx build", "tag", "push", "login"]),
    ("go", &["build"]),
    ("python3", &["-m build"]),
    ("curl", &[""]),
];

#[test]
fn every_contract_links_its_reference_and_covers_the_recipes_commands() {
    let mut files: Vec<String> = std::fs::read_dir(CONTRACTS)
        .expect("contracts dir")
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".yaml").map(str::to_string))
        .collect();
    files.sort();
    let listed: Vec<&str> = COVERED.iter().map(|(t, _)| *t).collect();
    for f in &files {
        assert!(listed.contains(&f.as_str()), "contract `{f}` is not in COVERED");
    }
    for (tool, commands) in COVERED {
        let c = contract(tool);
        assert_eq!(c["tool"].as_str(), Some(*tool), "{tool}: `tool`");
        let link = |v: &serde_yaml::Value| v.as_str().is_some_and(|s| s.starts_with("https://"));
        assert!(link(&c["reference"]), "{tool}: `reference` must link the tool's documentation");
        for cmd in *commands {
            let table = &c["commands"][*cmd];
            assert!(table.is_mapping(), "{tool}: no command `{cmd}`");
            assert!(link(&table["reference"]), "{tool} {cmd}: `reference` must link its page");
        }
        // Every message kind the contract words is one the fake knows.
        if let Some(m) = c["messages"].as_mapping() {
            for k in m.keys() {
                let k = k.as_str().unwrap_or_default();
                assert!(
                    [
                        "unknown_command",
                        "unknown_flag",
                        "missing_value",
                        "bad_value",
                        "bad_choice",
                        "missing_flag",
                        "missing_arg",
                        "extra_arg",
                        "exclusive",
                        "rule"
                    ]
                    .contains(&k),
                    "{tool}: unknown message kind `{k}`"
                );
            }
        }
    }
}

/// Each case: a tool, a command line, the exit code and a fragment of the message (`""` and 0
/// for an accepted line).
const CASES: &[(&str, &[&str], i32, &str)] = &[
    (
        "gcloud",
        &[
            "run",
            "deploy",
            "api",
            "--image",
            "us-central1-docker.pkg.dev/acme-prod/pilum/api:v1",
            "--project",
            "acme-prod",
            "--region",
            "us-central1",
            "--quiet",
        ],
        0,
        "",
    ),
    (
        "gcloud",
        &[
            "run",
            "deploy",
            "api",
            "--imag",
            "x",
            "--region",
            "us-central1",
            "--project",
            "acme-prod",
        ],
        2,
        "ERROR: (gcloud.run.deploy) unrecognized arguments: --imag",
    ),
    (
        "gcloud",
        &["run", "deploy", "api", "--image", "a/b:1", "--project", "acme-prod"],
        2,
        "ERROR: (gcloud.run.deploy) Missing required argument [--region]",
    ),
    (
        "gcloud",
        &[
            "run",
            "deploy",
            "api",
            "--image",
            "a/b:1",
            "--project",
            "acme-prod",
            "--region",
            "Europe",
        ],
        2,
        "argument --region: Bad value [Europe]",
    ),
    ("gcloud", &["run", "deplyo", "api"], 2, "ERROR: (gcloud.run) Invalid choice: 'deplyo'."),
    (
        "az",
        &[
            "containerapp",
            "update",
            "--name",
            "checkout-frontend",
            "--resource-group",
            "rg",
            "--revision-suffix",
            "r3f2a9c1d4e5f60718293a4b5c6d7e8f90a1b2c3d",
        ],
        1,
        "(ContainerAppInvalidRevisionName) Revision name has an invalid value 'checkout-frontend--r3f2a9c1",
    ),
    (
        "az",
        &[
            "containerapp",
            "update",
            "--name",
            "web",
            "--resource-group",
            "rg",
            "--revision-suffix",
            "V1.2",
        ],
        2,
        "ERROR: argument --revision-suffix: invalid value: 'V1.2'",
    ),
    (
        "az",
        &["containerapp", "update", "--resource-group", "rg", "--image", "acmecr.azurecr.io/web:1"],
        2,
        "ERROR: the following arguments are required: --name",
    ),
    (
        "aws",
        &["ecs", "update-service", "--cluster", "prod", "--servce", "api"],
        252,
        "Unknown options: --servce",
    ),
    (
        "aws",
        &[
            "ecs",
            "describe-services",
            "--cluster",
            "prod",
            "--services",
            "api",
            "--region",
            "eu-west",
        ],
        252,
        "aws: error: argument --region: invalid value 'eu-west'",
    ),
    (
        "docker",
        &[
            "login",
            "--username",
            "AWS",
            "--password-stdin",
            "123456789012.dkr.ecr.cn-north-1.amazonaws.com",
        ],
        125,
        "expected a registry host (an ECR host must be of its region's partition)",
    ),
    (
        "docker",
        &[
            "login",
            "--username",
            "AWS",
            "--password-stdin",
            "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn",
        ],
        0,
        "",
    ),
    ("docker", &["push", "Acme/API:1"], 125, "invalid argument \"Acme/API:1\""),
    (
        "flyctl",
        &["deploy", "--app", "edge", "--max-unavailable", "half"],
        1,
        "Error: invalid argument \"half\" for \"--max-unavailable\" flag",
    ),
    (
        "flyctl",
        &["deploy", "--app", "edge", "--ha=no"],
        1,
        "Error: invalid argument \"no\" for \"--ha\" flag",
    ),
    (
        "kubectl",
        &["--namespace", "prod", "apply", "--filenme", "a.yaml"],
        1,
        "error: unknown flag: --filenme",
    ),
    (
        "gh",
        &["release", "create", "v1", "--verify-tag", "--target", "main"],
        1,
        "specify only one of `--verify-tag` or `--target`",
    ),
    (
        "pulumi",
        &["up", "--yes", "--target", "api"],
        255,
        "error: invalid argument \"api\" for \"--target\" flag",
    ),
    (
        "cargo",
        &["package", "--registry", "my registry"],
        1,
        "error: invalid value 'my registry' for '--registry <VALUE>'",
    ),
    (
        "uv",
        &["publish", "--check-url", "https://test.pypi.org/legacy/", "dist/a.whl"],
        2,
        "error: invalid value 'https://test.pypi.org/legacy/' for '--check-url <VALUE>'",
    ),
    (
        "twine",
        &["upload", "--skip-existing"],
        2,
        "twine upload: error: the following arguments are required: dist",
    ),
    (
        "dotnet",
        &["nuget", "push", "a.nupkg", "--api-key"],
        1,
        "Required argument missing for option: '--api-key'.",
    ),
    (
        "choco",
        &["push", "a.nupkg", "--api-key", "k"],
        1,
        "choco push: option --source is required.",
    ),
    ("npm", &["publish", "--tag", "1.2.3"], 1, "npm error Invalid value \"1.2.3\" for --tag"),
    (
        "sam",
        &[
            "deploy",
            "--stack-name",
            "s",
            "--image-repository",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/a",
            "--resolve-image-repos",
        ],
        2,
        "Error: Invalid value for '--resolve-image-repos'",
    ),
];

#[test]
fn the_fakes_refuse_what_the_real_tools_refuse() {
    for (tool, argv, code, fragment) in CASES {
        let (got, stderr) = check(tool, argv);
        assert_eq!(got, *code, "{tool} {argv:?}: exit {got}\n{stderr}");
        if fragment.is_empty() {
            assert!(stderr.is_empty(), "{tool} {argv:?} printed {stderr}");
        } else {
            assert!(
                stderr.contains(fragment),
                "{tool} {argv:?}: expected `{fragment}` in\n{stderr}"
            );
        }
    }
}

#[test]
fn a_fake_without_a_contract_fails_naming_the_file() {
    let (code, stderr) = check("no-such-tool", &["x"]);
    assert_eq!(code, 98, "{stderr}");
    assert!(stderr.contains("no contract for `no-such-tool`"), "{stderr}");
}
