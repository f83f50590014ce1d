//! `remedy lab break apiserver-overload`: every master's API server gets
//! tiny inflight limits, and a bounded load generator floods it with LIST
//! requests as the service account `remedy-lab-load/noisy`, so another
//! ordinary client (the service account `remedy-lab-load/bystander`) gets
//! real HTTP 429s.
//!
//! API Priority and Fairness is turned off with the limits, because with it
//! on one service account's flood is one flow: fair queuing serves every
//! other flow ahead of it, and the flood alone gets the 429s. Measured on
//! the lab (limits 2 + 1, 40 or 300 LISTs in parallel for 20 s): the
//! bystander got 0 429s of 175 and of 105 requests (APF on) against 36% of
//! its requests answered 429 with APF off. With APF off the limits are the
//! plain max-in-flight filter: every request beyond them is refused at once,
//! except from system:masters (admin.conf, the lab's own kubectl).
//!
//! The generator follows the Deployment `remedy-lab-load/noisy` (the lab
//! runs no pods; the Deployment's replicas are what matters): 20 parallel
//! LISTs per replica, none at 0 replicas, so scaling the offender down
//! stops the flood and scaling it back starts it again. It stops by itself
//! after [`LOAD_SECONDS`] and `remedy lab down` stops it earlier.

use crate::binaries::Binaries;
use crate::lab::{io, LabError};
use crate::layout::Layout;
use crate::pod_state::PodRecord;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The flags the fault adds to every API server: tiny limits, APF off.
pub const OVERLOAD_FLAGS: &[&str] = &[
    "--max-requests-inflight=2",
    "--max-mutating-requests-inflight=1",
    "--enable-priority-and-fairness=false",
];

/// The namespace of the offender (Deployment and service account `noisy`)
/// and of the bystander service account.
pub const LOAD_NAMESPACE: &str = "remedy-lab-load";

/// How long the load generator runs at most.
pub const LOAD_SECONDS: u64 = 600;

/// The load generator's name in `<lab>/pids` (what `lab down` stops).
pub const LOAD_PROCESS: &str = "load-noisy";

/// Where the fault keeps its tokens and the generator's script.
pub fn load_dir(lab: &Path) -> PathBuf {
    lab.join("load")
}

fn objects_yaml() -> String {
    format!(
        r#"apiVersion: v1
kind: Namespace
metadata:
  name: {ns}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: noisy
  namespace: {ns}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: bystander
  namespace: {ns}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: remedy-lab-load
rules:
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: remedy-lab-load
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: remedy-lab-load
subjects:
- kind: ServiceAccount
  name: noisy
  namespace: {ns}
- kind: ServiceAccount
  name: bystander
  namespace: {ns}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: noisy
  namespace: {ns}
  labels:
    remedy-lab/fault: apiserver-overload
spec:
  replicas: 2
  selector:
    matchLabels:
      app: noisy
  template:
    metadata:
      labels:
        app: noisy
    spec:
      serviceAccountName: noisy
      containers:
      - name: lister
        image: registry.k8s.io/pause:3.10
"#,
        ns = LOAD_NAMESPACE
    )
}

/// The generator: while the offender has replicas, rounds of 1000 LISTs
/// of every ConfigMap, 20 in parallel per replica (at most 60); its
/// replicas are read again between rounds (a read refused with 429 keeps
/// the last value). `timeout` ends it, and its process group with it.
const GENERATOR: &str = r#"set -u
dir=$1; vip=$2; ns=$3
ca=$dir/../ca/ca.crt; hdr=$dir/noisy.header
deploy=https://$vip:6443/apis/apps/v1/namespaces/$ns/deployments/noisy
replicas() {
  curl -s --max-time 5 --cacert "$ca" -H "@$hdr" "$deploy" | grep -o '"replicas": *[0-9]*' | head -1 | grep -o '[0-9]*$'
}
replicas=$(replicas)
until [ -n "$replicas" ]; do sleep 0.2; replicas=$(replicas); done
while :; do
  seen=$(replicas)
  replicas=${seen:-$replicas}
  if [ "$replicas" -eq 0 ]; then sleep 1; continue; fi
  parallel=$((replicas * 20)); [ $parallel -gt 60 ] && parallel=60
  echo "$(date -u +%T) $replicas replica(s): 1000 LISTs, $parallel in parallel"
  curl -s --parallel --parallel-max $parallel --max-time 20 --cacert "$ca" -H "@$hdr" -o /dev/null "https://$vip:6443/api/v1/configmaps?n=[1-1000]" 2>/dev/null
done
"#;

fn kubectl(lab: &Path, args: &[&str], stdin: Option<&str>) -> Result<String, LabError> {
    let kubectl = Binaries::verified()?
        .path("kubectl")
        .ok_or_else(|| LabError::Fault("no kubectl in the lab's binaries".into()))?;
    let mut child = Command::new(&kubectl)
        .arg("--kubeconfig")
        .arg(lab.join("admin.conf"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io(format!("run {}", kubectl.display())))?;
    if let Some(mut pipe) = child.stdin.take() {
        use std::io::Write as _;
        let _ = pipe.write_all(stdin.unwrap_or_default().as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(io(format!("run {}", kubectl.display())))?;
    if !out.status.success() {
        return Err(LabError::Fault(format!(
            "kubectl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A file only its owner reads (tokens).
fn write_private(path: &Path, text: &str) -> Result<(), LabError> {
    fs::write(path, text).map_err(io(format!("write {}", path.display())))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
        .map_err(io(format!("chmod {}", path.display())))
}

/// Insert the overload flags into one master's API server manifest; the
/// new manifest's text.
fn lower_limits(path: &Path, host: &str) -> Result<String, LabError> {
    let text = fs::read_to_string(path).map_err(io(format!("read {}", path.display())))?;
    if OVERLOAD_FLAGS.iter().all(|f| text.contains(f)) {
        return Ok(text);
    }
    if text.contains("--max-requests-inflight") || text.contains("--enable-priority-and-fairness") {
        return Err(LabError::Fault(format!(
            "{host}: {} already sets the inflight limits or APF (not as kubeadm wrote it); `remedy lab down` and up for a fresh lab",
            path.display()
        )));
    }
    let flags: String = OVERLOAD_FLAGS
        .iter()
        .map(|f| format!("    - {f}\n"))
        .collect();
    let lowered = text.replacen(
        "    - kube-apiserver\n",
        &format!("    - kube-apiserver\n{flags}"),
        1,
    );
    if lowered == text {
        return Err(LabError::Fault(format!(
            "{host}: {} has no `- kube-apiserver` command line to add flags to",
            path.display()
        )));
    }
    fs::write(path, &lowered).map_err(io(format!("write {}", path.display())))?;
    Ok(lowered)
}

/// Until the API server of `host` runs from `manifest` (the kubelet
/// stand-in restarted it) and answers /readyz.
fn wait_restarted(
    lab: &Path,
    layout: &Layout,
    host: &str,
    index: usize,
    manifest: &str,
    deadline: Instant,
) -> Result<(), LabError> {
    let want = crate::container::sha256_hex(manifest.as_bytes());
    let record = layout
        .host_dir(host)
        .join("var-lib-kubelet/pods/kube-apiserver.json");
    let server = format!("--server=https://{}:6443", layout.master_addr(index + 1));
    loop {
        let restarted = fs::read_to_string(&record)
            .ok()
            .and_then(|t| serde_json::from_str::<PodRecord>(&t).ok())
            .is_some_and(|p| p.manifest_sha256 == want && p.state == "running");
        if restarted && kubectl(lab, &[&server, "get", "--raw", "/readyz"], None).is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(LabError::Fault(format!(
                "{host}: the API server did not come back with the lowered limits within 3 min (see `remedy lab status`)"
            )));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// One LIST as the bystander; its HTTP status (0: no answer).
pub fn bystander_list(lab: &Path, vip: &str) -> u16 {
    let dir = load_dir(lab);
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "10",
        ])
        .arg("--cacert")
        .arg(lab.join("ca/ca.crt"))
        .arg("-H")
        .arg(format!("@{}", dir.join("bystander.header").display()))
        .arg(format!(
            "https://{vip}:6443/api/v1/namespaces/{LOAD_NAMESPACE}/configmaps"
        ))
        .stdin(Stdio::null())
        .output();
    out.ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(0)
}

/// Inject the overload on every master; what it did and how to see it.
pub fn apiserver_overload(lab: &Path, layout: &Layout) -> Result<String, LabError> {
    let dir = load_dir(lab);
    fs::create_dir_all(&dir).map_err(io(format!("create {}", dir.display())))?;
    kubectl(lab, &["apply", "-f", "-"], Some(&objects_yaml()))?;
    for sa in ["noisy", "bystander"] {
        let token = kubectl(
            lab,
            &["create", "token", sa, "-n", LOAD_NAMESPACE, "--duration=2h"],
            None,
        )?;
        write_private(
            &dir.join(format!("{sa}.header")),
            &format!("Authorization: Bearer {token}\n"),
        )?;
    }
    let script = dir.join("noisy.sh");
    fs::write(&script, GENERATOR).map_err(io(format!("write {}", script.display())))?;

    let deadline = Instant::now() + Duration::from_secs(180);
    let masters = layout.master_names();
    let mut lowered = Vec::new();
    for host in &masters {
        let path = layout.kube_dir(host).join("manifests/kube-apiserver.yaml");
        lowered.push(lower_limits(&path, host)?);
    }
    for (i, (host, manifest)) in masters.iter().zip(&lowered).enumerate() {
        wait_restarted(lab, layout, host, i, manifest, deadline)?;
    }

    let vip = layout.vip().to_string();
    let running = crate::process::recorded(lab)
        .into_iter()
        .any(|p| p.name == LOAD_PROCESS && p.alive());
    if !running {
        let mut cmd = Command::new("timeout");
        cmd.arg(LOAD_SECONDS.to_string())
            .arg("bash")
            .arg(&script)
            .arg(&dir)
            .arg(&vip)
            .arg(LOAD_NAMESPACE);
        crate::process::spawn(
            lab,
            LOAD_PROCESS,
            cmd,
            &layout.logs().join("load-noisy.log"),
        )
        .map_err(io("start the load generator".to_string()))?;
    }

    // Measured, not assumed: the bystander's LISTs until some are refused.
    let mut codes = std::collections::BTreeMap::<u16, u32>::new();
    let measure_until = Instant::now() + Duration::from_secs(60);
    let (mut sent, mut refused) = (0u32, 0u32);
    while Instant::now() < measure_until && (refused == 0 || sent < 20) {
        let code = bystander_list(lab, &vip);
        *codes.entry(code).or_default() += 1;
        sent += 1;
        refused += u32::from(code == 429);
    }
    if refused == 0 {
        return Err(LabError::Fault(format!(
            "the limits are lowered and the load generator runs ({}), but none of the bystander's {sent} LISTs got a 429 within 60 s (HTTP status: count, 0 for no answer: {codes:?})",
            layout.logs().join("load-noisy.log").display()
        )));
    }
    let header = dir.join("bystander.header");
    Ok(format!(
        "every API server ({}) now runs with {} (APF off, so one client's flood reaches everyone); \
a load generator LISTs every ConfigMap as the service account {LOAD_NAMESPACE}/noisy, 20 in parallel per replica of the Deployment {LOAD_NAMESPACE}/noisy (now 2; scaled to 0 it pauses), \
for at most {} min (or until `remedy lab down`; log {}). \
The bystander service account {LOAD_NAMESPACE}/bystander got {refused} of {sent} LISTs answered 429.\n\
See it: curl -s -o /dev/null -w '%{{http_code}}\\n' --cacert {} -H @{} https://{vip}:6443/api/v1/namespaces/{LOAD_NAMESPACE}/configmaps\n\
   and: kubectl --kubeconfig {} get --raw /metrics | grep 'apiserver_request_terminations_total{{code=\"429\"'",
        masters.join(", "),
        OVERLOAD_FLAGS.join(" "),
        LOAD_SECONDS / 60,
        layout.logs().join("load-noisy.log").display(),
        lab.join("ca/ca.crt").display(),
        header.display(),
        lab.join("admin.conf").display(),
    ))
}
