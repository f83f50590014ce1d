//! `remedy exec` reads the SSH client configuration as OpenSSH does, proved
//! on real networks of real sshd servers: a master whose path, in an
//! `Include`d file, is `ProxyCommand ssh -W %h:%p bastion`.
//!
//! The network is real, not assumed: three network namespaces made by the
//! test — the jump host where remedy runs (C), the bastion (B) and the master
//! (T, answering on 10.77.9.1). B reaches the master; so does C, over a link
//! of its own, until the test removes that route. The master sees who
//! connected: `$SSH_CONNECTION` and its log name the bastion's address
//! (10.77.2.1) for a connection through the bastion, and C's (10.77.3.1) for
//! a direct one.

use remedy_testkit::netns::Netns;
use remedy_testkit::sshd::TestSshd;
use std::path::Path;
use std::process::{Output, Stdio};

const MASTER: &str = "10.77.9.1";
const BASTION: &str = "10.77.1.2";
/// The bastion's address as the master sees it.
const VIA_BASTION: &str = "10.77.2.1";
/// The jump host's address as the master sees it (the direct path).
const DIRECT: &str = "10.77.3.1";

/// C ─ B ─ T, and C ─ T: the world the test runs in.
struct World {
    work: tempfile::TempDir,
    // Servers before namespaces: dropped (stopped) first.
    bastion: TestSshd,
    master: TestSshd,
    client: Netns,
    _b: Netns,
    _t: Netns,
}

/// `[addr]`-less known_hosts line: both servers listen on port 22.
fn known_hosts_line(s: &TestSshd) -> String {
    let public = std::fs::read_to_string(s.dir.path().join("host_key.pub")).unwrap();
    let mut parts = public.split_whitespace();
    format!(
        "{} {} {}\n",
        s.addr,
        parts.next().unwrap(),
        parts.next().unwrap()
    )
}

fn world() -> World {
    // Unique per test process and per world in it.
    static WORLDS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let id = format!(
        "rmd{}-{}",
        std::process::id(),
        WORLDS.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    );
    let c = Netns::new(&format!("{id}c"));
    let b = Netns::new(&format!("{id}b"));
    let t = Netns::new(&format!("{id}t"));
    c.link("cb", "10.77.1.1/30", &b, "bc", &format!("{BASTION}/30"));
    b.link("bt", &format!("{VIA_BASTION}/30"), &t, "tb", "10.77.2.2/30");
    c.link("ct", &format!("{DIRECT}/30"), &t, "tc", "10.77.3.2/30");
    t.ip(&["addr", "add", &format!("{MASTER}/32"), "dev", "lo"]);
    b.ip(&["route", "add", MASTER, "via", "10.77.2.2"]);
    c.ip(&["route", "add", MASTER, "via", "10.77.3.2"]);
    let bastion =
        TestSshd::start_in_netns(&b.name, BASTION.parse().unwrap(), 22, "LogLevel DEBUG1");
    let master = TestSshd::start_in_netns(&t.name, MASTER.parse().unwrap(), 22, "LogLevel VERBOSE");
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    std::fs::write(
        w.join("known_hosts"),
        known_hosts_line(&bastion) + &known_hosts_line(&master),
    )
    .unwrap();
    // The master's key is found through tokens: %r@%n → root@master-1.
    std::fs::create_dir(w.join("keys")).unwrap();
    std::fs::copy(master.client_key(), w.join("keys/root@master-1")).unwrap();
    write_config(w, "ssh_config", BASTION, &bastion.client_key());
    std::fs::write(
        w.join("inventory.yaml"),
        format!(
            "ssh: {{ config: {w}/ssh_config, known_hosts: {w}/known_hosts, connect_timeout: 10s }}\nhosts:\n  master-1: {{ groups: [masters] }}\n",
            w = w.display()
        ),
    )
    .unwrap();
    World {
        work,
        bastion,
        master,
        client: c,
        _b: b,
        _t: t,
    }
}

/// A configuration `name` whose bastion is at `bastion_addr`; the
/// ProxyCommand lives in an `Include`d file.
fn write_config(w: &Path, name: &str, bastion_addr: &str, bastion_key: &Path) {
    let w_ = w.display();
    std::fs::write(
        w.join(format!("{name}.bastion")),
        format!(
            "Host master-*\n  ProxyCommand ssh -F {w_}/{name} -W %h:%p bastion\nHost bastion\n  HostName {bastion_addr}\n  User root\n  IdentityFile {}\n",
            bastion_key.display()
        ),
    )
    .unwrap();
    std::fs::write(
        w.join(name),
        format!(
            "Include {w_}/{name}.bastion\nHost master-*\n  HostName {MASTER}\n  User root # the masters' login\n  IdentityFile {w_}/keys/%r@%n\nHost *\n  UserKnownHostsFile {w_}/known_hosts\n  StrictHostKeyChecking yes\n  BatchMode yes\n  ConnectTimeout 5\n"
        ),
    )
    .unwrap();
}

impl World {
    /// `remedy -v exec -i INVENTORY master-1 -- 'echo $SSH_CONNECTION'` on C.
    fn remedy(&self, inventory: &str) -> Output {
        let w = self.work.path();
        self.client
            .command(env!("CARGO_BIN_EXE_remedy"))
            .args(["-v", "exec", "-i"])
            .arg(w.join(inventory))
            .args(["master-1", "--", "echo $SSH_CONNECTION"])
            .env("HOME", w)
            .env("REMEDY_HOME", w.join("remedy-home"))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// OpenSSH's `ssh ARGS… 'echo $SSH_CONNECTION'` on C.
    fn ssh(&self, args: &[&str]) -> Output {
        self.client
            .command("ssh")
            .args(args)
            .arg("echo $SSH_CONNECTION")
            .env("HOME", self.work.path())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// OpenSSH straight to the master, configuration bypassed.
    fn ssh_direct(&self) -> Output {
        let w = self.work.path();
        let key = self.master.client_key().display().to_string();
        let kh = format!("UserKnownHostsFile={}/known_hosts", w.display());
        self.ssh(&[
            "-F",
            "none",
            "-i",
            &key,
            "-o",
            &kh,
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=5",
            "-l",
            "root",
            MASTER,
        ])
    }
}

/// Who the master saw connecting: the first field of `$SSH_CONNECTION`.
fn seen_from(out: &Output) -> String {
    assert!(
        out.status.success(),
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_proxy_command_bastion_is_used_even_where_a_direct_path_is_open() {
    let world = world();
    let w = world.work.path().display().to_string();

    // remedy goes through the bastion, though the master is reachable directly.
    let out = world.remedy("inventory.yaml");
    assert_eq!(
        seen_from(&out),
        VIA_BASTION,
        "remedy's connection came through the bastion"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "ssh: master-1: root@{MASTER}:22 with {w}/keys/root@master-1, through ProxyCommand `ssh -F {w}/ssh_config -W {MASTER}:22 bastion`"
        )),
        "--verbose says how master-1 is reached:\n{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "warning: master-1: {w}/ssh_config sets `userknownhostsfile {w}/known_hosts`, which remedy does not honour"
        )),
        "an unhonoured setting is reported:\n{stderr}"
    );
    let bastion_log = world.bastion.log();
    assert!(
        bastion_log.contains("Accepted publickey for root from 10.77.1.1")
            && bastion_log.contains(&format!("target {MASTER} port 22")),
        "the bastion forwarded the connection to the master:\n{bastion_log}"
    );
    let master_log = world.master.log();
    assert!(
        master_log.contains(&format!("Accepted publickey for root from {VIA_BASTION}"))
            && !master_log.contains(DIRECT),
        "the master saw only the bastion:\n{master_log}"
    );

    // OpenSSH itself, through the same configuration, takes the same path.
    let cfg = format!("{w}/ssh_config");
    assert_eq!(
        seen_from(&world.ssh(&["-F", &cfg, "master-1"])),
        VIA_BASTION
    );
    // …and the direct path is really open.
    assert_eq!(seen_from(&world.ssh_direct()), DIRECT);

    // With the direct route gone, only the bastion reaches the master, and
    // remedy still does.
    world.client.ip(&["route", "del", MASTER]);
    assert!(
        !world.ssh_direct().status.success(),
        "no direct path any more"
    );
    assert_eq!(seen_from(&world.remedy("inventory.yaml")), VIA_BASTION);
}

#[test]
fn when_the_bastion_cannot_be_reached_remedy_refuses_rather_than_going_direct() {
    let world = world();
    let w = world.work.path();
    // Same configuration, but the bastion's address answers nowhere.
    write_config(w, "broken_config", "10.77.4.1", &world.bastion.client_key());
    let inventory = std::fs::read_to_string(w.join("inventory.yaml"))
        .unwrap()
        .replace("/ssh_config", "/broken_config");
    std::fs::write(w.join("broken.yaml"), inventory).unwrap();

    let out = world.remedy("broken.yaml");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{stderr}");
    assert!(
        stderr.contains("cannot reach master-1")
            && stderr.contains("its ProxyCommand said: ssh: connect to host 10.77.4.1 port 22"),
        "the failure names the ProxyCommand and what it said:\n{stderr}"
    );
    assert!(
        !world.master.log().contains("Accepted publickey"),
        "nothing reached the master, directly or otherwise:\n{}",
        world.master.log()
    );
    // The direct path was open all along.
    assert_eq!(seen_from(&world.ssh_direct()), DIRECT);
}
