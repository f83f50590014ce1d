//! `RuleInputs`: the numbers a runbook's Rhai rules decide etcd maintenance on.
//!
//! etcd checks its quota (`--quota-backend-bytes`) against the backend file's
//! size, not the size in use, so a fragmented member can raise NOSPACE with
//! most of its file empty: rules see both, and the usage is of `db_size`.

use serde::Serialize;

use crate::status::{fragmentation, MemberStatus};

/// etcd's default `--quota-backend-bytes`: 2 GiB.
pub const DEFAULT_QUOTA_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// One member's sizes, ready for rules like `quota_usage > 0.8`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleInputs {
    pub db_size: u64,
    pub db_size_in_use: u64,
    /// What a defragmentation would give back, bytes.
    pub db_size_free: u64,
    /// The quota in force, bytes.
    pub quota: u64,
    /// `db_size / quota`: 1.0 means writes are refused.
    pub quota_usage: f64,
    /// `1 - in_use / db_size`.
    pub fragmentation: f64,
}

impl RuleInputs {
    /// `quota` is the caller's figure when it has one (a quota to judge by
    /// that the runbook gives, or the manifest's `--quota-backend-bytes` for
    /// a member that does not report its quota); else the quota the member
    /// reports (etcd 3.6 and later); else etcd's default, 2 GiB.
    pub fn new(status: &MemberStatus, quota: Option<u64>) -> RuleInputs {
        let quota = (quota.filter(|q| *q > 0))
            .or(status.quota)
            .unwrap_or(DEFAULT_QUOTA_BYTES);
        RuleInputs {
            db_size: status.db_size,
            db_size_in_use: status.db_size_in_use,
            db_size_free: status.db_size.saturating_sub(status.db_size_in_use),
            quota,
            quota_usage: status.db_size as f64 / quota as f64,
            fragmentation: fragmentation(status),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::tests::status;

    #[test]
    fn default_quota_is_two_gibibytes() {
        let inputs = RuleInputs::new(&status("a", 1, 1, 1 << 30, 1 << 28), None);
        assert_eq!(inputs.quota, 2_147_483_648);
        assert_eq!(inputs.quota_usage, 0.5);
        assert_eq!(inputs.db_size_free, (1 << 30) - (1 << 28));
        assert_eq!(inputs.fragmentation, 0.75);
        // A zero quota in a manifest means "default" to etcd too.
        assert_eq!(
            RuleInputs::new(&status("a", 1, 1, 1, 1), Some(0)).quota,
            DEFAULT_QUOTA_BYTES
        );
    }

    #[test]
    fn the_quota_a_member_reports_counts_unless_the_caller_gives_one() {
        let mut s = status("a", 1, 1, 12 << 20, 1 << 20);
        s.quota = Some(16 << 20);
        let inputs = RuleInputs::new(&s, None);
        assert_eq!(inputs.quota, 16 << 20);
        assert_eq!(inputs.quota_usage, 0.75);
        assert_eq!(RuleInputs::new(&s, Some(0)).quota, 16 << 20);
        assert_eq!(RuleInputs::new(&s, Some(64 << 20)).quota, 64 << 20);
    }

    #[test]
    fn given_quota_is_used() {
        let inputs = RuleInputs::new(&status("a", 1, 1, 30 << 20, 29 << 20), Some(32 << 20));
        assert_eq!(inputs.quota, 33_554_432);
        assert!((inputs.quota_usage - 0.9375).abs() < 1e-9);
        // in use above size (reported mid-write) never underflows
        let inputs = RuleInputs::new(&status("a", 1, 1, 10, 12), None);
        assert_eq!(inputs.db_size_free, 0);
    }
}
