//! `remedy serve`'s callback endpoints over real HTTP on loopback: signature,
//! timestamp, replay and user checks, and junk bodies.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use remedy_chatops::{
    router_with_clock, sign_slack, sign_webhook, Clock, Decider, Decision, ServeSecrets,
};
use reqwest::StatusCode;
use serde_json::{json, Value};

const NOW: i64 = 1_760_000_000;
const SLACK_SECRET: &str = "slack-signing-secret";
const MM_TOKEN: &str = "mm-token";
const HOOK_SECRET: &str = "hook-secret";

/// Records decisions; refuses requests whose id starts with "closed".
#[derive(Default)]
struct Recorder {
    decisions: Mutex<Vec<Decision>>,
    seen: Mutex<HashSet<String>>,
}

impl Decider for Recorder {
    fn decide(&self, d: Decision) -> Result<String, String> {
        if d.request_id.starts_with("closed") {
            return Err(format!("request {} is already closed", d.request_id));
        }
        let message = format!(
            "{} by {}",
            if d.approve { "approved" } else { "denied" },
            d.user
        );
        self.decisions.lock().unwrap().push(d);
        Ok(message)
    }

    fn first_time(&self, key: &str) -> bool {
        self.seen.lock().unwrap().insert(key.to_string())
    }
}

struct Server {
    base: String,
    client: reqwest::Client,
    recorder: Arc<Recorder>,
}

impl Server {
    async fn start() -> Server {
        Server::start_with(ServeSecrets {
            slack_signing_secret: Some(SLACK_SECRET.into()),
            mattermost_token: Some(MM_TOKEN.into()),
            webhook_secret: Some(HOOK_SECRET.into()),
        })
        .await
    }

    async fn start_with(secrets: ServeSecrets) -> Server {
        let users = BTreeMap::from([
            ("slack:U024BE7LH".to_string(), "bob".to_string()),
            ("mattermost:8x7kq".to_string(), "carol".to_string()),
            ("webhook:dave".to_string(), "dave".to_string()),
        ]);
        let recorder = Arc::new(Recorder::default());
        let app = router_with_clock(secrets, users, recorder.clone(), Clock::fixed(NOW));
        Server {
            base: common::serve(app).await,
            client: remedy_chatops::http_client().build().unwrap(),
            recorder,
        }
    }

    async fn post(
        &self,
        path: &str,
        headers: &[(&str, String)],
        body: impl Into<Vec<u8>>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .client
            .post(format!("{}{path}", self.base))
            .body(body.into());
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}"));
        (status, body)
    }

    fn decisions(&self) -> Vec<Decision> {
        self.recorder.decisions.lock().unwrap().clone()
    }
}

fn slack_body(user: &str, action: &str, request: &str) -> String {
    slack_body_answering(user, action, request, None)
}

fn slack_body_answering(
    user: &str,
    action: &str,
    request: &str,
    response_url: Option<&str>,
) -> String {
    let mut payload = json!({
        "type": "block_actions",
        "user": {"id": user, "username": "bob.s"},
        "actions": [{"action_id": action, "block_id": "remedy_approval", "value": request, "type": "button"}],
    });
    if let Some(url) = response_url {
        payload["response_url"] = json!(url);
    }
    serde_urlencoded::to_string([("payload", payload.to_string())]).unwrap()
}

fn slack_headers(secret: &str, ts: i64, body: &str) -> Vec<(&'static str, String)> {
    let ts = ts.to_string();
    vec![
        ("Content-Type", "application/x-www-form-urlencoded".into()),
        (
            "X-Slack-Signature",
            sign_slack(secret, &ts, body.as_bytes()),
        ),
        ("X-Slack-Request-Timestamp", ts),
    ]
}

fn webhook_headers(secret: &str, ts: i64, body: &str) -> Vec<(&'static str, String)> {
    let ts = ts.to_string();
    vec![
        ("Content-Type", "application/json".into()),
        (
            "X-Remedy-Signature",
            sign_webhook(secret, &ts, body.as_bytes()),
        ),
        ("X-Remedy-Timestamp", ts),
    ]
}

fn text(body: &Value, field: &str) -> String {
    body[field].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn healthz_answers_ok() {
    let server = Server::start().await;
    let response = reqwest::get(format!("{}/healthz", server.base))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"status": "ok"})
    );
    let response = reqwest::get(format!("{}/nowhere", server.base))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(response.text().await.unwrap().contains("/slack/actions"));
}

#[tokio::test]
async fn slack_click_with_a_valid_signature_is_decided_once_as_the_mapped_user() {
    let server = Server::start().await;
    let body = slack_body("U024BE7LH", "approve", "req-7f3a");
    let (status, reply) = server
        .post(
            "/slack/actions",
            &slack_headers(SLACK_SECRET, NOW - 20, &body),
            body.clone(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(text(&reply, "text"), "approved by bob");
    assert_eq!(reply["replace_original"], false);
    let decisions = server.decisions();
    assert_eq!(decisions.len(), 1);
    let d = &decisions[0];
    assert_eq!(
        (
            d.request_id.as_str(),
            d.approve,
            d.user.as_str(),
            d.chat_user.as_str(),
            d.channel.as_str()
        ),
        ("req-7f3a", true, "bob", "slack:U024BE7LH", "slack")
    );
    assert_eq!(d.comment, None);
}

#[tokio::test]
async fn slack_outcome_is_also_posted_to_the_response_url_once() {
    let server = Server::start().await;
    let slack = common::Receiver::start(&[]).await;
    let response_url = format!("{}/actions/T1/123/abc", slack.base);
    let body = slack_body_answering("U999STRANGER", "approve", "req-7f3a", Some(&response_url));
    let headers = slack_headers(SLACK_SECRET, NOW, &body);
    let (status, _) = server.post("/slack/actions", &headers, body.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = server.post("/slack/actions", &headers, body).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "unknown users are refused before the replay check"
    );

    let body = slack_body_answering("U024BE7LH", "approve", "req-7f3a", Some(&response_url));
    let headers = slack_headers(SLACK_SECRET, NOW, &body);
    let (status, _) = server.post("/slack/actions", &headers, body.clone()).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = server.post("/slack/actions", &headers, body).await;
    assert_eq!(status, StatusCode::CONFLICT);

    // The follow-ups are sent in the background. A last, different click is
    // answered at a URL of its own: once that follow-up has arrived, one for
    // the replay (sent before it, had there been one) would be there too.
    let marker_url = format!("{}/actions/T1/999/marker", slack.base);
    let body = slack_body_answering("U024BE7LH", "deny", "req-marker", Some(&marker_url));
    let headers = slack_headers(SLACK_SECRET, NOW, &body);
    let (status, _) = server.post("/slack/actions", &headers, body).await;
    assert_eq!(status, StatusCode::OK);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !slack
        .requests()
        .iter()
        .any(|r| r.path == "/actions/T1/999/marker")
        || slack.requests().len() < 4
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the follow-ups never all arrived: {:?}",
            slack.requests()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let texts: Vec<String> = slack
        .requests()
        .iter()
        .filter(|r| r.path == "/actions/T1/123/abc")
        .map(|r| text(&r.json(), "text"))
        .collect();
    assert_eq!(texts.len(), 3, "{texts:?}");
    assert_eq!(
        texts
            .iter()
            .filter(|t| t.contains("slack:U999STRANGER"))
            .count(),
        2
    );
    assert_eq!(
        texts.iter().filter(|t| *t == "approved by bob").count(),
        1,
        "the replay is not answered"
    );
    assert_eq!(slack.requests().len(), 4, "{:?}", slack.requests());
}

#[tokio::test]
async fn slack_replay_of_the_same_request_is_refused() {
    let server = Server::start().await;
    let body = slack_body("U024BE7LH", "deny", "req-7f3a");
    let headers = slack_headers(SLACK_SECRET, NOW, &body);
    let (first, _) = server.post("/slack/actions", &headers, body.clone()).await;
    let (second, reply) = server.post("/slack/actions", &headers, body.clone()).await;
    assert_eq!(first, StatusCode::OK);
    assert_eq!(second, StatusCode::CONFLICT);
    assert!(text(&reply, "text").contains("already received"), "{reply}");
    assert_eq!(server.decisions().len(), 1);
    assert!(!server.decisions()[0].approve);
}

#[tokio::test]
async fn slack_wrong_signature_is_refused_401() {
    let server = Server::start().await;
    let body = slack_body("U024BE7LH", "approve", "req-7f3a");
    let (status, reply) = server
        .post(
            "/slack/actions",
            &slack_headers("another-secret", NOW, &body),
            body.clone(),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        text(&reply, "text").contains("signature does not match"),
        "{reply}"
    );

    // A correctly signed body, tampered with after signing.
    let mut headers = slack_headers(SLACK_SECRET, NOW, &body);
    let tampered = slack_body("U024BE7LH", "approve", "req-other");
    let (status, _) = server.post("/slack/actions", &headers, tampered).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    headers.retain(|(name, _)| *name != "X-Slack-Signature");
    let (status, reply) = server.post("/slack/actions", &headers, body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        text(&reply, "text").contains("X-Slack-Signature header is missing"),
        "{reply}"
    );
    assert!(server.decisions().is_empty());
}

#[tokio::test]
async fn slack_stale_timestamp_is_refused_either_way() {
    let server = Server::start().await;
    let body = slack_body("U024BE7LH", "approve", "req-7f3a");
    for ts in [NOW - 301, NOW + 301] {
        let (status, reply) = server
            .post(
                "/slack/actions",
                &slack_headers(SLACK_SECRET, ts, &body),
                body.clone(),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{reply}");
        assert!(text(&reply, "text").contains("clock"), "{reply}");
    }
    assert!(server.decisions().is_empty());
}

#[tokio::test]
async fn slack_unknown_user_is_refused_with_the_config_to_add() {
    let server = Server::start().await;
    let body = slack_body("U999STRANGER", "approve", "req-7f3a");
    let (status, reply) = server
        .post(
            "/slack/actions",
            &slack_headers(SLACK_SECRET, NOW, &body),
            body,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let message = text(&reply, "text");
    assert!(
        message.contains("slack:U999STRANGER") && message.contains("chat.users"),
        "{message}"
    );
    assert!(server.decisions().is_empty());
}

#[tokio::test]
async fn a_refusal_by_the_decider_is_forbidden_with_its_reason() {
    let server = Server::start().await;
    let body = slack_body("U024BE7LH", "approve", "closed-1");
    let (status, reply) = server
        .post(
            "/slack/actions",
            &slack_headers(SLACK_SECRET, NOW, &body),
            body,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(text(&reply, "text"), "request closed-1 is already closed");
}

#[tokio::test]
async fn slack_junk_is_refused_400_after_the_signature_check() {
    let server = Server::start().await;
    let junk: [&[u8]; 5] = [
        b"",
        b"payload=not-json",
        b"\xff\xfe\x00garbage",
        b"payload=%7B%22type%22%3A%22view_submission%22%2C%22user%22%3A%7B%22id%22%3A%22U1%22%7D%7D",
        b"payload=%7B%22type%22%3A%22block_actions%22%2C%22user%22%3A%7B%22id%22%3A%22U024BE7LH%22%7D%2C%22actions%22%3A%5B%7B%22action_id%22%3A%22launch%22%2C%22value%22%3A%22r%22%7D%5D%7D",
    ];
    for body in junk {
        let ts = NOW.to_string();
        let headers = vec![
            ("X-Slack-Signature", sign_slack(SLACK_SECRET, &ts, body)),
            ("X-Slack-Request-Timestamp", ts),
        ];
        let (status, reply) = server.post("/slack/actions", &headers, body.to_vec()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body:?}: {reply}");
        assert!(
            text(&reply, "text").starts_with("malformed request"),
            "{reply}"
        );
    }
    let headers = vec![
        ("X-Slack-Signature", "v0=00".to_string()),
        ("X-Slack-Request-Timestamp", "yesterday".to_string()),
    ];
    let (status, _) = server.post("/slack/actions", &headers, "x").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(server.decisions().is_empty());
}

fn mattermost_body(user: &str, action: &str, token: &str, trigger: Option<&str>) -> String {
    let mut body = json!({
        "user_id": user,
        "user_name": "carol",
        "channel_id": "c1",
        "post_id": "p1",
        "context": {"action": action, "request": "req-7f3a", "token": token},
    });
    if let Some(t) = trigger {
        body["trigger_id"] = json!(t);
    }
    body.to_string()
}

#[tokio::test]
async fn mattermost_click_with_the_right_token_is_decided() {
    let server = Server::start().await;
    let body = mattermost_body("8x7kq", "approve", MM_TOKEN, Some("trig-1"));
    let (status, reply) = server.post("/mattermost/actions", &[], body).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(text(&reply, "ephemeral_text"), "approved by carol");
    let d = &server.decisions()[0];
    assert_eq!(
        (d.user.as_str(), d.chat_user.as_str(), d.channel.as_str()),
        ("carol", "mattermost:8x7kq", "mattermost")
    );
}

#[tokio::test]
async fn mattermost_wrong_or_missing_token_is_refused() {
    let server = Server::start().await;
    for token in ["mm-tokeN", "", "mm-token-longer"] {
        let (status, reply) = server
            .post(
                "/mattermost/actions",
                &[],
                mattermost_body("8x7kq", "approve", token, None),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{reply}");
        assert!(
            text(&reply, "ephemeral_text").contains("token does not match"),
            "{reply}"
        );
    }
    assert!(server.decisions().is_empty());
}

#[tokio::test]
async fn mattermost_repeated_click_is_refused() {
    let server = Server::start().await;
    // With a trigger id: the same trigger twice.
    let body = mattermost_body("8x7kq", "approve", MM_TOKEN, Some("trig-9"));
    let (first, _) = server.post("/mattermost/actions", &[], body.clone()).await;
    let (second, _) = server.post("/mattermost/actions", &[], body).await;
    assert_eq!((first, second), (StatusCode::OK, StatusCode::CONFLICT));
    // Without one: the same user, request and action again.
    let body = mattermost_body("8x7kq", "deny", MM_TOKEN, None);
    let (first, _) = server.post("/mattermost/actions", &[], body.clone()).await;
    let (second, reply) = server.post("/mattermost/actions", &[], body).await;
    assert_eq!(
        (first, second),
        (StatusCode::OK, StatusCode::CONFLICT),
        "{reply}"
    );
    assert_eq!(server.decisions().len(), 2);
}

#[tokio::test]
async fn mattermost_junk_and_unknown_users_are_refused() {
    let server = Server::start().await;
    for junk in [
        "",
        "{",
        "[]",
        r#"{"user_id": "8x7kq"}"#,
        r#"{"user_id": 5, "context": {}}"#,
    ] {
        let (status, reply) = server.post("/mattermost/actions", &[], junk).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{junk}: {reply}");
    }
    let (status, reply) = server
        .post(
            "/mattermost/actions",
            &[],
            mattermost_body("zzz", "approve", MM_TOKEN, None),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(text(&reply, "ephemeral_text").contains("mattermost:zzz"));
}

fn webhook_body(action: &str) -> String {
    json!({"user": "dave", "action": action, "request": "req-7f3a", "comment": "checked the diff"})
        .to_string()
}

#[tokio::test]
async fn webhook_signed_request_is_decided_with_its_comment() {
    let server = Server::start().await;
    let body = webhook_body("approve");
    let (status, reply) = server
        .post(
            "/webhook",
            &webhook_headers(HOOK_SECRET, NOW + 10, &body),
            body,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply, json!({"ok": true, "message": "approved by dave"}));
    let d = &server.decisions()[0];
    assert_eq!(
        (d.user.as_str(), d.chat_user.as_str(), d.channel.as_str()),
        ("dave", "webhook:dave", "webhook")
    );
    assert_eq!(d.comment.as_deref(), Some("checked the diff"));
}

#[tokio::test]
async fn webhook_accepts_a_signature_made_by_another_implementation() {
    // The known answer of `sign_webhook`'s unit test, computed with
    // `openssl dgst -sha256 -hmac hook-secret` over "1760000000." + body:
    // the endpoint checks the documented scheme, not merely our own signer.
    let server = Server::start().await;
    let body = r#"{"user":"dave","action":"approve","request":"req-kat"}"#;
    let known = "sha256=f75e5c5fe17a4356fe7cb9f6ad362b8c69ba37e5a2313211963ff4ad3fe06b6b";
    let headers = |signature: &str| {
        vec![
            ("Content-Type", "application/json".to_string()),
            ("X-Remedy-Signature", signature.to_string()),
            ("X-Remedy-Timestamp", NOW.to_string()),
        ]
    };
    let wrong = known.replace("f75e", "f75f");
    let (status, _) = server.post("/webhook", &headers(&wrong), body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, reply) = server.post("/webhook", &headers(known), body).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(server.decisions()[0].request_id, "req-kat");
}

#[tokio::test]
async fn slack_documented_example_passes_the_signature_check() {
    // The request of Slack's "Verifying requests from Slack" (a slash command,
    // so it is refused after the check as not a button click — but not as
    // badly signed), with its secret, timestamp and signature.
    let ts = 1_531_420_618;
    let secret = "8f742231b10e8888abcd99yyyzzz85a5";
    let body = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    let documented = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
    let app = router_with_clock(
        ServeSecrets {
            slack_signing_secret: Some(secret.into()),
            mattermost_token: None,
            webhook_secret: None,
        },
        BTreeMap::new(),
        Arc::new(Recorder::default()),
        Clock::fixed(ts),
    );
    let base = common::serve(app).await;
    let post = |signature: &str, body: &str| {
        remedy_chatops::http_client()
            .build()
            .unwrap()
            .post(format!("{base}/slack/actions"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("X-Slack-Request-Timestamp", ts.to_string())
            .header("X-Slack-Signature", signature.to_string())
            .body(body.to_string())
            .send()
    };
    let tampered = body.replace("roadrunner", "coyote");
    let response = post(documented, &tampered).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = post(documented, body).await.unwrap();
    let status = response.status();
    let reply = response.text().await.unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    assert!(!reply.contains("signature"), "{reply}");
}

#[tokio::test]
async fn webhook_bad_signature_stale_timestamp_and_replay_are_refused() {
    let server = Server::start().await;
    let body = webhook_body("deny");
    let (status, reply) = server
        .post(
            "/webhook",
            &webhook_headers("wrong", NOW, &body),
            body.clone(),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        text(&reply, "message").contains("chat.webhook_secret"),
        "{reply}"
    );

    let (status, reply) = server
        .post(
            "/webhook",
            &webhook_headers(HOOK_SECRET, NOW - 3600, &body),
            body.clone(),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(text(&reply, "message").contains("3600 s"), "{reply}");

    let headers = webhook_headers(HOOK_SECRET, NOW, &body);
    let (first, _) = server.post("/webhook", &headers, body.clone()).await;
    let (second, reply) = server.post("/webhook", &headers, body).await;
    assert_eq!(
        (first, second),
        (StatusCode::OK, StatusCode::CONFLICT),
        "{reply}"
    );
    assert_eq!(server.decisions().len(), 1);
}

#[tokio::test]
async fn webhook_junk_is_refused_400() {
    let server = Server::start().await;
    for junk in [
        "",
        "null",
        "{\"user\": \"dave\"}",
        r#"{"user": "dave", "action": "maybe", "request": "r"}"#,
        r#"{"user": "dave", "action": "approve", "request": "r", "coment": "typo"}"#,
        r#"{"user": "", "action": "approve", "request": "r"}"#,
    ] {
        let (status, reply) = server
            .post("/webhook", &webhook_headers(HOOK_SECRET, NOW, junk), junk)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{junk}: {reply}");
    }
    let mut headers = webhook_headers(HOOK_SECRET, NOW, "{}");
    headers.retain(|(name, _)| *name != "X-Remedy-Timestamp");
    let (status, reply) = server.post("/webhook", &headers, "{}").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(text(&reply, "message").contains("X-Remedy-Timestamp"));
    assert!(server.decisions().is_empty());
}

#[tokio::test]
async fn endpoints_without_a_secret_refuse_and_say_what_to_set() {
    let server = Server::start_with(ServeSecrets::default()).await;
    let body = webhook_body("approve");
    let (status, reply) = server
        .post("/webhook", &webhook_headers(HOOK_SECRET, NOW, &body), body)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(text(&reply, "message").contains("chat.webhook_secret"));
    let (status, reply) = server
        .post(
            "/mattermost/actions",
            &[],
            mattermost_body("8x7kq", "approve", "", None),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(text(&reply, "ephemeral_text").contains("chat.mattermost_token"));
}
