//! `pilum logs SERVICE…`: call each target's `fn logs(ctx)`, which streams the provider's logs
//! through `exec::run`; every line arrives through the process layer's line callback and is
//! printed as it comes, prefixed by its target when there are several (`--json`: one `log`
//! event per line). Targets stream at once. Ctrl-C ends it: the provider CLIs' process groups
//! are killed and pilum exits 130.

use std::path::PathBuf;
use std::time::Duration;

use super::live::{self, Printer, Show};
use crate::cli::LogsArgs;
use crate::error::{Error, exit};
use crate::output::Output;
use crate::recipe::hooks::{Hook, HookRunner, LogsRequest};

/// How many targets `--follow` streams at once (each is one provider CLI and one thread).
pub(crate) const MAX_FOLLOWED: usize = 32;

/// How long reading logs without `--follow` may take before the provider CLI is killed.
pub(crate) const READ_TIMEOUT: Duration = Duration::from_secs(300);

pub(crate) fn run(dir: Option<PathBuf>, args: &LogsArgs, out: &Output) -> Result<(), Error> {
    if args.target.services.is_empty() {
        return Err(Error::usage(
            "name the services whose logs to show\nhelp: `pilum logs api`, or several: `pilum logs api worker` (`pilum list` shows the services)",
        ));
    }
    let cfg = live::config(dir, &args.target);
    let live = live::load(&cfg, Hook::Logs, args.target.region.as_deref(), false, true, out)?;
    if args.follow && live.targets.len() > MAX_FOLLOWED {
        return Err(Error::usage(format!(
            "`--follow` streams at most {MAX_FOLLOWED} targets at once; the selection has {}\nhelp: name fewer services, or one region with `--region`",
            live.targets.len()
        )));
    }
    let cancel = live::interruptible(out);
    let printer = Printer::new(out, Show::Output, &live.targets);
    let runner = HookRunner::new(&live.root, false, out.verbose, printer);
    let request = LogsRequest { since: args.since, follow: args.follow };
    let (workers, timeout) =
        if args.follow { (live.targets.len(), None) } else { (8, Some(READ_TIMEOUT)) };
    let results = live::each(&live.targets, workers, |t| {
        let r = runner.logs(t, request, &cancel, timeout);
        // Said at once: with `--follow` the other targets go on streaming.
        if let Err(e) = &r
            && !e.cancelled()
        {
            out.error(&format!("logs of `{}` failed: {e}", t.label));
        }
        r
    });
    if cancel.is_cancelled() {
        return Err(Error::silent(exit::INTERRUPTED));
    }
    if results.iter().any(Result::is_err) { Err(Error::silent(exit::FAILURE)) } else { Ok(()) }
}
