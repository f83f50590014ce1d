//! Re-dating a master's leaf certificates with the `openssl` CLI, for the
//! practice scenarios kubeadm cannot make: certificates that expired an hour
//! ago (`remedy lab up --cert-expiry -1h`, `remedy lab break cert-expired`).
//!
//! kubeadm writes every certificate (`kubeadm init phase certs|kubeconfig`),
//! but only with a validity from now on. Here each leaf kubeadm wrote — the
//! seven `pki/` leaves and the client certificates embedded in the five
//! kubeconfigs — is signed again by its CA with OpenSSL 3's `openssl ca`: the
//! same key, subject (`-preserveDN`) and extensions (SANs, key usages,
//! copied from the certificate itself), a new random serial, and exact
//! notBefore/notAfter dates (only `openssl ca` takes those in OpenSSL 3.0).
//! CAs, `sa.key`/`sa.pub` are never touched. The signings are independent
//! and run side by side, each in its own scratch directory.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

/// The leaves under `pki/`, with the CA (relative to `pki/`, no extension)
/// that signs each, as kubeadm lays them out.
pub const PKI_LEAVES: [(&str, &str); 7] = [
    ("apiserver", "ca"),
    ("apiserver-kubelet-client", "ca"),
    ("front-proxy-client", "front-proxy-ca"),
    ("apiserver-etcd-client", "etcd/ca"),
    ("etcd/server", "etcd/ca"),
    ("etcd/peer", "etcd/ca"),
    ("etcd/healthcheck-client", "etcd/ca"),
];

/// The kubeconfigs kubeadm writes with an embedded client certificate, all
/// signed by `ca`.
pub const KUBECONFIGS: [&str; 5] = [
    "admin.conf",
    "super-admin.conf",
    "controller-manager.conf",
    "scheduler.conf",
    "kubelet.conf",
];

/// How long before notAfter a re-dated certificate becomes valid (at most):
/// it looks issued a year before it expired, as a real one would.
const LIFETIME_SECS: i64 = 365 * 24 * 3600;

#[derive(Debug, thiserror::Error)]
pub enum RedateError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("openssl {what} failed for {leaf}: {stderr}")]
    Openssl {
        what: &'static str,
        leaf: String,
        stderr: String,
    },
    #[error("{}: no {field} to re-date (is it a kubeadm kubeconfig?)", path.display())]
    Kubeconfig { path: PathBuf, field: &'static str },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> RedateError + '_ {
    move |source| RedateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Re-sign every leaf of the master whose kubeadm directory is `kube_dir`
/// (`/etc/kubernetes` there) so that it expires `expiry_secs` from now
/// (negative: already expired), with the CAs in `cas` (a directory laid out
/// like `pki/`: the lab's copy, since a master's own `ca.key` may have been
/// removed to play an external CA).
pub fn redate_master(kube_dir: &Path, cas: &Path, expiry_secs: i64) -> Result<(), RedateError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let not_after = now + expiry_secs;
    let dates = (asn1_time(not_after - LIFETIME_SECS), asn1_time(not_after));
    let pki = kube_dir.join("pki");
    let mut jobs: Vec<Job> = PKI_LEAVES
        .iter()
        .map(|(leaf, ca)| Job::Pair {
            crt: pki.join(format!("{leaf}.crt")),
            key: pki.join(format!("{leaf}.key")),
            ca: cas.join(ca),
        })
        .collect();
    jobs.extend(KUBECONFIGS.iter().map(|c| Job::Kubeconfig {
        path: kube_dir.join(c),
        ca: cas.join("ca"),
    }));
    let results: Vec<Result<(), RedateError>> = std::thread::scope(|s| {
        let handles: Vec<_> = jobs.iter().map(|job| s.spawn(|| job.run(&dates))).collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(Ok(())))
            .collect()
    });
    results.into_iter().collect()
}

enum Job {
    Pair {
        crt: PathBuf,
        key: PathBuf,
        ca: PathBuf,
    },
    Kubeconfig {
        path: PathBuf,
        ca: PathBuf,
    },
}

impl Job {
    fn run(&self, dates: &(String, String)) -> Result<(), RedateError> {
        let work = tempfile::tempdir().map_err(io_err(Path::new("a scratch directory")))?;
        let w = work.path();
        match self {
            Job::Pair { crt, key, ca } => {
                let signed = sign(w, crt, key, ca, dates)?;
                install(crt, &signed)
            }
            Job::Kubeconfig { path, ca } => {
                let text = fs::read_to_string(path).map_err(io_err(path))?;
                let field = |name: &'static str| {
                    text.lines()
                        .find_map(|l| l.trim().strip_prefix(name))
                        .map(|v| v.trim().to_string())
                        .ok_or(RedateError::Kubeconfig {
                            path: path.clone(),
                            field: name,
                        })
                };
                let cert_b64 = field("client-certificate-data:")?;
                let key_b64 = field("client-key-data:")?;
                let (crt, key) = (w.join("client.crt"), w.join("client.key"));
                for (file, b64) in [(&crt, &cert_b64), (&key, &key_b64)] {
                    let pem = decode(w, b64)?;
                    fs::write(file, pem).map_err(io_err(file))?;
                }
                let signed = sign(w, &crt, &key, ca, dates)?;
                let new_b64 = encode(&signed);
                let replaced = text.replacen(&cert_b64, &new_b64, 1);
                install(path, replaced.as_bytes())
            }
        }
    }
}

/// Sign `crt`'s key, subject and extensions again with `ca` (`<ca>.crt`,
/// `<ca>.key`) for `dates`; the new PEM.
fn sign(
    w: &Path,
    crt: &Path,
    key: &Path,
    ca: &Path,
    dates: &(String, String),
) -> Result<Vec<u8>, RedateError> {
    let leaf = crt.display().to_string();
    let req = w.join("req.pem");
    openssl(
        Command::new("openssl")
            .args(["x509", "-x509toreq", "-copy_extensions", "copyall", "-in"])
            .arg(crt)
            .arg("-signkey")
            .arg(key)
            .arg("-out")
            .arg(&req),
        "x509 -x509toreq",
        &leaf,
    )?;
    fs::write(w.join("index.txt"), "").map_err(io_err(w))?;
    fs::write(w.join("ca.cnf"), CA_CONFIG).map_err(io_err(w))?;
    let out = w.join("new.crt");
    openssl(
        Command::new("openssl")
            .current_dir(w)
            .args([
                "ca",
                "-batch",
                "-notext",
                "-preserveDN",
                "-config",
                "ca.cnf",
            ])
            .arg("-cert")
            .arg(ca.with_extension("crt"))
            .arg("-keyfile")
            .arg(ca.with_extension("key"))
            .args(["-startdate", &dates.0, "-enddate", &dates.1])
            .arg("-in")
            .arg(&req)
            .arg("-out")
            .arg(&out),
        "ca",
        &leaf,
    )?;
    fs::read(&out).map_err(io_err(&out))
}

/// `openssl ca` with a throwaway database: copy every extension of the
/// request (kubeadm's own), keep the subject as it is.
const CA_CONFIG: &str = "[ ca ]\ndefault_ca = lab\n[ lab ]\ndatabase = index.txt\nnew_certs_dir = .\nrand_serial = yes\ndefault_md = sha256\npolicy = any\ncopy_extensions = copyall\nunique_subject = no\nemail_in_dn = no\n[ any ]\ncommonName = optional\n";

fn openssl(cmd: &mut Command, what: &'static str, leaf: &str) -> Result<(), RedateError> {
    let out = cmd.output().map_err(io_err(Path::new("openssl")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(RedateError::Openssl {
            what,
            leaf: leaf.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Replace `path`'s content, keeping its mode, through a rename.
fn install(path: &Path, data: &[u8]) -> Result<(), RedateError> {
    let mode = fs::metadata(path).map_err(io_err(path))?.permissions();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.redate"));
    fs::write(&tmp, data).map_err(io_err(&tmp))?;
    fs::set_permissions(&tmp, mode).map_err(io_err(&tmp))?;
    fs::rename(&tmp, path).map_err(io_err(path))
}

/// Base64 through `openssl base64`, so the lab carries no codec of its own.
fn decode(w: &Path, b64: &str) -> Result<Vec<u8>, RedateError> {
    let input = w.join("in.b64");
    // openssl base64 -d wants lines of at most 64 characters.
    let wrapped: String = b64
        .as_bytes()
        .chunks(64)
        .map(|c| format!("{}\n", String::from_utf8_lossy(c)))
        .collect();
    fs::write(&input, wrapped).map_err(io_err(&input))?;
    let out = Command::new("openssl")
        .args(["base64", "-d", "-in"])
        .arg(&input)
        .output()
        .map_err(io_err(Path::new("openssl")))?;
    if out.status.success() && !out.stdout.is_empty() {
        Ok(out.stdout)
    } else {
        Err(RedateError::Openssl {
            what: "base64 -d",
            leaf: input.display().to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Standard base64 on one line, as kubeconfigs embed data.
fn encode(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `YYYYMMDDHHMMSSZ` (what `openssl ca -startdate/-enddate` take), UTC.
fn asn1_time(unix: i64) -> String {
    let t = crate::civil::Utc::from_unix(unix);
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_base64_are_what_openssl_expects() {
        assert_eq!(asn1_time(0), "19700101000000Z");
        assert_eq!(asn1_time(1_700_000_000), "20231114221320Z");
        assert_eq!(encode(b""), "");
        assert_eq!(encode(b"f"), "Zg==");
        assert_eq!(encode(b"fo"), "Zm8=");
        assert_eq!(encode(b"foobar"), "Zm9vYmFy");
        let w = tempfile::tempdir().unwrap();
        assert_eq!(
            decode(w.path(), &encode(&[0u8, 255, 1, 2, 3])).unwrap(),
            [0u8, 255, 1, 2, 3]
        );
    }
}
