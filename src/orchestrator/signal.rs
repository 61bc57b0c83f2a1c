//! Ctrl-C: SIGINT and SIGTERM set a flag that a watcher thread turns into cancellation of the
//! run, so running children are killed, the summary prints and pilum exits 130.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::execute::Cancel;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Stops the watcher when dropped.
pub struct Guard(std::sync::Arc<AtomicBool>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Route SIGINT/SIGTERM to `cancel` for as long as the guard lives.
pub fn on_interrupt(cancel: &Cancel) -> Guard {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let (c, s) = (cancel.clone(), stop.clone());
    std::thread::spawn(move || {
        while !s.load(Ordering::SeqCst) {
            if INTERRUPTED.load(Ordering::SeqCst) {
                c.cancel();
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    Guard(stop)
}
