//! Run locks in the ops etcd: one key per host (`<prefix>/locks/<host>`),
//! all of a run's keys on one lease that the run keeps alive. Taking them is
//! one transaction (every key absent → all put), so two jump hosts never
//! split a set of hosts between them. The transaction's revision — the keys'
//! create revision — is the fencing token: a key deleted with its lease and
//! taken by another run has another create revision, so a holder that was
//! paused past its lease finds out at its next intent, before it changes
//! anything.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use remedy_etcd::etcd_client::{Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp};
use serde::{Deserialize, Serialize};

use crate::client::Coordinator;
use crate::error::CoordinationError;

/// Who holds a lock, as every jump host reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    pub run_id: String,
    /// The OS user that started the run.
    pub user: String,
    /// The jump host's name (`coordination.jump_host`, else its hostname).
    pub jump_host: String,
    pub pid: u32,
    pub acquired_ms: i64,
}

/// A lock as `remedy lock list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct LockEntry {
    pub host: String,
    #[serde(flatten)]
    pub holder: LockHolder,
    /// The fencing token (the key's create revision).
    pub revision: i64,
    /// Seconds the lease has left, when it could be read.
    pub lease_remaining_s: Option<i64>,
}

/// The locks one run holds. Dropping this stops the keep-alive; the locks
/// then end with the lease (call [`Coordinator::release`] to end them now).
pub struct HeldLocks {
    pub hosts: Vec<String>,
    pub lease: i64,
    /// The fencing token: the revision at which the keys were created.
    pub revision: i64,
    lost: Arc<AtomicBool>,
    keep_alive: tokio::task::JoinHandle<()>,
}

impl HeldLocks {
    /// The keep-alive was refused (the lease is gone): the locks may be
    /// someone else's now. Fencing checks etcd itself; this is for messages.
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }
}

impl Drop for HeldLocks {
    fn drop(&mut self) {
        self.keep_alive.abort();
    }
}

impl Coordinator {
    fn lock_key(&self, host: &str) -> String {
        self.key(&format!("locks/{host}"))
    }

    /// Locks every host in `hosts` for `holder`, or none: a host already
    /// locked is reported with its holder (the first one found).
    pub async fn acquire(
        &self,
        hosts: &[String],
        holder: &LockHolder,
    ) -> Result<HeldLocks, CoordinationError> {
        let ttl = self.config.lease_ttl.as_secs().max(1);
        let mut client = self.client.clone();
        let lease = self
            .call("granting a lease", client.lease_grant(ttl as i64, None))
            .await?
            .id();
        let value = serde_json::to_string(holder).unwrap_or_default();
        let keys: Vec<String> = hosts.iter().map(|h| self.lock_key(h)).collect();
        let txn = Txn::new()
            .when(
                keys.iter()
                    .map(|k| Compare::create_revision(k.as_str(), CompareOp::Equal, 0))
                    .collect::<Vec<_>>(),
            )
            .and_then(
                keys.iter()
                    .map(|k| {
                        TxnOp::put(
                            k.as_str(),
                            value.as_str(),
                            Some(PutOptions::new().with_lease(lease)),
                        )
                    })
                    .collect::<Vec<_>>(),
            );
        let mut kv = self.client.clone();
        let resp = match self.call("taking the host locks", kv.txn(txn)).await {
            Ok(r) => r,
            Err(e) => {
                self.revoke(lease).await;
                return Err(e);
            }
        };
        if !resp.succeeded() {
            self.revoke(lease).await;
            return Err(self.held_error(hosts).await);
        }
        let revision = resp.header().map(|h| h.revision()).unwrap_or_default();
        let lost = Arc::new(AtomicBool::new(false));
        let keep_alive = tokio::spawn(keep_alive(
            self.client.clone(),
            lease,
            self.config.lease_ttl,
            lost.clone(),
        ));
        Ok(HeldLocks {
            hosts: hosts.to_vec(),
            lease,
            revision,
            lost,
            keep_alive,
        })
    }

    /// Why `acquire` failed: the first host that is locked, and by whom.
    async fn held_error(&self, hosts: &[String]) -> CoordinationError {
        for host in hosts {
            let mut kv = self.client.clone();
            let Ok(resp) = self
                .call("reading a lock", kv.get(self.lock_key(host), None))
                .await
            else {
                continue;
            };
            let Some(kv) = resp.kvs().first() else {
                continue;
            };
            let holder = serde_json::from_slice(kv.value()).unwrap_or_else(|_| LockHolder {
                run_id: String::from_utf8_lossy(kv.value()).into_owned(),
                user: "?".into(),
                jump_host: "?".into(),
                pid: 0,
                acquired_ms: 0,
            });
            return CoordinationError::Held {
                host: host.clone(),
                holder: Box::new(holder),
                remaining: self.lease_remaining(kv.lease()).await,
                ttl: self.config.lease_ttl.as_secs(),
            };
        }
        CoordinationError::Operation {
            endpoints: self.config.etcd.endpoints.join(", "),
            op: "taking the host locks",
            detail: "a host was locked, and released before its holder could be read: try again"
                .into(),
        }
    }

    async fn lease_remaining(&self, lease: i64) -> Option<i64> {
        if lease == 0 {
            return None;
        }
        let mut client = self.client.clone();
        self.call("reading a lease", client.lease_time_to_live(lease, None))
            .await
            .ok()
            .map(|r| r.ttl())
            .filter(|ttl| *ttl >= 0)
    }

    /// Fencing: whether `held` still holds `host` — its key exists with the
    /// revision and lease it was created with — read linearizably from the
    /// ops etcd (never from memory: a paused run's memory is stale).
    pub async fn still_holds(
        &self,
        held: &HeldLocks,
        host: &str,
    ) -> Result<bool, CoordinationError> {
        let key = self.lock_key(host);
        let txn = Txn::new().when(vec![
            Compare::create_revision(key.as_str(), CompareOp::Equal, held.revision),
            Compare::lease(key.as_str(), CompareOp::Equal, held.lease),
        ]);
        let mut kv = self.client.clone();
        let resp = self.call("checking a host lock", kv.txn(txn)).await?;
        Ok(resp.succeeded())
    }

    /// Ends the locks now (revoking the lease deletes its keys).
    pub async fn release(&self, held: &HeldLocks) -> Result<(), CoordinationError> {
        held.keep_alive.abort();
        let mut client = self.client.clone();
        self.call("releasing the host locks", client.lease_revoke(held.lease))
            .await
            .map(|_| ())
    }

    async fn revoke(&self, lease: i64) {
        let mut client = self.client.clone();
        let _ = self
            .call("revoking a lease", client.lease_revoke(lease))
            .await;
    }

    /// Every lock in the ops etcd, from every jump host.
    pub async fn locks(&self) -> Result<Vec<LockEntry>, CoordinationError> {
        let prefix = self.lock_key("");
        let mut kv = self.client.clone();
        let resp = self
            .call(
                "listing locks",
                kv.get(prefix.as_str(), Some(GetOptions::new().with_prefix())),
            )
            .await?;
        let mut out = Vec::new();
        for item in resp.kvs() {
            let host = String::from_utf8_lossy(item.key())
                .trim_start_matches(prefix.as_str())
                .to_string();
            let Ok(holder) = serde_json::from_slice::<LockHolder>(item.value()) else {
                continue;
            };
            out.push(LockEntry {
                host,
                holder,
                revision: item.create_revision(),
                lease_remaining_s: self.lease_remaining(item.lease()).await,
            });
        }
        Ok(out)
    }
}

/// Renews the lease every third of its TTL until it is refused (then the
/// locks are gone: `lost` is set and renewing stops — a lease never comes
/// back) or the run ends. A renewal that fails to reach etcd is retried at
/// the next tick: the lease may still be alive, and fencing decides.
pub(crate) async fn keep_alive(
    client: remedy_etcd::etcd_client::Client,
    lease: i64,
    ttl: std::time::Duration,
    lost: Arc<AtomicBool>,
) {
    let mut client = client;
    let mut stream = None;
    loop {
        tokio::time::sleep(ttl / 3).await;
        if stream.is_none() {
            stream = client.lease_keep_alive(lease).await.ok();
        }
        let Some((keeper, answers)) = stream.as_mut() else {
            continue;
        };
        let renewed = async {
            keeper.keep_alive().await.ok()?;
            answers.message().await.ok().flatten()
        };
        match tokio::time::timeout(crate::client::CALL_TIMEOUT, renewed).await {
            Ok(Some(answer)) if answer.ttl() > 0 => {}
            Ok(Some(_)) => {
                lost.store(true, Ordering::SeqCst);
                return;
            }
            // The stream broke: open another at the next tick.
            _ => stream = None,
        }
    }
}
