//! `Notice`: what remedy tells chat about a run, independent of any channel's
//! wire format (each channel renders it in its own file).

use serde::Serialize;

/// Which event a notice reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// A run waits for approval; the notice carries the request id for buttons.
    ApprovalRequested,
    /// A request was approved or denied (see `Notice::decision`).
    ApprovalDecided,
    /// A run failed.
    RunFailed,
    /// A run finished.
    RunFinished,
    /// Someone skipped approval with break-glass; the run is flagged for review.
    BreakGlass,
}

impl NoticeKind {
    /// The snake_case name, as serialized and as given to commands in `REMEDY_EVENT`.
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::ApprovalRequested => "approval_requested",
            NoticeKind::ApprovalDecided => "approval_decided",
            NoticeKind::RunFailed => "run_failed",
            NoticeKind::RunFinished => "run_finished",
            NoticeKind::BreakGlass => "break_glass",
        }
    }
}

/// One event about a run, sent to every configured notifier.
#[derive(Debug, Clone, Serialize)]
pub struct Notice {
    pub kind: NoticeKind,
    pub run_id: String,
    /// The approval request, for `ApprovalRequested` and `ApprovalDecided`.
    pub request_id: Option<String>,
    pub runbook: String,
    pub requester: String,
    pub hosts: Vec<String>,
    /// One line, e.g. "alice asks to run cert-renew on master-1..3".
    pub title: String,
    /// The plan summary: multi-line and possibly long; channels clip it.
    pub summary: String,
    pub plan_hash: Option<String>,
    /// "approved by bob, carol" / "denied by bob: reason".
    pub decision: Option<String>,
    /// For `RunFinished`/`RunFailed`: the journal's chain head (the last
    /// event's hash) when the run ended. Kept by the chat, it is the witness
    /// `remedy audit verify --head` checks a cut-off journal against.
    pub chain_head: Option<String>,
}

impl Notice {
    /// Whether this notice should carry Approve/Deny buttons.
    pub(crate) fn wants_buttons(&self) -> Option<&str> {
        match (self.kind, self.request_id.as_deref()) {
            (NoticeKind::ApprovalRequested, Some(id)) if !id.is_empty() => Some(id),
            _ => None,
        }
    }

    /// The first 12 characters of the plan hash, enough to compare by eye.
    pub(crate) fn plan_hash_prefix(&self) -> Option<&str> {
        self.plan_hash.as_deref().map(|h| h.get(..12).unwrap_or(h))
    }

    /// The summary within `max_chars` characters (see `clip`).
    pub(crate) fn summary_within(&self, max_chars: usize) -> String {
        clip(&self.summary, max_chars, &self.run_id)
    }

    /// How a reader approves from a shell, for channels without buttons.
    pub(crate) fn shell_hint(&self) -> String {
        format!(
            "approve with `remedy approve {run}` or deny with `remedy deny {run}`",
            run = self.run_id
        )
    }
}

/// `text` cut to at most `max_chars` characters, at a line boundary when there
/// is one, with a last line telling how much was left out and where the whole
/// plan is.
pub(crate) fn clip(text: &str, max_chars: usize, run_id: &str) -> String {
    let total = text.chars().count();
    if total <= max_chars {
        return text.to_string();
    }
    let total_lines = text.lines().count();
    // Reserve room for the note; the note itself is short and bounded.
    let note_room = 120.min(max_chars);
    let keep = max_chars - note_room;
    let cut = text.char_indices().nth(keep).map_or(text.len(), |(i, _)| i);
    let head = &text[..cut];
    let head = match head.rfind('\n') {
        Some(i) if i > 0 => &head[..i],
        _ => head,
    };
    let kept_lines = head.lines().count();
    let note = format!(
        "… {} more lines; the whole plan: `remedy audit show {run_id}`",
        total_lines.saturating_sub(kept_lines).max(1)
    );
    let mut out = format!("{head}\n{note}");
    if out.chars().count() > max_chars {
        out = out.chars().take(max_chars).collect();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_untouched() {
        assert_eq!(clip("a\nb", 10, "r1"), "a\nb");
    }

    #[test]
    fn long_text_is_cut_at_a_line_and_says_so() {
        let text: String = (0..1000)
            .map(|i| format!("step {i}: restart ĳ\n"))
            .collect();
        let out = clip(&text, 500, "r1");
        assert!(out.chars().count() <= 500);
        assert!(
            out.ends_with("the whole plan: `remedy audit show r1`"),
            "{out}"
        );
        let body_lines: Vec<&str> = out.lines().collect();
        assert!(body_lines[..body_lines.len() - 1]
            .iter()
            .all(|l| l.starts_with("step ") && l.ends_with('ĳ')));
    }

    #[test]
    fn one_long_line_is_cut_on_a_char_boundary() {
        let text = "é".repeat(5000);
        let out = clip(&text, 300, "r1");
        assert!(out.chars().count() <= 300);
        assert!(out.starts_with("éé"));
        assert!(clip(&text, 10, "r1").chars().count() <= 10);
    }
}
