//! Mattermost's wire formats: the incoming-webhook message remedy posts (an
//! attachment with interactive buttons that call `remedy serve` back) and the
//! button callback Mattermost then sends.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::delivery::Callback;
use crate::notice::Notice;

/// Mattermost refuses posts over 16383 characters; leave room for the rest.
const SUMMARY_MAX: usize = 12_000;

/// The incoming-webhook body for `notice`. Buttons need somewhere to call back
/// to, so there are none without `callback`; the text then says how to
/// approve from a shell.
pub(crate) fn message(notice: &Notice, callback: Option<&Callback>) -> Value {
    let mut footer = format!("run `{}`", notice.run_id);
    if let Some(hash) = notice.plan_hash_prefix() {
        footer.push_str(&format!(" · plan `{hash}`"));
    }
    if let Some(head) = &notice.chain_head {
        footer.push_str(&format!(" · journal head `{head}`"));
    }
    let mut text = format!("#### {}", notice.title);
    if let Some(decision) = &notice.decision {
        text.push_str(&format!("\n**{decision}**"));
    }
    let mut attachment = json!({
        "fallback": notice.title,
        "text": format!("```\n{}\n```\n{footer}", notice.summary_within(SUMMARY_MAX).replace("```", "'''")),
    });
    match (notice.wants_buttons(), callback) {
        (Some(request), Some(callback)) => {
            let url = format!(
                "{}/mattermost/actions",
                callback.public_url.trim_end_matches('/')
            );
            let button = |id: &str, name: &str, style: &str| {
                let mut context = json!({"action": id, "request": request});
                if let Some(token) = &callback.mattermost_token {
                    context["token"] = json!(token);
                }
                json!({"id": id, "name": name, "style": style,
                       "integration": {"url": url, "context": context}})
            };
            attachment["actions"] = json!([
                button("approve", "Approve", "primary"),
                button("deny", "Deny", "danger"),
            ]);
        }
        (Some(_), None) => text.push_str(&format!("\n{}", notice.shell_hint())),
        (None, _) => {}
    }
    json!({"text": text, "attachments": [attachment]})
}

/// What a clicked button asks for, as Mattermost reports it.
#[derive(Debug)]
pub(crate) struct ButtonClick {
    pub user_id: String,
    pub trigger_id: Option<String>,
    pub approve: bool,
    pub request_id: String,
    pub token: String,
}

#[derive(Deserialize)]
struct CallbackBody {
    user_id: String,
    #[serde(default)]
    trigger_id: Option<String>,
    context: Context,
}

#[derive(Deserialize)]
struct Context {
    action: String,
    request: String,
    #[serde(default)]
    token: String,
}

/// Parses the JSON callback body. Errors say what is missing, for a 400.
pub(crate) fn parse_click(body: &[u8]) -> Result<ButtonClick, String> {
    let c: CallbackBody = serde_json::from_slice(body).map_err(|e| {
        format!("expected a Mattermost button callback (JSON with user_id and context {{action, request, token}}): {e}")
    })?;
    let approve = match c.context.action.as_str() {
        "approve" => true,
        "deny" => false,
        other => {
            return Err(format!(
                "context.action `{other}` is neither `approve` nor `deny`"
            ))
        }
    };
    if c.user_id.trim().is_empty() || c.context.request.trim().is_empty() {
        return Err("the callback names no user or no request".into());
    }
    Ok(ButtonClick {
        user_id: c.user_id,
        trigger_id: c.trigger_id.filter(|t| !t.is_empty()),
        approve,
        request_id: c.context.request,
        token: c.context.token,
    })
}
