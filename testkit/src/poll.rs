//! Waiting in tests for something that happens in another process (a daemon's
//! run, a server coming up): look again every 200 ms, fail with what was
//! awaited once the time is up.

use std::time::{Duration, Instant};

/// Call `check` until it is true; panic naming `what` after `timeout`.
pub fn eventually(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "not within {timeout:?}: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
