//! Hot reload: watch the directories holding the pools file and strategy scripts (editors save
//! by rename, so watching the file itself loses it), turn events into messages on a channel,
//! debounce, and ask the scaler to reload — which compiles first and swaps only on success
//! (and survives a panic while reloading: see [`Scaler::reload`]).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};

use crate::autoscale::scaler::Scaler;

/// Start watching; the returned task owns the watcher and runs until the runtime stops.
pub(crate) fn spawn(scaler: Arc<Scaler>) -> Result<tokio::task::JoinHandle<()>, String> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<PathBuf>();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(ev) = res
            && !matches!(ev.kind, notify::EventKind::Access(_))
        {
            for p in ev.paths {
                let _ = tx.send(p);
            }
        }
    })
    .map_err(|e| format!("cannot start the file watcher: {e}"))?;
    let mut dirs = BTreeSet::new();
    let log = scaler.log;
    let watch_all = move |watcher: &mut notify::RecommendedWatcher,
                          dirs: &mut BTreeSet<PathBuf>,
                          files: &[PathBuf]| {
        for f in files {
            let dir = f.parent().map(|d| {
                if d.as_os_str().is_empty() { PathBuf::from(".") } else { d.to_path_buf() }
            });
            if let Some(d) = dir
                && dirs.insert(d.clone())
                && let Err(e) = watcher.watch(&d, RecursiveMode::NonRecursive)
            {
                log.warn(
                    "cannot watch for hot reload",
                    &[("dir", &d.display().to_string()), ("error", &e.to_string())],
                );
            }
        }
    };
    let files = scaler.watched_files();
    watch_all(&mut watcher, &mut dirs, &files);
    Ok(tokio::spawn(async move {
        let mut watched: BTreeSet<PathBuf> = files.iter().map(|f| normalize(f)).collect();
        while let Some(path) = rx.recv().await {
            if !watched.contains(&normalize(&path)) {
                continue;
            }
            // Editors write in several steps (truncate, write, rename): wait for the last one.
            tokio::time::sleep(Duration::from_millis(150)).await;
            while rx.try_recv().is_ok() {}
            if scaler.reload().is_ok() {
                let files = scaler.watched_files();
                watch_all(&mut watcher, &mut dirs, &files);
                watched = files.iter().map(|f| normalize(f)).collect();
            }
        }
    }))
}

fn normalize(p: &std::path::Path) -> PathBuf {
    match (p.parent().and_then(|d| d.canonicalize().ok()), p.file_name()) {
        (Some(d), Some(n)) => d.join(n),
        _ => p.to_path_buf(),
    }
}
