//! Daemon leadership and schedule slots. Every `remedy daemon` of a team
//! campaigns for `<prefix>/daemon/leader` (a key on its own lease, kept
//! alive; the first to create it leads until its lease ends), and a slot —
//! one firing of one schedule — is settled by creating
//! `<prefix>/schedules/<name>/<slot ms>` once, in a transaction: whoever
//! creates it runs (or skips) that slot, nobody else does. A leader that
//! dies leaves its lease to expire; another daemon then leads and settles
//! the slots nobody claimed, each once.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use remedy_etcd::etcd_client::{GetOptions, TxnOp};
use serde::{Deserialize, Serialize};

use crate::client::{create_if_absent, Coordinator};
use crate::error::CoordinationError;

/// A daemon taking part in the election: its lease, kept alive while it runs.
pub struct Candidate {
    pub lease: i64,
    pub name: String,
    lost: Arc<AtomicBool>,
    keep_alive: tokio::task::JoinHandle<()>,
}

impl Candidate {
    /// Its lease ended (the daemon was paused or cut off): make another.
    pub fn lost(&self) -> bool {
        self.lost.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for Candidate {
    fn drop(&mut self) {
        self.keep_alive.abort();
    }
}

/// Who settled a slot, as recorded in its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotClaim {
    pub jump_host: String,
    pub pid: u32,
    pub claimed_ms: i64,
}

impl Coordinator {
    fn leader_key(&self) -> String {
        self.key("daemon/leader")
    }

    fn slots_prefix(&self, schedule: &str) -> String {
        self.key(&format!("schedules/{schedule}/"))
    }

    /// Zero-padded so keys sort as times.
    fn slot_key(&self, schedule: &str, slot_ms: i64) -> String {
        format!("{}{slot_ms:015}", self.slots_prefix(schedule))
    }

    /// Joins the election: a lease of `lease_ttl`, kept alive.
    pub async fn candidate(&self, name: &str) -> Result<Candidate, CoordinationError> {
        let ttl = self.config.lease_ttl;
        let mut client = self.client.clone();
        let lease = self
            .call(
                "granting the daemon's lease",
                client.lease_grant(ttl.as_secs().max(1) as i64, None),
            )
            .await?
            .id();
        let lost = Arc::new(AtomicBool::new(false));
        let keep_alive = tokio::spawn(crate::lock::keep_alive(
            self.client.clone(),
            lease,
            ttl,
            lost.clone(),
        ));
        Ok(Candidate {
            lease,
            name: name.to_string(),
            lost,
            keep_alive,
        })
    }

    /// Leads, or becomes the leader when nobody does. `Ok(None)`: this
    /// candidate leads; `Ok(Some(name))`: `name` does.
    pub async fn lead(&self, me: &Candidate) -> Result<Option<String>, CoordinationError> {
        let key = self.leader_key();
        let txn = create_if_absent(&key, me.name.clone(), Some(me.lease))
            .or_else(vec![TxnOp::get(key.as_str(), None)]);
        let mut kv = self.client.clone();
        let resp = self
            .call("campaigning for daemon leadership", kv.txn(txn))
            .await?;
        if resp.succeeded() {
            return Ok(None);
        }
        let current = resp.op_responses().into_iter().find_map(|r| match r {
            remedy_etcd::etcd_client::TxnOpResponse::Get(g) => g.kvs().first().cloned(),
            _ => None,
        });
        match current {
            Some(kv) if kv.lease() == me.lease => Ok(None),
            Some(kv) => Ok(Some(String::from_utf8_lossy(kv.value()).into_owned())),
            // Gone between compare and read: campaign again next time.
            None => Ok(Some("nobody (just ended)".into())),
        }
    }

    /// Settles one slot for this daemon: true when it created the slot's
    /// key (it runs the slot), false when another daemon had.
    pub async fn claim_slot(
        &self,
        schedule: &str,
        slot_ms: i64,
        claim: &SlotClaim,
    ) -> Result<bool, CoordinationError> {
        let key = self.slot_key(schedule, slot_ms);
        let value = serde_json::to_string(claim).unwrap_or_default();
        let txn = create_if_absent(&key, value, None);
        let mut kv = self.client.clone();
        Ok(self
            .call("claiming a schedule slot", kv.txn(txn))
            .await?
            .succeeded())
    }

    /// Whether this slot, or a later one of the schedule, was settled (a
    /// leader that skips slots a long run covered settles the next one).
    pub async fn settled_since(
        &self,
        schedule: &str,
        slot_ms: i64,
    ) -> Result<bool, CoordinationError> {
        let from = self.slot_key(schedule, slot_ms);
        let mut end = self.slots_prefix(schedule).into_bytes();
        // The prefix's range end: its last byte ('/') plus one.
        if let Some(last) = end.last_mut() {
            *last += 1;
        }
        let mut kv = self.client.clone();
        let resp = self
            .call(
                "reading schedule slots",
                kv.get(
                    from.as_str(),
                    Some(
                        GetOptions::new()
                            .with_range(end)
                            .with_limit(1)
                            .with_keys_only(),
                    ),
                ),
            )
            .await?;
        Ok(!resp.kvs().is_empty())
    }
}
