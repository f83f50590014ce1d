//! `remedy lab break`: incidents to rehearse on, injected into a lab that is up.

use crate::binaries::Binaries;
use crate::lab::{io, LabError, LabState};
use crate::redate;
use std::fs;
use std::io::{Read, Write};
use std::path::Path;

/// Faults `remedy lab break` can inject.
pub const FAULTS: &[(&str, &str)] = &[
    ("cert-expired", "re-sign the host's leaf certificates (and kubeconfigs' client certificates) as expired an hour ago; the real API server reloads its serving certificate from disk, the other uses of them need a restart"),
    ("etcd-member-down", "put a flag etcd rejects into the host's etcd manifest: the member crash-loops until the manifest is fixed"),
    ("lb-backend-down", "put the host's server in HAProxy's backend into maintenance"),
    ("etcd-nospace", "write the same few keys over and over until etcd refuses writes with NOSPACE, as when compaction stopped (the lab must be up with a small --etcd-quota, e.g. 16MiB)"),
    ("webhook-deadlock", "a ValidatingWebhookConfiguration `lab-deadlock` with failurePolicy Fail on every CREATE/UPDATE (*/*, outside kube-system and kube-node-lease) whose service lab-webhook/lab-webhook has no endpoints: creating a ConfigMap fails with the API server's \"failed calling webhook\" error (not per host)"),
    ("manifest-stranded", "move kube-scheduler.yaml out of the manifests directory into /var/lib/remedy/staging, as a restart interrupted half-way would"),
];

pub(crate) fn fault_names() -> String {
    FAULTS
        .iter()
        .map(|(n, _)| *n)
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
    if !FAULTS.iter().any(|(n, _)| *n == fault) {
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
                let mut child = std::process::Command::new(&etcdctl)
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
        "manifest-stranded" => {
            let from = kube.join("manifests/kube-scheduler.yaml");
            let staging = layout.host_dir(&host).join("var-lib-remedy/staging");
            fs::create_dir_all(&staging).map_err(io("create the staging directory"))?;
            fs::rename(&from, staging.join("kube-scheduler.yaml"))
                .map_err(io(format!("move {}", from.display())))?;
            Ok(format!("{host}: kube-scheduler.yaml moved to /var/lib/remedy/staging (the scheduler stops within seconds)"))
        }
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
