//! [`DefragPlan`]: which members to defragment, in which order, and doing it
//! safely: followers first and the leader last (or leadership moved away
//! first); before each member every member must be healthy, so quorum
//! survives that one being busy; after each, it must be healthy again
//! before the next. A 2-member cluster is refused: it loses quorum while
//! one member is busy.
//!
//! Which members are worth it is the caller's rule (a runbook's Rhai
//! expression in remedy), given each member's [`ClusterMember::rule_value`].

use std::time::{Duration, UNIX_EPOCH};

use remedy_clock::Clock;
use serde_json::{json, Value};

use crate::cluster::{Cluster, ClusterMember, Progress};
use crate::defrag_order::defrag_order;
use crate::error::MaintenanceError;
use crate::status::MemberStatus;
use crate::table::human_bytes;

/// One member in defrag order, with what the rule saw and decided.
pub struct Candidate {
    /// Index into the cluster's members.
    pub index: usize,
    pub status: MemberStatus,
    /// What the rule sees as `member`.
    pub member: Value,
    pub selected: bool,
}

/// Every member, answering and healthy, in defrag order.
pub struct DefragPlan {
    pub candidates: Vec<Candidate>,
}

/// How a defragmentation proceeds.
#[derive(Debug, Clone, Copy)]
pub struct DefragOptions {
    /// How long a defragmented member may take to be healthy again.
    pub timeout: Duration,
    /// A pause between members, for the cluster to settle.
    pub settle: Duration,
    /// Move leadership away from the leader before defragmenting it.
    pub move_leader: bool,
}

impl Candidate {
    /// `master-2 (follower): db 25 MB, in use 1.2 MB, free 24 MB (95% fragmented), 1% of quota 2.1 GB`
    pub fn describe(&self) -> String {
        let m = &self.member;
        format!(
            "{} ({}): db {}, in use {}, free {} ({:.0}% fragmented), {:.0}% of quota {}",
            self.status.name,
            if self.status.is_leader {
                "leader"
            } else {
                "follower"
            },
            human_bytes(self.status.db_size),
            human_bytes(self.status.db_size_in_use),
            human_bytes(m["db_size_free"].as_u64().unwrap_or(0)),
            m["fragmentation"].as_f64().unwrap_or(0.0) * 100.0,
            m["quota_usage"].as_f64().unwrap_or(0.0) * 100.0,
            human_bytes(m["quota"].as_u64().unwrap_or(0)),
        )
    }
}

impl DefragPlan {
    /// Every member answering and healthy, in defrag order, none selected
    /// yet; refused (nothing defragmented) otherwise.
    pub async fn survey(cluster: &Cluster) -> Result<DefragPlan, MaintenanceError> {
        // Sizes and health asked at once; a member that did not answer is
        // named before one that is not healthy.
        let (all, healthy) = futures::join!(cluster.survey("defragmented"), cluster.all_healthy());
        let all = all?;
        healthy.map_err(|e| {
            MaintenanceError::refused(
                format!("{e}; nothing was defragmented"),
                "defragment only a healthy cluster: bring the member back first",
            )
        })?;
        let list: Vec<MemberStatus> = all.iter().map(|(_, s)| s.clone()).collect();
        let candidates = defrag_order(&list)
            .into_iter()
            .map(|i| {
                let (c, s) = &all[i];
                Candidate {
                    index: position(cluster, c).unwrap_or(i),
                    status: s.clone(),
                    member: c.rule_value(s),
                    selected: false,
                }
            })
            .collect();
        Ok(DefragPlan { candidates })
    }

    /// Select the members `rule` says are worth it.
    pub fn select<E>(mut self, mut rule: impl FnMut(&Value) -> Result<bool, E>) -> Result<Self, E> {
        for c in &mut self.candidates {
            c.selected = rule(&c.member)?;
        }
        Ok(self)
    }

    pub fn selected(&self) -> impl Iterator<Item = &Candidate> {
        self.candidates.iter().filter(|c| c.selected)
    }

    /// Member names in defrag order.
    pub fn order(&self) -> Vec<&str> {
        self.candidates
            .iter()
            .map(|c| c.status.name.as_str())
            .collect()
    }

    /// Each member's rule values with the verdict as `defragment`.
    pub fn evaluations(&self) -> Vec<Value> {
        self.candidates
            .iter()
            .map(|c| {
                let mut v = c.member.clone();
                v["defragment"] = json!(c.selected);
                v
            })
            .collect()
    }

    /// Defragment the selected members in order, as the module doc says.
    /// The step's result fields: `order`, `members` (sizes before and
    /// after), `reclaimed` bytes.
    pub async fn run(
        &self,
        cluster: &Cluster,
        opts: &DefragOptions,
        clock: &dyn Clock,
        progress: Progress<'_>,
    ) -> Result<Value, MaintenanceError> {
        let n = cluster.members.len();
        if n == 2 {
            return Err(MaintenanceError::refused(
                "a 2-member etcd cluster loses quorum while one member is busy defragmenting",
                "add a third member, or defragment during a maintenance window with `etcdctl defrag` by hand",
            ));
        }
        let mut done: Vec<Value> = Vec::new();
        let mut reclaimed: u64 = 0;
        let selected: Vec<&Candidate> = self.selected().collect();
        for (k, d) in selected.iter().enumerate() {
            let c = &cluster.members[d.index];
            // Before each member: every member healthy, so quorum survives
            // this one being busy.
            if let Err(e) = cluster.all_healthy().await {
                return Err(stopped(&done, e));
            }
            let member = c.client()?;
            let now = member.status().await?;
            if now.is_leader && opts.move_leader && n > 1 {
                if let Some(to) = self.candidates.iter().find(|x| x.index != d.index) {
                    member.move_leader(to.status.id).await?;
                    progress(
                        &format!("leadership moved from {} to {}", c.name, to.status.name),
                        0,
                    );
                }
            }
            let before = member.status().await?;
            progress(&format!("defragmenting etcd member {}", c.name), 0);
            if let Err(e) = member.defragment().await {
                return Err(stopped(
                    &done,
                    format!("defragmenting etcd member {} failed: {e}", c.name),
                ));
            }
            if let Err(e) = c.wait_healthy(opts.timeout, clock, progress).await {
                return Err(stopped(&done, e.to_string()));
            }
            let after = member.status().await?;
            reclaimed += before.db_size.saturating_sub(after.db_size);
            done.push(json!({
                "name": c.name,
                "leader": before.is_leader,
                "db_size_before": before.db_size,
                "db_size_after": after.db_size,
                "defragmented": true,
                "at_ms": clock.now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0),
            }));
            if !opts.settle.is_zero() && k + 1 < selected.len() {
                let start = clock.now();
                loop {
                    let waited = clock.now().duration_since(start).unwrap_or_default();
                    if waited >= opts.settle {
                        break;
                    }
                    progress(
                        &format!("settling after defragmenting {}", c.name),
                        waited.as_secs(),
                    );
                    clock.sleep(Duration::from_secs(1)).await;
                }
            }
        }
        for d in self.candidates.iter().filter(|d| !d.selected) {
            done.push(json!({ "name": d.status.name, "leader": d.status.is_leader, "db_size_before": d.status.db_size, "db_size_after": d.status.db_size, "defragmented": false }));
        }
        Ok(json!({ "order": self.order(), "members": done, "reclaimed": reclaimed }))
    }
}

fn position(cluster: &Cluster, c: &ClusterMember) -> Option<usize> {
    cluster.members.iter().position(|x| x.name == c.name)
}

/// Stopped part-way: say which members were done.
fn stopped(done: &[Value], why: String) -> MaintenanceError {
    let names: Vec<&str> = done
        .iter()
        .filter(|d| d["defragmented"] == true)
        .filter_map(|d| d["name"].as_str())
        .collect();
    MaintenanceError::Failed {
        message: format!(
            "{why}; stopped before the next member (defragmented so far: {})",
            if names.is_empty() {
                "none".into()
            } else {
                names.join(", ")
            }
        ),
        hint: Some(
            "bring the member back and run again: members already done are skipped by the rule"
                .into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::tests::unreached;
    use crate::status::tests::status;

    fn plan(cluster: &Cluster, statuses: &[MemberStatus]) -> DefragPlan {
        DefragPlan {
            candidates: defrag_order(statuses)
                .into_iter()
                .map(|i| Candidate {
                    index: i,
                    status: statuses[i].clone(),
                    member: cluster.members[i].rule_value(&statuses[i]),
                    selected: false,
                })
                .collect(),
        }
    }

    #[test]
    fn the_rule_selects_and_the_plan_describes_each_member_in_order() {
        let cluster = unreached(&["master-1", "master-2", "master-3"]);
        let statuses = [
            status("master-1", 1, 1, 100_000_000, 10_000_000),
            status("master-2", 2, 1, 25_000_000, 24_000_000),
            status("master-3", 3, 1, 50_000_000, 5_000_000),
        ];
        let p = plan(&cluster, &statuses)
            .select(|m| Ok::<_, ()>(m["fragmentation"].as_f64().unwrap() > 0.5))
            .unwrap();
        assert_eq!(p.order(), ["master-2", "master-3", "master-1"]);
        let picked: Vec<&str> = p.selected().map(|c| c.status.name.as_str()).collect();
        assert_eq!(picked, ["master-3", "master-1"]);
        assert_eq!(
            p.candidates[0].describe(),
            "master-2 (follower): db 25 MB, in use 24 MB, free 1.0 MB (4% fragmented), 1% of quota 2.1 GB"
        );
        assert!(p.candidates[2]
            .describe()
            .starts_with("master-1 (leader): db 100 MB"));
        let evaluations = p.evaluations();
        assert_eq!(evaluations[0]["name"], "master-2");
        assert_eq!(evaluations[0]["defragment"], false);
        assert_eq!(evaluations[2]["defragment"], true);
        assert_eq!(evaluations[2]["db_size_free"], 90_000_000);
    }

    #[test]
    fn a_rule_error_stops_the_selection() {
        let cluster = unreached(&["a", "b", "c"]);
        let statuses = [
            status("a", 1, 1, 1, 1),
            status("b", 2, 1, 1, 1),
            status("c", 3, 1, 1, 1),
        ];
        let err = plan(&cluster, &statuses).select(|_| Err("bad rule")).err();
        assert_eq!(err, Some("bad rule"));
    }

    /// Every member selected and run, members unreached: the error.
    async fn run_all(names: &[&str]) -> MaintenanceError {
        let cluster = unreached(names);
        let statuses: Vec<MemberStatus> = (names.iter().zip(1..))
            .map(|(n, id)| status(n, id, 1, 10, 1))
            .collect();
        let p = plan(&cluster, &statuses).select(|_| Ok::<_, ()>(true));
        let opts = DefragOptions {
            timeout: Duration::from_secs(1),
            settle: Duration::ZERO,
            move_leader: false,
        };
        let clock = remedy_clock::ManualClock::new();
        let run = p.unwrap().run(&cluster, &opts, &clock, &|_, _| {}).await;
        run.err().unwrap()
    }

    #[tokio::test]
    async fn two_members_are_refused_before_anything_is_touched() {
        let err = run_all(&["a", "b"]).await;
        assert!(matches!(err, MaintenanceError::Refused { .. }), "{err}");
        assert!(err
            .to_string()
            .starts_with("a 2-member etcd cluster loses quorum"));
    }

    #[tokio::test]
    async fn an_unreachable_member_stops_the_run_naming_what_was_done() {
        let err = run_all(&["a", "b", "c"]).await;
        assert_eq!(
            err.to_string(),
            "etcd member a is unreachable: not connected; stopped before the next member (defragmented so far: none)"
        );
        assert!(err
            .hint()
            .unwrap()
            .contains("members already done are skipped"));
    }
}
