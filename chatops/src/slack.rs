//! Slack's wire formats: the incoming-webhook message remedy posts (Block Kit,
//! with Approve/Deny buttons for approval requests) and the interactive
//! `block_actions` payload Slack sends back when a button is clicked.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::notice::{clip, Notice};

/// Slack's limit for a section's text is 3000 characters; the code fence and
/// a little slack for escaping come out of it.
const SUMMARY_MAX: usize = 2900;
/// Slack's limit for a header block's text.
const HEADER_MAX: usize = 150;

/// The incoming-webhook body for `notice`.
pub(crate) fn message(notice: &Notice) -> Value {
    let mut context = format!("run `{}`", escape(&notice.run_id));
    if let Some(hash) = notice.plan_hash_prefix() {
        context.push_str(&format!(" · plan `{}`", escape(hash)));
    }
    if let Some(head) = &notice.chain_head {
        context.push_str(&format!(" · journal head `{}`", escape(head)));
    }
    context.push_str(&format!(
        " · runbook `{}` · requested by {}",
        escape(&notice.runbook),
        escape(&notice.requester)
    ));
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": clip_line(&notice.title, HEADER_MAX)}}),
    ];
    if let Some(decision) = &notice.decision {
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("*{}*", escape(decision))}}));
    }
    // Clipped after escaping, which lengthens the text, so the section stays
    // under Slack's limit.
    let summary = clip(
        &escape(&notice.summary).replace("```", "'''"),
        SUMMARY_MAX,
        &notice.run_id,
    );
    blocks.push(
        json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("```{summary}```")}}),
    );
    blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]}));
    if let Some(request) = notice.wants_buttons() {
        blocks.push(json!({
            "type": "actions",
            "block_id": "remedy_approval",
            "elements": [
                {"type": "button", "action_id": "approve", "style": "primary", "value": request,
                 "text": {"type": "plain_text", "text": "Approve"}},
                {"type": "button", "action_id": "deny", "style": "danger", "value": request,
                 "text": {"type": "plain_text", "text": "Deny"}},
            ]
        }));
    }
    json!({"text": notice.title, "blocks": blocks})
}

/// Slack mrkdwn treats `&`, `<`, `>` as control characters.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn clip_line(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or("");
    if line.chars().count() <= max {
        return line.to_string();
    }
    let mut out: String = line.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// What a clicked button asks for.
#[derive(Debug)]
pub(crate) struct ButtonClick {
    pub user_id: String,
    /// Where Slack takes follow-up messages for the clicking user: Slack shows
    /// nothing of the HTTP response to a button click.
    pub response_url: Option<String>,
    pub approve: bool,
    pub request_id: String,
}

#[derive(Deserialize)]
struct Form {
    payload: String,
}

#[derive(Deserialize)]
struct Payload {
    #[serde(rename = "type")]
    kind: String,
    user: PayloadUser,
    #[serde(default)]
    actions: Vec<PayloadAction>,
    #[serde(default)]
    response_url: Option<String>,
}

#[derive(Deserialize)]
struct PayloadUser {
    id: String,
}

#[derive(Deserialize)]
struct PayloadAction {
    action_id: String,
    #[serde(default)]
    value: String,
}

/// Parses the form-encoded interactive request body. Errors say what is
/// missing, for a 400.
pub(crate) fn parse_click(body: &[u8]) -> Result<ButtonClick, String> {
    let form: Form = serde_urlencoded::from_bytes(body).map_err(|e| {
        format!("expected a form-encoded body with a `payload` field (Slack interactivity): {e}")
    })?;
    let payload: Payload = serde_json::from_str(&form.payload)
        .map_err(|e| format!("the `payload` field is not a Slack interaction: {e}"))?;
    if payload.kind != "block_actions" {
        return Err(format!(
            "interaction type `{}` is not handled; only the Approve/Deny buttons (block_actions) are",
            payload.kind
        ));
    }
    let action = payload
        .actions
        .first()
        .ok_or("the interaction carries no action")?;
    let approve = match action.action_id.as_str() {
        "approve" => true,
        "deny" => false,
        other => return Err(format!("action `{other}` is neither `approve` nor `deny`")),
    };
    if action.value.trim().is_empty() || payload.user.id.trim().is_empty() {
        return Err("the action names no request or the payload no user".into());
    }
    Ok(ButtonClick {
        user_id: payload.user.id,
        response_url: payload.response_url.filter(|u| !u.is_empty()),
        approve,
        request_id: action.value.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_control_characters_and_clips_the_header() {
        assert_eq!(escape("a<b>&c"), "a&lt;b&gt;&amp;c");
        let long = "x".repeat(400);
        assert_eq!(clip_line(&long, HEADER_MAX).chars().count(), HEADER_MAX);
    }

    #[test]
    fn click_parsing_refuses_other_interactions() {
        let form = |payload: &str| serde_urlencoded::to_string([("payload", payload)]).unwrap();
        let ok = form(
            r#"{"type":"block_actions","user":{"id":"U1","username":"a"},"actions":[{"action_id":"deny","value":"req-1"}]}"#,
        );
        let click = parse_click(ok.as_bytes()).unwrap();
        assert!(!click.approve && click.request_id == "req-1" && click.user_id == "U1");
        let shortcut = form(r#"{"type":"shortcut","user":{"id":"U1"}}"#);
        assert!(parse_click(shortcut.as_bytes())
            .unwrap_err()
            .contains("shortcut"));
        assert!(parse_click(b"payload=%7B").is_err());
        assert!(parse_click(b"\xff\xfe").is_err());
    }
}
