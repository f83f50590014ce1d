//! [`Cluster`]: every member of one etcd cluster, each reached on its own (or
//! with why it could not be), and the quota each runs with — what
//! cluster-wide maintenance decides on: who answers, who is healthy, the
//! values a rule sees, the `etcd.status` report, waiting for a member.
//!
//! The caller reaches the members (remedy: through each master's SSH
//! session) and reads their quotas; nothing here knows how.

use std::time::Duration;

use remedy_clock::Clock;
use serde_json::{json, Value};

use crate::error::MaintenanceError;
use crate::member::Member;
use crate::rule_inputs::RuleInputs;
use crate::status::{fragmentation, MemberStatus};
use crate::table::status_table;

/// Reports a long wait: (what, seconds so far).
pub type Progress<'p> = &'p (dyn Fn(&str, u64) + Send + Sync);

/// A member's status, or why there is none.
pub type Answer = Result<MemberStatus, String>;

/// One member: the name the caller knows it by, its client URL, the client
/// (or why it could not connect), and the quota to judge it by when the
/// caller has one (see [`RuleInputs::new`]: else the member's own report).
pub struct ClusterMember {
    pub name: String,
    pub endpoint: String,
    pub member: Result<Member, String>,
    pub quota: Option<u64>,
}

/// The members of one cluster, in the caller's order.
pub struct Cluster {
    pub members: Vec<ClusterMember>,
}

impl ClusterMember {
    /// The client, or a failure naming why there is none.
    pub fn client(&self) -> Result<&Member, MaintenanceError> {
        self.member
            .as_ref()
            .map_err(|e| MaintenanceError::failed(e.clone()))
    }

    /// The values a rule sees as `member`.
    pub fn rule_value(&self, s: &MemberStatus) -> Value {
        let r = RuleInputs::new(s, self.quota);
        json!({
            "name": self.name,
            "leader": s.is_leader,
            "db_size": r.db_size,
            "db_size_in_use": r.db_size_in_use,
            "db_size_free": r.db_size_free,
            "quota": r.quota,
            "quota_usage": r.quota_usage,
            "fragmentation": r.fragmentation,
        })
    }

    /// This member as an entry of a status report.
    pub fn status_value(&self, s: &Answer) -> Value {
        match s {
            Ok(s) => {
                let mut v = serde_json::to_value(s).unwrap_or(Value::Null);
                v["host"] = json!(self.name);
                v["fragmentation"] = json!(fragmentation(s));
                v["quota"] = json!(RuleInputs::new(s, self.quota).quota);
                v["healthy"] = json!(s.errors.is_empty());
                v
            }
            Err(e) => {
                json!({ "host": self.name, "endpoint": self.endpoint, "error": e, "healthy": false })
            }
        }
    }

    /// Wait until this member answers a health check (NOSPACE counts as
    /// healthy: a full member still serves what recovers it), up to `limit`.
    pub async fn wait_healthy(
        &self,
        limit: Duration,
        clock: &dyn Clock,
        progress: Progress<'_>,
    ) -> Result<(), MaintenanceError> {
        let Ok(m) = &self.member else {
            return Err(MaintenanceError::failed(format!(
                "etcd member {} is unreachable",
                self.name
            )));
        };
        let start = clock.now();
        loop {
            let err = match m.health().await {
                Ok(_) => return Ok(()),
                Err(e) if e.is_nospace() => return Ok(()),
                Err(e) => e.to_string(),
            };
            let waited = clock.now().duration_since(start).unwrap_or_default();
            if waited >= limit {
                return Err(MaintenanceError::Failed {
                    message: format!(
                        "etcd member {} did not become healthy within {}s: {err}",
                        self.name,
                        limit.as_secs()
                    ),
                    hint: Some("look at the member's log on its master; the other members were not touched after it".into()),
                });
            }
            progress(
                &format!("etcd member {} to be healthy", self.name),
                waited.as_secs(),
            );
            clock.sleep(Duration::from_secs(1)).await;
        }
    }
}

/// What `etcd.status` reports: a table with one line per problem after it,
/// and the step's result fields.
pub struct StatusReport {
    pub summary: String,
    pub fields: Value,
}

impl Cluster {
    /// Each member's status, or why there is none; asked of every member at
    /// once.
    pub async fn statuses(&self) -> Vec<Answer> {
        futures::future::join_all(self.members.iter().map(|c| async move {
            match &c.member {
                Ok(m) => m.status().await.map_err(|e| e.to_string()),
                Err(e) => Err(e.clone()),
            }
        }))
        .await
    }

    /// Every member healthy (a linearizable read, no alarm but NOSPACE — a
    /// full member still serves reads, compaction and defragmentation, which
    /// is how it is recovered), or the first in member order that is not,
    /// named, with why. Every member is asked at once.
    pub async fn all_healthy(&self) -> Result<(), String> {
        let verdicts = futures::future::join_all(self.members.iter().map(|c| async move {
            match &c.member {
                Err(e) => Err(format!("etcd member {} is unreachable: {e}", c.name)),
                Ok(m) => match m.health().await {
                    Ok(_) => Ok(()),
                    Err(e) if e.is_nospace() => Ok(()),
                    Err(e) => Err(format!("etcd member {} is not healthy: {e}", c.name)),
                },
            }
        }))
        .await;
        verdicts.into_iter().collect()
    }

    /// The statuses that answered, with their members, or a refusal naming
    /// every member that did not: nothing was `doing` ("compacted").
    pub fn answered<'a>(
        &'a self,
        statuses: &[Answer],
        doing: &str,
    ) -> Result<Vec<(&'a ClusterMember, MemberStatus)>, MaintenanceError> {
        let down: Vec<String> = self
            .members
            .iter()
            .zip(statuses)
            .filter_map(|(c, s)| s.as_ref().err().map(|e| format!("{}: {e}", c.name)))
            .collect();
        if !down.is_empty() {
            return Err(MaintenanceError::refused(
                format!(
                    "{} of {} etcd member(s) did not answer, so nothing was {doing}: {}",
                    down.len(),
                    self.members.len(),
                    down.join("; ")
                ),
                "bring the member back first (is its etcd static pod running? `remedy exec -i INV HOST -- crictl ps`), then run again",
            ));
        }
        Ok(self
            .members
            .iter()
            .zip(statuses)
            .filter_map(|(c, s)| s.as_ref().ok().map(|s| (c, s.clone())))
            .collect())
    }

    /// Every member's status, refused unless all answer (see [`Cluster::answered`]).
    pub async fn survey(
        &self,
        doing: &str,
    ) -> Result<Vec<(&ClusterMember, MemberStatus)>, MaintenanceError> {
        let statuses = self.statuses().await;
        self.answered(&statuses, doing)
    }

    /// Every member's id, endpoint, leadership, raft term and index,
    /// revision, sizes, fragmentation, alarms, version and health — like
    /// `etcdctl endpoint status -w table`, with a line for each member that
    /// does not answer and each alarm.
    pub async fn status_report(&self) -> StatusReport {
        // Every question at once: each member's status and health check,
        // and the alarm list (a raft proposal, a WAL fsync on a quorum).
        let alarms = async {
            for c in &self.members {
                if let Ok(m) = &c.member {
                    if let Ok(a) = m.alarms().await {
                        return a;
                    }
                }
            }
            Vec::new()
        };
        let answers = futures::future::join_all(self.members.iter().map(|c| async move {
            match &c.member {
                Ok(m) => {
                    let (s, h) = futures::join!(m.status(), m.health());
                    (s.map_err(|e| e.to_string()), h.is_ok())
                }
                Err(e) => (Err(e.clone()), false),
            }
        }));
        let (alarms, answers) = futures::join!(alarms, answers);
        let (st, members): (Vec<Answer>, Vec<Value>) = (self.members.iter().zip(answers))
            .map(|(c, (s, healthy))| {
                let mut v = c.status_value(&s);
                if s.is_ok() {
                    v["healthy"] = json!(healthy);
                }
                (s, v)
            })
            .unzip();
        let ok: Vec<MemberStatus> = st.iter().filter_map(|s| s.as_ref().ok().cloned()).collect();
        let leader = ok.iter().find(|s| s.is_leader).map(|s| s.name.clone());
        let mut text = status_table(&ok);
        for (c, s) in self.members.iter().zip(&st) {
            if let Err(e) = s {
                text.push_str(&format!("{}: NOT ANSWERING: {e}\n", c.name));
            }
        }
        for a in &alarms {
            text.push_str(&format!("ALARM {a}\n"));
        }
        let healthy = members.iter().filter(|m| m["healthy"] == true).count();
        let summary = format!(
            "{} of {} etcd member(s) healthy, leader {}{}\n{}",
            healthy,
            self.members.len(),
            leader.as_deref().unwrap_or("none"),
            if alarms.is_empty() {
                String::new()
            } else {
                format!(", {} alarm(s)", alarms.len())
            },
            text.trim_end()
        );
        StatusReport {
            summary,
            fields: json!({
                "members": members,
                "leader": leader,
                "healthy": healthy,
                "alarms": alarms.iter().map(|a| json!({ "member_id": format!("{:x}", a.member_id), "kind": a.kind.to_string() })).collect::<Vec<_>>(),
            }),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::status::tests::status;

    /// A cluster whose members never connected: enough for everything that
    /// decides on statuses alone.
    pub(crate) fn unreached(names: &[&str]) -> Cluster {
        Cluster {
            members: names
                .iter()
                .map(|n| ClusterMember {
                    name: n.to_string(),
                    endpoint: format!("https://{n}:2379"),
                    member: Err("not connected".into()),
                    quota: None,
                })
                .collect(),
        }
    }

    #[test]
    fn a_member_that_did_not_answer_refuses_the_whole_operation() {
        let cluster = unreached(&["master-1", "master-2", "master-3"]);
        let statuses = vec![
            Ok(status("master-1", 1, 1, 10, 5)),
            Err("connection refused".to_string()),
            Ok(status("master-3", 3, 1, 10, 5)),
        ];
        let err = cluster.answered(&statuses, "compacted").err().unwrap();
        assert_eq!(
            err.to_string(),
            "1 of 3 etcd member(s) did not answer, so nothing was compacted: master-2: connection refused"
        );
        assert!(err
            .hint()
            .unwrap()
            .starts_with("bring the member back first"));
        assert!(matches!(err, MaintenanceError::Refused { .. }));
        let all = vec![
            Ok(status("master-1", 1, 1, 10, 5)),
            Ok(status("master-2", 2, 1, 10, 5)),
            Ok(status("master-3", 3, 1, 10, 5)),
        ];
        let answered = cluster.answered(&all, "compacted").unwrap();
        assert_eq!(answered.len(), 3);
        assert_eq!(answered[1].0.name, "master-2");
    }

    #[test]
    fn rule_and_status_values_carry_the_member_and_its_quota() {
        let mut cluster = unreached(&["master-1"]);
        cluster.members[0].quota = Some(32 << 20);
        let c = &cluster.members[0];
        let s = status("master-1", 1, 1, 16 << 20, 4 << 20);
        let rule = c.rule_value(&s);
        assert_eq!(rule["name"], "master-1");
        assert_eq!(rule["leader"], true);
        assert_eq!(rule["db_size_free"], 12 << 20);
        assert_eq!(rule["quota_usage"], 0.5);
        assert_eq!(rule["fragmentation"], 0.75);
        let ok = c.status_value(&Ok(s));
        assert_eq!(ok["host"], "master-1");
        assert_eq!(ok["quota"], 32 << 20);
        assert_eq!(ok["healthy"], true);
        assert_eq!(ok["id"], "1");
        let down = c.status_value(&Err("timed out".into()));
        assert_eq!(
            down,
            json!({ "host": "master-1", "endpoint": "https://master-1:2379", "error": "timed out", "healthy": false })
        );
    }
}
