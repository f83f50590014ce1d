//! The SSH transport against real OpenSSH servers: commands and files, host
//! key policy, jump hosts, tunnels, a connection killed mid-command,
//! parallel fan-out, and HAProxy's runtime API over socket streams.

use remedy_dsl::Source;
use remedy_engine::Inventory;
use remedy_testkit::haproxy::{nothing_listens, TestHaproxy, Upstream};
use remedy_testkit::sshd::TestSshd;
use remedy_transport::ssh::config::{ConfigFile, Resolver};
use remedy_transport::ssh::SshConnector;
use remedy_transport::{Connector, TransportError, WriteAttrs};
use std::net::Ipv4Addr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const T: Duration = Duration::from_secs(20);

/// Until `path` exists (a command on the far side made it), for up to a minute.
async fn wait_for_file(path: &std::path::Path) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !path.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An inventory for `servers` (named h1, h2, …) with `known_hosts` content.
fn inventory(
    dir: &std::path::Path,
    servers: &[&TestSshd],
    known_hosts: &str,
    host_extra: &[&str],
) -> Inventory {
    std::fs::write(dir.join("known_hosts"), known_hosts).unwrap();
    let mut text = format!(
        "ssh: {{ user: root, known_hosts: {}/known_hosts, connect_timeout: 5s }}\nhosts:\n",
        dir.display()
    );
    for (i, s) in servers.iter().enumerate() {
        let extra = host_extra.get(i).copied().unwrap_or("");
        text.push_str(&format!(
            "  h{}: {{ address: {}, port: {}, identity_file: {}, groups: [all_hosts]{extra} }}\n",
            i + 1,
            s.addr,
            s.port,
            s.client_key().display()
        ));
    }
    Inventory::parse(Source::new(
        dir.join("inventory.yaml").display().to_string(),
        text,
    ))
    .unwrap()
}

fn connector(inv: &Inventory, accept_new: bool) -> SshConnector {
    SshConnector::new(inv, accept_new).with_resolver(Resolver::new(ConfigFile::None))
}

/// Run `rb` over SSH to the end, events kept in memory.
async fn execute(
    rb: &remedy_dsl::Runbook,
    run: &remedy_engine::BoundRun,
    connector: &SshConnector,
    dry_run: bool,
) -> remedy_engine::RunReport {
    let clock = remedy_clock::SystemClock;
    let cancel = std::sync::atomic::AtomicBool::new(false);
    remedy_engine::Executor {
        runbook: rb,
        run,
        connector,
        sink: &remedy_engine::event::MemorySink::default(),
        clock: &clock,
        cancel: &cancel,
        options: remedy_engine::RunOptions::new(dry_run),
    }
    .execute()
    .await
}

#[tokio::test]
async fn commands_and_files_over_ssh() {
    let s = TestSshd::start(Ipv4Addr::new(127, 0, 101, 1), "");
    let work = tempfile::tempdir().unwrap();
    let inv = inventory(work.path(), &[&s], &s.known_hosts_line(), &[]);
    let c = connector(&inv, false);
    let t = c.connect(&inv.hosts[0]).await.unwrap();
    let out = t.exec("echo out; echo err >&2; exit 3", T).await.unwrap();
    assert_eq!(
        (out.status, out.stdout.as_str(), out.stderr.as_str()),
        (Some(3), "out\n", "err\n")
    );

    let dir = work.path().join("remote dir");
    let file = format!("{}/it's.conf", dir.display());
    t.mkdir_p(dir.to_str().unwrap()).await.unwrap();
    assert_eq!(t.stat(&file).await.unwrap(), None);
    let payload: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
    t.write_file_atomic(
        &file,
        &payload,
        WriteAttrs {
            mode: Some(0o640),
            owner: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(
        t.read_file(&file).await.unwrap(),
        payload,
        "binary content round-trips"
    );
    let st = t.stat(&file).await.unwrap().unwrap();
    assert_eq!((st.mode, st.size, st.is_dir), (0o640, 300_000, false));
    t.write_file_atomic(&file, b"second", WriteAttrs::default())
        .await
        .unwrap();
    assert_eq!(
        t.stat(&file).await.unwrap().unwrap().mode,
        0o640,
        "an existing file keeps its mode"
    );
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        1,
        "no temporary file left behind"
    );
    let moved = format!("{}/moved", dir.display());
    t.rename(&file, &moved).await.unwrap();
    assert_eq!(std::fs::read(&moved).unwrap(), b"second");
    t.remove(&moved).await.unwrap();
    t.remove(&moved).await.unwrap();
    assert!(t.stat(dir.to_str().unwrap()).await.unwrap().unwrap().is_dir);
    let err = t.read_file("/nonexistent/x").await.unwrap_err().to_string();
    assert!(
        err.contains("read /nonexistent/x on h1") && err.contains("No such file"),
        "{err}"
    );
}

#[tokio::test]
async fn an_unknown_host_key_is_refused_unless_opted_in_and_then_recorded() {
    let s = TestSshd::start(Ipv4Addr::new(127, 0, 102, 1), "");
    let work = tempfile::tempdir().unwrap();
    let inv = inventory(work.path(), &[&s], "", &[]);
    let Err(err) = connector(&inv, false).connect(&inv.hosts[0]).await else {
        panic!("connected to an unknown host")
    };
    let msg = err.to_string();
    assert!(matches!(err, TransportError::HostKey { .. }));
    assert!(
        msg.contains("is not in")
            && msg.contains("SHA256:")
            && msg.contains("--accept-new-host-keys"),
        "{msg}"
    );
    connector(&inv, true).connect(&inv.hosts[0]).await.unwrap();
    let recorded = std::fs::read_to_string(work.path().join("known_hosts")).unwrap();
    assert!(
        recorded.contains(&format!("[{}]:{}", s.addr, s.port)),
        "{recorded}"
    );
    // Recorded: now trusted without the flag.
    connector(&inv, false).connect(&inv.hosts[0]).await.unwrap();
}

#[tokio::test]
async fn a_changed_host_key_is_refused_even_with_accept_new() {
    let s = TestSshd::start(Ipv4Addr::new(127, 0, 103, 1), "");
    let other = TestSshd::start(Ipv4Addr::new(127, 0, 103, 2), "");
    let work = tempfile::tempdir().unwrap();
    // known_hosts claims s has other's key.
    let wrong = other.known_hosts_line().replace(
        &format!("[{}]:{}", other.addr, other.port),
        &format!("[{}]:{}", s.addr, s.port),
    );
    let inv = inventory(work.path(), &[&s], &wrong, &[]);
    for accept_new in [false, true] {
        let Err(err) = connector(&inv, accept_new).connect(&inv.hosts[0]).await else {
            panic!("connected despite a changed key")
        };
        let msg = err.to_string();
        assert!(
            msg.contains("HOST KEY CHANGED for h1")
                && msg.contains("line 1")
                && msg.contains("ssh-keygen -R"),
            "{msg}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(work.path().join("known_hosts")).unwrap(),
        wrong,
        "known_hosts untouched"
    );
}

#[tokio::test]
async fn hashed_known_hosts_entries_are_honoured() {
    let s = TestSshd::start(Ipv4Addr::new(127, 0, 104, 1), "");
    let work = tempfile::tempdir().unwrap();
    let inv = inventory(work.path(), &[&s], &s.known_hosts_line(), &[]);
    let kh = work.path().join("known_hosts");
    assert!(std::process::Command::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(&kh)
        .output()
        .unwrap()
        .status
        .success());
    assert!(
        std::fs::read_to_string(&kh).unwrap().starts_with("|1|"),
        "hashed"
    );
    connector(&inv, false).connect(&inv.hosts[0]).await.unwrap();
}

#[tokio::test]
async fn a_host_behind_a_jump_host_is_reached_through_it() {
    let jump = TestSshd::start(Ipv4Addr::new(127, 0, 105, 1), "LogLevel DEBUG1");
    let target = TestSshd::start(Ipv4Addr::new(127, 0, 105, 2), "");
    let work = tempfile::tempdir().unwrap();
    let kh = format!("{}{}", jump.known_hosts_line(), target.known_hosts_line());
    let inv = inventory(
        work.path(),
        &[&jump, &target],
        &kh,
        &["", ", proxy_jump: h1"],
    );
    let t = connector(&inv, false).connect(&inv.hosts[1]).await.unwrap();
    let out = t.exec("echo through", T).await.unwrap();
    assert_eq!(out.stdout, "through\n");
    let log = jump.log();
    assert!(
        log.contains("direct-tcpip") && log.contains(&target.port.to_string()),
        "the jump host forwarded it:\n{log}"
    );
}

#[tokio::test]
async fn tunnels_reach_a_unix_socket_and_a_tcp_port_on_the_host() {
    let s = TestSshd::start(Ipv4Addr::new(127, 0, 106, 1), "");
    let work = tempfile::tempdir().unwrap();
    let inv = inventory(work.path(), &[&s], &s.known_hosts_line(), &[]);
    let c = connector(&inv, false);
    let session = c.ssh_session(&inv.hosts[0]).await.unwrap();

    let sock = work.path().join("admin.sock");
    let unix = tokio::net::UnixListener::bind(&sock).unwrap();
    tokio::spawn(async move {
        let (mut conn, _) = unix.accept().await.unwrap();
        let mut buf = [0u8; 64];
        let n = conn.read(&mut buf).await.unwrap();
        conn.write_all(&[b"unix:", &buf[..n]].concat())
            .await
            .unwrap();
    });
    let mut stream = session.open_unix(sock.to_str().unwrap()).await.unwrap();
    stream.write_all(b"show stat").await.unwrap();
    let mut reply = vec![0u8; 14];
    stream.read_exact(&mut reply).await.unwrap();
    assert_eq!(reply, b"unix:show stat");

    let tcp = tokio::net::TcpListener::bind((Ipv4Addr::new(127, 0, 106, 2), 0))
        .await
        .unwrap();
    let port = tcp.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut conn, _) = tcp.accept().await.unwrap();
        let mut buf = [0u8; 64];
        let n = conn.read(&mut buf).await.unwrap();
        conn.write_all(&[b"tcp:", &buf[..n]].concat())
            .await
            .unwrap();
    });
    let mut stream = session.open_tcp("127.0.106.2", port).await.unwrap();
    stream.write_all(b"ping").await.unwrap();
    let mut reply = vec![0u8; 8];
    stream.read_exact(&mut reply).await.unwrap();
    assert_eq!(reply, b"tcp:ping");
}

#[tokio::test]
async fn a_connection_killed_mid_command_is_a_failure_never_a_success() {
    let s = TestSshd::start(Ipv4Addr::new(127, 0, 107, 1), "");
    let work = tempfile::tempdir().unwrap();
    let inv = inventory(work.path(), &[&s], &s.known_hosts_line(), &[]);
    let t = connector(&inv, false).connect(&inv.hosts[0]).await.unwrap();
    // The command says when it runs (a file), so the cut lands mid-command.
    let started = work.path().join("started");
    let cmd = format!("touch '{}'; sleep 30; echo finished", started.display());
    let running = tokio::spawn(async move { t.exec(&cmd, T).await });
    wait_for_file(&started).await;
    s.kill_sessions();
    let result = tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the failure is noticed")
        .unwrap();
    let err = result.expect_err("a killed connection must not look like success");
    assert!(
        matches!(err, TransportError::ConnectionLost { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("outcome is unknown"), "{err}");
}

#[tokio::test]
async fn authentication_failure_says_what_was_tried() {
    let s = TestSshd::start(Ipv4Addr::new(127, 0, 108, 1), "");
    let work = tempfile::tempdir().unwrap();
    let stranger = work.path().join("stranger");
    assert!(std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&stranger)
        .status()
        .unwrap()
        .success());
    let encrypted = work.path().join("encrypted");
    assert!(std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "secret", "-f"])
        .arg(&encrypted)
        .status()
        .unwrap()
        .success());
    let kh = s.known_hosts_line();
    std::fs::write(work.path().join("known_hosts"), &kh).unwrap();
    for (key, expected) in [
        (&stranger, "refused by the server"),
        (&encrypted, "encrypted and no passphrase given"),
    ] {
        let text = format!("ssh: {{ user: root, known_hosts: {}/known_hosts }}\nhosts:\n  h1: {{ address: {}, port: {}, identity_file: {} }}\n", work.path().display(), s.addr, s.port, key.display());
        let inv = Inventory::parse(Source::new("inv.yaml", text)).unwrap();
        let Err(err) = connector(&inv, false).connect(&inv.hosts[0]).await else {
            panic!("logged in with a wrong key")
        };
        let msg = err.to_string();
        assert!(matches!(err, TransportError::Auth { .. }), "{msg}");
        assert!(
            msg.contains("authentication as root on h1") && msg.contains(expected),
            "{msg}"
        );
    }
}

#[tokio::test]
async fn one_connection_serves_many_commands_and_hosts_run_in_parallel() {
    let servers: Vec<TestSshd> = (1..=3)
        .map(|i| TestSshd::start(Ipv4Addr::new(127, 0, 109, i), ""))
        .collect();
    let work = tempfile::tempdir().unwrap();
    let kh: String = servers.iter().map(|s| s.known_hosts_line()).collect();
    let refs: Vec<&TestSshd> = servers.iter().collect();
    let inv = inventory(work.path(), &refs, &kh, &[]);
    let c = connector(&inv, false);
    // Each host's command marks that it started, then waits (up to a minute)
    // until all three have: run one after another, the first would give up.
    let marks = work.path().join("started");
    std::fs::create_dir(&marks).unwrap();
    let runs = inv.hosts.iter().map(|h| {
        let c = &c;
        let cmd = format!(
            "cd '{}' && touch {} && i=0; while [ $(ls | wc -l) -lt 3 ]; do i=$((i+1)); [ $i -gt 1200 ] && {{ echo alone; exit 9; }}; sleep 0.05; done; echo together",
            marks.display(),
            h.name
        );
        async move {
            let t = c.connect(h).await.unwrap();
            t.exec(&cmd, Duration::from_secs(90)).await.unwrap()
        }
    });
    let outs = futures::future::join_all(runs).await;
    for out in &outs {
        assert_eq!(
            (out.status, out.stdout.as_str()),
            (Some(0), "together\n"),
            "every host's command ran while the others did: {outs:?}"
        );
    }
    // Reuse: ten more commands on h1 open no new connection.
    let t = c.connect(&inv.hosts[0]).await.unwrap();
    for _ in 0..10 {
        t.exec("true", T).await.unwrap();
    }
    let accepted = servers[0].log().matches("Accepted publickey").count();
    assert_eq!(
        accepted,
        1,
        "one login for the whole run:\n{}",
        servers[0].log()
    );
}

/// The unprivileged login user with passwordless sudo that
/// [`TestSshd::start_with_sudo_user`] adds inside its server's own mount
/// namespace (the machine's /etc is never changed).
const BECOME_USER: &str = "remedy-ns-become";

/// Host h1 on `s`, logging in as `user` (known_hosts already in `dir`).
fn become_inventory(dir: &std::path::Path, s: &TestSshd, user: &str, become_: bool) -> Inventory {
    let text = format!(
        "ssh: {{ known_hosts: {}/known_hosts }}\nhosts:\n  h1: {{ address: {}, port: {}, user: {user}, identity_file: {}, become: {become_} }}\n",
        dir.display(),
        s.addr,
        s.port,
        s.client_key().display()
    );
    Inventory::parse(Source::new("inv.yaml", text)).unwrap()
}

#[tokio::test]
async fn become_runs_commands_and_file_operations_through_sudo() {
    let user = BECOME_USER;
    let s = TestSshd::start_with_sudo_user(Ipv4Addr::new(127, 0, 112, 1), "", user);
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("known_hosts"), s.known_hosts_line()).unwrap();
    let root_only = work.path().join("root-only");
    std::fs::create_dir(&root_only).unwrap();
    std::fs::set_permissions(
        &root_only,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let file = format!("{}/conf", root_only.display());
    for become_ in [false, true] {
        let inv = become_inventory(work.path(), &s, user, become_);
        let t = connector(&inv, false).connect(&inv.hosts[0]).await.unwrap();
        let uid = t.exec("id -u", T).await.unwrap().stdout;
        let write = t
            .write_file_atomic(&file, b"as root\n", WriteAttrs::default())
            .await;
        if become_ {
            assert_eq!(uid, "0\n");
            write.unwrap();
            assert_eq!(t.stat(&file).await.unwrap().unwrap().uid, 0);
            assert_eq!(t.read_file(&file).await.unwrap(), b"as root\n");
        } else {
            assert_ne!(uid, "0\n");
            let err = write.unwrap_err().to_string();
            assert!(err.contains("Permission denied"), "{err}");
        }
    }
}

#[tokio::test]
async fn ssh_config_fills_in_what_the_inventory_leaves_out() {
    let s = TestSshd::start(Ipv4Addr::new(127, 0, 113, 1), "");
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("known_hosts"), s.known_hosts_line()).unwrap();
    let cfg = work.path().join("ssh_config");
    std::fs::write(
        &cfg,
        format!(
            "Host master-*\n  HostName {}\n  Port {}\n  User root\n  IdentityFile {}\n",
            s.addr,
            s.port,
            s.client_key().display()
        ),
    )
    .unwrap();
    let text = format!(
        "ssh: {{ known_hosts: {}/known_hosts }}\nhosts:\n  master-7: {{}}\n",
        work.path().display()
    );
    let inv = Inventory::parse(Source::new("inv.yaml", text)).unwrap();
    let t = SshConnector::new(&inv, false)
        .with_resolver(Resolver::new(ConfigFile::Path(cfg)))
        .connect(&inv.hosts[0])
        .await
        .unwrap();
    assert_eq!(t.exec("id -un", T).await.unwrap().stdout, "root\n");
}

#[tokio::test]
async fn a_connection_lost_mid_run_is_rolled_back_over_a_new_connection() {
    use remedy_engine::{bind, HostStatus, Request};
    let s = TestSshd::start(Ipv4Addr::new(127, 0, 114, 1), "");
    let work = tempfile::tempdir().unwrap();
    let inv = inventory(work.path(), &[&s], &s.known_hosts_line(), &[]);
    let file = work.path().join("app.conf");
    std::fs::write(&file, "original\n").unwrap();
    let rb = format!(
        "runbook: r\nsummary: s\ntargets: all_hosts\nsteps:\n  - id: edit\n    action: file.write\n    with: {{ path: {f}, content: \"changed\\n\" }}\n  - id: cut\n    action: shell\n    with: {{ cmd: \"kill -9 $PPID\" }}\n",
        f = file.display()
    );
    let rb = remedy_dsl::compile(Source::new("rb.yaml", rb)).unwrap();
    let run = bind(&rb, &inv, &Request::default()).unwrap();
    let c = connector(&inv, false);
    let report = execute(&rb, &run, &c, false).await;
    let host = &report.hosts[0];
    assert_eq!(host.status, HostStatus::RolledBack, "{host:#?}");
    assert!(
        host.steps[1]
            .error
            .as_deref()
            .unwrap_or("")
            .contains("connection to h1 lost"),
        "{:?}",
        host.steps[1].error
    );
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "original\n",
        "restored over a new connection"
    );
    assert_eq!(
        s.log().matches("Accepted publickey").count(),
        2,
        "reconnected once"
    );
}

#[tokio::test]
async fn rsa_and_ecdsa_client_keys_log_in_too() {
    let s = TestSshd::start(Ipv4Addr::new(127, 0, 115, 1), "");
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("known_hosts"), s.known_hosts_line()).unwrap();
    for (kind, bits) in [("rsa", "3072"), ("ecdsa", "256")] {
        let key = work.path().join(format!("id_{kind}"));
        let made = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", kind, "-b", bits, "-N", "", "-f"])
            .arg(&key)
            .status()
            .unwrap();
        assert!(made.success());
        // Authorise it on the server.
        let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
        let mut authorized = std::fs::OpenOptions::new()
            .append(true)
            .open(s.dir.path().join("authorized_keys"))
            .unwrap();
        std::io::Write::write_all(&mut authorized, public.as_bytes()).unwrap();
        let text = format!(
            "ssh: {{ user: root, known_hosts: {}/known_hosts }}\nhosts:\n  h1: {{ address: {}, port: {}, identity_file: {} }}\n",
            work.path().display(),
            s.addr,
            s.port,
            key.display()
        );
        let inv = Inventory::parse(Source::new("inv.yaml", text)).unwrap();
        let t = connector(&inv, false)
            .connect(&inv.hosts[0])
            .await
            .unwrap_or_else(|e| panic!("{kind} key: {e}"));
        assert_eq!(t.exec("echo in", T).await.unwrap().stdout, "in\n", "{kind}");
    }
    // The RSA login used an rsa-sha2 signature (OpenSSH refuses SHA-1 ones).
    assert!(
        s.log().contains("Accepted publickey for root") && s.log().contains("RSA SHA256:"),
        "{}",
        s.log()
    );
}

#[tokio::test]
async fn haproxy_runtime_api_through_ssh_socket_streams() {
    use remedy_haproxy::{AdminState, HaproxyError, RuntimeApi};
    use remedy_transport::{ReadOnly, StreamTarget};
    let ip = Ipv4Addr::new(127, 0, 116, 1);
    let s = TestSshd::start(ip, "LogLevel DEBUG1");
    let up = Upstream::start(ip).await;
    let h = TestHaproxy::start(ip, &[("m1", up.addr, 1), ("m2", nothing_listens(ip), 1)]);
    let work = tempfile::tempdir().unwrap();
    let inv = inventory(work.path(), &[&s], &s.known_hosts_line(), &[]);
    let t = connector(&inv, false).connect(&inv.hosts[0]).await.unwrap();

    // direct-streamlocal to the unix admin socket: read, change, restore.
    let api = RuntimeApi::new(t.as_ref(), StreamTarget::Unix(h.admin_path()));
    let names: Vec<String> = api
        .servers("k8s")
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.server)
        .collect();
    assert_eq!(names, ["m1", "m2"]);
    api.set_state("k8s", "m1", AdminState::Drain).await.unwrap();
    assert_eq!(
        api.server("k8s", "m1").await.unwrap().admin,
        AdminState::Drain
    );
    api.set_state("k8s", "m1", AdminState::Ready).await.unwrap();
    assert!(
        s.log().contains(&format!(
            "server_request_direct_streamlocal: originator  port 0, target {}",
            h.admin_path()
        )),
        "sshd opened the socket: {}",
        s.log()
    );

    // A dry-run reads over the same stream and sends no change.
    let ro = ReadOnly::new(t.as_ref());
    let dry = RuntimeApi::new(&ro, StreamTarget::Unix(h.admin_path()));
    assert_eq!(dry.servers("k8s").await.unwrap().len(), 2);
    assert!(matches!(
        dry.set_state("k8s", "m1", AdminState::Maint).await,
        Err(HaproxyError::ReadOnly { .. })
    ));

    // direct-tcpip to the TCP admin socket.
    let (tcp_ip, tcp_port) = h.admin_tcp;
    let over_tcp = RuntimeApi::new(t.as_ref(), StreamTarget::Tcp(tcp_ip.to_string(), tcp_port));
    assert_eq!(over_tcp.backends().await.unwrap(), ["k8s"]);

    // The server refuses the channel without saying why; remedy looks.
    let missing = work.path().join("missing.sock").display().to_string();
    let err = RuntimeApi::new(t.as_ref(), StreamTarget::Unix(missing.clone()))
        .servers("k8s")
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("no HAProxy admin socket at {missing} on h1 (no such file): check `stats socket` in haproxy.cfg and the host var haproxy_socket")
    );
    let plain = work.path().join("known_hosts").display().to_string();
    let err = RuntimeApi::new(t.as_ref(), StreamTarget::Unix(plain.clone()))
        .servers("k8s")
        .await
        .unwrap_err();
    assert!(
        err.to_string().starts_with(&format!(
            "no HAProxy admin socket at {plain} on h1 (it is not a socket)"
        )),
        "{err}"
    );
    let stale = work.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    let err = RuntimeApi::new(t.as_ref(), StreamTarget::Unix(stale.display().to_string()))
        .servers("k8s")
        .await
        .unwrap_err();
    assert!(matches!(err, HaproxyError::NotListening { .. }), "{err}");
}

#[tokio::test]
async fn a_haproxy_socket_the_login_user_may_not_open_is_explained() {
    use remedy_haproxy::{HaproxyError, RuntimeApi};
    use remedy_transport::StreamTarget;
    use std::os::unix::fs::PermissionsExt;
    let user = BECOME_USER;
    let ip = Ipv4Addr::new(127, 0, 116, 2);
    let s = TestSshd::start_with_sudo_user(ip, "", user);
    let h = TestHaproxy::start(ip, &[("m1", nothing_listens(ip), 1)]);
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("known_hosts"), s.known_hosts_line()).unwrap();
    let socket = h.admin_path();
    let mut messages = Vec::new();
    for (dir_mode, become_) in [(0o700, false), (0o755, false), (0o755, true)] {
        std::fs::set_permissions(h.dir.path(), std::fs::Permissions::from_mode(dir_mode)).unwrap();
        let inv = become_inventory(work.path(), &s, user, become_);
        let t = connector(&inv, false).connect(&inv.hosts[0]).await.unwrap();
        let err = RuntimeApi::new(t.as_ref(), StreamTarget::Unix(socket.clone()))
            .servers("k8s")
            .await
            .unwrap_err();
        assert!(matches!(err, HaproxyError::SocketDenied { .. }), "{err}");
        messages.push(err.to_string());
    }
    let prefix = format!("permission denied on HAProxy's socket {socket} on h1: ");
    assert_eq!(
        messages,
        [
            format!("{prefix}a directory above it is closed to {user}"),
            format!("{prefix}permission denied for {user} (socket root:root, mode 600)"),
            format!("{prefix}the socket exists (root:root, mode 600) but {user} could not connect: streams connect as the login user ({user}) because `become` does not apply to them, so {user} needs access to the socket (or nothing accepts on it)"),
        ]
    );
}

/// Issue 14 (4): a param's value inside `cmd:`, `unless:` and `wait.until`'s
/// `command` is one quoted word on a real host: `; touch`, `$(...)`,
/// backticks, newlines and quotes run nothing — in a dry-run of a read-only
/// step, in a real run, and through a guard — and the command sees the
/// exact bytes given.
#[tokio::test]
async fn issue_14_params_in_commands_are_data_never_shell() {
    use remedy_engine::{bind, HostStatus, Request};
    let s = TestSshd::start(Ipv4Addr::new(127, 0, 117, 1), "");
    let work = tempfile::tempdir().unwrap();
    let inv = inventory(work.path(), &[&s], &s.known_hosts_line(), &[]);
    let pwned = work.path().join("pwned");
    let p = pwned.display();
    let payloads = [
        format!("; touch {p}"),
        format!("$(touch {p})"),
        format!("`touch {p}`"),
        format!("a\ntouch {p}"),
        format!("a'; touch {p}; echo '"),
        format!("a\"; touch {p}; echo \""),
        format!("' && touch {p} #"),
    ];
    let rb = remedy_dsl::compile(Source::new(
        "rb.yaml",
        format!(
            r#"runbook: inject
summary: s
targets: all_hosts
params:
  x: {{ type: string }}
  words: {{ type: list }}
steps:
  - id: look
    action: shell
    with: {{ cmd: "printf '%s|' ${{params.x}} ${{params.words}}", read_only: true }}
  - id: guarded
    action: shell
    with: {{ cmd: "printf %s ${{params.x}} > {out}", unless: "test -e ${{params.x}}" }}
  - id: waited
    action: wait.until
    with: {{ command: "printf %s ${{params.x}}", condition: "result.rc == 0", timeout: 10s }}
"#,
            out = work.path().join("written").display()
        ),
    ))
    .unwrap();
    let c = connector(&inv, false);
    for payload in &payloads {
        let request = Request {
            params: vec![
                ("x".into(), payload.clone()),
                ("words".into(), payload.clone()),
                ("words".into(), "two words".into()),
            ],
            ..Request::default()
        };
        let run = bind(&rb, &inv, &request).unwrap();
        for dry_run in [true, false] {
            let report = execute(&rb, &run, &c, dry_run).await;
            let host = &report.hosts[0];
            assert!(
                !pwned.exists(),
                "{payload:?} ran as shell (dry-run {dry_run})"
            );
            let look = host.steps[0]
                .result
                .as_ref()
                .unwrap_or_else(|| panic!("{host:#?}"));
            assert_eq!(
                look["stdout"],
                format!("{payload}|{payload}|two words|"),
                "the command saw the exact bytes"
            );
            if !dry_run {
                assert_eq!(host.status, HostStatus::Changed, "{host:#?}");
                assert_eq!(
                    std::fs::read_to_string(work.path().join("written")).unwrap(),
                    *payload
                );
                assert_eq!(host.steps[2].result.as_ref().unwrap()["stdout"], *payload);
            }
        }
    }
}
