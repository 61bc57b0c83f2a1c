//! Everything the catalogue ships compiles and validates: every built-in recipe passes
//! `pilum check` against an example service, mistakes in a service are reported against the
//! recipe's declared fields, and every stdlib module imports and runs.

use super::harness::{Case, strict};
use super::{containers, packages};
use crate::common::Test;

fn all_cases() -> Vec<Case> {
    vec![
        containers::cloud_run(),
        containers::cloud_run_job(),
        containers::lambda(),
        containers::ecs(false),
        containers::kubernetes(":"),
        containers::container_apps(),
        containers::fly(),
        containers::pulumi(),
        packages::github_release(packages::GH, false),
        packages::homebrew(),
        packages::npm(),
        packages::pypi_uv(),
        packages::crates_io(),
        packages::nuget(),
        packages::deb(),
        packages::rpm(),
        packages::scoop(),
        packages::chocolatey(),
    ]
}

#[test]
fn every_builtin_recipe_passes_check_against_an_example_service() {
    let mut t = Test::new();
    let mut recipes = Vec::new();
    for (i, case) in all_cases().into_iter().enumerate() {
        let yaml = &case.files[0].1;
        let (first, rest) = yaml.split_once('\n').expect("pilum.yaml has lines");
        assert!(first.starts_with("name: "), "{first}");
        t = t.file(&format!("s{i:02}/pilum.yaml"), &format!("name: {}-{i}\n{rest}", case.name));
        recipes.push(case.name);
    }
    let r = t.args(["check"]).run().success();
    let valid = format!("{} services valid", recipes.len());
    assert!(r.stdout.contains(&valid) || r.stderr.contains(&valid), "{}{}", r.stdout, r.stderr);

    // Every built-in recipe (the deploy pipeline's `local` and `shell` have their own tests).
    let builtin: Vec<String> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/recipes"))
        .expect("recipes dir")
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".rhai").map(str::to_string))
        .filter(|n| n != "local" && n != "shell")
        .collect();
    for name in &builtin {
        assert!(
            recipes.contains(&name.as_str()),
            "recipe `{name}` has no example service in the catalogue tests"
        );
    }
}

#[test]
fn check_reports_mistakes_against_the_declared_fields() {
    let r = Test::new()
        .file(
            "a/pilum.yaml",
            "name: a\nrecipe: gcp-cloud-run\nregion: us-central1\ncloud_run:\n  memroy: 1Gi\n",
        )
        .file("b/pilum.yaml", "name: b\nrecipe: fly\nfly:\n  app: x\n  strategy: yolo\n")
        .file(
            "c/pilum.yaml",
            "name: c\nrecipe: aws-ecs-fargate\necs:\n  account_id: 1\n  cluster: prod\n",
        )
        .args(["check"])
        .run()
        .code(1);
    let all = format!("{}{}", r.stdout, r.stderr);
    for needle in ["`cloud_run.project`", "`cloud_run.memroy`", "yolo", "`ecs.account_id`"] {
        assert!(all.contains(needle), "`{needle}` not reported:\n{all}");
    }
}

#[test]
fn every_stdlib_module_of_the_catalogue_imports_and_works() {
    let script = r#"
        import "registry" as registry;
        import "checksum" as checksum;
        import "github" as github;
        import "pkg" as pkg;
        print(registry::image(#{ kind: "artifact-registry", project: "p", region: "europe-west1", repository: "apps" }, "api", "1"));
        print(registry::image(#{ kind: "ecr", account: "123", region: "us-east-1" }, "api", "1"));
        print(registry::image(#{ kind: "acr", name: "acme" }, "api", "1"));
        print(registry::image(#{ kind: "ghcr", owner: "Acme" }, "api", "1"));
        print(registry::image(#{ kind: "dockerhub", username: "acme" }, "api", "1"));
        print(github::asset_url("acme/hello", "v1", "a.tar.gz"));
        print(pkg::kv_list(#{ B: "2", A: "x,y" }));
        print(pkg::seconds("1h2m3s"));
        print(pkg::render("{os}-{arch}", #{ os: "linux", arch: "arm64" }));
        let ctx = #{ dry_run: false, tag: "v2.0.0", fields: #{} };
        print(pkg::version(ctx));
        fs::write("a.txt", "abc");
        print(checksum::write_sums(ctx, ["a.txt"], "sums.txt")["a.txt"]);
        registry::host(#{ kind: "quay" });
    "#;
    let r = Test::new().file("m.rhai", script).args(["run", "m.rhai"]).run();
    assert_eq!(
        r.stdout,
        "europe-west1-docker.pkg.dev/p/apps/api:1\n123.dkr.ecr.us-east-1.amazonaws.com/api:1\nacme.azurecr.io/api:1\n\
         ghcr.io/acme/api:1\ndocker.io/acme/api:1\nhttps://github.com/acme/hello/releases/download/v1/a.tar.gz\n\
         ^|^A=x,y|B=2\n3723\nlinux-arm64\n2.0.0\nba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n"
    );
    assert_eq!(r.status, 1);
    assert!(r.stderr.contains("unknown registry kind `quay`"), "{}", r.stderr);
}

#[test]
fn registry_logins_pass_tokens_on_stdin_only() {
    let t = Test::new()
        .file(
            "login.rhai",
            r#"import "registry" as registry;
               registry::login(#{ kind: "dockerhub", username: "acme", token_env: "HUB_TOKEN" });
               registry::login(#{ kind: "ghcr", owner: "acme", username: "ci", token_env: "GHCR_TOKEN" });
               registry::login(#{ kind: "ecr", account: "123456789012", region: "eu-west-1" });
               registry::login(#{ kind: "acr", name: "acmecr" });
               registry::login(#{ kind: "artifact-registry", region: "europe-west1" });"#,
        )
        .fake("docker", &strict("docker", r#"[ "$1" = login ] && cat >> "$(dirname "$0")/../.calls/docker.stdin" && echo >> "$(dirname "$0")/../.calls/docker.stdin"; :"#))
        .fake("aws", &strict("aws", "printf ecr-secret-pw"))
        .fake("az", &strict("az", ":"))
        .fake("gcloud", &strict("gcloud", ":"))
        .env("HUB_TOKEN", "dckr_pat_SECRET")
        .env("GHCR_TOKEN", "ghp_SECRET_login")
        .args(["run", "-v", "login.rhai"]);
    let r = t.run().success();
    let docker = t.calls("docker");
    let argv = format!("{docker:?}");
    for secret in ["dckr_pat_SECRET", "ghp_SECRET_login", "ecr-secret-pw"] {
        assert!(!argv.contains(secret), "{argv}");
        assert!(
            !r.stdout.contains(secret) && !r.stderr.contains(secret),
            "{}{}",
            r.stdout,
            r.stderr
        );
    }
    assert_eq!(
        docker,
        [
            ["login", "--username", "acme", "--password-stdin", "docker.io"],
            ["login", "--username", "ci", "--password-stdin", "ghcr.io"],
            [
                "login",
                "--username",
                "AWS",
                "--password-stdin",
                "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
            ],
        ]
    );
    let stdin =
        std::fs::read_to_string(t.path().join(".calls/docker.stdin")).expect("stdin recorded");
    assert_eq!(stdin, "dckr_pat_SECRET\nghp_SECRET_login\necr-secret-pw\n");
    assert_eq!(t.calls("az"), [["acr", "login", "--name", "acmecr"]]);
    assert_eq!(
        t.calls("gcloud"),
        [["auth", "configure-docker", "europe-west1-docker.pkg.dev", "--quiet"]]
    );
}

#[test]
fn dry_runs_need_no_credentials() {
    for mut case in all_cases() {
        let secrets: Vec<&str> = case.secrets.iter().chain(&case.argv_secrets).copied().collect();
        case.env.retain(|(_, v)| !secrets.contains(v));
        let t = case.project();
        let r = super::harness::run_with(&t, &["dry-run", "--tag", super::harness::TAG]);
        assert_eq!(
            r.status, 0,
            "dry-run of `{}` without credentials failed\n{}\n{}",
            case.name, r.stdout, r.stderr
        );
    }
}

/// `pilum init` knows every catalogue recipe with its declared fields: a service created
/// non-interactively from the required fields alone passes `pilum check`.
#[test]
fn init_creates_a_valid_service_for_every_recipe() {
    let t = Test::new();
    let list = super::harness::run_with(&t, &["list", "--recipes", "--json"]);
    assert_eq!(list.status, 0, "{}", list.stderr);
    let recipes: serde_json::Value =
        serde_json::from_str(&list.stdout).expect("JSON list of recipes");
    let recipes = recipes.as_array().expect("array");
    assert!(recipes.len() >= 20, "{}", list.stdout);
    for r in recipes {
        let name = r["name"].as_str().expect("name");
        if name == "local" || name == "shell" {
            continue; // the deploy pipeline's recipes, tested with it
        }
        let mut args =
            vec!["init".to_string(), "--no-input".into(), "--recipe".into(), name.into()];
        for f in r["fields"].as_array().expect("fields") {
            if f["required"] != true {
                continue;
            }
            let value = match f["type"].as_str() {
                Some("array") => "[]",
                Some("map") => "{}",
                Some("int") | Some("float") => "1",
                Some("bool") => "true",
                _ => "x",
            };
            args.push("--set".into());
            args.push(format!("{}={value}", f["name"].as_str().expect("field name")));
        }
        // Per-region recipes refuse to `init` without one; the others accept it as well.
        args.push("--set".into());
        args.push("region=us-central1".into());
        args.push(format!("services/{name}"));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = super::harness::run_with(&t, &args);
        assert_eq!(r.status, 0, "`pilum {}` failed:\n{}", args.join(" "), r.stderr);
        let yaml = t.path().join(format!("services/{name}/pilum.yaml"));
        let text = std::fs::read_to_string(&yaml).expect("init wrote pilum.yaml");
        assert!(text.contains(&format!("recipe: {name}\nregion: us-central1\n")), "{text}");
    }
    let r = super::harness::run_with(&t, &["check"]);
    assert_eq!(r.status, 0, "{}\n{}", r.stdout, r.stderr);
}

/// `secret: true` makes the variable a field names required for a real run: a missing one is
/// refused before anything runs, with exit 2. `check`, `plan` and dry runs do not need it.
#[test]
fn a_missing_secret_is_refused_before_anything_runs() {
    let mut case = containers::fly();
    case.env.retain(|(k, _)| *k != "FLY_API_TOKEN");
    let t = case.project();
    let r = super::harness::run_with(&t, &["deploy", "--tag", super::harness::TAG]);
    assert_eq!(r.status, 2, "{}\n{}", r.stdout, r.stderr);
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(
        all.contains(
            "secret `FLY_API_TOKEN` of service `edge` is not set (`fly.token_env` of recipe `fly`)"
        ),
        "{all}"
    );
    assert!(all.contains("svc/pilum.yaml"), "{all}");
    assert!(all.contains("help: export `FLY_API_TOKEN` before deploying"), "{all}");
    assert!(t.calls("docker").is_empty() && t.calls("flyctl").is_empty(), "nothing ran");
    for args in [&["check"][..], &["plan"], &["dry-run", "--tag", "v1"]] {
        super::harness::run_with(&t, args).success();
    }
    // A secret field pointed at another variable names that one.
    let t = Test::new()
        .file(
            "svc/pilum.yaml",
            "name: edge\nrecipe: fly\nfly:\n  app: acme-edge\n  token_env: EDGE_FLY_TOKEN\n",
        )
        .file("svc/Dockerfile", "FROM scratch\n");
    let r = super::harness::run_with(&t, &["deploy", "--tag", "v1"]);
    assert_eq!(r.status, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("secret `EDGE_FLY_TOKEN`") && r.stderr.contains("svc/pilum.yaml:5"),
        "{}",
        r.stderr
    );
}
