//! Where everything of a lab is: fixed addresses people and scripts can rely
//! on, and the lab directory's layout.
//!
//! Master *i* listens on `base + i` (127.0.0.11 for master-1 with the default
//! base 127.0.0.10): sshd on :2222, API server on :6443, etcd on :2379/:2380.
//! The base address itself is the load balancer's VIP (HAProxy, :6443) and the
//! lb-1 host's sshd; lb-*i* (i ≥ 2, `--lbs`) listens on `base + 100 + i`
//! (127.0.0.112 for lb-2). `--base-address` moves the whole lab, so tests run
//! beside a lab that is up.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

pub const SSH_PORT: u16 = 2222;
pub const API_PORT: u16 = 6443;
pub const ETCD_CLIENT_PORT: u16 = 2379;
pub const ETCD_PEER_PORT: u16 = 2380;
pub const ETCD_METRICS_PORT: u16 = 2381;
pub const CONTROLLER_MANAGER_PORT: u16 = 10257;
pub const SCHEDULER_PORT: u16 = 10259;
pub const DEFAULT_BASE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 10);

/// The shape of a lab: where it lives and how many masters it has.
#[derive(Debug, Clone)]
pub struct Layout {
    pub dir: PathBuf,
    pub masters: usize,
    pub base: Ipv4Addr,
    /// Load balancers (HAProxy + sshd each), all with the same backend.
    pub lbs: usize,
}

impl Layout {
    pub fn new(dir: impl Into<PathBuf>, masters: usize, base: Ipv4Addr) -> Layout {
        Layout {
            dir: dir.into(),
            masters,
            base,
            lbs: 1,
        }
    }

    pub fn with_lbs(mut self, lbs: usize) -> Layout {
        self.lbs = lbs.max(1);
        self
    }

    /// LB names, `lb-1` … `lb-N`.
    pub fn lb_names(&self) -> Vec<String> {
        (1..=self.lbs).map(|i| format!("lb-{i}")).collect()
    }

    /// The address of LB `i` (1-based): lb-1 is the VIP.
    pub fn lb_addr(&self, i: usize) -> Ipv4Addr {
        if i <= 1 {
            return self.base;
        }
        let [a, b, c, d] = self.base.octets();
        Ipv4Addr::new(a, b, c, d.saturating_add(100 + i as u8))
    }

    /// LB `i`'s admin socket (lb-1's keeps the name a one-LB lab always had).
    pub fn lb_socket(&self, i: usize) -> PathBuf {
        if i <= 1 {
            self.haproxy_socket()
        } else {
            self.dir.join(format!("haproxy-lb-{i}.sock"))
        }
    }

    pub fn vip(&self) -> Ipv4Addr {
        self.base
    }

    /// Master names, `master-1` … `master-N`.
    pub fn master_names(&self) -> Vec<String> {
        (1..=self.masters).map(|i| format!("master-{i}")).collect()
    }

    /// The address of master `i` (1-based).
    pub fn master_addr(&self, i: usize) -> Ipv4Addr {
        let [a, b, c, d] = self.base.octets();
        Ipv4Addr::new(a, b, c, d.saturating_add(i as u8))
    }

    /// This host's own tree: what it sees as /etc/kubernetes, /var/lib/etcd …
    pub fn host_dir(&self, host: &str) -> PathBuf {
        self.dir.join("hosts").join(host)
    }
    pub fn kube_dir(&self, host: &str) -> PathBuf {
        self.host_dir(host).join("etc-kubernetes")
    }
    pub fn logs(&self) -> PathBuf {
        self.dir.join("logs")
    }
    pub fn ssh_dir(&self) -> PathBuf {
        self.dir.join("ssh")
    }
    /// The private key remedy (and the benchmark peers) log in with.
    pub fn client_key(&self) -> PathBuf {
        self.ssh_dir().join("id_ed25519")
    }
    pub fn known_hosts(&self) -> PathBuf {
        self.ssh_dir().join("known_hosts")
    }
    pub fn inventory(&self) -> PathBuf {
        self.dir.join("inventory.yaml")
    }
    pub fn haproxy_socket(&self) -> PathBuf {
        self.dir.join("haproxy.sock")
    }
    pub fn cas_dir(&self) -> PathBuf {
        self.dir.join("ca")
    }
    pub fn state_file(&self) -> PathBuf {
        self.dir.join("lab.json")
    }
}

/// The directories each host gets, bind-mounted over the real paths inside
/// its mount namespace: (path inside the host, directory name under host_dir).
pub const HOST_MOUNTS: &[(&str, &str)] = &[
    ("/etc/kubernetes", "etc-kubernetes"),
    ("/var/lib/etcd", "var-lib-etcd"),
    ("/var/lib/kubelet", "var-lib-kubelet"),
    ("/var/lib/remedy", "var-lib-remedy"),
    ("/var/log/pods", "var-log-pods"),
    // The master's own PATH directory: `lab up` puts the real kubeadm, kubectl,
    // kube-*, etcd* (wrappers exec'ing the verified cache) and the lab's
    // crictl there; a test or rehearsal can replace one on one master only.
    ("/usr/local/bin", "usr-local-bin"),
];

/// Root's shell start-up files, masked with an empty file inside each host:
/// root's real ~/.bashrc here is slow (~300 ms a command) and would skew every
/// timing. (Not all of /root: the lab directory may live under it.)
pub const MASKED_FILES: &[&str] = &[
    "/root/.bashrc",
    "/root/.profile",
    "/root/.bash_profile",
    "/root/.bash_login",
];

/// The default lab directory: `$REMEDY_HOME/lab` (`~/.local/state/remedy/lab`).
pub fn default_dir() -> PathBuf {
    let home = std::env::var_os("REMEDY_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let user_home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/root"));
            user_home.join(".local/state/remedy")
        });
    home.join("lab")
}

/// `path` relative to `base`, for messages.
pub fn shown(path: &Path) -> String {
    path.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_follow_the_base() {
        let l = Layout::new("/tmp/lab", 3, DEFAULT_BASE);
        assert_eq!(l.vip(), Ipv4Addr::new(127, 0, 0, 10));
        assert_eq!(l.master_addr(1), Ipv4Addr::new(127, 0, 0, 11));
        assert_eq!(l.master_addr(3), Ipv4Addr::new(127, 0, 0, 13));
        let moved = Layout::new("/tmp/lab", 3, Ipv4Addr::new(127, 0, 7, 10));
        assert_eq!(moved.master_addr(2), Ipv4Addr::new(127, 0, 7, 12));
        assert_eq!(l.master_names(), ["master-1", "master-2", "master-3"]);
        let two = l.clone().with_lbs(2);
        assert_eq!(two.lb_names(), ["lb-1", "lb-2"]);
        assert_eq!(two.lb_addr(1), l.vip());
        assert_eq!(two.lb_addr(2), Ipv4Addr::new(127, 0, 0, 112));
    }
}
