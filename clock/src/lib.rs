//! remedy-clock: time, injected. Backoff waits and polling intervals go
//! through [`Clock`] so tests of retries and waits do not sleep. (Command
//! timeouts use the runtime's timer, since they guard real processes.)
//!
//! The engine and the domain crates that poll (HAProxy's waits) share it; it
//! must not depend on any other remedy crate.

use async_trait::async_trait;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

#[async_trait]
pub trait Clock: Send + Sync {
    fn now(&self) -> SystemTime;
    async fn sleep(&self, d: Duration);
}

/// The real clock.
pub struct SystemClock;

#[async_trait]
impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
    async fn sleep(&self, d: Duration) {
        tokio::time::sleep(d).await
    }
}

/// A clock whose `sleep` returns at once and moves time forward; it records
/// every sleep so tests can assert the backoff schedule.
pub struct ManualClock {
    state: Mutex<(SystemTime, Vec<Duration>)>,
}

impl ManualClock {
    pub fn new() -> ManualClock {
        ManualClock {
            state: Mutex::new((
                SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
                Vec::new(),
            )),
        }
    }
    pub fn sleeps(&self) -> Vec<Duration> {
        self.state.lock().map(|s| s.1.clone()).unwrap_or_default()
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock::new()
    }
}

#[async_trait]
impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        self.state
            .lock()
            .map(|s| s.0)
            .unwrap_or(SystemTime::UNIX_EPOCH)
    }
    async fn sleep(&self, d: Duration) {
        if let Ok(mut s) = self.state.lock() {
            s.0 += d;
            s.1.push(d);
        }
        tokio::task::yield_now().await;
    }
}
