//! Sending notices: every notifier at once, each with its own retries and
//! exponential backoff. Nothing here fails the caller — a run must not stop
//! because chat is down — so the outcome is a `Delivery` per notifier that the
//! caller records (the approval request itself lives in the journal, so a lost
//! notice never loses the request).

use std::process::Stdio;
use std::time::Duration;

use serde::Serialize;
use tokio::io::AsyncWriteExt;

use crate::config::{check_http_url, NotifierConfig};
use crate::notice::Notice;
use crate::secret::resolve_secret;
use crate::signature::{sign_webhook, Clock};
use crate::{mattermost, slack, teams};

/// How hard to try each notifier.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Attempts in all, the first included (at least one is made).
    pub attempts: u32,
    /// The wait before the second attempt; it doubles after each failure.
    pub base_delay: Duration,
    /// The limit on one attempt: an HTTP request, or a command's whole run.
    pub timeout: Duration,
}

impl Default for Retry {
    fn default() -> Retry {
        Retry {
            attempts: 4,
            base_delay: Duration::from_secs(1),
            timeout: Duration::from_secs(30),
        }
    }
}

impl Retry {
    /// The wait after failed attempt `attempt` (1-based): base, 2×base, 4×base…,
    /// capped at five minutes.
    pub fn delay_after(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.base_delay
            .saturating_mul(factor)
            .min(Duration::from_secs(300))
    }
}

/// What happened to one notifier.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    /// Which notifier, without secrets, e.g. "slack https://hooks.slack.com/…".
    pub notifier: String,
    pub ok: bool,
    /// Attempts made; 0 when the notifier could not even be prepared (a bad
    /// URL, an unresolvable secret).
    pub attempts: u32,
    /// The last attempt's error.
    pub error: Option<String>,
}

/// Where chat buttons call back to: `remedy serve`'s public URL, and the token
/// Mattermost buttons carry so their callbacks can be checked.
#[derive(Debug, Clone)]
pub struct Callback {
    pub public_url: String,
    pub mattermost_token: Option<String>,
}

/// Sends `notice` to every notifier, without Mattermost buttons (they need a
/// callback URL: see `notify_all_with`).
pub async fn notify_all(
    notifiers: &[NotifierConfig],
    notice: &Notice,
    retry: Retry,
) -> Vec<Delivery> {
    notify_all_with(notifiers, notice, retry, None).await
}

/// Sends `notice` to every notifier concurrently, each with retries; the
/// deliveries are in the notifiers' order.
pub async fn notify_all_with(
    notifiers: &[NotifierConfig],
    notice: &Notice,
    retry: Retry,
    callback: Option<&Callback>,
) -> Vec<Delivery> {
    let client = crate::http_client()
        .timeout(retry.timeout)
        .user_agent(concat!("remedy/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot set up an HTTP client: {}", error_chain(&e)));
    let sends = notifiers.iter().map(|n| {
        let client = client.clone();
        async move {
            let mut delivery = Delivery {
                notifier: n.label(),
                ok: false,
                attempts: 0,
                error: None,
            };
            let outcome = match prepare(n, notice, callback) {
                Ok(message) => {
                    send_with_retries(&message, notice, retry, &client, &mut delivery.attempts)
                        .await
                }
                Err(e) => Err(e),
            };
            match outcome {
                Ok(()) => delivery.ok = true,
                Err(e) => delivery.error = Some(e),
            }
            delivery
        }
    });
    futures::future::join_all(sends).await
}

/// A notice rendered for one notifier, ready to send as many times as needed.
enum Message {
    Http {
        url: reqwest::Url,
        body: Vec<u8>,
        /// Signs each attempt with a fresh timestamp.
        secret: Option<String>,
    },
    Command {
        command: String,
        stdin: Vec<u8>,
    },
}

fn prepare(
    n: &NotifierConfig,
    notice: &Notice,
    callback: Option<&Callback>,
) -> Result<Message, String> {
    let http = |url: &str, body: serde_json::Value, secret: Option<String>| {
        Ok(Message::Http {
            url: check_http_url(url)?,
            body: body.to_string().into_bytes(),
            secret,
        })
    };
    let notice_json =
        || serde_json::to_value(notice).map_err(|e| format!("cannot serialize the notice: {e}"));
    match n {
        NotifierConfig::Slack { url } => http(url, slack::message(notice), None),
        NotifierConfig::Mattermost { url } => {
            http(url, mattermost::message(notice, callback), None)
        }
        NotifierConfig::Teams { url } => http(url, teams::message(notice), None),
        NotifierConfig::Webhook { url, secret } => {
            let secret = secret.as_deref().map(resolve_secret).transpose()?;
            http(url, notice_json()?, secret)
        }
        NotifierConfig::Command { command } => Ok(Message::Command {
            command: command.clone(),
            stdin: notice_json()?.to_string().into_bytes(),
        }),
    }
}

/// Why an attempt failed, and whether another could go differently.
struct Failure {
    message: String,
    retryable: bool,
}

async fn send_with_retries(
    message: &Message,
    notice: &Notice,
    retry: Retry,
    client: &Result<reqwest::Client, String>,
    attempts: &mut u32,
) -> Result<(), String> {
    let client = client.as_ref().map_err(Clone::clone)?;
    let limit = retry.attempts.max(1);
    loop {
        *attempts += 1;
        let result = match message {
            Message::Http { url, body, secret } => post(client, url, body, secret.as_deref()).await,
            Message::Command { command, stdin } => {
                run_command(command, stdin, notice, retry.timeout).await
            }
        };
        match result {
            Ok(()) => return Ok(()),
            Err(f) if !f.retryable || *attempts >= limit => return Err(f.message),
            Err(_) => tokio::time::sleep(retry.delay_after(*attempts)).await,
        }
    }
}

async fn post(
    client: &reqwest::Client,
    url: &reqwest::Url,
    body: &[u8],
    secret: Option<&str>,
) -> Result<(), Failure> {
    let mut request = client
        .post(url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_vec());
    if let Some(secret) = secret {
        let ts = Clock::system().now().to_string();
        request = request
            .header("X-Remedy-Timestamp", &ts)
            .header("X-Remedy-Signature", sign_webhook(secret, &ts, body));
    }
    let response = request.send().await.map_err(|e| Failure {
        // Webhook URLs carry their token in the path: keep it out of reports.
        message: error_chain(&e.without_url()),
        retryable: true,
    })?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let text = response.text().await.unwrap_or_default();
    let text: String = text.trim().chars().take(200).collect();
    Err(Failure {
        message: if text.is_empty() {
            format!("HTTP {status}")
        } else {
            format!("HTTP {status}: {text}")
        },
        // A refused request (bad URL, revoked hook, malformed body) fails the
        // same way every time; servers that are busy or broken may recover.
        retryable: status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429,
    })
}

async fn run_command(
    command: &str,
    stdin: &[u8],
    notice: &Notice,
    timeout: Duration,
) -> Result<(), Failure> {
    let failure = |message: String| Failure {
        message,
        retryable: true,
    };
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .env("REMEDY_EVENT", notice.kind.as_str())
        .env("REMEDY_RUN", &notice.run_id)
        .env("REMEDY_REQUEST", notice.request_id.as_deref().unwrap_or(""))
        .env(
            "REMEDY_CHAIN_HEAD",
            notice.chain_head.as_deref().unwrap_or(""),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        // Its own process group, so a timeout ends whatever it started too.
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| failure(format!("cannot start `sh -c`: {e}")))?;
    let pid = child.id();
    let mut input = child.stdin.take();
    let stdin = stdin.to_vec();
    let run = async move {
        // A command that ignores its input closes the pipe early; that is its
        // business, not a failed delivery.
        if let Some(pipe) = input.as_mut() {
            let _ = pipe.write_all(&stdin).await;
        }
        drop(input);
        child.wait_with_output().await
    };
    let mut run = std::pin::pin!(run);
    match tokio::time::timeout(timeout, &mut run).await {
        Err(_) => {
            // Killed while `run` still holds the child unreaped, so the group
            // id cannot have been reused.
            if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
                // SAFETY: kill(2) on our own child's process group; no memory involved.
                unsafe {
                    libc::kill(-pid, libc::SIGKILL);
                }
            }
            Err(failure(format!(
                "timed out after {} s",
                timeout.as_secs_f64()
            )))
        }
        Ok(Err(e)) => Err(failure(format!("waiting for the command failed: {e}"))),
        Ok(Ok(output)) if output.status.success() => Ok(()),
        Ok(Ok(output)) => {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let stderr = stderr.trim();
            // The end of stderr is where the reason usually is.
            let tail: String = {
                let chars: Vec<char> = stderr.chars().collect();
                chars[chars.len().saturating_sub(500)..].iter().collect()
            };
            Err(failure(if tail.is_empty() {
                format!("exited with {}", output.status)
            } else {
                format!("exited with {}: {tail}", output.status)
            }))
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let r = Retry {
            base_delay: Duration::from_secs(1),
            ..Retry::default()
        };
        let delays: Vec<u64> = (1..=4).map(|a| r.delay_after(a).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8]);
        assert_eq!(r.delay_after(40), Duration::from_secs(300));
    }
}
