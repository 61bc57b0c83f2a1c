//! `time::` — the clock and a cancellable sleep (the sleep only in the full profile: strategies
//! must not block).

use std::time::Duration;

use rhai::{Dynamic, Module, NativeCallContext};

use super::{RResult, check_live, func, rt, stop};
use crate::script::{Stop, current};

pub(crate) fn module(full: bool) -> Module {
    let mut m = Module::new();
    func!(
        &mut m,
        "now",
        ["int"],
        r#"
Seconds since the Unix epoch (UTC), as an integer.

```rhai
let started = time::now();
```"#,
        || -> i64 { chrono::Utc::now().timestamp() }
    );
    func!(
        &mut m,
        "now_ms",
        ["int"],
        r#"
Milliseconds since the Unix epoch (UTC).

```rhai
let t0 = time::now_ms();
exec::run(["true"]);
log::info(`took ${time::now_ms() - t0} ms`);
```"#,
        || -> i64 { chrono::Utc::now().timestamp_millis() }
    );
    func!(
        &mut m,
        "iso",
        ["String"],
        r#"
The current UTC time as RFC 3339 text (`2026-01-31T12:00:00Z`).

```rhai
let stamp = time::iso();
```"#,
        || -> String { chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true) }
    );
    func!(
        &mut m,
        "backoff",
        ["attempt: int", "base: ?", "max: ?", "float"],
        r#"
The delay in seconds before retry number `attempt` (1-based): exponential from `base`, doubling,
capped at `max`, with full jitter (uniform in `[0, min(max, base × 2^(attempt-1))]`). The same
backoff pilum uses for its own retries.

```rhai
let d = time::backoff(3, 0.5, 10.0);   // somewhere in [0, 2.0]
```"#,
        |ctx: NativeCallContext, attempt: i64, base: Dynamic, max: Dynamic| -> RResult<f64> {
            let secs = |v: &Dynamic, what: &str| -> RResult<Duration> {
                let f = v.as_float().or_else(|_| v.as_int().map(|i| i as f64)).map_err(|_| {
                    rt(&ctx, format!("`time::backoff`: `{what}` must be a number of seconds"))
                })?;
                crate::duration::from_secs_f64(f)
                    .map_err(|e| rt(&ctx, format!("`time::backoff`: `{what}`: {e}")))
            };
            let b = crate::backoff::Backoff::new(secs(&base, "base")?).cap(secs(&max, "max")?);
            let attempt = u32::try_from(attempt.max(1)).unwrap_or(u32::MAX);
            Ok(b.delay(attempt).as_secs_f64())
        }
    );
    if full {
        func!(
            &mut m,
            "sleep",
            ["seconds: ?", "()"],
            r#"
Sleep for a number of seconds (int or float). Cancellation (Ctrl-C, timeouts) interrupts it.

```rhai
time::sleep(1.5);
```"#,
            |ctx: NativeCallContext, secs: Dynamic| -> RResult<()> {
                let s =
                    secs.as_int().map(|i| i as f64).or_else(|_| secs.as_float()).map_err(|_| {
                        rt(
                            &ctx,
                            format!(
                                "`time::sleep` takes seconds as a number, not {}",
                                secs.type_name()
                            ),
                        )
                    })?;
                if !(s >= 0.0 && s.is_finite()) {
                    return Err(rt(&ctx, "`time::sleep` takes a non-negative number of seconds"));
                }
                check_live(&ctx)?;
                let call = current();
                let mut dur = Duration::try_from_secs_f64(s)
                    .ok()
                    .filter(|d| *d <= crate::script::FAR_FUTURE)
                    .ok_or_else(|| rt(&ctx, "`time::sleep` was given more than a century"))?;
                let mut timed_out = None;
                if let Some(d) = call.deadline {
                    let left = d.at.saturating_duration_since(std::time::Instant::now());
                    if left < dur {
                        dur = left;
                        timed_out = Some(d.after);
                    }
                }
                if !call.cancel.sleep(dur) {
                    return Err(stop(&ctx, Stop::Cancelled));
                }
                if let Some(after) = timed_out {
                    return Err(stop(&ctx, Stop::TimedOut(after)));
                }
                Ok(())
            }
        );
    }
    m
}
