//! The part of the kubelet a control plane sees through its API: the master's
//! Node reports `Ready`. The lab's kubelet stand-in posts the Node's Ready
//! condition with a fresh heartbeat every [`HEARTBEAT`] (the real kubelet's
//! `nodeStatusUpdateFrequency` is 10 s), as the node itself would.
//!
//! Where it differs: it says Ready whenever it runs (it has no container
//! runtime, PLEG or network plugin to judge), posts no capacity, images or
//! lease, and reports nothing when it stops. It posts with the lab's
//! `admin.conf`, not the master's `kubelet.conf`: a real kubelet rotates its
//! own client certificate (`/var/lib/kubelet/pki`), the stand-in does not,
//! and the lab's `cert-expired` fault re-dates `kubelet.conf`, which would
//! leave that master's Node Unknown for good after `cert-renew` (it leaves
//! kubelet.conf to the kubelet). As with a real kubelet, when the
//! heartbeats stop the controller-manager's node lifecycle controller marks
//! the Node `Ready=Unknown` after its grace period (about 50 s).

use crate::container::{log, rfc3339, unix_now};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How often the Ready condition is posted once it was accepted.
pub const HEARTBEAT: Duration = Duration::from_secs(10);
/// How soon it is tried again while the API server or the Node is not
/// there yet (the lab creates the Node objects after the API answers).
const RETRY: Duration = Duration::from_secs(2);

/// Where to post the Node's status from.
#[derive(Debug, Clone)]
pub struct NodeStatus {
    /// kubectl on the machine the lab runs on.
    pub kubectl: PathBuf,
    /// The node's own credentials.
    pub kubeconfig: PathBuf,
}

impl NodeStatus {
    /// `node` (a Node object) with its Ready condition True, heartbeat now.
    fn ready(mut node: serde_json::Value, since: &str, now: &str) -> serde_json::Value {
        let ready = serde_json::json!({
            "type": "Ready",
            "status": "True",
            "reason": "KubeletReady",
            "message": "remedy lab: the kubelet stand-in is posting ready status",
            "lastHeartbeatTime": now,
            "lastTransitionTime": since,
        });
        let conditions = &mut node["status"]["conditions"];
        if !conditions.is_array() {
            *conditions = serde_json::json!([]);
        }
        if let Some(list) = conditions.as_array_mut() {
            list.retain(|c| c["type"] != "Ready");
            list.push(ready);
        }
        node
    }

    /// Run kubectl; killed (and reaped) as soon as `stop` is set, so the
    /// stand-in never leaves a kubectl behind when it exits.
    fn kubectl(
        &self,
        args: &[&str],
        stdin: Option<&str>,
        stop: &AtomicBool,
    ) -> Result<Vec<u8>, String> {
        use std::io::{Read, Write};
        let mut child = crate::process::without_proxy(&mut Command::new(&self.kubectl))
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--request-timeout=5s")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.kubectl.display()))?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            let _ = pipe.write_all(text.as_bytes());
        }
        // Read both pipes beside the wait, so a large answer cannot block it.
        let drain = |pipe: Option<Box<dyn Read + Send>>| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                if let Some(mut p) = pipe {
                    let _ = p.read_to_end(&mut buf);
                }
                buf
            })
        };
        let out = drain(
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let err = drain(
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if stopping(stop) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err("stopped".into());
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                Err(e) => return Err(format!("{}: {e}", self.kubectl.display())),
            }
        };
        let (out, err) = (
            out.join().unwrap_or_default(),
            err.join().unwrap_or_default(),
        );
        if status.success() {
            Ok(out)
        } else {
            Err(String::from_utf8_lossy(&err).trim().to_string())
        }
    }

    /// One post: Ok, or what kubectl said. The calls a node's own identity
    /// may make (get its Node, update its status; not get the status
    /// subresource, which `kubectl patch --subresource=status` needs): the
    /// Node is read, its Ready
    /// condition replaced and the status written back (a conflict with the
    /// node controller is tried again at the next retry).
    fn post(&self, node: &str, since: &str, stop: &AtomicBool) -> Result<(), String> {
        let got = self.kubectl(&["get", "node", node, "-o", "json"], None, stop)?;
        let current: serde_json::Value = serde_json::from_slice(&got)
            .map_err(|e| format!("kubectl get node {node}: not JSON: {e}"))?;
        let updated = Self::ready(current, since, &seconds(unix_now())).to_string();
        self.kubectl(
            &[
                "replace",
                "--raw",
                &format!("/api/v1/nodes/{node}/status"),
                "-f",
                "-",
            ],
            Some(&updated),
            stop,
        )
        .map(drop)
    }

    /// Post the Ready condition of `node` until `stop` (or SIGTERM) is set;
    /// each change between accepted and refused is logged once.
    pub fn run(&self, node: &str, stop: &AtomicBool) {
        let since = seconds(unix_now());
        let mut last: Option<Result<(), String>> = None;
        while !stopping(stop) {
            let r = self.post(node, &since, stop);
            if stopping(stop) {
                break;
            }
            let wait = if r.is_ok() { HEARTBEAT } else { RETRY };
            if last.as_ref() != Some(&r) {
                match &r {
                    Ok(()) => log(
                        "kubelet",
                        &format!("node {node}: posting Ready every {}s", HEARTBEAT.as_secs()),
                    ),
                    Err(e) => log(
                        "kubelet",
                        &format!(
                            "node {node}: status not posted (tried again every {}s): {e}",
                            RETRY.as_secs()
                        ),
                    ),
                }
                last = Some(r);
            }
            let wake = Instant::now() + wait;
            while Instant::now() < wake && !stopping(stop) {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// `stop` set, or the stand-in told to terminate.
fn stopping(stop: &AtomicBool) -> bool {
    stop.load(Ordering::SeqCst) || crate::container::TERMINATED.load(Ordering::SeqCst)
}

/// RFC 3339 to the second, as the API's metav1.Time is written.
fn seconds(unix: f64) -> String {
    let ms = rfc3339(unix.floor());
    // "2026-12-05T17:20:00.000Z" → "2026-12-05T17:20:00Z"
    match ms.rfind('.') {
        Some(dot) => format!("{}Z", &ms[..dot]),
        None => ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_replaces_only_the_ready_condition_with_metav1_times() {
        let t = seconds(951_782_400.7);
        assert_eq!(t, "2000-02-29T00:00:00Z");
        let node = serde_json::json!({"metadata": {"name": "m"}, "status": {
            "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}],
            "conditions": [
                {"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown"},
                {"type": "MemoryPressure", "status": "False"}]}});
        let n = NodeStatus::ready(node, "2000-01-01T00:00:00Z", &t);
        let conditions = n["status"]["conditions"].as_array().unwrap();
        assert_eq!(conditions.len(), 2);
        let ready: Vec<_> = conditions.iter().filter(|c| c["type"] == "Ready").collect();
        assert_eq!(
            (ready.len(), &ready[0]["status"]),
            (1, &serde_json::json!("True"))
        );
        assert_eq!(ready[0]["lastHeartbeatTime"], t);
        assert_eq!(n["status"]["addresses"][0]["address"], "10.0.0.1");
        let bare = NodeStatus::ready(serde_json::json!({}), &t, &t);
        assert_eq!(bare["status"]["conditions"][0]["type"], "Ready");
    }
}
