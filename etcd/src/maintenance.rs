//! Cluster-wide maintenance other than defragmenting, each refused unless
//! every member answers: compaction (and making every member's size in use
//! current), proof that writes work, alarms (disarmed only when every member is back under the
//! quota threshold), moving leadership, and choosing the member to take a
//! snapshot from.

use std::time::Duration;

use remedy_clock::Clock;
use serde_json::{json, Value};

use crate::cluster::{Cluster, ClusterMember};
use crate::error::MaintenanceError;
use crate::member::{Compaction, Member};
use crate::status::MemberStatus;

/// Written to prove etcd takes writes (e.g. after NOSPACE is cleared).
pub const WRITE_CHECK_KEY: &str = "/remedy/maintenance/write-check";

/// Backend commits at most, to make the sizes current after a compaction.
const REFRESH_ROUNDS: u32 = 5;

/// How often the sizes are read while they settle: a backend commits every
/// 100 ms by default (`--backend-batch-interval`), so a figure moves within
/// a few polls.
const REFRESH_POLL: Duration = Duration::from_millis(20);

/// How long a member that has not moved gets to commit a round's touch
/// before it counts as counted already: one and a half backend commits
/// (every 100 ms by default, `--backend-batch-interval`).
const HOLD: Duration = Duration::from_millis(150);

/// The longest the first round waits for the members that have not moved
/// to come down to the level of those that did: the compaction's own commit
/// may come late on a busy member. (A round in which none moves ends after
/// [`HOLD`].)
const FIRST_ROUND_LIMIT: Duration = Duration::from_secs(2);

/// The longest a later round waits: five backend commits (every 100 ms by
/// default). A figure that has not moved by then was current.
const ROUND_LIMIT: Duration = Duration::from_millis(500);

/// A size in use that moved by no more than this after a write holds still
/// (a write itself touches a few pages).
const SETTLED_BYTES: u64 = 256 * 1024;

/// What a compaction would do, or did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactionTarget {
    /// The highest revision any member reports.
    pub current: i64,
    /// The revision to compact to: `current` minus the retention.
    pub target: i64,
}

/// What the cluster's alarms are, and whether disarming them is safe.
pub struct AlarmSurvey {
    /// `{member, member_id, kind}` per alarm.
    pub alarms: Vec<Value>,
    /// Each member's rule values (`quota_usage` …).
    pub usage: Vec<Value>,
    /// Why disarming must wait: the first member at or over the threshold.
    pub over: Option<String>,
}

/// Who leads, and who is to lead.
pub struct LeaderMove<'a> {
    pub from: &'a ClusterMember,
    pub to: &'a ClusterMember,
    pub to_status: MemberStatus,
}

fn target_of(all: &[(&ClusterMember, MemberStatus)], retention: i64) -> CompactionTarget {
    let current = all.iter().map(|(_, s)| s.revision).max().unwrap_or(0);
    CompactionTarget {
        current,
        target: current - retention.max(0),
    }
}

fn alarm_entry(member: &str, a: &crate::status::Alarm) -> Value {
    json!({ "member": member, "member_id": format!("{:x}", a.member_id), "kind": a.kind.to_string() })
}

/// Whether a refresh round can end: every figure moved; or, given [`HOLD`]
/// to commit the touch, some did and the others are still at the level
/// those came to — or none did (see [`Cluster::refresh_sizes`]).
fn round_over(now: &[u64], moved: &[bool], lasted: Duration) -> bool {
    if moved.iter().all(|m| *m) {
        return true;
    }
    if lasted < HOLD {
        return false;
    }
    let Some(level) = (now.iter().zip(moved))
        .filter(|(_, m)| **m)
        .map(|(n, _)| *n)
        .min()
    else {
        return true;
    };
    (now.iter().zip(moved)).all(|(n, m)| *m || n.abs_diff(level) <= SETTLED_BYTES)
}

/// Whether the figures after a round (`big`: which moved by more than
/// [`SETTLED_BYTES`] in it) are current: none moved that much, or one did
/// not while they all agree — the others came down to a figure that was
/// already counted.
fn settled(now: &[u64], big: &[bool]) -> bool {
    if !big.iter().any(|b| *b) {
        return true;
    }
    let (lo, hi) = (now.iter().min(), now.iter().max());
    big.iter().any(|b| !b) && matches!((lo, hi), (Some(lo), Some(hi)) if hi - lo <= SETTLED_BYTES)
}

impl Cluster {
    /// The revision to compact to, keeping the last `retention` revisions.
    pub async fn compaction_target(
        &self,
        retention: i64,
    ) -> Result<CompactionTarget, MaintenanceError> {
        Ok(target_of(&self.survey("compacted").await?, retention))
    }

    /// Compact history through the leader (else the first member) and, when
    /// `physical`, wait (up to `settle`) until every member's size in use
    /// holds still, so a defragmentation decided next sees the freed space.
    /// Whether anything changed, and the target.
    pub async fn compact(
        &self,
        retention: i64,
        physical: bool,
        settle: Duration,
        clock: &dyn Clock,
    ) -> Result<(bool, CompactionTarget), MaintenanceError> {
        let all = self.survey("compacted").await?;
        let mut t = target_of(&all, retention);
        let leader = all
            .iter()
            .find(|(_, s)| s.is_leader)
            .or(all.first())
            .map(|(c, _)| *c)
            .ok_or_else(|| MaintenanceError::failed("no etcd member answered"))?;
        let changed = match leader.client()?.compact(t.target, physical).await? {
            Compaction::Compacted { revision } => {
                t.target = revision;
                true
            }
            Compaction::AlreadyCompacted { revision } => {
                t.target = revision;
                false
            }
        };
        if changed && physical {
            self.refresh_sizes(leader.client()?, settle, clock).await;
        }
        Ok((changed, t))
    }

    /// Every member's size in use, in member order (0 for one that does
    /// not answer).
    async fn sizes_in_use(&self) -> Vec<u64> {
        (self.statuses().await.iter())
            .map(|s| s.as_ref().map(|s| s.db_size_in_use).unwrap_or(0))
            .collect()
    }

    /// Make every member's size in use current after a compaction. etcd
    /// recomputes it only when its backend commits a write, and counts the
    /// pages a commit freed only at a later one: on a quiet cluster the
    /// figure stays where it was before the compaction (a member 99% free
    /// reads as 17% fragmented) until two more writes come. So make the
    /// backends commit without touching a key or the revision (a lease
    /// granted and revoked: a compaction repeated right after still has
    /// nothing to do) and poll, round after round, until the figures are
    /// current — or `settle` has passed. A write refused (NOSPACE) leaves
    /// the figures as they are: nothing can commit then, and a
    /// defragmentation is what frees the space.
    ///
    /// A round ends when every member's figure has moved, or when some have
    /// and every other one, given [`HOLD`] to commit, still sits at their
    /// level (a member whose compaction was counted before does not move:
    /// its next commit frees nothing), or after [`FIRST_ROUND_LIMIT`] (then [`ROUND_LIMIT`]). The
    /// figures are current after a round that moved none by more than
    /// [`SETTLED_BYTES`], or after one in which they all agree and at least
    /// one member did not move that much — it was counted already, and the
    /// others came down to it. Only when every member was stale together
    /// does it take another round. A round in which no figure moved at all
    /// ends after [`HOLD`] too (a commit that frees nothing leaves the figure
    /// as it was, to the byte): the figures were counted before the refresh
    /// began — unless the compaction's own commit is late, so they count as
    /// current after two such rounds in a row.
    async fn refresh_sizes(&self, via: &Member, settle: Duration, clock: &dyn Clock) {
        let start = clock.now();
        let waited = || clock.now().duration_since(start).unwrap_or_default();
        let mut last = self.sizes_in_use().await;
        let mut unmoved = 0;
        for round in 0..REFRESH_ROUNDS {
            if waited() >= settle || via.touch_backend().await.is_err() {
                return;
            }
            let limit = if round == 0 {
                FIRST_ROUND_LIMIT
            } else {
                ROUND_LIMIT
            };
            let round_start = waited();
            let mut now = last.clone();
            let mut moved = vec![false; last.len()];
            while waited() < settle && waited() - round_start < limit {
                clock.sleep(REFRESH_POLL).await;
                now = self.sizes_in_use().await;
                for (m, (n, l)) in moved.iter_mut().zip(now.iter().zip(&last)) {
                    *m |= n != l;
                }
                if round_over(&now, &moved, waited() - round_start) {
                    break;
                }
            }
            let big: Vec<bool> = (now.iter().zip(&last))
                .map(|(n, l)| n.abs_diff(*l) > SETTLED_BYTES)
                .collect();
            last = now;
            if moved.iter().any(|m| *m) {
                unmoved = 0;
                if settled(&last, &big) {
                    return;
                }
            } else {
                unmoved += 1;
                if unmoved == 2 {
                    return;
                }
            }
        }
    }

    /// Prove etcd takes writes again (after its alarms were cleared): write
    /// [`WRITE_CHECK_KEY`] through the first member that answers. Its
    /// revision.
    pub async fn prove_writes(&self) -> Result<i64, MaintenanceError> {
        let all = self.survey("written").await?;
        let Some((c, _)) = all.first() else {
            return Err(MaintenanceError::failed("no etcd member answered"));
        };
        c.client()?
            .put(WRITE_CHECK_KEY, "etcd takes writes again")
            .await
            .map_err(MaintenanceError::from)
    }

    /// The alarms, each member's usage, and the first member at or over
    /// `threshold` (of `db_size / quota`).
    pub async fn alarm_survey(&self, threshold: f64) -> Result<AlarmSurvey, MaintenanceError> {
        // The alarm list (a raft proposal) beside the statuses: both are
        // needed, and every member must answer the statuses anyway.
        let alarms = async {
            match self.members.iter().find_map(|c| c.member.as_ref().ok()) {
                Some(m) => m.alarms().await,
                None => Ok(Vec::new()),
            }
        };
        let (all, alarms) = futures::join!(self.survey("disarmed"), alarms);
        let all = all?;
        let alarms = alarms?;
        let usage: Vec<Value> = all.iter().map(|(c, s)| c.rule_value(s)).collect();
        Ok(AlarmSurvey {
            over: over_threshold(&usage, threshold),
            usage,
            alarms: alarms
                .iter()
                .map(|a| {
                    let name = all
                        .iter()
                        .find(|(_, s)| s.id == a.member_id)
                        .map(|(c, _)| c.name.clone())
                        .unwrap_or_else(|| format!("{:x}", a.member_id));
                    alarm_entry(&name, a)
                })
                .collect(),
        })
    }

    /// Disarm every alarm, again while members raise new ones (one that hit
    /// the quota later raises its own); fails if they keep coming back.
    /// `{member_id, kind}` per alarm disarmed.
    pub async fn disarm_all(&self) -> Result<Vec<Value>, MaintenanceError> {
        let Some(m) = self.members.iter().find_map(|c| c.member.as_ref().ok()) else {
            return Err(MaintenanceError::failed("no etcd member answered"));
        };
        let mut disarmed = Vec::new();
        for _ in 0..5 {
            let alarms = m.alarms().await?;
            if alarms.is_empty() {
                break;
            }
            for a in &alarms {
                m.disarm(a).await?;
                disarmed.push(json!({ "member_id": format!("{:x}", a.member_id), "kind": a.kind.to_string() }));
            }
        }
        let left = m.alarms().await?;
        if !left.is_empty() {
            return Err(MaintenanceError::failed(format!(
                "alarms came back after disarming: {}",
                left.iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        Ok(disarmed)
    }

    /// The leader and the member to hand leadership to: the one named, else
    /// the first follower.
    pub async fn leader_move(&self, to: Option<&str>) -> Result<LeaderMove<'_>, MaintenanceError> {
        let all = self.survey("moved").await?;
        pick_leader_move(&all, to)
    }

    /// The member to stream a snapshot from: the one named, else the first
    /// healthy one (a full member, NOSPACE, counts).
    pub async fn snapshot_source(
        &self,
        name: Option<&str>,
    ) -> Result<&ClusterMember, MaintenanceError> {
        if let Some(name) = name.filter(|m| !m.is_empty()) {
            let c = self
                .members
                .iter()
                .find(|c| c.name == name)
                .ok_or_else(|| {
                    MaintenanceError::refused(
                        format!("no etcd member `{name}`"),
                        format!("members (group `etcd`): {}", self.names().join(", ")),
                    )
                })?;
            if let Err(e) = &c.member {
                return Err(MaintenanceError::failed(format!("etcd member {name}: {e}")));
            }
            return Ok(c);
        }
        for c in &self.members {
            if let Ok(m) = &c.member {
                // NOSPACE counts as healthy: a full member still streams a
                // snapshot, which is what to take before recovering it.
                match m.health().await {
                    Ok(_) => return Ok(c),
                    Err(e) if e.is_nospace() => return Ok(c),
                    Err(_) => {}
                }
            }
        }
        Err(MaintenanceError::failed(format!(
            "no etcd member is healthy, so no snapshot can be taken ({})",
            self.members
                .iter()
                .map(|c| match &c.member {
                    Ok(_) => format!("{}: unhealthy", c.name),
                    Err(e) => format!("{}: {e}", c.name),
                })
                .collect::<Vec<_>>()
                .join("; ")
        )))
    }

    fn names(&self) -> Vec<&str> {
        self.members.iter().map(|c| c.name.as_str()).collect()
    }
}

fn over_threshold(usage: &[Value], threshold: f64) -> Option<String> {
    usage
        .iter()
        .find(|u| u["quota_usage"].as_f64().unwrap_or(0.0) >= threshold)
        .map(|u| {
            format!(
                "{} is at {:.0}% of its quota (threshold {:.0}%)",
                u["name"].as_str().unwrap_or("?"),
                u["quota_usage"].as_f64().unwrap_or(0.0) * 100.0,
                threshold * 100.0
            )
        })
}

fn pick_leader_move<'a>(
    all: &[(&'a ClusterMember, MemberStatus)],
    to: Option<&str>,
) -> Result<LeaderMove<'a>, MaintenanceError> {
    let (from, _) = all
        .iter()
        .find(|(_, s)| s.is_leader)
        .ok_or_else(|| MaintenanceError::failed("the etcd cluster has no leader"))?;
    let (target, status) = match to.filter(|t| !t.is_empty()) {
        Some(t) => all.iter().find(|(c, _)| c.name == t).ok_or_else(|| {
            MaintenanceError::refused(
                format!("no etcd member `{t}`"),
                format!(
                    "members: {}",
                    all.iter()
                        .map(|(c, _)| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })?,
        None => all
            .iter()
            .find(|(_, s)| !s.is_leader)
            .ok_or_else(|| MaintenanceError::failed("no follower to move leadership to"))?,
    };
    Ok(LeaderMove {
        from,
        to: target,
        to_status: status.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::tests::unreached;
    use crate::status::tests::status;

    /// The sizes the bench saw right after compacting 36 MB away (the
    /// member that served the compaction still counting its last batch):
    /// one commit later they agree, and a member that did not move is the
    /// proof they are current — no second round of waiting.
    #[test]
    fn a_refresh_ends_when_the_stale_member_comes_down_to_the_counted_ones() {
        let (start, after) = ([3_096_576, 274_432, 299_008], [274_432, 274_432, 274_432]);
        let moved = [true, false, true];
        let early = Duration::from_millis(40);
        assert!(
            !round_over(&after, &moved, early),
            "the unmoved member gets its commit first"
        );
        assert!(round_over(&after, &moved, HOLD));
        assert!(
            !round_over(&start, &[false, false, true], HOLD),
            "the member still at 3 MB has to move"
        );
        assert!(round_over(&after, &[true; 3], early));
        let big = [true, false, false];
        assert!(settled(&after, &big));
        // Every member moved far: they may all still be one commit behind.
        assert!(!settled(&after, &[true; 3]));
        // They disagree: one has not counted its compaction yet.
        assert!(!settled(&[274_432, 3_096_576, 274_432], &big));
        assert!(settled(&start, &[false; 3]), "nothing moved: current");
    }

    /// What the bench saw when the compaction had been counted before the
    /// refresh began: after the touch no figure moved at all, and the round
    /// waited for an unrelated write (1.08 s) instead of ending.
    #[test]
    fn a_round_in_which_nothing_moves_ends_after_the_touch_had_its_commit() {
        let counted = [323_584, 323_584, 319_488];
        let none = [false; 3];
        assert!(!round_over(&counted, &none, Duration::from_millis(40)));
        assert!(round_over(&counted, &none, HOLD));
    }

    #[test]
    fn compaction_keeps_the_retention_below_the_highest_revision() {
        let cluster = unreached(&["a", "b"]);
        let (mut a, b) = (status("a", 1, 1, 1, 1), status("b", 2, 1, 1, 1));
        a.revision = 120;
        let all = [(&cluster.members[0], a), (&cluster.members[1], b)];
        let t = target_of(&all, 20);
        assert_eq!((t.current, t.target), (120, 100));
        assert_eq!(
            target_of(&all, -5).target,
            120,
            "a negative retention keeps nothing"
        );
    }

    #[test]
    fn the_first_member_over_the_threshold_is_named() {
        let usage = vec![
            json!({ "name": "a", "quota_usage": 0.5 }),
            json!({ "name": "b", "quota_usage": 0.95 }),
            json!({ "name": "c", "quota_usage": 0.99 }),
        ];
        assert_eq!(
            over_threshold(&usage, 0.8).as_deref(),
            Some("b is at 95% of its quota (threshold 80%)")
        );
        assert_eq!(over_threshold(&usage, 0.995), None);
    }

    #[test]
    fn leadership_goes_to_the_member_named_or_the_first_follower() {
        let cluster = unreached(&["a", "b", "c"]);
        let all: Vec<_> = cluster
            .members
            .iter()
            .zip([
                status("a", 1, 2, 1, 1),
                status("b", 2, 2, 1, 1),
                status("c", 3, 2, 1, 1),
            ])
            .collect();
        let m = pick_leader_move(&all, None).unwrap();
        assert_eq!((m.from.name.as_str(), m.to.name.as_str()), ("b", "a"));
        let m = pick_leader_move(&all, Some("c")).unwrap();
        assert_eq!((m.to.name.as_str(), m.to_status.id), ("c", 3));
        assert!(
            pick_leader_move(&all, Some("b"))
                .unwrap()
                .to_status
                .is_leader
        );
        let err = pick_leader_move(&all, Some("d")).err().unwrap();
        assert_eq!(err.to_string(), "no etcd member `d`");
        assert_eq!(err.hint(), Some("members: a, b, c"));
        let leaderless: Vec<_> = all
            .iter()
            .map(|(c, s)| {
                (
                    *c,
                    MemberStatus {
                        is_leader: false,
                        ..s.clone()
                    },
                )
            })
            .collect();
        assert_eq!(
            pick_leader_move(&leaderless, None)
                .err()
                .unwrap()
                .to_string(),
            "the etcd cluster has no leader"
        );
    }

    #[tokio::test]
    async fn a_snapshot_needs_a_named_member_that_is_reachable() {
        let cluster = unreached(&["a", "b"]);
        let err = cluster.snapshot_source(Some("z")).await.err().unwrap();
        assert_eq!(err.to_string(), "no etcd member `z`");
        assert_eq!(err.hint(), Some("members (group `etcd`): a, b"));
        let err = cluster.snapshot_source(Some("a")).await.err().unwrap();
        assert_eq!(err.to_string(), "etcd member a: not connected");
        let err = cluster.snapshot_source(None).await.err().unwrap();
        assert_eq!(
            err.to_string(),
            "no etcd member is healthy, so no snapshot can be taken (a: not connected; b: not connected)"
        );
    }
}
