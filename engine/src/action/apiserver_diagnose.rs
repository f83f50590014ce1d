//! `apiserver.diagnose`: why this master's API server is not healthy, and
//! what `apiserver-recover` may do about it — read-only, so a dry-run shows
//! the finding and the log line it rests on.
//!
//! In order: a manifest stranded in staging (an interrupted restart); a
//! manifest the kubelet cannot parse; the health endpoint on this node; the
//! certificates it and its etcd use (expired ones are the cause, whatever
//! the log shows); `/readyz?verbose` (a failing `[-]etcd` check); then the
//! last lines of the newest kube-apiserver container's log (`crictl
//! logs`), matched against known patterns ([`classify`]). A bad manifest is
//! put right from the newest backup an earlier run took of it that is good
//! (its copy still has the recorded sha256, parses, differs from the broken
//! file and lacks the flag the log names); with none, only the flag the log
//! names is removed — and only if the manifest has it — or, for a file the
//! log says is missing, the one flag whose value is that path is set back
//! to kubeadm's own path for it, when that file exists ([`KUBEADM_PATHS`]).
//! Everything else
//! (expired certificates, etcd unreachable, an unknown error) is a finding
//! to stop on, never a guess.

use super::static_pod_restart::{healthy, parking, short};
use super::{result, ActionError, Reads, StepCtx};
use crate::backup::{sha256_hex, KnownBackup};
use async_trait::async_trait;
use remedy_manifest::{check_pod, has_flag, health_url, Parking};
use remedy_transport::shell::quote;
use serde::Deserialize;
use serde_json::{json, Value};

const POD: &str = "kube-apiserver";

/// kubeadm's own path for each file flag of the API server (`kubeadm init`
/// with the default certificatesDir): what a flag pointing at a missing file
/// is set back to, when that file is there.
pub const KUBEADM_PATHS: &[(&str, &str)] = &[
    ("--client-ca-file", "/etc/kubernetes/pki/ca.crt"),
    ("--etcd-cafile", "/etc/kubernetes/pki/etcd/ca.crt"),
    (
        "--etcd-certfile",
        "/etc/kubernetes/pki/apiserver-etcd-client.crt",
    ),
    (
        "--etcd-keyfile",
        "/etc/kubernetes/pki/apiserver-etcd-client.key",
    ),
    (
        "--kubelet-client-certificate",
        "/etc/kubernetes/pki/apiserver-kubelet-client.crt",
    ),
    (
        "--kubelet-client-key",
        "/etc/kubernetes/pki/apiserver-kubelet-client.key",
    ),
    (
        "--proxy-client-cert-file",
        "/etc/kubernetes/pki/front-proxy-client.crt",
    ),
    (
        "--proxy-client-key-file",
        "/etc/kubernetes/pki/front-proxy-client.key",
    ),
    (
        "--requestheader-client-ca-file",
        "/etc/kubernetes/pki/front-proxy-ca.crt",
    ),
    ("--service-account-key-file", "/etc/kubernetes/pki/sa.pub"),
    (
        "--service-account-signing-key-file",
        "/etc/kubernetes/pki/sa.key",
    ),
    ("--tls-cert-file", "/etc/kubernetes/pki/apiserver.crt"),
    (
        "--tls-private-key-file",
        "/etc/kubernetes/pki/apiserver.key",
    ),
];

/// The flag of `manifest` whose value is the missing file the log `line`
/// names, and kubeadm's path for that flag (when it has one and it is not
/// that same path).
fn kubeadm_path_for(manifest: &str, line: &str) -> Option<(&'static str, &'static str)> {
    KUBEADM_PATHS.iter().copied().find(|(flag, standard)| {
        remedy_manifest::flag_value(manifest, flag.trim_start_matches('-'))
            .is_some_and(|v| !v.is_empty() && v != *standard && line.contains(&format!("{v}:")))
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiserverDiagnose {
    /// How many log lines to read (default 40).
    lines: Option<u32>,
    /// The health URL, when the manifest's flags do not say (default: from them).
    health: Option<String>,
}

/// What a log line says, by known patterns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogCause {
    /// `unknown flag: --name`: the binary rejects a flag of the manifest.
    UnknownFlag(String),
    CertificateExpired,
    /// A file the manifest names is missing (a certificate path, …).
    FileNotFound,
    EtcdUnreachable,
    AddressInUse,
}

impl LogCause {
    fn name(&self) -> &'static str {
        match self {
            LogCause::UnknownFlag(_) => "bad_flag",
            LogCause::CertificateExpired => "certificate_expired",
            LogCause::FileNotFound => "file_not_found",
            LogCause::EtcdUnreachable => "etcd_unreachable",
            LogCause::AddressInUse => "address_in_use",
        }
    }
}

/// The last line of `log` that matches a known pattern, with its cause.
/// Later lines win: the error the process exited with is printed last.
pub fn classify(log: &str) -> Option<(LogCause, String)> {
    log.lines().rev().find_map(|line| {
        let lower = line.to_ascii_lowercase();
        let cause = if let Some(rest) = line.split("unknown flag: ").nth(1) {
            let flag: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect();
            if flag.trim_start_matches('-').is_empty() {
                return None;
            }
            LogCause::UnknownFlag(flag)
        } else if lower.contains("certificate has expired")
            || lower.contains("certificate is not yet valid")
        {
            LogCause::CertificateExpired
        } else if lower.contains("no such file or directory") {
            LogCause::FileNotFound
        } else if lower.contains("address already in use") {
            LogCause::AddressInUse
        } else if (lower.contains("etcd") || lower.contains(":2379"))
            && [
                "connection refused",
                "context deadline exceeded",
                "authentication handshake failed",
                "error while dialing",
                "no route to host",
            ]
            .iter()
            .any(|p| lower.contains(p))
        {
            LogCause::EtcdUnreachable
        } else {
            return None;
        };
        Some((cause, line.trim().to_string()))
    })
}

/// The finding, as the result's fields.
#[derive(Default)]
struct Finding {
    healthy: bool,
    cause: &'static str,
    /// none | restore | remove_flag | unstrand | cert-renew | stop
    remedy: &'static str,
    line: String,
    flag: String,
    /// With remedy set_flag: `--flag=value`.
    set: String,
    message: String,
    backup: Option<(KnownBackup, String)>,
}

impl ApiserverDiagnose {
    /// The newest backup of `manifest` on this host that would fix it: the
    /// copy is there with its recorded sha256, parses, differs from `broken`
    /// and lacks `flag`. Each rejected one is said why, for the plan.
    async fn good_backup(
        &self,
        ctx: &StepCtx<'_>,
        manifest: &str,
        broken: &[u8],
        flag: Option<&str>,
        notes: &mut Vec<String>,
    ) -> Result<Option<(KnownBackup, String)>, ActionError> {
        for b in ctx.backups_of(manifest) {
            let (Some(loc), Some(sha)) = (&b.record.location, &b.record.sha256) else {
                continue;
            };
            let why = if ctx.transport.stat(loc).await?.is_none() {
                Some("its copy is gone".to_string())
            } else {
                let bytes = ctx.transport.read_file(loc).await?;
                let text = String::from_utf8_lossy(&bytes);
                if sha256_hex(&bytes) != *sha {
                    Some("its copy no longer has the recorded sha256".into())
                } else if bytes.as_slice() == broken {
                    Some("it is the same as the broken manifest".into())
                } else if let Err(e) = check_pod(&text) {
                    Some(format!("it does not parse ({e})"))
                } else if flag.is_some_and(|f| has_flag(&text, f)) {
                    Some(format!("it has {} too", flag.unwrap_or_default()))
                } else {
                    None
                }
            };
            match why {
                None => return Ok(Some((b.clone(), loc.clone()))),
                Some(why) => notes.push(format!("backup {} ({}) skipped: {why}", b.id, loc)),
            }
        }
        Ok(None)
    }

    /// The last lines of the three newest containers' logs, oldest first:
    /// a crash-looping container just started has logged nothing yet, and
    /// [`classify`] prefers the newest matching line. A log crictl cannot
    /// read (its file rotated away) is left out: crictl's own error would
    /// read as the component's ("no such file or directory").
    async fn log(&self, ctx: &StepCtx<'_>) -> Result<String, ActionError> {
        let cmd = format!(
            "command -v crictl >/dev/null 2>&1 || {{ echo 'no crictl on this host'; exit 0; }}; ids=$(crictl ps -a -q --name {} 2>/dev/null | head -n3 | tac); [ -n \"$ids\" ] || {{ echo 'no kube-apiserver container'; exit 0; }}; for id in $ids; do out=$(crictl logs --tail {} \"$id\" 2>&1) && printf '%s\\n' \"$out\"; done",
            quote(&format!("^{POD}$")),
            self.lines.unwrap_or(40).max(1)
        );
        Ok(ctx.transport.probe(&cmd, ctx.command_timeout).await?.stdout)
    }

    /// The certificates the API server and its etcd use that have expired
    /// (its manifest's certificate flags, and etcd's server and peer
    /// certificates in kubeadm's layout), as one line; None when none has.
    async fn expired(
        &self,
        ctx: &StepCtx<'_>,
        manifest: &str,
    ) -> Result<Option<String>, ActionError> {
        let pki = ctx
            .host
            .var("pki_dir")
            .unwrap_or_else(|| "/etc/kubernetes/pki".into());
        let mut paths: Vec<String> = [
            "tls-cert-file",
            "etcd-certfile",
            "kubelet-client-certificate",
            "proxy-client-cert-file",
        ]
        .iter()
        .filter_map(|f| remedy_manifest::flag_value(manifest, f))
        .collect();
        paths.extend(["etcd/server.crt", "etcd/peer.crt"].map(|f| format!("{pki}/{f}")));
        let now = ctx
            .clock
            .now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let mut expired = Vec::new();
        for path in paths {
            if ctx.transport.stat(&path).await?.is_none() {
                continue;
            }
            let pem = ctx.transport.read_file(&path).await?;
            if let Ok(info) = remedy_pki::parse_cert_pem(&pem) {
                if info.not_after <= now {
                    let days = (now - info.not_after) / 86_400;
                    expired.push(format!("{path} expired {days} day(s) ago"));
                }
            }
        }
        Ok((!expired.is_empty()).then(|| expired.join(", ")))
    }

    /// `/readyz?verbose` of a readyz URL (its failing checks), else nothing.
    async fn readyz_verbose(&self, ctx: &StepCtx<'_>, url: &str) -> Result<String, ActionError> {
        if !url.ends_with("/readyz") {
            return Ok(String::new());
        }
        let cmd = format!(
            "curl -sk --max-time 5 -- {} || true",
            quote(&format!("{url}?verbose"))
        );
        Ok(ctx.transport.probe(&cmd, ctx.command_timeout).await?.stdout)
    }

    async fn diagnose(&self, ctx: &StepCtx<'_>) -> Result<(Finding, Parking), ActionError> {
        let parking = parking(ctx.host)?;
        let t = ctx.transport;
        let (manifest, staging) = (parking.manifest(POD), parking.staging(POD));
        let host = &ctx.host.name;
        let stranded = parking.stranded(
            POD,
            t.stat(&manifest).await?.is_some(),
            t.stat(&staging).await?.is_some(),
            host,
        )?;
        if stranded {
            return Ok((
                Finding {
                    cause: "stranded_manifest",
                    remedy: "unstrand",
                    message: format!("{manifest} is missing and {staging} is there (an interrupted restart): move it back"),
                    ..Finding::default()
                },
                parking,
            ));
        }
        let broken = t.read_file(&manifest).await?;
        let text = String::from_utf8_lossy(&broken).into_owned();
        let mut notes = Vec::new();
        let (cause, line, flag) = if let Err(e) = check_pod(&text) {
            ("unparseable_manifest", format!("{manifest}: {e}"), None)
        } else {
            let url = health_url(POD, &text, self.health.as_deref());
            if let Some(url) = &url {
                if healthy(t, url).await? {
                    return Ok((
                        Finding {
                            healthy: true,
                            cause: "healthy",
                            remedy: "none",
                            message: format!("{url} answers 200"),
                            ..Finding::default()
                        },
                        parking,
                    ));
                }
            }
            // Expired certificates show in the log only as their symptom
            // (etcd unreachable: its peers refuse each other); the files say
            // it for certain.
            if let Some(line) = self.expired(ctx, &text).await? {
                return Ok((
                    Finding {
                        cause: "certificate_expired",
                        remedy: "cert-renew",
                        message: format!("certificates expired: {line}; renew them with `remedy run cert-renew -l {host}` (this runbook does not)"),
                        line,
                        ..Finding::default()
                    },
                    parking,
                ));
            }
            // A running API server names a failing etcd in its own
            // readiness report, more surely than in its log.
            let readyz = match &url {
                Some(u) => self.readyz_verbose(ctx, u).await?,
                None => String::new(),
            };
            let log = self.log(ctx).await?;
            let etcd_failing = readyz
                .lines()
                .find(|l| l.starts_with("[-]etcd "))
                .map(|l| (LogCause::EtcdUnreachable, format!("readyz: {}", l.trim())));
            // Expired certificates also fail the etcd check: the log's
            // certificate error is the cause, the etcd check its symptom.
            let from_log = classify(&log);
            let found = match from_log {
                Some((LogCause::CertificateExpired, _)) => from_log,
                _ => etcd_failing.or(from_log),
            };
            match found {
                Some((c, line)) => {
                    let flag = match &c {
                        LogCause::UnknownFlag(f) => Some(f.clone()),
                        _ => None,
                    };
                    (c.name(), line, flag)
                }
                None => (
                    "unknown",
                    super::tail(&log).lines().last().unwrap_or("").to_string(),
                    None,
                ),
            }
        };
        let quoted = format!("\"{line}\"");
        let mut f = Finding {
            cause,
            line: line.clone(),
            flag: flag.clone().unwrap_or_default(),
            ..Finding::default()
        };
        match cause {
            "certificate_expired" => {
                f.remedy = "cert-renew";
                f.message = format!("certificates expired: the log says {quoted}; renew them with `remedy run cert-renew -l {host}` (this runbook does not)");
                return Ok((f, parking));
            }
            "etcd_unreachable" => {
                f.remedy = "stop";
                f.message = format!("the API server cannot reach etcd: the log says {quoted}; restarting it into a dead etcd helps nothing — check etcd first (`remedy run etcd-snapshot` reads every member's status; `etcd-restore` when quorum is lost)");
                return Ok((f, parking));
            }
            "address_in_use" | "unknown" => {
                f.remedy = "stop";
                f.message = format!("no known cause in the log (last line {quoted}); look at it on the host: crictl logs $(crictl ps -a -q --name kube-apiserver | head -1)");
                if cause == "address_in_use" {
                    f.message = format!("its port is taken: the log says {quoted}; find the other process (ss -ltnp) — nothing in the manifest to fix");
                }
                return Ok((f, parking));
            }
            _ => {}
        }
        if let Some(flag) = &flag {
            if !has_flag(&text, flag) {
                f.remedy = "stop";
                f.message = format!("the log says {quoted} but {manifest} has no {flag}: the log is older than the manifest? look again in a minute");
                return Ok((f, parking));
            }
        }
        f.backup = self
            .good_backup(ctx, &manifest, &broken, flag.as_deref(), &mut notes)
            .await?;
        let notes = if notes.is_empty() {
            String::new()
        } else {
            format!(" ({})", notes.join("; "))
        };
        if let Some((b, loc)) = &f.backup {
            f.remedy = "restore";
            f.message = format!(
                "the log says {quoted}: restore backup {} of {manifest} (taken by run {} step {}, copy {loc}, sha256 {}){notes}",
                b.id,
                short(&Some(b.run_id.clone())),
                b.step,
                b.record.sha256.as_deref().unwrap_or("")
            );
        } else if let Some((flag, standard)) = (cause == "file_not_found")
            .then(|| kubeadm_path_for(&text, &line))
            .flatten()
        {
            if t.stat(standard).await?.is_some() {
                f.remedy = "set_flag";
                f.flag = flag.to_string();
                f.set = format!("{flag}={standard}");
                f.message = format!(
                    "the log says {quoted}: {flag} names a file that is not there, and no backup of {manifest} fixes it{notes}; set {flag} back to kubeadm's path for it, {standard}, which exists"
                );
            } else {
                f.remedy = "stop";
                f.message = format!(
                    "the log says {quoted}: {flag} names a file that is not there, kubeadm's path for it ({standard}) is not there either, and no good backup of {manifest}{notes}; put the file back or fix the flag by hand (remedy backup list --host {host})"
                );
            }
        } else if let Some(flag) = &flag {
            f.remedy = "remove_flag";
            f.message = format!(
                "the log says {quoted}: no backup of {manifest} without it{notes}; remove {flag}, the flag the log names"
            );
        } else {
            f.remedy = "stop";
            f.message = format!(
                "{}: {quoted}, and no good backup of {manifest}{notes}; fix it by hand (remedy backup list --host {host})",
                if cause == "unparseable_manifest" {
                    "the manifest does not parse"
                } else {
                    "a file the manifest names is missing"
                }
            );
        }
        Ok((f, parking))
    }
}

#[async_trait]
impl Reads for ApiserverDiagnose {
    async fn read(&self, ctx: &StepCtx<'_>) -> Result<(String, Value), ActionError> {
        let (f, parking) = self.diagnose(ctx).await?;
        let (b, loc) = match &f.backup {
            Some((b, loc)) => (Some(b), loc.clone()),
            None => (None, String::new()),
        };
        let fields = json!({
            "healthy": f.healthy,
            "cause": f.cause,
            "remedy": f.remedy,
            "line": f.line,
            "flag": f.flag,
            "set": f.set,
            "finding": f.message,
            "manifest": parking.manifest(POD),
            "staging": parking.staging(POD),
            "backup": loc,
            "backup_id": b.map(|b| b.id),
            "backup_sha256": b.and_then(|b| b.record.sha256.clone()).unwrap_or_default(),
            "backup_mode": b.and_then(|b| b.record.mode).map(|m| format!("{m:04o}")).unwrap_or_default(),
        });
        let summary = if f.healthy {
            format!("kube-apiserver is healthy: {}", f.message)
        } else {
            format!("kube-apiserver is not healthy ({}): {}", f.cause, f.message)
        };
        Ok((summary, result(false, fields)))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_missing_file_maps_to_the_flag_naming_it_and_kubeadms_path() {
        let manifest = "spec:\n  containers:\n  - command:\n    - kube-apiserver\n    - --tls-cert-file=/etc/kubernetes/pki/lab-missing/apiserver.crt\n    - --tls-private-key-file=/etc/kubernetes/pki/apiserver.key\n";
        let line = "E1205 run.go:72] \"command failed\" err=\"open /etc/kubernetes/pki/lab-missing/apiserver.crt: no such file or directory\"";
        assert_eq!(
            kubeadm_path_for(manifest, line),
            Some(("--tls-cert-file", "/etc/kubernetes/pki/apiserver.crt"))
        );
        // A flag already at kubeadm's path is never "set back" to it.
        let standard = "    - --tls-cert-file=/etc/kubernetes/pki/apiserver.crt\n";
        assert_eq!(
            kubeadm_path_for(
                standard,
                "open /etc/kubernetes/pki/apiserver.crt: no such file or directory"
            ),
            None
        );
        // A missing file no flag names: nothing to set.
        assert_eq!(
            kubeadm_path_for(manifest, "open /var/run/other: no such file or directory"),
            None
        );
    }

    use super::*;

    #[test]
    fn classify_names_the_cause_and_quotes_the_last_matching_line() {
        let bad_flag =
            "I1205 starting\nError: unknown flag: --bogus-flag\nUsage:\n  kube-apiserver [flags]\n";
        assert_eq!(
            classify(bad_flag),
            Some((
                LogCause::UnknownFlag("--bogus-flag".into()),
                "Error: unknown flag: --bogus-flag".into()
            ))
        );
        let etcd = "W1205 12:00:00 logging.go:55] [core] grpc: addrConn.createTransport failed to connect to {Addr: \"127.0.0.1:2379\"}. Err: connection error: desc = \"transport: Error while dialing: dial tcp 127.0.0.1:2379: connect: connection refused\"\n";
        assert_eq!(classify(etcd).unwrap().0, LogCause::EtcdUnreachable);
        let cert = "E1205 err=\"tls: failed to verify certificate: x509: certificate has expired or is not yet valid: current time 2027\"";
        assert_eq!(classify(cert).unwrap().0, LogCause::CertificateExpired);
        let missing = "E1205 run.go:72] \"command failed\" err=\"open /etc/kubernetes/pki/nope.crt: no such file or directory\"";
        assert_eq!(classify(missing).unwrap().0, LogCause::FileNotFound);
        assert_eq!(
            classify("failed to listen on 0.0.0.0:6443: listen tcp: bind: address already in use")
                .unwrap()
                .0,
            LogCause::AddressInUse
        );
        assert_eq!(classify("I1205 all is well\n"), None);
        assert_eq!(classify("unknown flag: \n"), None);
    }
}
