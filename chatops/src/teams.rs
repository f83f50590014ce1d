//! Microsoft Teams' incoming-webhook format: an Office 365 connector
//! MessageCard. It has no buttons — actionable buttons need a Teams app — so
//! the card says how to approve from a shell.

use serde_json::{json, Value};

use crate::notice::{Notice, NoticeKind};

/// Teams refuses cards over about 28 KB; the summary gets most of it.
const SUMMARY_MAX: usize = 16_000;

/// The MessageCard for `notice`.
pub(crate) fn message(notice: &Notice) -> Value {
    let color = match notice.kind {
        NoticeKind::ApprovalRequested => "FFA500",
        NoticeKind::ApprovalDecided | NoticeKind::RunFinished => "2EB886",
        NoticeKind::RunFailed | NoticeKind::BreakGlass => "D00000",
    };
    let mut text = String::new();
    if let Some(decision) = &notice.decision {
        text.push_str(&format!("**{decision}**\n\n"));
    }
    if notice.wants_buttons().is_some() {
        text.push_str(&format!("To decide, {}.\n\n", notice.shell_hint()));
    }
    // A MessageCard's text is Markdown; a fenced block keeps the plan's layout.
    text.push_str(&format!(
        "```\n{}\n```",
        notice.summary_within(SUMMARY_MAX).replace("```", "'''")
    ));
    let mut facts = vec![
        json!({"name": "Run", "value": notice.run_id}),
        json!({"name": "Runbook", "value": notice.runbook}),
        json!({"name": "Requester", "value": notice.requester}),
        json!({"name": "Hosts", "value": notice.hosts.join(", ")}),
    ];
    if let Some(hash) = notice.plan_hash_prefix() {
        facts.push(json!({"name": "Plan", "value": hash}));
    }
    if let Some(head) = &notice.chain_head {
        facts.push(json!({"name": "Journal head", "value": head}));
    }
    json!({
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "summary": notice.title,
        "themeColor": color,
        "title": notice.title,
        "text": text,
        "sections": [{"facts": facts}],
    })
}
