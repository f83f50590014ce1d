//! `defrag_order`: which member to defragment first.
//!
//! Defragmenting blocks a member's reads and writes while it runs. Followers
//! go first, by name so a plan is stable between runs; the leader goes last,
//! so the cluster keeps its leader (and so its write path) for as long as
//! possible and a slow defrag does not trigger an election early on.

use crate::status::MemberStatus;

/// Indexes into `statuses`: followers sorted by name, then the leader(s).
/// A member that believes itself leader is put last even if another one does
/// too (mid-election); no member is ever dropped.
pub fn defrag_order(statuses: &[MemberStatus]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..statuses.len()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (&statuses[a], &statuses[b]);
        (a.is_leader, &a.name, &a.endpoint).cmp(&(b.is_leader, &b.name, &b.endpoint))
    });
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::tests::status;

    #[test]
    fn followers_by_name_then_the_leader() {
        let statuses = [
            status("master-2", 2, 1, 10, 5),
            status("master-1", 1, 1, 10, 5),
            status("master-3", 3, 1, 10, 5),
        ];
        assert_eq!(defrag_order(&statuses), vec![0, 2, 1]);
    }

    #[test]
    fn without_a_leader_all_by_name() {
        let statuses = [status("b", 2, 0, 1, 1), status("a", 1, 0, 1, 1)];
        assert_eq!(defrag_order(&statuses), vec![1, 0]);
    }

    #[test]
    fn two_self_declared_leaders_both_go_last() {
        let mut statuses = [
            status("c", 3, 3, 1, 1),
            status("a", 1, 3, 1, 1),
            status("b", 2, 2, 1, 1),
        ];
        statuses[2].is_leader = true;
        assert_eq!(defrag_order(&statuses), vec![1, 2, 0]);
        assert!(defrag_order(&[]).is_empty());
    }
}
