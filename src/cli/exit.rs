//! The exit-code table, documented in the README and `remedy --help`.

/// How a command ended, as the shell sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: done; every host is as the runbook wants (or a dry-run planned cleanly).
    Ok,
    /// 1: a step failed; the host was rolled back, stopped or continued per
    /// `on_failure`, and the rollout stopped if `max_failed` was exceeded.
    StepFailed,
    /// 2: invalid input — runbook, inventory, params, command line. Nothing ran.
    Invalid,
    /// 3: denied — the change was not confirmed (or not approved).
    Denied,
    /// 4: interrupted (Ctrl-C): stopped after the step that was running, or
    /// before any change (at a prompt, while planning) with nothing changed.
    Interrupted,
    /// 5: a rollback failed: a host is NOT as it was; the output says what to
    /// restore by hand.
    RollbackFailed,
}

impl From<Exit> for i32 {
    fn from(e: Exit) -> i32 {
        match e {
            Exit::Ok => 0,
            Exit::StepFailed => 1,
            Exit::Invalid => 2,
            Exit::Denied => 3,
            Exit::Interrupted => 4,
            Exit::RollbackFailed => 5,
        }
    }
}

pub const TABLE: &str = "\
Exit codes:
  0  ok: done, or a dry-run that planned cleanly
  1  a step failed (hosts rolled back, stopped or continued per on_failure)
  2  invalid input: runbook, inventory, params or command line; nothing ran
  3  denied: the change was not confirmed or not approved
  4  interrupted (Ctrl-C): stopped after the running step, or before any change
  5  rollback failed: a host needs manual repair; the output says how";
