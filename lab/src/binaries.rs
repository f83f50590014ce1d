//! The real control-plane binaries the lab runs, built from source by
//! `scripts/lab-binaries` (which `scripts/setup` calls) into a versioned cache
//! outside the repository: kube-apiserver, kube-controller-manager,
//! kube-scheduler, kubeadm and kubectl at [`k8s_version`], etcd, etcdctl and
//! etcdutl at [`etcd_version`].
//!
//! The versions come from `scripts/lab-build/versions`, the one place they are
//! pinned. Each set's directory holds a `SHA256SUMS` manifest written after a
//! successful build; [`Binaries::verified`] checks every binary against it, so
//! a missing, truncated or replaced binary is refused (and rebuilt by setup),
//! never run.

use sha2::{Digest as _, Sha256};
use std::fs;
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};

const VERSIONS: &str = include_str!("../../scripts/lab-build/versions");

/// The Kubernetes release the lab runs (`scripts/lab-build/versions`).
pub fn k8s_version() -> &'static str {
    pinned("K8S_VERSION=")
}

/// The etcd release the lab runs (`scripts/lab-build/versions`).
pub fn etcd_version() -> &'static str {
    pinned("ETCD_VERSION=")
}

/// The Kubernetes commands built from `k8s.io/kubernetes`.
pub const K8S_COMMANDS: [&str; 5] = [
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubeadm",
    "kubectl",
];
/// The etcd commands built from `go.etcd.io/etcd`.
pub const ETCD_COMMANDS: [&str; 3] = ["etcd", "etcdctl", "etcdutl"];

/// What builds the binaries, for every message that asks for them.
pub const BUILD_COMMAND: &str = "scripts/setup (or scripts/lab-binaries alone)";

/// `KEY=value` from the versions file (a unit test checks both keys exist).
fn pinned(key: &str) -> &'static str {
    VERSIONS
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .map(str::trim)
        .unwrap_or("unknown")
}

/// Why the binaries cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BinariesError {
    /// A set was never built (or its manifest is gone).
    #[error("the lab's {what} binaries are not built: {dir} has no SHA256SUMS\n  build them with {BUILD_COMMAND} (Go and the Go module proxy; about 5 minutes on 2 cores the first time)", dir = dir.display())]
    NotBuilt { what: String, dir: PathBuf },
    /// A binary is missing or differs from the manifest.
    #[error("{} does not match its checksum in {} ({reason}); it will not be run\n  rebuild with {BUILD_COMMAND}", path.display(), manifest.display())]
    Corrupt {
        path: PathBuf,
        manifest: PathBuf,
        reason: String,
    },
}

/// Where the binary cache lives: `$REMEDY_LAB_CACHE` or `/var/cache/remedy-lab`
/// (the same default as `scripts/lab-binaries`).
pub fn cache_root() -> PathBuf {
    std::env::var_os("REMEDY_LAB_CACHE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/remedy-lab"))
}

/// The verified binaries, by command name.
#[derive(Debug, Clone)]
pub struct Binaries {
    k8s_dir: PathBuf,
    etcd_dir: PathBuf,
}

impl Binaries {
    /// The binaries under [`cache_root`], every one checked against its set's
    /// `SHA256SUMS`.
    pub fn verified() -> Result<Binaries, BinariesError> {
        Binaries::verified_in(&cache_root())
    }

    /// The same under another cache root.
    pub fn verified_in(root: &Path) -> Result<Binaries, BinariesError> {
        let bins = Binaries {
            k8s_dir: root.join(format!("k8s-{}", k8s_version())),
            etcd_dir: root.join(format!("etcd-{}", etcd_version())),
        };
        let sets = [
            (
                format!("Kubernetes {}", k8s_version()),
                &bins.k8s_dir,
                &K8S_COMMANDS[..],
            ),
            (
                format!("etcd {}", etcd_version()),
                &bins.etcd_dir,
                &ETCD_COMMANDS[..],
            ),
        ];
        let mut jobs = Vec::new();
        for (what, dir, names) in sets {
            let manifest = dir.join("SHA256SUMS");
            let text = fs::read_to_string(&manifest).map_err(|_| BinariesError::NotBuilt {
                what,
                dir: dir.to_path_buf(),
            })?;
            for name in names {
                let want = text
                    .lines()
                    .filter_map(|l| l.split_once("  "))
                    .find(|(_, n)| n.trim() == *name)
                    .map(|(sum, _)| sum.trim().to_string());
                jobs.push((dir.join(name), manifest.clone(), want));
            }
        }
        // Hashing ~450 MB: one thread per binary keeps every core busy.
        std::thread::scope(|s| {
            let running: Vec<_> = jobs
                .iter()
                .map(|(path, manifest, want)| {
                    let handle = s.spawn(move || verify(path, want.as_deref()));
                    (path, manifest, handle)
                })
                .collect();
            for (path, manifest, handle) in running {
                let outcome = handle
                    .join()
                    .unwrap_or_else(|_| Err("hashing it failed".to_string()));
                outcome.map_err(|reason| BinariesError::Corrupt {
                    path: path.clone(),
                    manifest: manifest.clone(),
                    reason,
                })?;
            }
            Ok(())
        })?;
        Ok(bins)
    }

    /// The path of `command` (one of [`K8S_COMMANDS`] or [`ETCD_COMMANDS`]).
    pub fn path(&self, command: &str) -> Option<PathBuf> {
        if K8S_COMMANDS.contains(&command) {
            Some(self.k8s_dir.join(command))
        } else if ETCD_COMMANDS.contains(&command) {
            Some(self.etcd_dir.join(command))
        } else {
            None
        }
    }

    /// Every command with its path.
    pub fn all(&self) -> Vec<(&'static str, PathBuf)> {
        K8S_COMMANDS
            .iter()
            .map(|c| (*c, self.k8s_dir.join(c)))
            .chain(ETCD_COMMANDS.iter().map(|c| (*c, self.etcd_dir.join(c))))
            .collect()
    }
}

/// `path` hashes to `want` (its line in SHA256SUMS); why not, otherwise.
fn verify(path: &Path, want: Option<&str>) -> Result<(), String> {
    let want = want.ok_or("not listed")?;
    let got = sha256_file(path).map_err(|e| e.to_string())?;
    if got == want {
        Ok(())
    } else {
        Err(format!(
            "sha256 {}…, expected {}…",
            &got[..12],
            want.get(..12).unwrap_or(want)
        ))
    }
}

fn sha256_file(path: &Path) -> io::Result<String> {
    let mut file = fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_come_from_the_pin_file() {
        assert!(k8s_version().starts_with("v1.") && !k8s_version().contains(' '));
        assert!(etcd_version().starts_with("v3.6."));
        let module = include_str!("../../scripts/lab-build/kubernetes/go.mod");
        assert!(module.contains(&format!("k8s.io/kubernetes {}", k8s_version())));
        let module = include_str!("../../scripts/lab-build/etcd/go.mod");
        assert!(module.contains(&format!("go.etcd.io/etcd/server/v3 {}", etcd_version())));
    }

    /// A fake cache: every binary a small file, with a correct manifest.
    fn fake_cache(root: &Path) {
        for (dir, names) in [
            (format!("k8s-{}", k8s_version()), &K8S_COMMANDS[..]),
            (format!("etcd-{}", etcd_version()), &ETCD_COMMANDS[..]),
        ] {
            let dir = root.join(dir);
            fs::create_dir_all(&dir).unwrap();
            let mut sums = String::new();
            for n in names {
                fs::write(dir.join(n), format!("binary {n}")).unwrap();
                sums.push_str(&format!("{}  {n}\n", sha256_file(&dir.join(n)).unwrap()));
            }
            fs::write(dir.join("SHA256SUMS"), sums).unwrap();
        }
    }

    #[test]
    fn a_missing_or_changed_binary_is_refused_with_the_command_that_builds_it() {
        let root = tempfile::tempdir().unwrap();
        let err = Binaries::verified_in(root.path()).unwrap_err().to_string();
        assert!(
            err.contains("are not built") && err.contains("scripts/setup"),
            "{err}"
        );
        fake_cache(root.path());
        let bins = Binaries::verified_in(root.path()).unwrap();
        assert_eq!(
            bins.path("kubeadm").unwrap(),
            root.path().join(format!("k8s-{}/kubeadm", k8s_version()))
        );
        assert_eq!(bins.all().len(), 8);
        let etcd = bins.path("etcd").unwrap();
        fs::write(&etcd, "binary etcd, but truncated").unwrap();
        let err = Binaries::verified_in(root.path()).unwrap_err().to_string();
        assert!(
            err.contains(&format!("{} does not match its checksum", etcd.display()))
                && err.contains("will not be run"),
            "{err}"
        );
        fs::remove_file(&etcd).unwrap();
        let err = Binaries::verified_in(root.path()).unwrap_err().to_string();
        assert!(err.contains("No such file"), "{err}");
    }
}
