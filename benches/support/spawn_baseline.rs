//! Baselines for `benches/run.sh`, measured in the same run as pilum:
//!
//! - `spawn N`: N plain `std::process::Command::new("true").status()` calls; prints the total
//!   milliseconds (what `exec::run(["true"])` is compared with).
//! - `spawn-piped N`: the same with stdout and stderr captured (`output()`), for reference.
//! - `duct N`: the same through duct with both streams captured, for reference.
//! - `wall N CMD ARGS…`: runs a command N times and prints the median wall time and the median
//!   CPU time (user + sys, from `getrusage(RUSAGE_CHILDREN)` around each run), in milliseconds
//!   (used for both `/bin/true` and `pilum run trivial.rhai`).
//! - `ideal ROOT WORKERS STEPS…`: the ideal executor `benches/deploy.sh` compares
//!   `pilum deploy` with. For each step in turn (a barrier between them), WORKERS threads take
//!   the services listed in `ROOT/.bench/services.txt` from one shared counter and run
//!   `sh -c true` in each service's directory, stdin from `/dev/null`, both output streams
//!   captured and drained (`output()`). Nothing else: no plan, no recipe, no events.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// One step over every service: `workers` threads share one counter; returns when all are done
/// (the barrier before the next step).
fn ideal_step(dirs: &[PathBuf], workers: usize) {
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                while let Some(dir) = dirs.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let out = Command::new("sh")
                        .args(["-c", "true"])
                        .current_dir(dir)
                        .stdin(Stdio::null())
                        .stdout(Stdio::piped())
                        .stderr(Stdio::piped())
                        .output()
                        .expect("spawn sh");
                    assert!(out.status.success(), "`sh -c true` failed in {}", dir.display());
                }
            });
        }
    });
}

/// User + system time of every waited-for child so far, in milliseconds.
fn children_cpu_ms() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru);
        ru
    };
    let ms = |t: libc::timeval| t.tv_sec as f64 * 1000.0 + t.tv_usec as f64 / 1000.0;
    ms(ru.ru_utime) + ms(ru.ru_stime)
}

fn ideal(root: &Path, workers: usize, steps: usize) {
    let list = std::fs::read_to_string(root.join(".bench/services.txt"))
        .expect("read .bench/services.txt (a tree from gen-monorepo.sh)");
    let dirs: Vec<PathBuf> = list.lines().filter(|l| !l.is_empty()).map(|l| root.join(l)).collect();
    for _ in 0..steps {
        ideal_step(&dirs, workers);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1000);
    match args.first().map(String::as_str) {
        Some("spawn") => {
            let start = Instant::now();
            for _ in 0..n {
                let status = Command::new("true").status().expect("spawn true");
                assert!(status.success());
            }
            println!("{:.3}", start.elapsed().as_secs_f64() * 1000.0);
        }
        Some("spawn-piped") => {
            // The same, capturing stdout and stderr the way `exec::run` must (both drained).
            let start = Instant::now();
            for _ in 0..n {
                let out = Command::new("true")
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .output()
                    .expect("spawn true");
                assert!(out.status.success());
            }
            println!("{:.3}", start.elapsed().as_secs_f64() * 1000.0);
        }
        Some("duct") => {
            let start = Instant::now();
            for _ in 0..n {
                duct::cmd!("true")
                    .stdin_null()
                    .stdout_capture()
                    .stderr_capture()
                    .unchecked()
                    .run()
                    .expect("duct");
            }
            println!("{:.3}", start.elapsed().as_secs_f64() * 1000.0);
        }
        Some("wall") => {
            let cmd = &args[2..];
            let (mut walls, mut cpus): (Vec<f64>, Vec<f64>) = (0..n)
                .map(|_| {
                    let cpu0 = children_cpu_ms();
                    let start = Instant::now();
                    let status = Command::new(&cmd[0])
                        .args(&cmd[1..])
                        .stdout(Stdio::null())
                        .status()
                        .expect("spawn command");
                    let wall = start.elapsed().as_secs_f64() * 1000.0;
                    assert!(status.success(), "{cmd:?} failed");
                    (wall, children_cpu_ms() - cpu0)
                })
                .unzip();
            walls.sort_by(f64::total_cmp);
            cpus.sort_by(f64::total_cmp);
            println!("{:.3} {:.3}", walls[walls.len() / 2], cpus[cpus.len() / 2]);
        }
        Some("ideal") => {
            let root = Path::new(args.get(1).expect("ideal ROOT WORKERS STEPS"));
            let workers = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(2);
            let steps = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(3);
            ideal(root, workers, steps);
        }
        _ => {
            eprintln!(
                "usage: spawn_baseline spawn N | spawn-piped N | duct N | wall N CMD [ARGS…] | ideal ROOT WORKERS STEPS"
            );
            std::process::exit(2);
        }
    }
}
