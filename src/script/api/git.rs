//! `git::` — read-only repository queries (they also run under `--dry-run`). Commands run
//! from the call's working directory; paths returned are relative to the repository top level
//! (`git rev-parse --show-toplevel`) whatever the current directory is.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use rhai::{Array, Dynamic, Module, NativeCallContext};

use super::{RResult, check_live, func, process_err, rt, sandbox};
use crate::process::Command;
use crate::script::{CallCtx, Host};

/// Run git in `dir`; stdout on success, the rendered error otherwise.
fn git(ctx: &NativeCallContext, call: &CallCtx, dir: &PathBuf, args: &[&str]) -> RResult<String> {
    let mut argv = vec!["git".to_string()];
    argv.extend(args.iter().map(std::string::ToString::to_string));
    let mut cmd =
        Command::new(argv).dir(dir).cancel(call.cancel.clone()).env("GIT_TERMINAL_PROMPT", "0");
    if let Some(d) = call.deadline {
        cmd = cmd.deadline(d.at, d.after);
    }
    let out = cmd.run().map_err(|e| process_err(ctx, call, e))?;
    let stdout = out.stdout.clone();
    out.check().map_err(|e| rt(ctx, e.to_string()))?;
    Ok(stdout)
}

fn here(host: &Host, ctx: &NativeCallContext) -> RResult<(Arc<CallCtx>, PathBuf)> {
    let call = check_live(ctx)?;
    let dir = sandbox(host, &call, ".").map_err(|e| rt(ctx, e))?;
    Ok((call, dir))
}

fn top(ctx: &NativeCallContext, call: &CallCtx, dir: &PathBuf) -> RResult<PathBuf> {
    let out = git(ctx, call, dir, &["rev-parse", "--show-toplevel"]).map_err(|e| {
        if e.to_string().contains("not a git repository") {
            rt(ctx, "not inside a git repository\nhelp: run pilum in a git checkout, or `git init` first")
        } else {
            e
        }
    })?;
    Ok(PathBuf::from(out.trim_end()))
}

fn nul_list(out: &str) -> impl Iterator<Item = String> + '_ {
    out.split('\0').filter(|s| !s.is_empty()).map(str::to_string)
}

pub(crate) fn module(host: &Arc<Host>) -> Module {
    let mut m = Module::new();
    let h = host.clone();
    func!(
        &mut m,
        "root",
        ["String"],
        r#"
The repository top level (absolute path).

```rhai
let top = git::root();
```"#,
        move |ctx: NativeCallContext| -> RResult<String> {
            let (call, dir) = here(&h, &ctx)?;
            Ok(top(&ctx, &call, &dir)?.display().to_string())
        }
    );
    let h = host.clone();
    func!(
        &mut m,
        "sha",
        ["String"],
        r#"
The full SHA of `HEAD`.

```rhai
let tag = git::sha().sub_string(0, 12);
```"#,
        move |ctx: NativeCallContext| -> RResult<String> {
            let (call, dir) = here(&h, &ctx)?;
            Ok(git(&ctx, &call, &dir, &["rev-parse", "HEAD"])?.trim().to_string())
        }
    );
    let h = host.clone();
    func!(
        &mut m,
        "branch",
        ["String"],
        r#"
The current branch name, or `HEAD` when detached (as in most CI checkouts).

```rhai
if git::branch() == "main" { print("production"); }
```"#,
        move |ctx: NativeCallContext| -> RResult<String> {
            let (call, dir) = here(&h, &ctx)?;
            Ok(git(&ctx, &call, &dir, &["rev-parse", "--abbrev-ref", "HEAD"])?.trim().to_string())
        }
    );
    let h = host.clone();
    func!(
        &mut m,
        "is_shallow",
        ["bool"],
        r#"
Whether the clone is shallow (CI default), where merge bases may be missing.

```rhai
if git::is_shallow() { log::warn("shallow clone: set fetch-depth: 0"); }
```"#,
        move |ctx: NativeCallContext| -> RResult<bool> {
            let (call, dir) = here(&h, &ctx)?;
            Ok(git(&ctx, &call, &dir, &["rev-parse", "--is-shallow-repository"])?.trim() == "true")
        }
    );
    let h = host.clone();
    func!(
        &mut m,
        "tags",
        ["Array"],
        r#"
Tags pointing at `HEAD`, sorted.

```rhai
let release = git::tags().filter(|t| t.starts_with("v"));
```"#,
        move |ctx: NativeCallContext| -> RResult<Array> {
            let (call, dir) = here(&h, &ctx)?;
            let out = git(&ctx, &call, &dir, &["tag", "--points-at", "HEAD"])?;
            let mut tags: Vec<String> =
                out.lines().filter(|l| !l.is_empty()).map(str::to_string).collect();
            tags.sort_unstable();
            Ok(tags.into_iter().map(Dynamic::from).collect())
        }
    );
    let h = host.clone();
    func!(
        &mut m,
        "changed_files",
        ["base: String", "Array"],
        r#"
Files changed since the merge base with `base` — committed (`base...HEAD`), staged, unstaged
and untracked — as sorted paths relative to the repository top level (also when called from a
subdirectory). Fails with advice when a shallow clone lacks the merge base.

```rhai
let changed = git::changed_files("origin/main");
if changed.some(|f| f.starts_with("services/api/")) { print("api changed"); }
```"#,
        move |ctx: NativeCallContext, base: &str| -> RResult<Array> {
            let (call, dir) = here(&h, &ctx)?;
            let top = top(&ctx, &call, &dir)?;
            let mb = git(&ctx, &call, &top, &["merge-base", base, "HEAD"]);
            let mb = match mb {
                Ok(s) => s.trim().to_string(),
                Err(e) => {
                    let shallow = git(&ctx, &call, &top, &["rev-parse", "--is-shallow-repository"])
                        .map(|s| s.trim() == "true")
                        .unwrap_or(false);
                    let msg = if shallow {
                        format!(
                            "cannot find the merge base of `{base}` and `HEAD`: this clone is shallow\nhelp: fetch full history (GitHub Actions: `fetch-depth: 0` on actions/checkout) or `git fetch --unshallow`"
                        )
                    } else {
                        format!(
                            "cannot find the merge base of `{base}` and `HEAD`\nhelp: is `{base}` fetched? try `git fetch origin` first\ncaused by: {}",
                            e.to_string().lines().next().unwrap_or("")
                        )
                    };
                    return Err(rt(&ctx, msg));
                }
            };
            let range = format!("{mb}...HEAD");
            let mut files = BTreeSet::new();
            for args in [
                vec!["diff", "--name-only", "--no-renames", "-z", range.as_str()],
                vec!["diff", "--name-only", "--no-renames", "-z", "--cached"],
                vec!["diff", "--name-only", "--no-renames", "-z"],
                vec!["ls-files", "--others", "--exclude-standard", "-z"],
            ] {
                // Run from the top level: `ls-files` prints paths relative to the current directory.
                let out = git(&ctx, &call, &top, &args)?;
                files.extend(nul_list(&out));
            }
            Ok(files.into_iter().map(Dynamic::from).collect())
        }
    );
    m
}
