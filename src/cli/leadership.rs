//! `remedy daemon` beside other daemons: with coordination configured each
//! daemon campaigns for leadership in the ops etcd, and every schedule slot
//! is settled (run or skipped) by exactly one of them — the leader, which
//! claims the slot's key first. A follower waits at each slot until the
//! slot (or a later one) is settled, or until it leads — when the leader's
//! lease has ended — and then settles the slots nobody claimed, once each.

use super::config::SiteConfig;
use chrono::{DateTime, Utc};
use remedy_coordination::{Candidate, Coordinator, SlotClaim};
use std::time::Duration;

/// How often a follower looks again while a slot is unsettled.
const POLL: Duration = Duration::from_millis(500);

/// What this daemon does with a slot.
pub enum Slot {
    /// It claimed the slot: it runs (or skips) it.
    Mine,
    /// Another daemon settled it.
    Elsewhere(String),
    /// The ops etcd cannot be reached: nobody is known to run it, and this
    /// daemon does not (fail closed).
    Unreachable(String),
}

/// This daemon in the election, on its own runtime (the daemon loop is
/// synchronous).
pub struct Leadership {
    runtime: tokio::runtime::Runtime,
    coordinator: Coordinator,
    candidate: Option<Candidate>,
}

impl Leadership {
    /// None when the site config coordinates nothing.
    pub fn start(config: &SiteConfig) -> Result<Option<Leadership>, String> {
        let Some(coordination) = &config.coordination else {
            return Ok(None);
        };
        let runtime = super::run::runtime()
            .map_err(|_| "cannot start the async runtime for the ops etcd".to_string())?;
        let coordinator = runtime
            .block_on(Coordinator::connect(coordination))
            .map_err(|e| e.to_string())?;
        Ok(Some(Leadership {
            runtime,
            coordinator,
            candidate: None,
        }))
    }

    fn name(&self) -> String {
        format!(
            "{} (pid {})",
            self.coordinator.config().jump_host,
            std::process::id()
        )
    }

    /// Blocks until the slot `at` of `schedule` is settled.
    pub fn settle(&mut self, schedule: &str, at: DateTime<Utc>) -> Slot {
        // Cron slots are whole seconds; each daemon computes them from its
        // own clock reading, with its own milliseconds.
        let slot_ms = at.timestamp() * 1000;
        loop {
            match self.try_settle(schedule, slot_ms) {
                Ok(Some(slot)) => return slot,
                Ok(None) => std::thread::sleep(POLL),
                Err(e) => return Slot::Unreachable(e.to_string()),
            }
        }
    }

    fn try_settle(
        &mut self,
        schedule: &str,
        slot_ms: i64,
    ) -> Result<Option<Slot>, remedy_coordination::CoordinationError> {
        let name = self.name();
        let c = &self.coordinator;
        self.runtime.block_on(async {
            if self.candidate.as_ref().is_none_or(Candidate::lost) {
                self.candidate = Some(c.candidate(&name).await?);
            }
            let Some(me) = &self.candidate else {
                return Ok(None);
            };
            match c.lead(me).await? {
                None => {
                    let claim = SlotClaim {
                        jump_host: c.config().jump_host.clone(),
                        pid: std::process::id(),
                        claimed_ms: super::journal::now_ms(),
                    };
                    Ok(Some(if c.claim_slot(schedule, slot_ms, &claim).await? {
                        Slot::Mine
                    } else {
                        Slot::Elsewhere("another daemon settled it".into())
                    }))
                }
                Some(leader) => Ok(c
                    .settled_since(schedule, slot_ms)
                    .await?
                    .then(|| Slot::Elsewhere(format!("{leader} leads and settled it")))),
            }
        })
    }
}
