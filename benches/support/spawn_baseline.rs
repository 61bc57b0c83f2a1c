//! Baselines for `benches/run.sh`, measured in the same run as pilum:
//!
//! - `spawn N`: N plain `std::process::Command::new("true").status()` calls; prints the total
//!   milliseconds (what `exec::run(["true"])` is compared with).
//! - `spawn-piped N`: the same with stdout and stderr captured (`output()`), for reference.
//! - `duct N`: the same through duct with both streams captured, for reference.
//! - `wall N CMD ARGS…`: runs a command N times and prints the median wall time in
//!   milliseconds (used for both `/bin/true` and `pilum run trivial.rhai`).

use std::process::{Command, Stdio};
use std::time::Instant;

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
            let mut times: Vec<f64> = (0..n)
                .map(|_| {
                    let start = Instant::now();
                    let status = Command::new(&cmd[0])
                        .args(&cmd[1..])
                        .stdout(Stdio::null())
                        .status()
                        .expect("spawn command");
                    assert!(status.success(), "{cmd:?} failed");
                    start.elapsed().as_secs_f64() * 1000.0
                })
                .collect();
            times.sort_by(f64::total_cmp);
            println!("{:.3}", times[times.len() / 2]);
        }
        _ => {
            eprintln!("usage: spawn_baseline spawn N | wall N CMD [ARGS…]");
            std::process::exit(2);
        }
    }
}
