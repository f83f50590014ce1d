//! Notifiers against real HTTP receivers on loopback, and real commands.

mod common;

use std::time::Duration;

use common::{refused_url, Receiver};
use remedy_chatops::{
    notify_all, notify_all_with, Callback, Notice, NoticeKind, NotifierConfig, Retry,
};

fn request_notice() -> Notice {
    Notice {
        kind: NoticeKind::ApprovalRequested,
        run_id: "run-0192".into(),
        request_id: Some("req-7f3a".into()),
        runbook: "cert-renew".into(),
        requester: "alice".into(),
        hosts: vec!["master-1".into(), "master-2".into(), "master-3".into()],
        title: "alice asks to run cert-renew on master-1..3".into(),
        summary:
            "master-1: renew apiserver.crt (expires in 3 days)\nmaster-1: restart kube-apiserver"
                .into(),
        plan_hash: Some("9c1d7e0a4b2f88aa01".into()),
        decision: None,
        chain_head: None,
    }
}

fn fast() -> Retry {
    Retry {
        attempts: 3,
        base_delay: Duration::from_millis(5),
        timeout: Duration::from_secs(10),
    }
}

#[tokio::test]
async fn slack_message_has_the_summary_both_buttons_and_the_run() {
    let rx = Receiver::start(&[]).await;
    let notifiers = [NotifierConfig::Slack { url: rx.url() }];
    let deliveries = notify_all(&notifiers, &request_notice(), fast()).await;
    assert!(deliveries[0].ok, "{deliveries:?}");
    assert_eq!(deliveries[0].attempts, 1);
    // The label does not leak the token in the URL's path.
    assert_eq!(deliveries[0].notifier, format!("slack {}/…", rx.base));

    let got = rx.only();
    assert_eq!(got.path, "/services/T000/B000/secret-token");
    assert_eq!(got.header("content-type"), "application/json");
    let body = got.json();
    assert_eq!(body["text"], "alice asks to run cert-renew on master-1..3");
    let text = body.to_string();
    assert!(
        text.contains("renew apiserver.crt (expires in 3 days)"),
        "{text}"
    );
    assert!(
        text.contains("run-0192") && text.contains("9c1d7e0a4b2f"),
        "{text}"
    );
    let actions = body["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "actions")
        .expect("an actions block");
    let buttons = actions["elements"].as_array().unwrap();
    let by_id = |id: &str| {
        buttons
            .iter()
            .find(|b| b["action_id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(by_id("approve")["value"], "req-7f3a");
    assert_eq!(by_id("approve")["style"], "primary");
    assert_eq!(by_id("deny")["value"], "req-7f3a");
    assert_eq!(by_id("deny")["style"], "danger");
}

#[tokio::test]
async fn slack_clips_a_long_summary_and_decided_notices_have_no_buttons() {
    let rx = Receiver::start(&[]).await;
    let mut notice = request_notice();
    notice.kind = NoticeKind::ApprovalDecided;
    notice.decision = Some("approved by bob, carol".into());
    notice.summary = (0..2000)
        .map(|i| format!("step {i}: <restart> & check\n"))
        .collect();
    notify_all(&[NotifierConfig::Slack { url: rx.url() }], &notice, fast()).await;
    let body = rx.only().json();
    let blocks = body["blocks"].as_array().unwrap();
    assert!(blocks.iter().all(|b| b["type"] != "actions"));
    for block in blocks {
        if let Some(text) = block["text"]["text"].as_str() {
            assert!(text.chars().count() <= 3000, "a block over Slack's limit");
        }
    }
    let text = body.to_string();
    assert!(text.contains("approved by bob, carol"));
    assert!(text.contains("&lt;restart&gt; &amp; check"));
    assert!(text.contains("remedy audit show run-0192"));
}

#[tokio::test]
async fn mattermost_buttons_call_back_with_the_request_and_token() {
    let rx = Receiver::start(&[]).await;
    let notifiers = [NotifierConfig::Mattermost { url: rx.url() }];
    let callback = Callback {
        public_url: "https://remedy.example.net:8443/".into(),
        mattermost_token: Some("mm-token".into()),
    };
    let deliveries = notify_all_with(&notifiers, &request_notice(), fast(), Some(&callback)).await;
    assert!(deliveries[0].ok, "{deliveries:?}");
    let body = rx.only().json();
    assert!(body["text"]
        .as_str()
        .unwrap()
        .contains("alice asks to run cert-renew"));
    let attachment = &body["attachments"][0];
    assert!(attachment["text"]
        .as_str()
        .unwrap()
        .contains("restart kube-apiserver"));
    let actions = attachment["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 2);
    for (action, name) in [("approve", "Approve"), ("deny", "Deny")] {
        let button = actions.iter().find(|a| a["name"] == name).unwrap();
        assert_eq!(
            button["integration"]["url"],
            "https://remedy.example.net:8443/mattermost/actions"
        );
        let context = &button["integration"]["context"];
        assert_eq!(context["action"], action);
        assert_eq!(context["request"], "req-7f3a");
        assert_eq!(context["token"], "mm-token");
    }
}

#[tokio::test]
async fn mattermost_without_a_public_url_says_how_to_approve_instead() {
    let rx = Receiver::start(&[]).await;
    notify_all(
        &[NotifierConfig::Mattermost { url: rx.url() }],
        &request_notice(),
        fast(),
    )
    .await;
    let body = rx.only().json();
    assert!(body["attachments"][0].get("actions").is_none());
    assert!(body["text"]
        .as_str()
        .unwrap()
        .contains("remedy approve run-0192"));
}

#[tokio::test]
async fn teams_gets_a_message_card_with_the_shell_command() {
    let rx = Receiver::start(&[]).await;
    let deliveries = notify_all(
        &[NotifierConfig::Teams { url: rx.url() }],
        &request_notice(),
        fast(),
    )
    .await;
    assert!(deliveries[0].ok, "{deliveries:?}");
    let card = rx.only().json();
    assert_eq!(card["@type"], "MessageCard");
    assert_eq!(
        card["summary"],
        "alice asks to run cert-renew on master-1..3"
    );
    assert_eq!(card["title"], "alice asks to run cert-renew on master-1..3");
    let text = card["text"].as_str().unwrap();
    assert!(text.contains("restart kube-apiserver"), "{text}");
    assert!(text.contains("remedy approve run-0192"), "{text}");
    assert!(card.get("potentialAction").is_none());
}

#[tokio::test]
async fn webhook_body_is_the_notice_signed_like_the_inbound_webhook() {
    let rx = Receiver::start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("hook-secret");
    std::fs::write(&secret_file, "hook-s3cret\n").unwrap();
    let notifiers = [NotifierConfig::Webhook {
        url: rx.url(),
        secret: Some(format!("file:{}", secret_file.display())),
    }];
    let deliveries = notify_all(&notifiers, &request_notice(), fast()).await;
    assert!(deliveries[0].ok, "{deliveries:?}");
    let got = rx.only();
    let ts = got.header("x-remedy-timestamp").to_string();
    // Checked by another implementation: `openssl dgst -hmac` over ts.body.
    let signed = dir.path().join("signed");
    std::fs::write(&signed, [ts.as_bytes(), b".", &got.body].concat()).unwrap();
    let hmac = remedy_testkit::openssl::openssl(&[
        "dgst",
        "-sha256",
        "-hmac",
        "hook-s3cret",
        "-r",
        signed.to_str().unwrap(),
    ]);
    let hex = hmac.split_whitespace().next().unwrap_or_default();
    assert_eq!(hex.len(), 64, "{hmac}");
    assert_eq!(got.header("x-remedy-signature"), format!("sha256={hex}"));
    let body = got.json();
    assert_eq!(body["kind"], "approval_requested");
    assert_eq!(body["run_id"], "run-0192");
    assert_eq!(body["request_id"], "req-7f3a");
    assert_eq!(body["hosts"][2], "master-3");
}

#[tokio::test]
async fn webhook_with_an_unresolvable_secret_is_not_sent_and_says_why() {
    let rx = Receiver::start(&[]).await;
    let notifiers = [NotifierConfig::Webhook {
        url: rx.url(),
        secret: Some("env:REMEDY_CHATOPS_TEST_NO_SUCH_VARIABLE".into()),
    }];
    let deliveries = notify_all(&notifiers, &request_notice(), fast()).await;
    assert!(!deliveries[0].ok);
    assert_eq!(deliveries[0].attempts, 0);
    assert!(deliveries[0]
        .error
        .as_deref()
        .unwrap()
        .contains("REMEDY_CHATOPS_TEST_NO_SUCH_VARIABLE"));
    assert!(rx.requests().is_empty());
}

#[tokio::test]
async fn command_gets_the_notice_on_stdin_and_the_event_in_its_environment() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("notice.json");
    let env = dir.path().join("env");
    let command = format!(
        "cat > '{}' && printf '%s %s %s' \"$REMEDY_EVENT\" \"$REMEDY_RUN\" \"$REMEDY_REQUEST\" > '{}'",
        out.display(),
        env.display()
    );
    let deliveries = notify_all(
        &[NotifierConfig::Command { command }],
        &request_notice(),
        fast(),
    )
    .await;
    assert!(deliveries[0].ok, "{deliveries:?}");
    assert_eq!(deliveries[0].notifier, "command cat");
    let notice: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(notice["run_id"], "run-0192");
    assert_eq!(
        notice["title"],
        "alice asks to run cert-renew on master-1..3"
    );
    assert_eq!(
        std::fs::read_to_string(&env).unwrap(),
        "approval_requested run-0192 req-7f3a"
    );
}

#[tokio::test]
async fn a_failing_command_reports_its_stderr_after_every_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let count = dir.path().join("count");
    let command = format!(
        "echo x >> '{}'; echo 'chat relay unreachable' >&2; exit 3",
        count.display()
    );
    let deliveries = notify_all(
        &[NotifierConfig::Command { command }],
        &request_notice(),
        fast(),
    )
    .await;
    assert!(!deliveries[0].ok);
    assert_eq!(deliveries[0].attempts, 3);
    let error = deliveries[0].error.as_deref().unwrap();
    assert!(
        error.contains("chat relay unreachable") && error.contains('3'),
        "{error}"
    );
    assert_eq!(std::fs::read_to_string(&count).unwrap().lines().count(), 3);
}

#[tokio::test]
async fn a_hanging_command_is_stopped_at_the_timeout() {
    let retry = Retry {
        attempts: 1,
        timeout: Duration::from_millis(300),
        ..fast()
    };
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let started = std::time::Instant::now();
    // The background sleep is a grandchild: it must be ended too.
    let command = format!("sleep 30 & echo $! > '{}'; wait", pid_file.display());
    let deliveries = notify_all(
        &[NotifierConfig::Command { command }],
        &request_notice(),
        retry,
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(!deliveries[0].ok);
    assert!(deliveries[0]
        .error
        .as_deref()
        .unwrap()
        .contains("timed out"));
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let gone = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(20));
        // Gone, or a zombie waiting for init to reap it.
        !remedy_jumphost::process_alive(pid, None)
    });
    assert!(
        gone,
        "the command's background process outlived the timeout"
    );
}

#[tokio::test]
async fn two_server_errors_then_success_is_delivered_on_the_third_attempt() {
    let rx = Receiver::start(&[500, 500]).await;
    let deliveries = notify_all(
        &[NotifierConfig::Slack { url: rx.url() }],
        &request_notice(),
        fast(),
    )
    .await;
    assert!(deliveries[0].ok, "{deliveries:?}");
    assert_eq!(deliveries[0].attempts, 3);
    assert_eq!(deliveries[0].error, None);
    let requests = rx.requests();
    assert_eq!(requests.len(), 3);
    assert!(requests.iter().all(|r| r.body == requests[0].body));
}

#[tokio::test]
async fn a_receiver_that_always_fails_is_reported_with_its_status() {
    let rx = Receiver::start(&[503; 10]).await;
    let retry = Retry {
        attempts: 4,
        ..fast()
    };
    let deliveries = notify_all(
        &[NotifierConfig::Teams { url: rx.url() }],
        &request_notice(),
        retry,
    )
    .await;
    assert!(!deliveries[0].ok);
    assert_eq!(deliveries[0].attempts, 4);
    let error = deliveries[0].error.as_deref().unwrap();
    assert!(
        error.contains("503") && error.contains("scripted 503"),
        "{error}"
    );
    assert_eq!(rx.requests().len(), 4);
}

#[tokio::test]
async fn a_refused_request_is_not_retried() {
    let rx = Receiver::start(&[404; 10]).await;
    let deliveries = notify_all(
        &[NotifierConfig::Slack { url: rx.url() }],
        &request_notice(),
        fast(),
    )
    .await;
    assert!(!deliveries[0].ok);
    assert_eq!(deliveries[0].attempts, 1);
    assert!(deliveries[0].error.as_deref().unwrap().contains("404"));
}

#[tokio::test]
async fn connection_refused_fails_without_leaking_the_url() {
    let url = refused_url().await;
    let deliveries = notify_all(
        &[NotifierConfig::Webhook { url, secret: None }],
        &request_notice(),
        fast(),
    )
    .await;
    assert!(!deliveries[0].ok);
    assert_eq!(deliveries[0].attempts, 3);
    let error = deliveries[0].error.as_deref().unwrap();
    assert!(!error.contains("/hook"), "{error}");
    assert!(error.to_lowercase().contains("connect"), "{error}");
}

#[tokio::test]
async fn every_notifier_is_tried_and_reported_in_order() {
    let good = Receiver::start(&[]).await;
    let bad = Receiver::start(&[500; 10]).await;
    let notifiers = [
        NotifierConfig::Slack { url: bad.url() },
        NotifierConfig::Teams {
            url: "not a url".into(),
        },
        NotifierConfig::Webhook {
            url: good.url(),
            secret: None,
        },
    ];
    let deliveries = notify_all(&notifiers, &request_notice(), fast()).await;
    let summary: Vec<(bool, u32)> = deliveries.iter().map(|d| (d.ok, d.attempts)).collect();
    assert_eq!(summary, [(false, 3), (false, 0), (true, 1)]);
    assert_eq!(deliveries[1].notifier, "teams (invalid URL)");
    assert_eq!(good.requests().len(), 1);
}
