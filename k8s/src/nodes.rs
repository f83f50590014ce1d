//! The control plane as the API sees it: the control-plane Nodes (name,
//! InternalIP, Ready) and the etcd members the etcd static pods advertise.
//! What `remedy inventory discover` writes an inventory from, and what
//! `remedy check` can ask when the API answers.

use crate::client::Kube;
use crate::error::KubeError;
use serde_json::Value;

/// The label kubeadm puts on control-plane Nodes.
pub const CONTROL_PLANE_LABEL: &str = "node-role.kubernetes.io/control-plane";

/// One control-plane Node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlPlaneNode {
    pub name: String,
    /// Its `InternalIP` address (`None`: it reports none).
    pub internal_ip: Option<String>,
    /// Its `Ready` condition: `Some(true)` True, `Some(false)` False or
    /// Unknown, `None` not reported.
    pub ready: Option<bool>,
    /// The Ready condition's reason and message, when it is not True.
    pub why_not_ready: Option<String>,
}

/// One Node object as a [`ControlPlaneNode`].
pub fn control_plane_node(node: &Value) -> ControlPlaneNode {
    let internal_ip = node["status"]["addresses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["type"] == "InternalIP")
        .and_then(|a| a["address"].as_str())
        .map(str::to_string);
    let ready = node["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Ready");
    ControlPlaneNode {
        name: node["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        internal_ip,
        ready: ready.map(|c| c["status"] == "True"),
        why_not_ready: ready.filter(|c| c["status"] != "True").map(|c| {
            format!(
                "Ready is {}: {} {}",
                c["status"].as_str().unwrap_or("?"),
                c["reason"].as_str().unwrap_or_default(),
                c["message"].as_str().unwrap_or_default()
            )
            .trim()
            .to_string()
        }),
    }
}

/// The control-plane Nodes, by name.
pub async fn control_plane_nodes(kube: &Kube) -> Result<Vec<ControlPlaneNode>, KubeError> {
    let mut nodes: Vec<ControlPlaneNode> = kube
        .list("v1", "Node", None, Some(CONTROL_PLANE_LABEL))
        .await?
        .iter()
        .map(control_plane_node)
        .collect();
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(nodes)
}

/// An etcd member as its static pod advertises it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdMember {
    /// The Node the pod runs on.
    pub node: String,
    /// `--advertise-client-urls`, as given.
    pub client_urls: Vec<String>,
}

impl EtcdMember {
    /// The host of its first client URL (`https://10.0.0.11:2379` → `10.0.0.11`).
    pub fn address(&self) -> Option<String> {
        let url = self.client_urls.first()?;
        let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
        let hostport = rest.split('/').next().unwrap_or(rest);
        let host = match hostport.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(v6),
            None => hostport
                .rsplit_once(':')
                .map(|(h, _)| h)
                .unwrap_or(hostport),
        };
        Some(host.to_string())
    }
}

/// The etcd static pods' members (kube-system, `component=etcd`): empty
/// when no kubelet reports mirror pods.
pub async fn etcd_members(kube: &Kube) -> Result<Vec<EtcdMember>, KubeError> {
    let pods = kube
        .list("v1", "Pod", Some("kube-system"), Some("component=etcd"))
        .await?;
    let mut members: Vec<EtcdMember> = pods.iter().filter_map(etcd_member).collect();
    members.sort_by(|a, b| a.node.cmp(&b.node));
    Ok(members)
}

fn etcd_member(pod: &Value) -> Option<EtcdMember> {
    let node = pod["spec"]["nodeName"].as_str()?.to_string();
    let container = pod["spec"]["containers"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == "etcd")?;
    let args = container["command"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(container["args"].as_array().into_iter().flatten())
        .filter_map(Value::as_str);
    let client_urls = args
        .filter_map(|a| a.strip_prefix("--advertise-client-urls="))
        .flat_map(|v| v.split(','))
        .map(str::to_string)
        .collect::<Vec<_>>();
    (!client_urls.is_empty()).then_some(EtcdMember { node, client_urls })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nodes_and_etcd_members_are_read_from_their_objects() {
        let node = json!({
            "metadata": {"name": "master-2"},
            "status": {
                "addresses": [{"type": "Hostname", "address": "m2"}, {"type": "InternalIP", "address": "10.0.0.12"}],
                "conditions": [{"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown", "message": "Kubelet stopped posting node status."}]
            }
        });
        let n = control_plane_node(&node);
        assert_eq!(n.internal_ip.as_deref(), Some("10.0.0.12"));
        assert_eq!(n.ready, Some(false));
        assert_eq!(
            n.why_not_ready.as_deref(),
            Some("Ready is Unknown: NodeStatusUnknown Kubelet stopped posting node status.")
        );
        let pod = json!({
            "spec": {"nodeName": "master-1", "containers": [{"name": "etcd", "command": ["etcd", "--name=master-1", "--advertise-client-urls=https://10.0.0.11:2379"]}]}
        });
        let m = etcd_member(&pod).unwrap();
        assert_eq!(m.address().as_deref(), Some("10.0.0.11"));
        let v6 = EtcdMember {
            node: "x".into(),
            client_urls: vec!["https://[fd00::1]:2379".into()],
        };
        assert_eq!(v6.address().as_deref(), Some("fd00::1"));
    }
}
