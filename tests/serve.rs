//! `remedy serve` under a flood of half-open connections (issue 14, item 8):
//! 800 clients that connect and never finish a request. Before, every one
//! stayed open as long as the client liked; now each is closed after the
//! header read timeout (10 s) or, past the connection cap (512), answered 503
//! at once — and the server answers normally once they are gone. And its
//! log as journald wants it under systemd.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Stops `remedy serve` even when the test fails.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_address() -> String {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("127.0.0.1:{port}")
}

/// What the server sent before closing, or None if it is still open at `deadline`.
fn until_closed(s: &mut TcpStream, deadline: Instant) -> Option<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return Some(String::from_utf8_lossy(&got).into_owned()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Some(String::from_utf8_lossy(&got).into_owned())
            }
            Err(_) => {}
        }
    }
}

#[test]
fn issue_14_half_open_connections_are_closed_and_the_server_answers_after() {
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("config.yaml");
    std::fs::write(&config, "chat:\n  webhook_secret: env:TEST_HOOK_SECRET\n").unwrap();
    let addr = free_address();
    let _server = Server(
        Command::new(env!("CARGO_BIN_EXE_remedy"))
            .args(["serve", "--listen", &addr, "--config"])
            .arg(&config)
            .env("REMEDY_HOME", home.path())
            .env("TEST_HOOK_SECRET", "s3cr3t")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(&addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "remedy serve never listened on {addr}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let mut clients: Vec<TcpStream> = (0..800)
        .map(|i| {
            let mut s = TcpStream::connect(&addr).unwrap();
            if i % 2 == 0 {
                s.write_all(b"POST /webhook HTTP/1.1\r\nhost: remedy\r\n")
                    .unwrap();
            }
            s
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut busy = 0;
    for (i, s) in clients.iter_mut().enumerate() {
        match until_closed(s, deadline) {
            None => panic!("connection {i} of 800 is still open after 60 s"),
            Some(sent) if sent.starts_with("HTTP/1.1 503") => busy += 1,
            Some(_) => {}
        }
    }
    // At most 512 are served at once; the rest were told so.
    assert!(busy >= 800 - 512, "{busy} answered 503");

    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nhost: remedy\r\nconnection: close\r\n\r\n")
        .unwrap();
    let answer = until_closed(&mut s, Instant::now() + Duration::from_secs(20)).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// The first log line `remedy serve` writes, with `env` set.
fn first_log_line(env: &[(&str, &str)]) -> String {
    use std::io::BufRead;
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("config.yaml");
    std::fs::write(&config, "chat:\n  webhook_secret: env:TEST_HOOK_SECRET\n").unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_remedy"));
    cmd.args(["serve", "--listen", &free_address(), "--config"])
        .arg(&config)
        .env("REMEDY_HOME", home.path())
        .env("TEST_HOOK_SECRET", "s3cr3t")
        .env_remove("JOURNAL_STREAM")
        .env_remove("RUST_LOG")
        .env_remove("REMEDY_LOG_FORMAT")
        .stdin(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut server = Server(cmd.spawn().unwrap());
    let mut line = String::new();
    std::io::BufReader::new(server.0.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    line
}

#[test]
fn under_systemd_the_log_has_no_timestamps_and_no_colours() {
    let plain = first_log_line(&[]);
    let message = "INFO remedy serve: listening on http://127.0.0.1:";
    assert!(
        plain.starts_with("20") && plain.contains(&format!(" {message}")),
        "a timestamp, then the message: {plain}"
    );
    let journald = first_log_line(&[("JOURNAL_STREAM", "8:12345")]);
    assert!(journald.trim_start().starts_with(message), "{journald}");
    assert!(!journald.contains('\u{1b}'), "{journald:?}");
    let json = first_log_line(&[("REMEDY_LOG_FORMAT", "json")]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["level"], "INFO", "{json}");
    assert!(
        v["message"].as_str().unwrap().contains("listening on"),
        "{json}"
    );
}
