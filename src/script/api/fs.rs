//! `fs::` — files, confined to the project root: every path is taken by [`super::confine`]
//! (relative to the call's working directory; absolute paths outside the root and `..` escapes
//! are refused) and every file is opened, created or removed through
//! [`crate::script::sandbox::Sandbox`], which follows a symlink — on the way or at the end, for
//! reads and writes alike — only while it stays inside. Mutating calls are recorded instead of
//! run under `--dry-run`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rhai::{Array, Dynamic, Module, NativeCallContext};
use sha2::Digest;

use super::{RResult, check_live, confine, fs_error, func, rt, sandbox, string_array};
use crate::script::memory;
use crate::script::sandbox::{How, Sandbox};
use crate::script::{CallCtx, Event, Host, current, display_path};

fn path(host: &Host, ctx: &NativeCallContext, p: &str) -> RResult<(Sandbox, PathBuf)> {
    confine(host, &current(), p).map_err(|e| rt(ctx, e))
}

fn io(ctx: &NativeCallContext, what: &str, p: &str, e: std::io::Error) -> Box<rhai::EvalAltResult> {
    rt(ctx, fs_error_io(what, p, e))
}

fn fs_error_io(what: &str, p: &str, e: std::io::Error) -> String {
    format!("cannot {what} `{p}`: {}", e.to_string().to_lowercase())
}

/// Open a project file through the sandbox.
fn open(
    host: &Host,
    ctx: &NativeCallContext,
    p: &str,
    how: How,
    what: &str,
) -> RResult<std::fs::File> {
    let (sb, full) = path(host, ctx, p)?;
    sb.open(&full, how).map_err(|e| rt(ctx, fs_error(&sb, what, p, e)))
}

/// `f` if it is a regular file (not a directory, FIFO or socket).
fn regular(ctx: &NativeCallContext, p: &str, f: std::fs::File) -> RResult<std::fs::File> {
    match f.metadata() {
        Ok(m) if m.is_file() => Ok(f),
        Ok(m) if m.is_dir() => Err(rt(ctx, format!("cannot read `{p}`: it is a directory"))),
        Ok(_) => Err(rt(ctx, format!("cannot read `{p}`: it is not a regular file"))),
        Err(e) => Err(io(ctx, "read", p, e)),
    }
}

/// The text of a project file (`read`, and the readers that parse it).
fn read_text(host: &Host, ctx: &NativeCallContext, p: &str) -> RResult<String> {
    let mut f = regular(ctx, p, open(host, ctx, p, How::Read, "read")?)?;
    let len = f.metadata().map_or(0, |m| usize::try_from(m.len()).unwrap_or(usize::MAX));
    memory::check_room(len, &format!("reading `{p}`")).map_err(|e| rt(ctx, e))?;
    let mut text = String::with_capacity(len);
    f.read_to_string(&mut text).map_err(|e| io(ctx, "read", p, e))?;
    Ok(text)
}

fn dry(host: &Host, call: &str, detail: String) -> bool {
    if host.dry_run {
        host.emit(Event::DryRun { call, detail: &detail });
    }
    host.dry_run
}

/// Root-relative display with `/` separators.
fn rel(host: &Host, p: &Path) -> String {
    let root = host.root.canonicalize().unwrap_or_else(|_| host.root.clone());
    display_path(p, &root)
}

pub(crate) fn module(host: &Arc<Host>) -> Module {
    let mut m = Module::new();
    let h = host.clone();
    func!(
        &mut m,
        "read",
        ["path: String", "String"],
        r#"
Read a text file inside the project.

```rhai
let version = fs::read("VERSION");
version.trim();      // in place: `fs::read(…).trim()` would be ()
```"#,
        move |ctx: NativeCallContext, p: &str| -> RResult<String> { read_text(&h, &ctx, p) }
    );
    let h = host.clone();
    func!(
        &mut m,
        "read_json",
        ["path: String", "?"],
        r#"
Read a JSON file into maps and arrays.

```rhai
let pkg = fs::read_json("web/package.json");
print(pkg.version);
```"#,
        move |ctx: NativeCallContext, p: &str| -> RResult<Dynamic> {
            let text = read_text(&h, &ctx, p)?;
            super::json::parse(&text).map_err(|e| rt(&ctx, format!("{e} (in `{p}`)")))
        }
    );
    let h = host.clone();
    func!(
        &mut m,
        "read_yaml",
        ["path: String", "?"],
        r#"
Read a YAML file into maps and arrays.

```rhai
let svc = fs::read_yaml("services/api/pilum.yaml");
print(svc.name);
```"#,
        move |ctx: NativeCallContext, p: &str| -> RResult<Dynamic> {
            let text = read_text(&h, &ctx, p)?;
            super::yaml::parse(&text).map_err(|e| rt(&ctx, format!("{e} (in `{p}`)")))
        }
    );
    let h = host.clone();
    func!(
        &mut m,
        "write",
        ["path: String", "text: String", "()"],
        r#"
Write a text file (parent directories are created). Recorded, not written, under `--dry-run`.

```rhai
fs::write("dist/version.txt", git::sha());
```"#,
        move |ctx: NativeCallContext, p: &str, text: &str| -> RResult<()> {
            let (_, full) = path(&h, &ctx, p)?;
            if dry(&h, "fs::write", format!("{} ({} bytes)", rel(&h, &full), text.len())) {
                return Ok(());
            }
            open(&h, &ctx, p, How::Write, "write")?
                .write_all(text.as_bytes())
                .map_err(|e| io(&ctx, "write", p, e))
        }
    );
    let h = host.clone();
    func!(
        &mut m,
        "exists",
        ["path: String", "bool"],
        r#"
Whether a file or directory exists.

```rhai
if fs::exists("Dockerfile") { print("docker build"); }
```"#,
        move |ctx: NativeCallContext, p: &str| -> RResult<bool> {
            let (sb, full) = path(&h, &ctx, p)?;
            sb.exists(&full).map_err(|e| rt(&ctx, fs_error(&sb, "look at", p, e)))
        }
    );
    let h = host.clone();
    func!(
        &mut m,
        "mkdir",
        ["path: String", "()"],
        r#"
Create a directory and its parents. Recorded under `--dry-run`.

```rhai
fs::mkdir("dist/assets");
```"#,
        move |ctx: NativeCallContext, p: &str| -> RResult<()> {
            let (sb, full) = path(&h, &ctx, p)?;
            if dry(&h, "fs::mkdir", rel(&h, &full)) {
                return Ok(());
            }
            sb.mkdir_all(&full).map_err(|e| rt(&ctx, fs_error(&sb, "create", p, e)))
        }
    );
    let h = host.clone();
    func!(
        &mut m,
        "remove",
        ["path: String", "()"],
        r#"
Remove a file, or a directory with its contents. Missing paths are fine. Recorded under
`--dry-run`. The project root itself cannot be removed.

```rhai
fs::remove("dist");
```"#,
        move |ctx: NativeCallContext, p: &str| -> RResult<()> {
            let (sb, full) = path(&h, &ctx, p)?;
            if full == sb.root() {
                return Err(rt(&ctx, "refusing to remove the project root"));
            }
            if dry(&h, "fs::remove", rel(&h, &full)) {
                return Ok(());
            }
            sb.remove(&full).map_err(|e| rt(&ctx, fs_error(&sb, "remove", p, e)))
        }
    );
    let h = host.clone();
    func!(
        &mut m,
        "sha256",
        ["path: String", "String"],
        r#"
The SHA-256 of a file, lowercase hex.

```rhai
let digest = fs::sha256("dist/app.tar.gz");
```"#,
        move |ctx: NativeCallContext, p: &str| -> RResult<String> {
            let mut f = regular(&ctx, p, open(&h, &ctx, p, How::Read, "read")?)?;
            let mut hasher = sha2::Sha256::new();
            std::io::copy(&mut f, &mut hasher).map_err(|e| io(&ctx, "read", p, e))?;
            Ok(crate::hex::encode(&hasher.finalize()))
        }
    );
    let h = host.clone();
    func!(
        &mut m,
        "glob",
        ["pattern: String", "Array"],
        r#"
Files matching a glob (`*`, `**`, `?`, `{a,b}`), relative to the working directory (the project
root by default), sorted. `.git` is skipped.

```rhai
for f in fs::glob("migrations/*.sql") { print(f); }
```"#,
        move |ctx: NativeCallContext, pattern: &str| -> RResult<Array> {
            let call = check_live(&ctx)?;
            glob(&h, &call, pattern).map_err(|e| rt(&ctx, e))
        }
    );
    let h = host.clone();
    func!(
        &mut m,
        "tar_gz",
        ["files: Array", "out: String", "String"],
        r#"
Pack files (paths relative to the working directory) into a reproducible `.tar.gz`: sorted
entries, zero timestamps and owners, modes kept. Returns the archive's SHA-256. Recorded under
`--dry-run`.

```rhai
let sum = fs::tar_gz(fs::glob("dist/**"), "build/app.tar.gz");
```"#,
        move |ctx: NativeCallContext, files: Array, out: &str| -> RResult<String> {
            let call = check_live(&ctx)?;
            let files = string_array(&ctx, files, "the file list")?;
            let (sb, out_path) = path(&h, &ctx, out)?;
            if dry(&h, "fs::tar_gz", format!("{} ({} files)", rel(&h, &out_path), files.len())) {
                return Ok(String::new());
            }
            let archive = sb
                .open(&out_path, How::Write)
                .map_err(|e| rt(&ctx, fs_error(&sb, "write", out, e)))?;
            tar_gz(&h, &call, files, archive).map_err(|e| rt(&ctx, e))
        }
    );
    m
}

fn glob(host: &Host, call: &CallCtx, pattern: &str) -> Result<Array, String> {
    if std::path::Path::new(pattern).is_absolute() || pattern.split('/').any(|c| c == "..") {
        return Err(format!(
            "glob `{pattern}` is refused: patterns are relative and stay inside the project\nhelp: write it relative to the project root, e.g. `dist/**/*.js`"
        ));
    }
    let base = sandbox(host, call, ".")?;
    let matcher = globset::GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map_err(|e| format!("invalid glob `{pattern}`: {e}"))?
        .compile_matcher();
    // Walk only below the pattern's literal leading directories (`dist/assets/**` walks
    // `dist/assets`), not the whole project; `max_depth` stops early when no `**` is involved.
    let literal: Vec<&str> =
        pattern.split('/').take_while(|c| !c.contains(['*', '?', '[', '{', '\\'])).collect();
    let literal = &literal[..literal.len().min(pattern.split('/').count() - 1)];
    // Through the sandbox: a symlinked leading directory must not list files outside the root.
    let start =
        if literal.is_empty() { base.clone() } else { sandbox(host, call, &literal.join("/"))? };
    let depth = if pattern.contains("**") {
        usize::MAX
    } else {
        pattern.split('/').count() - literal.len()
    };
    let mut out = Vec::new();
    let walk = walkdir::WalkDir::new(&start)
        .max_depth(depth)
        .follow_links(false)
        .into_iter()
        .filter_entry(|e| e.file_name() != ".git");
    for entry in walk.flatten() {
        if !entry.file_type().is_file() {
            continue;
        }
        let Ok(rel) = entry.path().strip_prefix(&base) else { continue };
        let rel = rel.to_string_lossy().replace('\\', "/");
        if matcher.is_match(&rel) {
            out.push(rel);
        }
    }
    out.sort();
    Ok(out.into_iter().map(Dynamic::from).collect())
}

fn tar_gz(
    host: &Host,
    call: &CallCtx,
    files: Vec<String>,
    archive: std::fs::File,
) -> Result<String, String> {
    let mut entries = Vec::new();
    for f in &files {
        let (sb, full) = confine(host, call, f)?;
        let file = sb.open(&full, How::Read).map_err(|e| fs_error(&sb, "read", f, e))?;
        let md = file.metadata().map_err(|e| fs_error_io("read", f, e))?;
        if md.is_file() {
            entries.push((f.trim_start_matches("./").to_string(), file, md));
        }
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries.dedup_by(|a, b| a.0 == b.0);
    let file = Hashing { inner: archive, hasher: sha2::Sha256::new() };
    let gz = flate2::GzBuilder::new().mtime(0).write(file, flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    for (name, f, md) in &entries {
        use std::os::unix::fs::PermissionsExt;
        let mut header = tar::Header::new_gnu();
        header.set_size(md.len());
        header.set_mode(md.permissions().mode() & 0o7777);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, name, f).map_err(|e| format!("cannot add `{name}`: {e}"))?;
    }
    let gz = tar.into_inner().map_err(|e| format!("cannot write the archive: {e}"))?;
    let mut file = gz.finish().map_err(|e| format!("cannot write the archive: {e}"))?;
    file.flush().map_err(|e| format!("cannot write the archive: {e}"))?;
    Ok(crate::hex::encode(&file.hasher.finalize()))
}

/// Writes through to a file and hashes what it wrote (the archive's SHA-256 without reading it
/// back by path).
struct Hashing {
    inner: std::fs::File,
    hasher: sha2::Sha256,
}

impl Write for Hashing {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
