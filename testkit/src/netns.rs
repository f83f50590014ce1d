//! Network namespaces made for one test, so that "reachable only through
//! that host" is enforced by routing rather than assumed. Everything is
//! created inside the namespaces (veth ends are born there): the machine's own
//! network is never touched. Dropping a [`Netns`] kills what runs in it (only
//! the test's own processes can) and deletes it, even when the test fails.

use std::process::Command;

pub struct Netns {
    pub name: String,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("`ip` (iproute2) is needed: run scripts/setup");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Netns {
    /// A fresh namespace `name` (a stale one from a crashed run is replaced),
    /// with its loopback up.
    pub fn new(name: &str) -> Netns {
        let _ = Command::new("ip").args(["netns", "del", name]).output();
        ip(&["netns", "add", name]);
        ip(&["-n", name, "link", "set", "lo", "up"]);
        Netns { name: name.into() }
    }

    /// `ip -n NAME ARGS…`, which must succeed.
    pub fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all);
    }

    /// `program` to be run inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// A veth pair between `self` (`ADDR/PREFIX` on `local_if`) and `peer`.
    pub fn link(
        &self,
        local_if: &str,
        local_addr: &str,
        peer: &Netns,
        peer_if: &str,
        peer_addr: &str,
    ) {
        ip(&[
            "link", "add", local_if, "netns", &self.name, "type", "veth", "peer", "name", peer_if,
            "netns", &peer.name,
        ]);
        for (ns, ifname, addr) in [(self, local_if, local_addr), (peer, peer_if, peer_addr)] {
            ns.ip(&["addr", "add", addr, "dev", ifname]);
            ns.ip(&["link", "set", ifname, "up"]);
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}
