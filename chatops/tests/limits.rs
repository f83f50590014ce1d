//! `remedy serve`'s server loop within its limits, over real TCP on loopback
//! (issue 14, item 8): half-open connections are closed after the header
//! read timeout, slow and oversized bodies are refused, and a connection past
//! the cap is told 503 at once. Limits are set small so the tests are quick;
//! deadlines are generous and only bound how long a failure takes to show.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use axum::routing::{get, post};
use axum::Router;
use remedy_chatops::ServeLimits;

fn app() -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/echo", post(|body: String| async move { body }))
}

fn limits() -> ServeLimits {
    ServeLimits {
        max_connections: 4,
        header_read_timeout: Duration::from_millis(300),
        body_read_timeout: Duration::from_millis(300),
        max_body_bytes: 1024,
    }
}

async fn start(limits: ServeLimits) -> String {
    let base = common::serve_with(app(), limits).await;
    base.trim_start_matches("http://").to_string()
}

/// Everything the server sends until it closes the connection; panics if it
/// is still open after `within`.
fn read_until_closed(s: &mut TcpStream, within: Duration) -> String {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "the server kept the connection open; got {:?}",
            String::from_utf8_lossy(&got)
        );
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("{e}"),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

fn request(addr: &str, raw: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(raw.as_bytes()).unwrap();
    read_until_closed(&mut s, Duration::from_secs(20))
}

fn healthz(addr: &str) -> String {
    request(
        addr,
        "GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_and_idle_connections_are_closed_after_the_header_read_timeout() {
    let addr = start(limits()).await;
    tokio::task::spawn_blocking(move || {
        // Nothing sent; half a request head; a kept-alive connection after
        // its response.
        let mut silent = TcpStream::connect(&addr).unwrap();
        let mut partial = TcpStream::connect(&addr).unwrap();
        partial
            .write_all(b"POST /echo HTTP/1.1\r\nhost: x\r\n")
            .unwrap();
        let mut idle = TcpStream::connect(&addr).unwrap();
        idle.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            .unwrap();
        for s in [&mut silent, &mut partial] {
            read_until_closed(s, Duration::from_secs(20));
        }
        let answered = read_until_closed(&mut idle, Duration::from_secs(20));
        assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
        // The slots are free again.
        assert!(healthz(&addr).starts_with("HTTP/1.1 200"));
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_past_the_cap_is_answered_503_and_served_once_a_slot_frees() {
    let addr = start(ServeLimits {
        header_read_timeout: Duration::from_secs(60),
        ..limits()
    })
    .await;
    tokio::task::spawn_blocking(move || {
        let held: Vec<TcpStream> = (0..4)
            .map(|_| {
                let mut s = TcpStream::connect(&addr).unwrap();
                s.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
                s
            })
            .collect();
        // The server takes the four before the fifth: wait until it refuses.
        let deadline = Instant::now() + Duration::from_secs(20);
        let busy = loop {
            let answer = healthz(&addr);
            if answer.starts_with("HTTP/1.1 503") || Instant::now() > deadline {
                break answer;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(
            busy.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{busy}"
        );
        assert!(busy.contains("retry-after: 1\r\n"), "{busy}");
        assert!(
            busy.ends_with("too many open connections; retry in a second\"}"),
            "{busy}"
        );
        drop(held);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let answer = healthz(&addr);
            if answer.starts_with("HTTP/1.1 200") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "still refused after the held connections closed: {answer}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_oversized_bodies_are_refused_and_small_ones_served() {
    let addr = start(limits()).await;
    tokio::task::spawn_blocking(move || {
        let slow = request(
            &addr,
            "POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\nonly ten b",
        );
        assert!(slow.starts_with("HTTP/1.1 408"), "{slow}");
        assert!(
            slow.contains("the request body did not arrive within 300ms"),
            "{slow}"
        );
        let big = format!(
            "POST /echo HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: 2000\r\n\r\n{}",
            "x".repeat(2000)
        );
        let big = request(&addr, &big);
        assert!(big.starts_with("HTTP/1.1 413"), "{big}");
        let ok = request(
            &addr,
            "POST /echo HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: 5\r\n\r\nhello",
        );
        assert!(
            ok.starts_with("HTTP/1.1 200") && ok.ends_with("hello"),
            "{ok}"
        );
    })
    .await
    .unwrap();
}
