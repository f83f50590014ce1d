//! What a member reports about itself: `MemberStatus`, `Alarm`, `MemberInfo`.
//!
//! Plain data, serializable for step results and `--json` output. Member ids
//! are serialized as hex strings, as etcdctl's tables show them: a JSON
//! number cannot hold every 64-bit id exactly.

use serde::{Serialize, Serializer};

/// One member's `etcdctl endpoint status`, plus the size in use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberStatus {
    #[serde(serialize_with = "hex_id")]
    pub id: u64,
    /// The name remedy knows the member by (the one given to `connect`).
    pub name: String,
    pub endpoint: String,
    pub is_leader: bool,
    #[serde(serialize_with = "hex_id")]
    pub leader_id: u64,
    pub raft_term: u64,
    pub raft_index: u64,
    /// The store's current revision, as seen by this member.
    pub revision: i64,
    /// Size of the backend file, bytes: what the quota is checked against.
    pub db_size: u64,
    /// Bytes actually used inside it; the rest is reclaimed by defragmenting.
    pub db_size_in_use: u64,
    /// The quota the member enforces (`--quota-backend-bytes`, or etcd's
    /// default when unset), as it reports it: etcd 3.6 and later; `None`
    /// from older members.
    pub quota: Option<u64>,
    pub version: String,
    pub errors: Vec<String>,
}

impl std::fmt::Display for MemberStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}) id {:x}{} term {} index {} revision {} db {} in use {}",
            self.name,
            self.endpoint,
            self.id,
            if self.is_leader { " leader" } else { "" },
            self.raft_term,
            self.raft_index,
            self.revision,
            self.db_size,
            self.db_size_in_use
        )?;
        if !self.errors.is_empty() {
            write!(f, " errors: {}", self.errors.join("; "))?;
        }
        Ok(())
    }
}

/// The share of the backend file that defragmenting would give back, 0..=1.
pub fn fragmentation(status: &MemberStatus) -> f64 {
    if status.db_size == 0 {
        return 0.0;
    }
    let in_use = status.db_size_in_use.min(status.db_size);
    1.0 - in_use as f64 / status.db_size as f64
}

/// An alarm raised on a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Alarm {
    #[serde(serialize_with = "hex_id")]
    pub member_id: u64,
    pub kind: AlarmKind,
}

impl std::fmt::Display for Alarm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} on member {:x}", self.kind, self.member_id)
    }
}

/// etcd's alarm types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum AlarmKind {
    /// The backend reached its quota: the cluster refuses writes.
    Nospace,
    /// A consistency check found diverging data.
    Corrupt,
}

impl std::fmt::Display for AlarmKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AlarmKind::Nospace => "NOSPACE",
            AlarmKind::Corrupt => "CORRUPT",
        })
    }
}

/// One entry of `etcdctl member list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberInfo {
    #[serde(serialize_with = "hex_id")]
    pub id: u64,
    /// etcd's own name for the member (`--name`); empty until it has started.
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
    pub is_learner: bool,
}

fn hex_id<S: Serializer>(id: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{id:x}"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn status(
        name: &str,
        id: u64,
        leader_id: u64,
        size: u64,
        used: u64,
    ) -> MemberStatus {
        MemberStatus {
            id,
            name: name.to_string(),
            endpoint: format!("https://10.0.0.{id}:2379"),
            is_leader: id == leader_id,
            leader_id,
            raft_term: 2,
            raft_index: 100,
            revision: 50,
            db_size: size,
            db_size_in_use: used,
            quota: None,
            version: "3.4.23".to_string(),
            errors: vec![],
        }
    }

    #[test]
    fn fragmentation_is_the_free_share() {
        assert_eq!(fragmentation(&status("a", 1, 1, 100, 25)), 0.75);
        assert_eq!(fragmentation(&status("a", 1, 1, 100, 100)), 0.0);
        assert_eq!(fragmentation(&status("a", 1, 1, 0, 0)), 0.0);
        // etcd can briefly report more in use than the file holds.
        assert_eq!(fragmentation(&status("a", 1, 1, 100, 120)), 0.0);
    }

    #[test]
    fn json_has_hex_ids_and_uppercase_alarms() {
        let json = serde_json::to_value(status("a", 0x8e9e05c52164694d, 3, 10, 5)).unwrap();
        assert_eq!(json["id"], "8e9e05c52164694d");
        assert_eq!(json["leader_id"], "3");
        assert_eq!(json["db_size_in_use"], 5);
        let alarm = Alarm {
            member_id: 0xab,
            kind: AlarmKind::Nospace,
        };
        assert_eq!(
            serde_json::to_string(&alarm).unwrap(),
            r#"{"member_id":"ab","kind":"NOSPACE"}"#
        );
        assert_eq!(alarm.to_string(), "NOSPACE on member ab");
    }
}
