//! `remedy lab break`: incidents to rehearse on, injected into a lab that is up.

use crate::binaries::Binaries;
use crate::lab::{io, LabError, LabState};
use crate::redate;
use std::fs;
use std::io::{Read, Write};
use std::path::Path;

/// Faults `remedy lab break` can inject: name, a one-line summary (at most
/// 70 characters, for `--help`), and what it does.
pub const FAULTS: &[(&str, &str, &str)] = &[
    ("cert-expired", "leaf and kubeconfig client certificates expired an hour ago", "re-sign the host's leaf certificates (and kubeconfigs' client certificates) as expired an hour ago; the real API server reloads its serving certificate from disk, the other uses of them need a restart"),
    ("etcd-member-down", "a flag etcd rejects in the etcd manifest: the member crash-loops", "put a flag etcd rejects into the host's etcd manifest: the member crash-loops until the manifest is fixed"),
    ("lb-backend-down", "the host's server in HAProxy's backend put into maintenance", "put the host's server in HAProxy's backend into maintenance"),
    ("etcd-nospace", "etcd full (NOSPACE alarm); needs a lab up with a small --etcd-quota", "write the same few keys over and over until etcd refuses writes with NOSPACE, as when compaction stopped (the lab must be up with a small --etcd-quota, e.g. 16MiB)"),
    ("webhook-deadlock", "a fail-closed webhook without endpoints blocks every write", "a ValidatingWebhookConfiguration `lab-deadlock` with failurePolicy Fail on every CREATE/UPDATE (*/*, outside kube-system and kube-node-lease) whose service lab-webhook/lab-webhook has no endpoints: creating a ConfigMap fails with the API server's \"failed calling webhook\" error (not per host)"),
    ("manifest-stranded", "kube-scheduler.yaml left in the staging dir, as after a cut restart", "move kube-scheduler.yaml out of the manifests directory into /var/lib/remedy/staging, as a restart interrupted half-way would"),
    ("apiserver-bad-flag", "a flag kube-apiserver rejects: it crash-loops with `unknown flag`", "put a flag kube-apiserver rejects (--lab-bogus-flag=1) into the host's API server manifest: it crash-loops with `unknown flag`"),
    ("apiserver-bad-cert-path", "--tls-cert-file points at a missing file: the API server crash-loops", "point the host's API server manifest's --tls-cert-file at a file that does not exist: it crash-loops"),
    ("apiserver-overload", "tiny inflight limits and a LIST flood: other clients get 429s", "every master's API server restarted with --max-requests-inflight=2 --max-mutating-requests-inflight=1 and APF off, and a load generator (at most 10 min, stopped by `lab down`) LISTing every ConfigMap as the service account remedy-lab-load/noisy, 20 in parallel per replica of the Deployment remedy-lab-load/noisy: the service account remedy-lab-load/bystander gets HTTP 429s (measured before it returns; not per host)"),
    ("etcd-quorum-lost", "a majority of etcd members lose their data (needs a snapshot first)", "destroy the data of a majority of etcd members (the host and the masters before it): their data dirs' contents are moved into <lab>/destroyed, a file etcd cannot use is left in their place, and the members crash-loop; refused unless an etcd snapshot is in <lab>/snapshots"),
];

/// The flag `apiserver-bad-flag` adds: kube-apiserver refuses to start with it.
pub const BOGUS_APISERVER_FLAG: &str = "--lab-bogus-flag=1";

/// Where `apiserver-bad-cert-path` points `--tls-cert-file`: nothing is ever there.
pub const MISSING_CERT_PATH: &str = "/etc/kubernetes/pki/lab-missing/apiserver.crt";

/// The lab's own place for etcd snapshots: `etcd-quorum-lost` wants one there
/// (so the lost data can be restored), e.g. `remedy run etcd-snapshot -i
/// <lab>/inventory.yaml -p dir=<lab>/snapshots`.
pub fn snapshots_dir(lab: &Path) -> std::path::PathBuf {
    lab.join("snapshots")
}

/// Where `etcd-quorum-lost` moves the members' data: inside the lab, so
/// nothing outside it is touched, and never deleted (what a restore keeps).
pub fn destroyed_dir(lab: &Path) -> std::path::PathBuf {
    lab.join("destroyed")
}

pub(crate) fn fault_names() -> String {
    FAULTS
        .iter()
        .map(|(n, _, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Send one command to HAProxy's admin socket; its reply.
pub fn haproxy_command(socket: &Path, command: &str) -> Result<String, LabError> {
    let mut s = std::os::unix::net::UnixStream::connect(socket).map_err(io(format!(
        "connect to HAProxy's admin socket {}",
        socket.display()
    )))?;
    s.write_all(format!("{command}\n").as_bytes())
        .map_err(io("write to HAProxy"))?;
    let mut reply = String::new();
    s.read_to_string(&mut reply)
        .map_err(io("read from HAProxy"))?;
    Ok(reply)
}

/// Inject `fault` on `host` (a master name; default: the last master).
pub fn break_lab(dir: &Path, fault: &str, host: Option<&str>) -> Result<String, LabError> {
    let state = LabState::load(dir)?;
    let layout = state.layout();
    if !FAULTS.iter().any(|(n, _, _)| *n == fault) {
        return Err(LabError::UnknownFault(fault.to_string()));
    }
    let names = layout.master_names();
    let host = host
        .map(str::to_string)
        .unwrap_or_else(|| names.last().cloned().unwrap_or_default());
    let Some(index) = names.iter().position(|n| *n == host) else {
        return Err(LabError::UnknownHost {
            name: host,
            known: names.join(", "),
        });
    };
    let kube = layout.kube_dir(&host);
    match fault {
        "cert-expired" => {
            redate::redate_master(&kube, &layout.cas_dir(), -3600)?;
            Ok(format!("{host}: every leaf certificate and kubeconfig client certificate now expired an hour ago (the API server reloads its serving certificate from disk within seconds; etcd and the components' client certificates change at their next connection or start)"))
        }
        "etcd-member-down" => {
            let path = kube.join("manifests/etcd.yaml");
            let text = fs::read_to_string(&path).map_err(io(format!("read {}", path.display())))?;
            if text.contains("--lab-fault=") {
                return Ok(format!("{host}: etcd is already broken"));
            }
            let broken = text.replacen(
                "    - etcd\n",
                "    - etcd\n    - --lab-fault=member-down\n",
                1,
            );
            fs::write(&path, broken).map_err(io(format!("write {}", path.display())))?;
            Ok(format!("{host}: etcd's manifest now has a flag etcd rejects (--lab-fault=member-down); the member crash-loops until it is removed"))
        }
        "lb-backend-down" => {
            for i in 1..=layout.lbs {
                let reply = haproxy_command(
                    &layout.lb_socket(i),
                    &format!("set server kube-apiserver/{host} state maint"),
                )?;
                if !reply.trim().is_empty() {
                    return Err(LabError::Fault(format!("HAProxy said: {}", reply.trim())));
                }
            }
            Ok(format!(
                "{host}: in maintenance in HAProxy's backend kube-apiserver on {}",
                layout.lb_names().join(", ")
            ))
        }
        "etcd-nospace" => {
            let Some(quota) = state.etcd_quota_bytes else {
                return Err(LabError::Fault(
                    "etcd runs with its default 2 GiB quota here; start the lab with a small one (`remedy lab up --etcd-quota 16MiB`) to rehearse NOSPACE".into(),
                ));
            };
            let etcdctl = Binaries::verified()?
                .path("etcdctl")
                .ok_or_else(|| LabError::Fault("no etcdctl in the lab's binaries".into()))?;
            let pki = kube.join("pki");
            let endpoint = format!("https://{}:2379", layout.master_addr(index + 1));
            // 512 KiB values until etcd says the space is exceeded.
            let value = "x".repeat(512 * 1024);
            let limit = quota / (512 * 1024) * 4 + 64;
            for i in 0..limit {
                let mut child =
                    crate::process::without_proxy(&mut std::process::Command::new(&etcdctl))
                        .arg("--endpoints")
                        .arg(&endpoint)
                        .arg("--cacert")
                        .arg(pki.join("etcd/ca.crt"))
                        .arg("--cert")
                        .arg(pki.join("etcd/healthcheck-client.crt"))
                        .arg("--key")
                        .arg(pki.join("etcd/healthcheck-client.key"))
                        .arg("put")
                        // A few keys written over and over: history fills the
                        // quota, as when compaction stopped (what
                        // etcd-nospace-recover's compaction gives back).
                        .arg(format!("/lab/nospace/{}", i % 4))
                        .stdin(std::process::Stdio::piped())
                        .stdout(std::process::Stdio::null())
                        .stderr(std::process::Stdio::piped())
                        .spawn()
                        .map_err(io("run etcdctl".to_string()))?;
                if let Some(mut stdin) = child.stdin.take() {
                    use std::io::Write as _;
                    let _ = stdin.write_all(value.as_bytes());
                }
                let out = child
                    .wait_with_output()
                    .map_err(io("run etcdctl".to_string()))?;
                let err = String::from_utf8_lossy(&out.stderr);
                if err.contains("database space exceeded") {
                    return Ok(format!("{host}: etcd is full after {i} writes of 512 KiB: writes now fail with NOSPACE and the alarm is raised"));
                }
                if !out.status.success() {
                    return Err(LabError::Fault(format!(
                        "etcdctl put failed: {}",
                        err.trim()
                    )));
                }
            }
            Err(LabError::Fault(format!("etcd still accepts writes after {limit} writes of 512 KiB; is the quota {quota} bytes in force?")))
        }
        "webhook-deadlock" => webhook_deadlock(dir),
        "apiserver-overload" => crate::overload::apiserver_overload(dir, &layout),
        "manifest-stranded" => {
            let from = kube.join("manifests/kube-scheduler.yaml");
            let staging = layout.host_dir(&host).join("var-lib-remedy/staging");
            fs::create_dir_all(&staging).map_err(io("create the staging directory"))?;
            fs::rename(&from, staging.join("kube-scheduler.yaml"))
                .map_err(io(format!("move {}", from.display())))?;
            Ok(format!("{host}: kube-scheduler.yaml moved to /var/lib/remedy/staging (the scheduler stops within seconds)"))
        }
        "apiserver-bad-flag" => {
            let path = kube.join("manifests/kube-apiserver.yaml");
            edit_manifest(&path, &host, |text| {
                if text.contains(BOGUS_APISERVER_FLAG) {
                    return None;
                }
                Some(text.replacen(
                    "    - kube-apiserver\n",
                    &format!("    - kube-apiserver\n    - {BOGUS_APISERVER_FLAG}\n"),
                    1,
                ))
            })?;
            Ok(format!("{host}: kube-apiserver's manifest now has a flag it rejects ({BOGUS_APISERVER_FLAG}); the API server crash-loops with `unknown flag` until it is removed"))
        }
        "apiserver-bad-cert-path" => {
            let path = kube.join("manifests/kube-apiserver.yaml");
            edit_manifest(&path, &host, |text| {
                if text.contains(MISSING_CERT_PATH) {
                    return None;
                }
                let re = regex::Regex::new(r"(?m)^(\s*- --tls-cert-file=)\S+$").ok()?;
                re.is_match(text).then(|| {
                    re.replacen(text, 1, format!("${{1}}{MISSING_CERT_PATH}"))
                        .into_owned()
                })
            })?;
            Ok(format!("{host}: kube-apiserver's --tls-cert-file now names {MISSING_CERT_PATH}, which does not exist; the API server crash-loops until it is fixed"))
        }
        "etcd-quorum-lost" => quorum_lost(&layout, index),
        _ => Err(LabError::UnknownFault(fault.to_string())),
    }
}

/// The webhook's namespace and service, and the configuration's name.
pub const WEBHOOK_NAMESPACE: &str = "lab-webhook";
pub const WEBHOOK_CONFIG: &str = "lab-deadlock";

/// A service with no endpoints behind a Fail webhook on every CREATE and
/// UPDATE. kube-system and kube-node-lease are left out, so the lab's own
/// control plane (leader-election leases) keeps running, as many real
/// webhooks (Kyverno, Gatekeeper) are configured; everything else is blocked.
fn webhook_deadlock_yaml() -> String {
    format!(
        r#"apiVersion: v1
kind: Namespace
metadata:
  name: {ns}
---
apiVersion: v1
kind: Service
metadata:
  name: lab-webhook
  namespace: {ns}
spec:
  selector:
    app: lab-webhook-backend-that-does-not-exist
  ports:
  - port: 443
    targetPort: 8443
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: {cfg}
  labels:
    remedy-lab/fault: webhook-deadlock
webhooks:
- name: validate.lab-webhook.remedy.invalid
  admissionReviewVersions: ["v1"]
  sideEffects: None
  failurePolicy: Fail
  timeoutSeconds: 5
  clientConfig:
    service:
      namespace: {ns}
      name: lab-webhook
      path: /validate
      port: 443
  namespaceSelector:
    matchExpressions:
    - key: kubernetes.io/metadata.name
      operator: NotIn
      values: ["kube-system", "kube-node-lease"]
  rules:
  - apiGroups: ["*"]
    apiVersions: ["*"]
    operations: ["CREATE", "UPDATE"]
    resources: ["*/*"]
    scope: "*"
"#,
        ns = WEBHOOK_NAMESPACE,
        cfg = WEBHOOK_CONFIG
    )
}

/// Create the deadlock, then wait until every API server refuses a
/// (dry-run) ConfigMap create with "failed calling webhook".
fn webhook_deadlock(dir: &Path) -> Result<String, LabError> {
    let kubectl = Binaries::verified()?
        .path("kubectl")
        .ok_or_else(|| LabError::Fault("no kubectl in the lab's binaries".into()))?;
    let admin = dir.join("admin.conf");
    crate::kubeadm::kubectl_run(
        &kubectl,
        &admin,
        &["apply", "-f", "-"],
        Some(&webhook_deadlock_yaml()),
    )?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    // Through the VIP: several answers in a row, so each API server has
    // loaded the configuration.
    let mut refused_in_a_row = 0;
    let mut last = String::new();
    while std::time::Instant::now() < deadline {
        match crate::kubeadm::kubectl_run(
            &kubectl,
            &admin,
            &[
                "create",
                "configmap",
                "lab-webhook-check",
                "-n",
                "default",
                "--dry-run=server",
            ],
            None,
        ) {
            Err(e) if e.to_string().contains("failed calling webhook") => {
                refused_in_a_row += 1;
                if refused_in_a_row == 6 {
                    return Ok(format!("validating webhook {WEBHOOK_CONFIG} (failurePolicy Fail, service {WEBHOOK_NAMESPACE}/lab-webhook with no endpoints) now refuses every CREATE and UPDATE outside kube-system: {}", e.to_string().lines().last().unwrap_or_default()));
                }
            }
            other => {
                refused_in_a_row = 0;
                last = match other {
                    Ok(()) => "a ConfigMap create still went through".into(),
                    Err(e) => e.to_string(),
                };
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    Err(LabError::Fault(format!(
        "the webhook {WEBHOOK_CONFIG} was created, but writes were not refused within 60 s: {last}"
    )))
}
/// Rewrite a manifest with `edit`; `None` from it means already broken.
fn edit_manifest(
    path: &Path,
    host: &str,
    edit: impl FnOnce(&str) -> Option<String>,
) -> Result<(), LabError> {
    let text = fs::read_to_string(path).map_err(io(format!("read {}", path.display())))?;
    match edit(&text) {
        Some(broken) if broken != text => {
            fs::write(path, broken).map_err(io(format!("write {}", path.display())))
        }
        _ => Err(LabError::Fault(format!(
            "{host}: {} is already broken (or not as kubeadm wrote it); `remedy lab down` and up for a fresh lab",
            path.display()
        ))),
    }
}

/// A snapshot `etcdutl snapshot status` accepts in the lab's snapshots dir.
fn usable_snapshot(lab: &Path) -> Result<std::path::PathBuf, LabError> {
    let dir = snapshots_dir(lab);
    let mut found: Vec<_> = fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "db"))
        .collect();
    found.sort();
    let etcdutl = Binaries::verified()?
        .path("etcdutl")
        .ok_or_else(|| LabError::Fault("no etcdutl in the lab's binaries".into()))?;
    for snapshot in found.iter().rev() {
        let ok = std::process::Command::new(&etcdutl)
            .args(["snapshot", "status"])
            .arg(snapshot)
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return Ok(snapshot.clone());
        }
    }
    Err(LabError::Fault(format!(
        "no etcd snapshot in {dir} ({n} *.db file(s), none that `etcdutl snapshot status` reads): without one the data would be lost for good. Take one first: `remedy run etcd-snapshot -i {inv} -p dir={dir}` (or `{lab}/bin/etcdctl snapshot save {dir}/etcd.db` with a master's etcd client certificate)",
        dir = dir.display(),
        n = found.len(),
        inv = lab.join("inventory.yaml").display(),
        lab = lab.display(),
    )))
}

/// What `etcd-quorum-lost` leaves where a destroyed member's `member`
/// directory was: a file, so etcd cannot start there.
pub const DESTROYED_MARKER: &str =
    "destroyed by `remedy lab break etcd-quorum-lost`; the data is in the lab's destroyed/ directory\n";

/// Destroy a majority of the members' data: the named master's and those
/// before it (cyclically). Each member is frozen (SIGSTOP) while its data
/// dir's contents move to `<lab>/destroyed/<host>-<time>/` and a file takes
/// the place of its `member` directory, then killed: the kubelet starts it
/// again and etcd fails on the unusable data dir, so quorum stays lost until
/// a restore.
fn quorum_lost(layout: &crate::layout::Layout, index: usize) -> Result<String, LabError> {
    let snapshot = usable_snapshot(&layout.dir)?;
    let names = layout.master_names();
    let majority = names.len() / 2 + 1;
    let victims: Vec<&String> = (0..majority)
        .map(|k| &names[(index + names.len() - k) % names.len()])
        .collect();
    let stamp = crate::container::unix_now() as u64;
    let mut moved = Vec::new();
    for host in &victims {
        let data = layout.host_dir(host).join("var-lib-etcd");
        let pods = layout.host_dir(host).join("var-lib-kubelet/pods");
        let etcd_pid = crate::pod_state::load_all(&pods)
            .into_iter()
            .find(|p| p.name.starts_with("etcd"))
            .and_then(|p| p.pid)
            .filter(|pid| {
                fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "etcd")
            });
        if let Some(pid) = etcd_pid {
            crate::container::signal_group(pid, libc::SIGSTOP);
        }
        let to = destroyed_dir(&layout.dir).join(format!("{host}-{stamp}"));
        fs::create_dir_all(&to).map_err(io(format!("create {}", to.display())))?;
        for entry in fs::read_dir(&data)
            .map_err(io(format!("read {}", data.display())))?
            .flatten()
        {
            fs::rename(entry.path(), to.join(entry.file_name()))
                .map_err(io(format!("move {}", entry.path().display())))?;
        }
        // An empty data dir would let the two fresh members bootstrap a
        // new, empty cluster between them (etcd 3.6 does); a lost disk
        // leaves nothing etcd can use.
        let marker = data.join("member");
        fs::write(&marker, DESTROYED_MARKER).map_err(io(format!("write {}", marker.display())))?;
        if let Some(pid) = etcd_pid {
            crate::container::signal_group(pid, libc::SIGKILL);
        }
        moved.push(format!("{host} → {}", to.display()));
    }
    Ok(format!(
        "etcd lost quorum: the data of {} of {} members is gone ({}); they crash-loop on a data dir they cannot use. A snapshot to restore from: {}",
        victims.len(),
        names.len(),
        moved.join(", "),
        snapshot.display()
    ))
}
