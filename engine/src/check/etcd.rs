//! etcd as a cluster: each member's health, the leader, the raft index
//! spread, alarms, the database size against its quota — through the same
//! SSH tunnels and client certificates as the `etcd.*` actions. A member
//! that does not answer is named; fewer healthy members than a quorum is
//! the cluster's finding.

use super::{within, CheckCtx, Collector, Finding, Severity};
use crate::action::etcd::{connect_member, OP_TIMEOUT};
use async_trait::async_trait;
use remedy_etcd::{AlarmKind, ClusterMember, MemberStatus, DEFAULT_QUOTA_BYTES};
use std::time::Duration;

pub struct Etcd;

/// Raft indexes further apart than this: a member is falling behind.
const INDEX_SPREAD_WARN: u64 = 1000;

/// One member: connected (or why not), its status and health.
struct Seen {
    member: ClusterMember,
    status: Result<MemberStatus, String>,
    health: Result<(), String>,
}

async fn member(ctx: &CheckCtx<'_>, host: &remedy_transport::Host) -> Seen {
    let timeout = ctx.left().min(OP_TIMEOUT).min(Duration::from_secs(3));
    let connected = within(ctx, &format!("etcd on {}", host.name), async {
        let t = ctx
            .connector
            .connect(host)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(connect_member(t.as_ref(), host, timeout).await)
    })
    .await;
    let member = match connected {
        Ok(Ok(m)) => m,
        Ok(Err(e)) | Err(e) => ClusterMember {
            name: host.name.clone(),
            endpoint: crate::action::etcd::endpoint(host),
            member: Err(format!("cannot reach {} over SSH: {e}", host.name)),
            quota: None,
        },
    };
    let (status, health) = match &member.member {
        Err(e) => (Err(e.clone()), Err(e.clone())),
        Ok(m) => {
            let (status, health) = futures::join!(
                within(ctx, "etcd status", m.status()),
                within(ctx, "etcd health", m.health()),
            );
            (
                status.and_then(|r| r.map_err(|e| e.to_string())),
                health.and_then(|r| r.map(|_| ()).map_err(|e| e.to_string())),
            )
        }
    };
    Seen {
        member,
        status,
        health,
    }
}

#[async_trait]
impl Collector for Etcd {
    fn name(&self) -> &'static str {
        "etcd"
    }

    async fn collect(&self, ctx: &CheckCtx<'_>) -> Vec<Finding> {
        if ctx.etcd.is_empty() {
            return Vec::new();
        }
        let seen: Vec<Seen> =
            futures::future::join_all(ctx.etcd.iter().map(|h| member(ctx, h))).await;
        let mut out = Vec::new();
        let mut nospace = false;
        for s in &seen {
            let name = s.member.name.as_str();
            let mut f = match (&s.status, &s.health) {
                (Ok(st), Ok(())) => Finding::ok(
                    name,
                    "etcd/health",
                    format!(
                        "healthy{}, raft index {}, revision {}",
                        if st.is_leader { ", leader" } else { "" },
                        st.raft_index,
                        st.revision
                    ),
                ),
                (Ok(_), Err(e)) if e.contains("NOSPACE") || e.contains("space exceeded") => {
                    nospace = true;
                    Finding::new(
                        name,
                        "etcd/health",
                        Severity::Critical,
                        "NOSPACE: the database is full, writes are refused",
                    )
                    .evidence([e.clone()])
                    .fix(ctx.run_fix("etcd-nospace-recover", ""))
                }
                (Ok(st), Err(e)) => Finding::new(
                    name,
                    "etcd/health",
                    Severity::Critical,
                    if st.leader_id == 0 {
                        "answers but has no leader".to_string()
                    } else {
                        "answers but is not healthy".to_string()
                    },
                )
                .evidence([e.clone()]),
                (Err(e), _) => {
                    Finding::new(name, "etcd/health", Severity::Critical, "does not answer")
                        .evidence([e.lines().next().unwrap_or("").to_string()])
                        .fix(
                            e.contains("certificate expired")
                                .then(|| ctx.run_fix("cert-renew", &format!("-l {name}")))
                                .flatten(),
                        )
                }
            };
            if let Ok(st) = &s.status {
                // What the member enforces when it says (etcd 3.6+), else its manifest's flag.
                let quota =
                    (st.quota.or(s.member.quota.filter(|q| *q > 0))).unwrap_or(DEFAULT_QUOTA_BYTES);
                let used = st.db_size as f64 * 100.0 / quota.max(1) as f64;
                if used >= 80.0 && f.severity == Severity::Ok {
                    f = Finding::new(
                        name,
                        "etcd/health",
                        Severity::Warn,
                        format!(
                            "database {} MiB is {used:.0}% of its quota",
                            st.db_size >> 20
                        ),
                    )
                    .fix(ctx.run_fix("etcd-maintenance", ""));
                }
            }
            out.push(f);
        }
        // Alarms, as a healthy member knows them (an unhealthy one would
        // only time out again; NOSPACE makes every member unhealthy and is
        // reported above from its health error).
        for s in seen.iter().filter(|s| s.health.is_ok()) {
            let Ok(m) = &s.member.member else { continue };
            if let Ok(Ok(alarms)) = within(ctx, "etcd alarms", m.alarms()).await {
                for a in alarms {
                    if a.kind == AlarmKind::Nospace && nospace {
                        continue;
                    }
                    let fix = match a.kind {
                        AlarmKind::Nospace => ctx.run_fix("etcd-nospace-recover", ""),
                        _ => Some("a CORRUPT alarm needs a human: compare the members' hashes (etcdctl check hashkv) before anything else".into()),
                    };
                    out.push(
                        Finding::new(
                            "etcd",
                            "etcd/alarm",
                            Severity::Critical,
                            format!("alarm {a}"),
                        )
                        .fix(fix),
                    );
                }
                break;
            }
        }
        let healthy = seen.iter().filter(|s| s.health.is_ok()).count();
        let quorum = seen.len() / 2 + 1;
        let statuses: Vec<&MemberStatus> =
            seen.iter().filter_map(|s| s.status.as_ref().ok()).collect();
        if healthy < quorum && !nospace {
            let leaders = statuses.iter().filter(|s| s.leader_id != 0).count();
            out.push(
                Finding::new(
                    "etcd",
                    "etcd/quorum",
                    Severity::Critical,
                    format!(
                        "quorum lost: {healthy} of {} members healthy, {quorum} needed{}",
                        seen.len(),
                        if leaders == 0 { ", no leader" } else { "" }
                    ),
                )
                .evidence(seen.iter().filter(|s| s.health.is_err()).map(|s| {
                    format!(
                        "{}: {}",
                        s.member.name,
                        s.health
                            .as_ref()
                            .err()
                            .map(|e| e.lines().next().unwrap_or(""))
                            .unwrap_or("")
                    )
                }))
                .fix(ctx.restore_fix()),
            );
        } else {
            let leader = statuses
                .iter()
                .find(|s| s.is_leader)
                .map(|s| s.name.clone());
            let (lo, hi) = statuses.iter().fold((u64::MAX, 0), |(lo, hi), s| {
                (lo.min(s.raft_index), hi.max(s.raft_index))
            });
            let spread = hi.saturating_sub(lo);
            out.push(match leader {
                None if !nospace => Finding::new(
                    "etcd",
                    "etcd/leader",
                    Severity::Critical,
                    "no member says it is the leader",
                ),
                _ if spread > INDEX_SPREAD_WARN => Finding::new(
                    "etcd",
                    "etcd/leader",
                    Severity::Warn,
                    format!("raft indexes {spread} apart: a member falls behind"),
                ),
                leader => Finding::ok(
                    "etcd",
                    "etcd/leader",
                    format!(
                        "leader {}, {healthy} of {} healthy, raft index spread {spread}",
                        leader.unwrap_or_default(),
                        seen.len()
                    ),
                ),
            });
        }
        out
    }
}
