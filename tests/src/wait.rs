//! [`wait_until`]: poll a condition with a deadline instead of sleeping a fixed time.

use std::time::{Duration, Instant};

/// How often [`wait_until`] asks again.
pub const POLL_INTERVAL: Duration = Duration::from_millis(5);

/// Calls `f` every few milliseconds until it returns `true`; panics naming `what` if `deadline` passes first.
pub fn wait_until(deadline: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    loop {
        if f() {
            return;
        }
        assert!(Instant::now() < end, "timed out after {deadline:?} waiting for {what}");
        std::thread::sleep(POLL_INTERVAL);
    }
}
