//! [`wait_until`]: poll a condition with a deadline instead of sleeping a fixed time.

use std::time::{Duration, Instant};

/// How often [`wait_until`] asks again.
pub const POLL_INTERVAL: Duration = Duration::from_millis(5);

/// Calls `f` every few milliseconds until it returns `true`; panics naming `what` if `deadline` passes first.
pub fn wait_until(deadline: Duration, what: &str, f: impl FnMut() -> bool) {
    wait_until_or(deadline, f, || format!("timed out after {deadline:?} waiting for {what}"));
}

/// [`wait_until`] with a panic message of the caller's own, built by `failure` when `deadline` passes.
pub fn wait_until_or(deadline: Duration, mut f: impl FnMut() -> bool, failure: impl FnOnce() -> String) {
    let end = Instant::now() + deadline;
    loop {
        if f() {
            return;
        }
        assert!(Instant::now() < end, "{}", failure());
        std::thread::sleep(POLL_INTERVAL);
    }
}
