//! Release and package recipes: GitHub releases, Homebrew, npm, PyPI, crates.io, NuGet, deb,
//! rpm, Scoop and Chocolatey — with the artefacts checked by real tools where this machine has
//! them (`dpkg-deb`, `rpm`, `ruby -c`, `sha256sum`, `tar`, `git`).

use std::path::Path;
use std::process::Command;

use super::harness::{Case, TAG, git_show, run_with, sha256sum};

/// A fake `go build -o <out>`: writes a small executable naming the target platform.
const GO: &str = r#"out=""; while [ $# -gt 0 ]; do [ "$1" = "-o" ] && out="$2"; shift; done
printf '#!/bin/sh\necho "hello %s/%s"\n' "$GOOS" "$GOARCH" > "$out" && chmod +x "$out""#;

/// A fake `gh`: the tag is on the remote, no release exists yet; `create` prints the release
/// URL like gh does.
pub(super) const GH: &str = r#"case "$1 $2" in
  "release view") echo 'release not found' >&2; exit 1 ;;
  "release create") echo "https://github.com/acme/hello/releases/tag/$3" ;;
  "api repos/acme/hello/git/ref/tags/v1.2.3") printf '{"ref":"refs/tags/v1.2.3","object":{"sha":"0123456789abcdef0123456789abcdef01234567","type":"commit"}}' ;;
  api*) printf '{"message":"Not Found","status":"404"}'; echo 'gh: Not Found (HTTP 404)' >&2; exit 1 ;;
esac"#;

fn run(args: &[&str], dir: &Path) -> String {
    let out = Command::new(args[0]).args(&args[1..]).current_dir(dir).output().unwrap_or_else(|e| {
        panic!("cannot run `{}` ({e}): the artefact checks need it (`apt-get install -y rpm ruby`, as `.ci/run` does)", args[0])
    });
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub(super) fn github_release(gh: &str, force: bool) -> Case {
    Case::new(
        "github-release",
        &format!(
            "name: hello\nrecipe: github-release\ngithub_release:\n  repo: acme/hello\n  notes_file: CHANGELOG.md\n  \
             build_command: mkdir -p dist && printf linux > dist/hello-linux.tar.gz && printf mac > dist/hello-darwin.tar.gz\n  \
             assets: [\"dist/*.tar.gz\"]\n  force: {force}\n"
        ),
    )
    .file("svc/CHANGELOG.md", "## 1.2.3\n- fixes\n")
    .fake("gh", gh)
    .secret("GITHUB_TOKEN", "ghp_SECRET_release_token")
    .command("publish")
}

pub(super) fn homebrew() -> Case {
    Case::new(
        "homebrew",
        "name: hello\nrecipe: homebrew\nhomebrew:\n  formula: hello-cli\n  tap: acme/homebrew-tap\n  \
         tap_url: file://[ROOT]/remote/tap.git\n  repo: acme/hello\n  description: 'Says \"hello\" to #everyone'\n  \
         homepage: https://example.com/hello\n  license: MIT\n  build_command: go build -o {output} ./cmd/hello\n  \
         extra_files: [README.md]\n",
    )
    .file("svc/README.md", "# hello\n")
    .fake("go", GO)
    .fake("gh", GH)
    .real("git")
    .repo("tap")
    .secret("GITHUB_TOKEN", "ghp_SECRET_release_token")
    .secret("HOMEBREW_TAP_GITHUB_TOKEN", "ghp_SECRET_tap_token")
}

pub(super) fn npm() -> Case {
    Case::new(
        "npm",
        "name: web-sdk\nrecipe: npm\nnpm:\n  access: public\n  tag: next\n  provenance: true\n  build_script: build\n",
    )
    .file("svc/package.json", "{\"name\": \"@acme/web-sdk\", \"version\": \"1.2.3\"}\n")
    .fake("npm", ":")
    .secret("NPM_TOKEN", "npm_SECRET_token")
}

pub(super) fn pypi_uv() -> Case {
    Case::new("pypi", "name: hello-py\nrecipe: pypi\npypi:\n  skip_existing: true\n")
        .file("svc/pyproject.toml", "[project]\nname = \"hello\"\nversion = \"1.2.3\"\n")
        .file("svc/dist/hello-0.9.0.tar.gz", "stale")
        .fake(
            "uv",
            r#"case "$1" in
  build) mkdir -p dist && : > dist/hello-1.2.3.tar.gz && : > dist/hello-1.2.3-py3-none-any.whl ;;
  publish) [ "$UV_PUBLISH_TOKEN" = "pypi-SECRET-token" ] || { echo "no token in UV_PUBLISH_TOKEN" >&2; exit 1; } ;;
esac"#,
        )
        .secret("PYPI_TOKEN", "pypi-SECRET-token")
}

pub(super) fn pypi_twine() -> Case {
    Case::new(
        "pypi",
        "name: hello-py\nrecipe: pypi\npypi:\n  tool: twine\n  repository_url: https://test.pypi.org/legacy/\n",
    )
    .file("svc/pyproject.toml", "[project]\nname = \"hello\"\nversion = \"1.2.3\"\n")
    .fake("python3", r#"[ "$2" = build ] && mkdir -p dist && : > dist/hello-1.2.3.tar.gz && : > dist/hello-1.2.3-py3-none-any.whl"#)
    .fake(
        "twine",
        r#"[ "$1" = upload ] && { [ "$TWINE_USERNAME" = __token__ ] && [ "$TWINE_PASSWORD" = "pypi-SECRET-token" ] || { echo "no token" >&2; exit 1; }; }; :"#,
    )
    .secret("PYPI_TOKEN", "pypi-SECRET-token")
}

/// A fake `cargo`: `--locked` without a `Cargo.lock` (here or above, up to the project root)
/// fails as cargo does; `publish` needs the token cargo reads for the registry
/// (`CARGO_REGISTRY_TOKEN` for crates.io, `CARGO_REGISTRIES_<NAME>_TOKEN` for `--registry`);
/// `metadata` describes the crate of `svc/Cargo.toml`.
pub(super) const CARGO: &str = r#"case " $* " in *" --locked "*)
  d=$(pwd); while [ ! -f "$d/Cargo.lock" ] && [ "$d" != "[ROOT]" ] && [ "$d" != / ]; do d=$(dirname "$d"); done
  [ -f "$d/Cargo.lock" ] || { echo "error: cannot create the lock file $(pwd)/Cargo.lock because --locked was passed to prevent this" >&2; exit 101; } ;;
esac
case "$1" in
  metadata) v=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml)
    printf '{"packages":[{"name":"hello-core","version":"%s","manifest_path":"%s/Cargo.toml"}],"workspace_root":"%s"}' "$v" "$(pwd)" "$(pwd)" ;;
  publish) var=CARGO_REGISTRY_TOKEN; prev=''
    for a in "$@"; do [ "$prev" = --registry ] && var="CARGO_REGISTRIES_$(printf '%s' "$a" | tr 'a-z-' 'A-Z_')_TOKEN"; prev=$a; done
    eval "tok=\${$var:-}"; [ "$tok" = "cio_SECRET_token" ] || { echo "error: no token found for the registry, please run \`cargo login\` or set $var" >&2; exit 101; } ;;
esac"#;

pub(super) fn crates_io() -> Case {
    Case::new("crates-io", "name: hello-rs\nrecipe: crates-io\ncrates_io:\n  package: hello-core\n  features: [cli, json]\n")
        .file("svc/Cargo.toml", "[package]\nname = \"hello-core\"\nversion = \"1.2.3\"\n")
        .fake("cargo", CARGO)
        .secret("CARGO_REGISTRY_TOKEN", "cio_SECRET_token")
}

pub(super) fn nuget() -> Case {
    Case::new(
        "nuget",
        "name: hello-net\nrecipe: nuget\nnuget:\n  project: src/Hello/Hello.csproj\n",
    )
    .file("svc/src/Hello/Hello.csproj", "<Project Sdk=\"Microsoft.NET.Sdk\" />\n")
    .fake("dotnet", ":")
    .argv_secret("NUGET_API_KEY", "oy2_SECRET_nuget_key")
}

const BUILD_HELLO: &str = "mkdir -p build && printf '#!/bin/sh\\necho hello\\n' > build/hello";

pub(super) fn deb() -> Case {
    Case::new(
        "deb",
        &format!(
            "name: hello\nrecipe: deb\ndeb:\n  maintainer: Acme Ops <ops@example.com>\n  description: |\n    Greets the world\n    \
             A longer description.\n\n    With a second paragraph.\n  depends: [\"libc6 (>= 2.31)\"]\n  homepage: https://example.com/hello\n  \
             build_command: \"{BUILD_HELLO}\"\n  files:\n    - {{ src: build/hello, dest: /usr/bin/hello, mode: \"0755\" }}\n    \
             - {{ src: README.md, dest: /usr/share/doc/hello/README.md }}\n"
        ),
    )
    .file("svc/README.md", "# hello\n")
    .real("dpkg-deb")
    .command("publish")
}

pub(super) fn rpm() -> Case {
    Case::new(
        "rpm",
        &format!(
            "name: hello\nrecipe: rpm\nrpm:\n  summary: Greets the world (100% of it)\n  license: MIT\n  url: https://example.com/hello\n  \
             requires: [glibc]\n  build_command: \"{BUILD_HELLO}\"\n  files:\n    \
             - {{ src: build/hello, dest: /usr/bin/hello, mode: \"0755\" }}\n    - {{ src: README.md, dest: /usr/share/doc/hello/README.md }}\n"
        ),
    )
    .file("svc/README.md", "# hello\n")
    .real("rpmbuild")
    .command("publish")
}

pub(super) fn scoop() -> Case {
    Case::new(
        "scoop",
        "name: hello\nrecipe: scoop\nscoop:\n  bucket: acme/scoop-bucket\n  bucket_url: file://[ROOT]/remote/bucket.git\n  \
         repo: acme/hello\n  description: Says hello\n  homepage: https://example.com/hello\n  license: MIT\n  \
         build_command: go build -o {output} ./cmd/hello\n",
    )
    .fake("go", GO)
    .fake("gh", GH)
    .real("git")
    .repo("bucket")
    .secret("GITHUB_TOKEN", "ghp_SECRET_release_token")
    .secret("SCOOP_BUCKET_GITHUB_TOKEN", "ghp_SECRET_bucket_token")
}

pub(super) fn chocolatey() -> Case {
    Case::new(
        "chocolatey",
        "name: hello\nrecipe: chocolatey\nchocolatey:\n  authors: Acme & Friends\n  description: Says <hello>\n  \
         project_url: https://example.com/hello\n  repo: acme/hello\n  tags: [cli, greeting]\n  \
         build_command: go build -o {output} ./cmd/hello\n",
    )
    .fake("go", GO)
    .fake("gh", GH)
    .fake("choco", ":")
    .secret("GITHUB_TOKEN", "ghp_SECRET_release_token")
    .argv_secret("CHOCOLATEY_API_KEY", "choco_SECRET_key")
}

#[test]
fn github_release_checksums_match_the_assets() {
    let (t, _, _) = github_release(GH, false).run();
    let sums = t.path().join(".pilum/build/release/hello/checksums.txt");
    let text = std::fs::read_to_string(&sums).expect("checksums written");
    assert_eq!(text.lines().count(), 2, "{text}");
    // `sha256sum -c` next to the assets verifies every line.
    std::fs::copy(&sums, t.path().join("svc/dist/checksums.txt")).expect("copy");
    let ok = run(&["sha256sum", "-c", "checksums.txt"], &t.path().join("svc/dist"));
    assert_eq!(ok, "hello-darwin.tar.gz: OK\nhello-linux.tar.gz: OK\n");
    let create = t.calls("gh").into_iter().find(|a| a[1] == "create").expect("created");
    assert_eq!(create[..3], ["release", "create", TAG]);
    assert!(create.iter().any(|a| a.ends_with("/checksums.txt")), "{create:?}");
}

#[test]
fn github_release_that_exists_is_a_clear_error_without_force() {
    let t =
        github_release(r#"[ "$1 $2" = "release view" ] && echo '{"url":"x"}'; :"#, false).project();
    let r = run_with(&t, &["publish", "--tag", TAG]);
    assert_eq!(r.status, 1, "{}\n{}", r.stdout, r.stderr);
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(all.contains("release `v1.2.3` already exists in `acme/hello`"), "{all}");
    assert!(
        all.contains("help: set `force: true` to upload the assets to the existing release"),
        "{all}"
    );
    let gh = t.calls("gh");
    assert!(
        gh.iter().all(|a| a[0] == "api" || a[1] == "view"),
        "nothing was created or uploaded: {gh:?}"
    );
}

#[test]
fn github_release_with_force_uploads_with_clobber_to_the_existing_release() {
    let t =
        github_release(r#"[ "$1 $2" = "release view" ] && echo '{"url":"x"}'; :"#, true).project();
    run_with(&t, &["publish", "--tag", TAG]).success();
    let gh: Vec<_> = t.calls("gh").into_iter().filter(|a| a[0] != "api").collect();
    assert_eq!(gh.len(), 2, "{gh:?}");
    let upload = &gh[1];
    assert_eq!(upload[..3], ["release", "upload", TAG]);
    assert_eq!(upload[upload.len() - 3..], ["--clobber", "--repo", "acme/hello"]);
    assert!(!gh.iter().any(|a| a[1] == "create" || a[1] == "delete"), "{gh:?}");
}

#[test]
fn homebrew_formula_is_valid_ruby_and_points_at_the_released_archives() {
    let (t, _, _) = homebrew().run();
    let tap = t.path().join("remote/tap.git");
    let formula = git_show(&tap, "main:Formula/hello-cli.rb");
    assert!(formula.contains("\nclass HelloCli < Formula\n"), "{formula}");
    assert!(formula.contains(r#"desc "Says \"hello\" to \#everyone""#), "{formula}");
    assert!(formula.contains("  version \"1.2.3\"\n"), "{formula}");
    assert!(formula.contains("system \"#{bin}/hello-cli\", \"--version\""), "{formula}");
    let log = git_show(&tap, "main");
    assert!(log.contains("hello-cli 1.2.3"), "{log}");

    let file = t.path().join("hello-cli.rb");
    std::fs::write(&file, &formula).expect("write formula");
    assert_eq!(run(&["ruby", "-c", "hello-cli.rb"], t.path()).trim(), "Syntax OK");

    let dist = t.path().join(".pilum/build/homebrew/hello/dist");
    for (os, arch, block) in [
        ("darwin", "arm64", "on_arm"),
        ("darwin", "amd64", "on_intel"),
        ("linux", "arm64", "on_arm"),
        ("linux", "amd64", "on_intel"),
    ] {
        let name = format!("hello-cli-1.2.3-{os}-{arch}.tar.gz");
        let sum = sha256sum(&dist.join(&name));
        let url = format!("https://github.com/acme/hello/releases/download/{TAG}/{name}");
        let expected =
            format!("    {block} do\n      url \"{url}\"\n      sha256 \"{sum}\"\n    end");
        assert!(formula.contains(&expected), "missing\n{expected}\nin\n{formula}");
        let listing = run(&["tar", "-tzf", &name], &dist);
        assert_eq!(listing, "hello-cli\nREADME.md\n", "archive layout of {name}");
    }
    assert!(formula.contains("  on_macos do\n"), "{formula}");
    assert!(formula.contains("  on_linux do\n"), "{formula}");
    std::fs::copy(dist.join("checksums.txt"), dist.join("verify.txt")).expect("copy");
    let ok = run(&["sha256sum", "-c", "verify.txt"], &dist);
    assert_eq!(ok.lines().filter(|l| l.ends_with(": OK")).count(), 4, "{ok}");
    let create = t.calls("gh").into_iter().find(|a| a[1] == "create").expect("release created");
    assert_eq!(create.iter().filter(|a| a.ends_with(".tar.gz")).count(), 4, "{create:?}");
}

#[test]
fn homebrew_class_names_follow_homebrew() {
    // Formulary.class_s: capitalise, drop `-_.` and spaces upper-casing the next character,
    // `+` → `x`, `@<digit>` → `AT<digit>`.
    let script = r#"
        import "pkg" as pkg;
        for n in ["pilum", "pilum-cli", "foo_bar.baz", "foo@1.2", "gtk+3", "HTTPie"] { print(pkg::formula_class(n)); }
        pkg::formula_class("3d-tool");
    "#;
    let r = crate::common::Test::new().file("c.rhai", script).args(["run", "c.rhai"]).run();
    assert_eq!(r.stdout, "Pilum\nPilumCli\nFooBarBaz\nFooAT12\nGtkx3\nHttpie\n");
    assert_ne!(r.status, 0);
    assert!(
        r.stderr.contains("formula name `3d-tool` does not give a valid Ruby class name"),
        "{}",
        r.stderr
    );
}

#[test]
fn npm_token_is_referenced_not_written() {
    let (t, _, _) = npm().run();
    let rc =
        std::fs::read_to_string(t.path().join(".pilum/build/npm/web-sdk/.npmrc")).expect("npmrc");
    assert_eq!(
        rc,
        "registry=https://registry.npmjs.org/\n//registry.npmjs.org/:_authToken=${NPM_TOKEN}\n"
    );
}

#[test]
fn pypi_uploads_only_this_build() {
    let (t, _, _) = pypi_uv().run();
    let publish = t.calls("uv").into_iter().find(|a| a[0] == "publish").expect("published");
    assert!(
        !publish.iter().any(|a| a.contains("0.9.0")),
        "a stale file from `dist/` was uploaded: {publish:?}"
    );
    assert_eq!(publish.iter().filter(|a| a.contains("1.2.3")).count(), 2, "{publish:?}");
}

#[test]
fn deb_passes_dpkg_deb_and_contains_the_declared_files() {
    let (t, _, _) = deb().run();
    let deb = t.path().join("svc/dist/hello_1.2.3_amd64.deb");
    let info = run(&["dpkg-deb", "--info", deb.to_str().expect("utf-8")], t.path());
    for line in [
        " Package: hello\n",
        " Version: 1.2.3\n",
        " Architecture: amd64\n",
        " Maintainer: Acme Ops <ops@example.com>\n",
        " Depends: libc6 (>= 2.31)\n",
        " Description: Greets the world\n  A longer description.\n  .\n  With a second paragraph.\n",
    ] {
        assert!(info.contains(line), "missing {line:?} in\n{info}");
    }
    let contents = run(&["dpkg-deb", "--contents", deb.to_str().expect("utf-8")], t.path());
    let bin = contents
        .lines()
        .find(|l| l.ends_with("./usr/bin/hello"))
        .unwrap_or_else(|| panic!("{contents}"));
    assert!(bin.starts_with("-rwxr-xr-x root/root"), "{bin}");
    let doc = contents
        .lines()
        .find(|l| l.ends_with("./usr/share/doc/hello/README.md"))
        .unwrap_or_else(|| panic!("{contents}"));
    assert!(doc.starts_with("-rw-r--r-- root/root"), "{doc}");
}

#[test]
fn rpm_passes_rpm_query_and_contains_the_declared_files() {
    let (t, _, _) = rpm().run();
    let rpm = t.path().join("svc/dist/hello-1.2.3-1.x86_64.rpm");
    let info = run(&["rpm", "-qip", rpm.to_str().expect("utf-8")], t.path());
    for field in [
        "Name        : hello",
        "Version     : 1.2.3",
        "Release     : 1",
        "Architecture: x86_64",
        "License     : MIT",
        "Summary     : Greets the world (100% of it)",
    ] {
        assert!(info.contains(field), "missing {field:?} in\n{info}");
    }
    let files = run(&["rpm", "-qlvp", rpm.to_str().expect("utf-8")], t.path());
    let bin =
        files.lines().find(|l| l.ends_with(" /usr/bin/hello")).unwrap_or_else(|| panic!("{files}"));
    assert!(bin.starts_with("-rwxr-xr-x") && bin.contains(" root     root "), "{bin}");
    assert!(files.contains(" /usr/share/doc/hello/README.md"), "{files}");
    let requires = run(&["rpm", "-qRp", rpm.to_str().expect("utf-8")], t.path());
    assert!(requires.lines().any(|l| l == "glibc"), "{requires}");
}

#[test]
fn scoop_manifest_is_json_with_the_hashes_of_the_released_binaries() {
    let (t, _, _) = scoop().run();
    let text = git_show(&t.path().join("remote/bucket.git"), "main:bucket/hello.json");
    let m: serde_json::Value = serde_json::from_str(&text).expect("manifest is JSON");
    assert_eq!(m["version"], "1.2.3");
    assert_eq!(m["bin"], "hello.exe");
    assert_eq!(m["checkver"]["github"], "https://github.com/acme/hello");
    let dist = t.path().join(".pilum/build/scoop/hello/dist");
    for (key, arch) in [("64bit", "amd64"), ("arm64", "arm64")] {
        let file = format!("hello-1.2.3-windows-{arch}.exe");
        assert_eq!(m["architecture"][key]["hash"], sha256sum(&dist.join(&file)), "{key}");
        assert_eq!(
            m["architecture"][key]["url"],
            format!("https://github.com/acme/hello/releases/download/{TAG}/{file}#/hello.exe")
        );
        assert_eq!(
            m["autoupdate"]["architecture"][key]["url"],
            format!(
                "https://github.com/acme/hello/releases/download/v$version/hello-$version-windows-{arch}.exe#/hello.exe"
            )
        );
    }
}

#[test]
fn chocolatey_package_verifies_the_released_binary() {
    let (t, _, _) = chocolatey().run();
    let work = t.path().join(".pilum/build/chocolatey/hello/package");
    let nuspec = std::fs::read_to_string(work.join("hello.nuspec")).expect("nuspec");
    assert!(nuspec.contains("<authors>Acme &amp; Friends</authors>"), "{nuspec}");
    assert!(nuspec.contains("<description>Says &lt;hello&gt;</description>"), "{nuspec}");
    assert!(nuspec.contains("<version>1.2.3</version>"), "{nuspec}");
    assert!(nuspec.contains("<tags>cli greeting</tags>"), "{nuspec}");
    let install =
        std::fs::read_to_string(work.join("tools/chocolateyinstall.ps1")).expect("install script");
    let exe = t.path().join(".pilum/build/chocolatey/hello/dist/hello-1.2.3-windows-amd64.exe");
    assert!(install.contains(&format!("  Checksum64 = '{}'\n", sha256sum(&exe))), "{install}");
    assert!(install.contains(&format!(
        "  Url64bit = 'https://github.com/acme/hello/releases/download/{TAG}/hello-1.2.3-windows-amd64.exe'\n"
    )), "{install}");
    assert!(install.contains("Get-ChocolateyWebFile @packageArgs"), "{install}");
}

#[test]
fn package_mistakes_are_clear_errors() {
    // A Debian version must start with a digit: such a tag is refused before `dpkg-deb` runs.
    let t = deb().project();
    let r = run_with(&t, &["publish", "--tag", "build-42"]);
    assert_eq!(r.status, 1, "{}\n{}", r.stdout, r.stderr);
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(all.contains("Debian version `build-42` must start with a digit"), "{all}");
    assert!(all.contains("help: pass `--tag v1.2.3` or set `version` under `deb:`"), "{all}");
    assert!(t.calls("dpkg-deb").is_empty());

    // A `files` entry without `dest`.
    let t = Case::new(
        "rpm",
        "name: x\nrecipe: rpm\nrpm:\n  summary: s\n  license: MIT\n  files:\n    - { src: a }\n",
    )
    .real("rpmbuild")
    .project();
    let r = run_with(&t, &["publish", "--tag", TAG]);
    assert_eq!(r.status, 1);
    assert!(
        format!("{}{}", r.stdout, r.stderr)
            .contains("every entry of `files` needs `src` and `dest`"),
        "{}",
        r.stderr
    );
    assert!(t.calls("rpmbuild").is_empty());

    // A platform that is not `os-arch`.
    let t = Case::new(
        "homebrew",
        "name: x\nrecipe: homebrew\nhomebrew:\n  tap: a/b\n  description: d\n  homepage: https://x\n  build_command: 'true'\n  platforms: [macos]\n",
    )
    .project();
    let r = run_with(&t, &["deploy", "--tag", TAG]);
    assert_eq!(r.status, 1);
    assert!(
        format!("{}{}", r.stdout, r.stderr).contains("platform `macos` is not `os-arch`"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_tap_url_with_credentials_is_refused_without_showing_them() {
    let mut case = homebrew();
    case.files[0].1 = case.files[0].1.replace(
        "tap_url: file://[ROOT]/remote/tap.git",
        "tap_url: https://x-access-token:ghp_SECRET_in_url@github.com/acme/homebrew-tap.git",
    );
    let t = case.project();
    let r = run_with(&t, &["deploy", "--tag", TAG]);
    assert_eq!(r.status, 1, "{}\n{}", r.stdout, r.stderr);
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(all.contains("the repository URL contains credentials"), "{all}");
    assert!(all.contains("`HOMEBREW_TAP_GITHUB_TOKEN`"), "{all}");
    assert!(!all.contains("ghp_SECRET_in_url"), "{all}");
    assert!(t.calls("git").is_empty(), "nothing was cloned or pushed");
}

/// `registry:` publishes to another registry: cargo reads its token from
/// `CARGO_REGISTRIES_<NAME>_TOKEN` (`CARGO_REGISTRY_TOKEN` is crates.io's only).
#[test]
fn crates_io_publishes_to_another_registry_with_that_registrys_token() {
    let t = Case::new(
        "crates-io",
        "name: hello-rs\nrecipe: crates-io\ncrates_io:\n  registry: acme-internal\n  token_env: ACME_CARGO_TOKEN\n",
    )
    .file("svc/Cargo.toml", "[package]\nname = \"hello-core\"\nversion = \"1.2.3\"\n")
    .fake("cargo", CARGO)
    .secret("ACME_CARGO_TOKEN", "cio_SECRET_token")
    .project();
    run_with(&t, &["publish", "--tag", TAG]).success();
    let publish = t.calls("cargo").into_iter().find(|a| a[0] == "publish").expect("published");
    assert!(publish.windows(2).any(|w| w == ["--registry", "acme-internal"]), "{publish:?}");
}

/// `--locked` only when a `Cargo.lock` exists (libraries often commit none).
#[test]
fn crates_io_verifies_with_locked_only_when_there_is_a_lockfile() {
    let t = crates_io().project();
    run_with(&t, &["publish", "--tag", TAG]).success();
    assert!(
        t.calls("cargo").iter().all(|a| !a.contains(&"--locked".to_string())),
        "{:?}",
        t.calls("cargo")
    );

    let t = crates_io().file("svc/Cargo.lock", "version = 4\n").project();
    run_with(&t, &["publish", "--tag", TAG]).success();
    for a in t.calls("cargo").iter().filter(|a| a[0] == "package" || a[0] == "publish") {
        assert!(a.contains(&"--locked".to_string()), "{a:?}");
    }
}

/// `skip_existing` with uv checks the repository's simple index (`…/simple/`), not its
/// upload URL (the strict `uv` refuses an upload URL there).
#[test]
fn pypi_skip_existing_checks_the_simple_index_of_the_repository() {
    let mut case = pypi_uv();
    case.files[0].1 = case.files[0].1.replace(
        "  skip_existing: true\n",
        "  skip_existing: true\n  repository_url: https://test.pypi.org/legacy/\n",
    );
    let t = case.project();
    run_with(&t, &["publish", "--tag", TAG]).success();
    let publish = t.calls("uv").into_iter().find(|a| a[0] == "publish").expect("published");
    assert!(
        publish.windows(2).any(|w| w == ["--publish-url", "https://test.pypi.org/legacy/"]),
        "{publish:?}"
    );
    assert!(
        publish.windows(2).any(|w| w == ["--check-url", "https://test.pypi.org/simple/"]),
        "{publish:?}"
    );
}

/// A prerelease tag becomes `1.2.3~rc.1`, which dpkg sorts before `1.2.3` (with `-`, dpkg
/// would read revision `rc.1` of `1.2.3`, sorting after the release).
#[test]
fn deb_prereleases_sort_before_the_release() {
    let t = deb().project();
    run_with(&t, &["publish", "--tag", "v1.2.3-rc.1"]).success();
    let deb = t.path().join("svc/dist/hello_1.2.3~rc.1_amd64.deb");
    let version = run(&["dpkg-deb", "--field", deb.to_str().expect("utf-8"), "Version"], t.path());
    assert_eq!(version.trim(), "1.2.3~rc.1");
    let lt = Command::new("dpkg")
        .args(["--compare-versions", version.trim(), "lt", "1.2.3"])
        .status()
        .expect("run dpkg (apt-get install dpkg)");
    assert!(lt.success(), "`{}` must sort before 1.2.3", version.trim());
}

/// `release: false` without `repo` would write `https://github.com//releases/…` URLs: `check`
/// refuses it and names the field to set.
#[test]
fn scoop_and_chocolatey_without_a_release_need_the_repository() {
    for (recipe, section, rest) in [
        (
            "scoop",
            "scoop",
            "  bucket: a/b\n  description: d\n  homepage: https://x\n  license: MIT\n  build_command: 'true'\n",
        ),
        (
            "chocolatey",
            "chocolatey",
            "  authors: a\n  description: d\n  project_url: https://x\n  build_command: 'true'\n",
        ),
    ] {
        let yaml = format!("name: hello\nrecipe: {recipe}\n{section}:\n  release: false\n{rest}");
        let r = crate::common::Test::new().file("svc/pilum.yaml", &yaml).args(["check"]).run();
        assert_ne!(r.status, 0, "{recipe}: {}{}", r.stdout, r.stderr);
        let all = format!("{}{}", r.stdout, r.stderr);
        assert!(all.contains(&format!("`{section}.repo`")), "{recipe}: {all}");
        assert!(all.contains("svc/pilum.yaml"), "{recipe}: {all}");

        // With the repository set it is valid.
        let yaml = yaml.replace("  release: false\n", "  release: false\n  repo: acme/hello\n");
        crate::common::Test::new().file("svc/pilum.yaml", &yaml).args(["check"]).run().success();
    }
}

/// A tag that was never pushed: `gh release create` would create it from the default branch,
/// so the release would point at another commit than the one built. The release is refused
/// before anything is built, and `--verify-tag` guards the create itself.
#[test]
fn a_release_of_a_tag_missing_on_the_remote_is_refused_before_building() {
    let t = homebrew().project();
    let r = run_with(&t, &["deploy", "--tag", "v9.9.9"]);
    assert_eq!(r.status, 1, "{}\n{}", r.stdout, r.stderr);
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(all.contains("tag `v9.9.9` is not on the remote repository `acme/hello`"), "{all}");
    assert!(all.contains("help: push the tag first (`git push origin v9.9.9`)"), "{all}");
    assert!(t.calls("go").is_empty(), "nothing was built");
    assert!(t.calls("gh").iter().all(|a| a[0] == "api"), "{:?}", t.calls("gh"));

    let (t, _, _) = homebrew().run();
    let create =
        t.calls("gh").into_iter().find(|a| a[..2] == ["release", "create"]).expect("created");
    assert!(create.contains(&"--verify-tag".to_string()), "{create:?}");
}

/// npm, PyPI and crates.io check that the manifest's version is the one being released,
/// before building.
#[test]
fn packages_refuse_a_tag_that_is_not_the_manifest_version() {
    for (case, manifest, program) in [
        (npm(), "package.json", "npm"),
        (pypi_uv(), "pyproject.toml", "uv"),
        (crates_io(), "Cargo.toml", "cargo"),
    ] {
        let name = case.name;
        let t = case.project();
        let r = run_with(&t, &["publish", "--tag", "v1.3.0"]);
        assert_eq!(r.status, 1, "{name}: {}\n{}", r.stdout, r.stderr);
        let all = format!("{}{}", r.stdout, r.stderr);
        assert!(
            all.contains(&format!(
                "{manifest} has version `1.2.3`, but the tag `v1.3.0` releases `1.3.0`"
            )),
            "{name}: {all}"
        );
        assert!(all.contains("check_version: false"), "{name}: {all}");
        let built = t.calls(program);
        assert!(built.iter().all(|a| a[0] == "metadata"), "{name}: nothing was built: {built:?}");
    }
}
