//! `remedy exec` against real OpenSSH servers, as a user pipes it.

use remedy_testkit::sshd::TestSshd;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

fn inventory(dir: &std::path::Path, servers: &[&TestSshd]) -> std::path::PathBuf {
    let kh: String = servers.iter().map(|s| s.known_hosts_line()).collect();
    std::fs::write(dir.join("known_hosts"), kh).unwrap();
    let mut text = "ssh: { user: root, known_hosts: known_hosts }\nhosts:\n".to_string();
    for (i, s) in servers.iter().enumerate() {
        text.push_str(&format!(
            "  m{}: {{ address: {}, port: {}, identity_file: {}, groups: [masters] }}\n",
            i + 1,
            s.addr,
            s.port,
            s.client_key().display()
        ));
    }
    text.push_str("  gone: { address: 127.0.110.99, port: 1, groups: [all_of_them] }\n");
    let p = dir.join("inventory.yaml");
    std::fs::write(&p, text).unwrap();
    p
}

fn remedy(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_remedy"))
        .args(args)
        .env("NO_COLOR", "1")
        .env("HOME", "/nonexistent")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn one_host_output_is_byte_identical_and_the_status_passes_through() {
    let s = TestSshd::start(Ipv4Addr::new(127, 0, 110, 1), "");
    let work = tempfile::tempdir().unwrap();
    let inv = inventory(work.path(), &[&s]);
    let file = work.path().join("blob");
    let bytes: Vec<u8> = (0..=255u8).rev().cycle().take(70_000).collect();
    std::fs::write(&file, &bytes).unwrap();
    let out = remedy(&[
        "exec",
        "-i",
        inv.to_str().unwrap(),
        "m1",
        "--",
        "cat",
        file.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout == bytes, "stdout differs from the remote file");
    let out = remedy(&[
        "exec",
        "-i",
        inv.to_str().unwrap(),
        "m1",
        "--",
        "echo to-stderr >&2; exit 7",
    ]);
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(out.stderr, b"to-stderr\n");
}

#[test]
fn several_hosts_are_prefixed_and_failures_summarised() {
    let a = TestSshd::start(Ipv4Addr::new(127, 0, 111, 1), "");
    let b = TestSshd::start(Ipv4Addr::new(127, 0, 111, 2), "");
    let work = tempfile::tempdir().unwrap();
    let inv = inventory(work.path(), &[&a, &b]);
    let inv = inv.to_str().unwrap();
    let out = remedy(&[
        "exec",
        "-i",
        inv,
        "masters",
        "--",
        "echo hello; test -n \"$SSH_CONNECTION\"",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout, "m1 | hello\nm2 | hello\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 hosts: all 2 ok"));

    let out = remedy(&["exec", "-i", inv, "masters,gone", "--", "exit 3"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(255),
        "an unreachable host: {stderr}"
    );
    assert!(
        stderr.contains("3 hosts: 0 ok, 3 failed")
            && stderr.contains("m1: exit 3")
            && stderr.contains("gone: cannot reach gone"),
        "{stderr}"
    );

    let out = remedy(&[
        "exec",
        "-i",
        inv,
        "masters",
        "-o",
        "json",
        "--",
        "hostname >/dev/null; echo x",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[1]["host"], "m2");
    assert_eq!(v[1]["status"], 0);
    assert_eq!(v[1]["stdout"], "x\n");
}
