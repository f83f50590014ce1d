//! `Member`: a gRPC client bound to exactly one etcd member, and its operations.
//!
//! Maintenance RPCs (status, defragment, snapshot, move-leader) act on
//! whichever member receives them, so a `Member` owns a single tonic channel
//! to a single endpoint, built over a stream from the caller's `Dialer`: it
//! never balances across members and never falls back to another one.
//! Every operation has a timeout and its errors name the member.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{AlarmAction, AlarmOptions, AlarmType, Client, CompactionOptions, GetOptions};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tonic::transport::Endpoint;

use crate::dialer::Dialer;
use crate::error::{chain, describe, hint, EtcdError};
use crate::snapshot::{SnapshotCheck, SnapshotInfo};
use crate::status::{Alarm, AlarmKind, MemberInfo, MemberStatus};
use crate::tls::Tls;

/// The port etcd serves clients on when the endpoint names none.
const DEFAULT_CLIENT_PORT: u16 = 2379;

/// Defragmenting a large backend takes minutes; it gets at least this long.
pub const DEFAULT_DEFRAG_TIMEOUT: Duration = Duration::from_secs(300);

/// HTTP/2 pings find a dead tunnel. etcd drops clients that ping more often
/// than every 5 s (`--grpc-keepalive-min-time`), so stay well above that.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection to one etcd member.
#[derive(Clone)]
pub struct Member {
    name: String,
    endpoint: String,
    client: Client,
    timeout: Duration,
    defrag_timeout: Duration,
    /// Whether the last status carried the member's quota (shared by clones).
    reports_quota: Arc<AtomicBool>,
}

impl std::fmt::Debug for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Member")
            .field("name", &self.name)
            .field("endpoint", &self.endpoint)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// What `compact` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compaction {
    /// History up to this revision was removed.
    Compacted { revision: i64 },
    /// The store was already compacted at or past this revision; nothing to do.
    /// (So a resumed run can repeat a compaction.)
    AlreadyCompacted { revision: i64 },
}

/// Connects to one member.
///
/// `endpoint` is the member's client URL as its master sees it
/// (`https://10.0.0.11:2379`); the dialer is asked for that host and port,
/// and with TLS the server certificate is verified against that host (IP SANs
/// for an address). `https://` needs `tls`; `http://` must not have it.
/// `timeout` bounds connecting and each later operation, except
/// `defragment` (see [`Member::with_defrag_timeout`]) and snapshot streaming,
/// where it bounds the wait for each chunk.
pub async fn connect(
    name: &str,
    endpoint: &str,
    tls: Option<&Tls>,
    dialer: Arc<dyn Dialer>,
    timeout: Duration,
) -> Result<Member, EtcdError> {
    let bad_endpoint = |reason: String| EtcdError::Endpoint {
        member: name.to_string(),
        endpoint: endpoint.to_string(),
        reason,
    };
    let uri: http::Uri = endpoint
        .parse()
        .map_err(|e: http::uri::InvalidUri| bad_endpoint(e.to_string()))?;
    let host = uri
        .host()
        .ok_or_else(|| bad_endpoint("it has no host".to_string()))?;
    // `[::1]` in a URL; the dialer and the certificate check want `::1`.
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri.port_u16().unwrap_or(DEFAULT_CLIENT_PORT);
    match (uri.scheme_str(), tls) {
        (Some("https"), Some(_)) | (Some("http"), None) => {}
        (Some("https"), None) => {
            return Err(bad_endpoint(
                "https:// needs the CA and a client certificate".to_string(),
            ))
        }
        (Some("http"), Some(_)) => {
            return Err(bad_endpoint(
                "TLS material was given but the endpoint is http://".to_string(),
            ))
        }
        _ => {
            return Err(bad_endpoint(
                "it must start with https:// or http://".to_string(),
            ))
        }
    }

    let mut channel = Endpoint::from_shared(endpoint.to_string())
        .map_err(|e| bad_endpoint(chain(&e)))?
        .connect_timeout(timeout)
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(false);
    if let Some(tls) = tls {
        channel = channel
            .tls_config(tls.client_config(&host))
            .map_err(|e| EtcdError::Tls {
                member: name.to_string(),
                detail: chain(&e),
            })?;
    }

    // tonic calls this for the first connection and for every reconnection,
    // always to this member: the URI it passes is our own endpoint.
    let connector = {
        let host = host.clone();
        tower::service_fn(move |_: http::Uri| {
            let dialer = dialer.clone();
            let host = host.clone();
            async move { dialer.dial(&host, port).await.map(TokioIo::new) }
        })
    };
    let connect_error = |detail: String| EtcdError::Connect {
        member: name.to_string(),
        endpoint: endpoint.to_string(),
        hint: hint(None, &detail),
        detail,
    };
    let channel =
        match tokio::time::timeout(timeout, channel.connect_with_connector(connector)).await {
            Err(_) => return Err(connect_error(format!("no connection within {timeout:?}"))),
            Ok(Err(e)) => return Err(connect_error(chain(&e))),
            Ok(Ok(channel)) => channel,
        };
    let client = Client::from_channel(etcd_client::Channel::Tonic(channel), None)
        .await
        .map_err(|e| connect_error(describe(&e).1))?;
    Ok(Member {
        name: name.to_string(),
        endpoint: endpoint.to_string(),
        client,
        timeout,
        defrag_timeout: timeout.max(DEFAULT_DEFRAG_TIMEOUT),
        reports_quota: Arc::default(),
    })
}

/// The only keys remedy writes: proof that writes work after an alarm is
/// cleared. The Kubernetes API server keeps its data under `/registry/`.
pub const REMEDY_KEYS: &str = "/remedy/maintenance/";

impl Member {
    /// The name given to `connect`.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Sets how long `defragment` may take (default: the larger of the
    /// connect timeout and 5 minutes). etcd blocks the member meanwhile.
    pub fn with_defrag_timeout(mut self, timeout: Duration) -> Member {
        self.defrag_timeout = timeout;
        self
    }

    /// The underlying etcd-client, still bound to this member only, for
    /// operations this crate does not wrap (key-value access, leases).
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// Whether this member's last status reported the quota it enforces
    /// (etcd 3.6 and later do): then a caller need not read it elsewhere.
    pub fn reports_quota(&self) -> bool {
        self.reports_quota.load(Ordering::Relaxed)
    }

    /// `etcdctl endpoint status` for this member.
    pub async fn status(&self) -> Result<MemberStatus, EtcdError> {
        let mut client = self.client();
        let resp = self
            .call("status", self.timeout, async move { client.status().await })
            .await?;
        let quota = Some(non_negative(resp.db_size_quota())).filter(|q| *q > 0);
        self.reports_quota.store(quota.is_some(), Ordering::Relaxed);
        let (id, revision) = resp
            .header()
            .map(|h| (h.member_id(), h.revision()))
            .unwrap_or_default();
        Ok(MemberStatus {
            id,
            name: self.name.clone(),
            endpoint: self.endpoint.clone(),
            is_leader: id != 0 && id == resp.leader(),
            leader_id: resp.leader(),
            raft_term: resp.raft_term(),
            raft_index: resp.raft_index(),
            revision,
            db_size: non_negative(resp.db_size()),
            db_size_in_use: non_negative(resp.raft_used_db_size()),
            quota,
            version: resp.version().to_string(),
            errors: resp.errors().to_vec(),
        })
    }

    /// `etcdctl endpoint health`: a linearizable read goes through this member
    /// (so it is connected to a leader with quorum) and no alarm is active
    /// (as etcdctl 3.5 checks). Returns the read's latency.
    pub async fn health(&self) -> Result<Duration, EtcdError> {
        let mut client = self.client();
        let started = Instant::now();
        // Both questions at once: the alarm list is a raft proposal of its
        // own, and neither answer depends on the other.
        let read = async {
            let read = self
                .call(
                    "health check (linearizable read)",
                    self.timeout,
                    async move {
                        client
                            .get("health", Some(GetOptions::new().with_count_only()))
                            .await
                    },
                )
                .await;
            (read, started.elapsed())
        };
        let ((read, latency), alarms) = futures::join!(read, self.alarms());
        match read {
            // Like etcdctl: a member that refuses us the key still answered through raft.
            Err(EtcdError::Rpc {
                code: Some(tonic::Code::PermissionDenied),
                ..
            })
            | Ok(_) => {}
            Err(e) => return Err(e),
        }
        let alarms = alarms?;
        if !alarms.is_empty() {
            let text: Vec<String> = alarms.iter().map(Alarm::to_string).collect();
            return Err(EtcdError::Alarmed {
                member: self.name.clone(),
                hint: if alarms.iter().any(|a| a.kind == AlarmKind::Nospace) {
                    hint(None, crate::error::NOSPACE_MESSAGE)
                } else {
                    "a CORRUPT alarm needs a human: compare the members' hashes before anything else"
                },
                alarms: text.join(", "),
            });
        }
        Ok(latency)
    }

    /// Active alarms in the cluster, as this member knows them.
    pub async fn alarms(&self) -> Result<Vec<Alarm>, EtcdError> {
        let mut client = self.client();
        let resp = self
            .call("alarm list", self.timeout, async move {
                client.alarm(AlarmAction::Get, AlarmType::None, None).await
            })
            .await?;
        Ok(resp
            .alarms()
            .iter()
            .filter_map(|a| {
                let kind = match a.alarm() {
                    AlarmType::Nospace => AlarmKind::Nospace,
                    AlarmType::Corrupt => AlarmKind::Corrupt,
                    AlarmType::None => return None,
                };
                Some(Alarm {
                    member_id: a.member_id(),
                    kind,
                })
            })
            .collect())
    }

    /// `etcdctl alarm disarm` for one alarm. Disarming NOSPACE before space
    /// was freed is useless: the next write raises it again.
    pub async fn disarm(&self, alarm: &Alarm) -> Result<(), EtcdError> {
        let mut client = self.client();
        let mut options = AlarmOptions::new();
        options.with_member(alarm.member_id);
        let kind = match alarm.kind {
            AlarmKind::Nospace => AlarmType::Nospace,
            AlarmKind::Corrupt => AlarmType::Corrupt,
        };
        self.call("alarm disarm", self.timeout, async move {
            client
                .alarm(AlarmAction::Deactivate, kind, Some(options))
                .await
        })
        .await?;
        Ok(())
    }

    /// The cluster's members, as this member knows them.
    pub async fn member_list(&self) -> Result<Vec<MemberInfo>, EtcdError> {
        let mut client = self.client();
        let resp = self
            .call("member list", self.timeout, async move {
                client.member_list().await
            })
            .await?;
        Ok(resp
            .members()
            .iter()
            .map(|m| MemberInfo {
                id: m.id(),
                name: m.name().to_string(),
                peer_urls: m.peer_urls().to_vec(),
                client_urls: m.client_urls().to_vec(),
                is_learner: m.is_learner(),
            })
            .collect())
    }

    /// Streams this member's snapshot into `out`, in the layout `etcdctl
    /// snapshot save` writes (database, then its SHA-256), and verifies it.
    /// On error `out` holds a partial copy that the caller must discard.
    pub async fn snapshot<W>(&self, out: &mut W) -> Result<SnapshotInfo, EtcdError>
    where
        W: AsyncWrite + Unpin + ?Sized,
    {
        let mut client = self.client();
        let mut stream = self
            .call(
                "snapshot",
                self.timeout,
                async move { client.snapshot().await },
            )
            .await?;
        let mut check = SnapshotCheck::default();
        loop {
            let message = self
                .call(
                    "snapshot (waiting for data)",
                    self.timeout,
                    stream.message(),
                )
                .await?;
            let Some(message) = message else { break };
            // `remaining_bytes` counts what is left *after* this chunk, so
            // the first chunk announces the size as its length plus that.
            if check.announced_db_bytes.is_none() && !message.blob().is_empty() {
                check.announced_db_bytes =
                    Some(message.blob().len() as u64 + message.remaining_bytes());
            }
            check.update(message.blob());
            out.write_all(message.blob())
                .await
                .map_err(|source| self.io_error("writing the snapshot", source))?;
        }
        out.flush()
            .await
            .map_err(|source| self.io_error("flushing the snapshot", source))?;
        check.finish().map_err(|defect| EtcdError::Snapshot {
            member: self.name.clone(),
            defect,
        })
    }

    /// Compacts the key-value history up to `revision`. `physical` waits
    /// until the space is really free in the backend, so that a defragment
    /// right after does shrink the file.
    pub async fn compact(&self, revision: i64, physical: bool) -> Result<Compaction, EtcdError> {
        let mut client = self.client();
        let options = if physical {
            CompactionOptions::new().with_physical()
        } else {
            CompactionOptions::new()
        };
        let result = self
            .call("compact", self.timeout, async move {
                client.compact(revision, Some(options)).await
            })
            .await;
        match result {
            Ok(_) => Ok(Compaction::Compacted { revision }),
            Err(EtcdError::Rpc { detail, .. })
                if detail.contains("required revision has been compacted") =>
            {
                Ok(Compaction::AlreadyCompacted { revision })
            }
            Err(e) => Err(e),
        }
    }

    /// Writes `value` to `key` through this member (remedy writes only under
    /// [`REMEDY_KEYS`]): the revision it got.
    pub async fn put(&self, key: &str, value: &str) -> Result<i64, EtcdError> {
        let mut client = self.client();
        let (key, value) = (key.to_string(), value.to_string());
        let resp = self
            .call("put", self.timeout, async move {
                client.put(key, value, None).await
            })
            .await?;
        Ok(resp.header().map(|h| h.revision()).unwrap_or_default())
    }

    /// `key`'s value as etcd holds it (bytes: the API server stores most
    /// objects as protobuf) and its mod revision, or `None` when it is
    /// absent; a linearizable read through this member.
    pub async fn get_raw(&self, key: &str) -> Result<Option<(Vec<u8>, i64)>, EtcdError> {
        let mut client = self.client();
        let key = key.to_string();
        let resp = self
            .call(
                "get",
                self.timeout,
                async move { client.get(key, None).await },
            )
            .await?;
        Ok(resp
            .kvs()
            .first()
            .map(|kv| (kv.value().to_vec(), kv.mod_revision())))
    }

    /// Deletes `key` only if it is still at `mod_revision` (what the caller
    /// read and backed up): false when it changed or is gone, and then
    /// nothing was deleted.
    pub async fn delete_if_unchanged(
        &self,
        key: &str,
        mod_revision: i64,
    ) -> Result<bool, EtcdError> {
        use etcd_client::{Compare, CompareOp, Txn, TxnOp};
        let mut client = self.client();
        let txn = Txn::new()
            .when(vec![Compare::mod_revision(
                key,
                CompareOp::Equal,
                mod_revision,
            )])
            .and_then(vec![TxnOp::delete(key, None)]);
        let resp = self
            .call("txn", self.timeout, async move { client.txn(txn).await })
            .await?;
        Ok(resp.succeeded())
    }

    /// Writes `value` to `key` only if the key is absent (a rollback putting
    /// a deleted key back must not overwrite one made since): false when it
    /// exists, and then nothing was written.
    pub async fn create_raw(&self, key: &str, value: Vec<u8>) -> Result<bool, EtcdError> {
        use etcd_client::{Compare, CompareOp, Txn, TxnOp};
        let mut client = self.client();
        let txn = Txn::new()
            .when(vec![Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then(vec![TxnOp::put(key, value, None)]);
        let resp = self
            .call("txn", self.timeout, async move { client.txn(txn).await })
            .await?;
        Ok(resp.succeeded())
    }

    /// Whether `key` exists, read through this member (a count-only,
    /// linearizable get): how a restore proves the data is back.
    pub async fn key_exists(&self, key: &str) -> Result<bool, EtcdError> {
        let mut client = self.client();
        let key = key.to_string();
        let resp = self
            .call("get", self.timeout, async move {
                client
                    .get(key, Some(etcd_client::GetOptions::new().with_count_only()))
                    .await
            })
            .await?;
        Ok(resp.count() > 0)
    }

    /// Makes every member's backend commit without changing any key or the
    /// revision: grants a lease and revokes it at once (a lease lives in the
    /// backend, outside the key space).
    pub async fn touch_backend(&self) -> Result<(), EtcdError> {
        let mut client = self.client();
        let lease = self
            .call("lease grant", self.timeout, async move {
                client.lease_grant(60, None).await
            })
            .await?;
        let mut client = self.client();
        let id = lease.id();
        self.call("lease revoke", self.timeout, async move {
            client.lease_revoke(id).await
        })
        .await?;
        Ok(())
    }

    /// Defragments this member's backend. The member serves nothing meanwhile.
    pub async fn defragment(&self) -> Result<(), EtcdError> {
        let mut client = self.client();
        self.call("defragment", self.defrag_timeout, async move {
            client.defragment().await
        })
        .await?;
        Ok(())
    }

    /// Hands leadership to `target` (a member id). Only the current leader
    /// accepts this, so a follower gives `EtcdError::NotLeader` naming the
    /// leader. Asking the leader to move to itself does nothing.
    pub async fn move_leader(&self, target: u64) -> Result<(), EtcdError> {
        let status = self.status().await?;
        if !status.is_leader {
            return Err(EtcdError::NotLeader {
                member: self.name.clone(),
                op: "move leader",
                leader_id: status.leader_id,
            });
        }
        if status.id == target {
            return Ok(());
        }
        let mut client = self.client();
        self.call("move leader", self.timeout, async move {
            client.move_leader(target).await
        })
        .await?;
        Ok(())
    }

    /// Runs one RPC under a timeout, turning its failure into an `EtcdError`
    /// that names this member and the operation.
    async fn call<T>(
        &self,
        op: &'static str,
        after: Duration,
        fut: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, EtcdError> {
        match tokio::time::timeout(after, fut).await {
            Err(_) => Err(EtcdError::Timeout {
                member: self.name.clone(),
                op,
                after,
            }),
            Ok(Err(e)) => {
                let (code, detail) = describe(&e);
                Err(EtcdError::Rpc {
                    member: self.name.clone(),
                    op,
                    code,
                    hint: hint(code, &detail),
                    detail,
                })
            }
            Ok(Ok(value)) => Ok(value),
        }
    }

    fn io_error(&self, op: &'static str, source: std::io::Error) -> EtcdError {
        EtcdError::Io {
            member: self.name.clone(),
            op,
            source,
        }
    }
}

/// etcd's sizes are int64 on the wire but never negative.
fn non_negative(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}
