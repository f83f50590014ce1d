//! kubeadm's static-pod manifests, as a kubeadm v1.33 control-plane node has
//! them, with one change forced by the lab: all masters share the machine's
//! network namespace, so every component listens on its master's own address
//! instead of 127.0.0.1 / 0.0.0.0 (etcd's client URL, the API server's
//! `--bind-address` and `--etcd-servers`, the controller-manager's and
//! scheduler's `--bind-address`).

use crate::layout::{Layout, API_PORT, ETCD_CLIENT_PORT, ETCD_METRICS_PORT, ETCD_PEER_PORT};

/// Options that change what the manifests say.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// etcd `--quota-backend-bytes` (for NOSPACE rehearsals).
    pub etcd_quota_bytes: Option<u64>,
}

/// `(file name, content)` of the four manifests of master `i` (1-based).
pub fn for_master(layout: &Layout, i: usize, opts: &Options) -> Vec<(String, String)> {
    vec![
        ("etcd.yaml".into(), etcd(layout, i, opts)),
        ("kube-apiserver.yaml".into(), apiserver(layout, i)),
        (
            "kube-controller-manager.yaml".into(),
            controller_manager(layout, i),
        ),
        ("kube-scheduler.yaml".into(), scheduler(layout, i)),
    ]
}

fn flags(list: &[String]) -> String {
    list.iter().map(|f| format!("    - {f}\n")).collect()
}

#[allow(clippy::too_many_arguments)] // one argument per manifest section; a struct would only rename them
fn pod(
    name: &str,
    annotations: &str,
    command: &[String],
    image: &str,
    probe: &str,
    resources: &str,
    mounts: &str,
    volumes: &str,
) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n{annotations}  labels:\n    component: {name}\n    tier: control-plane\n  name: {name}\n  namespace: kube-system\nspec:\n  containers:\n  - command:\n{cmd}    image: {image}\n    imagePullPolicy: IfNotPresent\n{probe}    name: {name}\n    resources:\n{resources}    volumeMounts:\n{mounts}  hostNetwork: true\n  priority: 2000001000\n  priorityClassName: system-node-critical\n  securityContext:\n    seccompProfile:\n      type: RuntimeDefault\n  volumes:\n{volumes}status: {{}}\n",
        cmd = flags(command)
    )
}

fn probe(host: &str, port: u16, path: &str, scheme: &str) -> String {
    format!(
        "    livenessProbe:\n      failureThreshold: 8\n      httpGet:\n        host: {host}\n        path: {path}\n        port: {port}\n        scheme: {scheme}\n      initialDelaySeconds: 10\n      periodSeconds: 10\n      timeoutSeconds: 15\n"
    )
}

fn host_path(name: &str, path: &str, kind: &str) -> String {
    format!("  - hostPath:\n      path: {path}\n      type: {kind}\n    name: {name}\n")
}

fn mount(name: &str, path: &str, read_only: bool) -> String {
    format!(
        "    - mountPath: {path}\n      name: {name}\n{}",
        if read_only {
            "      readOnly: true\n"
        } else {
            ""
        }
    )
}

pub fn etcd(layout: &Layout, i: usize, opts: &Options) -> String {
    let addr = layout.master_addr(i);
    let name = format!("master-{i}");
    let cluster: Vec<String> = (1..=layout.masters)
        .map(|j| {
            format!(
                "master-{j}=https://{}:{ETCD_PEER_PORT}",
                layout.master_addr(j)
            )
        })
        .collect();
    let mut cmd = vec![
        "etcd".to_string(),
        format!("--advertise-client-urls=https://{addr}:{ETCD_CLIENT_PORT}"),
        "--cert-file=/etc/kubernetes/pki/etcd/server.crt".into(),
        "--client-cert-auth=true".into(),
        "--data-dir=/var/lib/etcd".into(),
        format!("--initial-advertise-peer-urls=https://{addr}:{ETCD_PEER_PORT}"),
        format!("--initial-cluster={}", cluster.join(",")),
        "--initial-cluster-state=new".into(),
        "--key-file=/etc/kubernetes/pki/etcd/server.key".into(),
        format!("--listen-client-urls=https://{addr}:{ETCD_CLIENT_PORT}"),
        format!("--listen-metrics-urls=http://{addr}:{ETCD_METRICS_PORT}"),
        format!("--listen-peer-urls=https://{addr}:{ETCD_PEER_PORT}"),
        format!("--name={name}"),
        "--peer-cert-file=/etc/kubernetes/pki/etcd/peer.crt".into(),
        "--peer-client-cert-auth=true".into(),
        "--peer-key-file=/etc/kubernetes/pki/etcd/peer.key".into(),
        "--peer-trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt".into(),
        "--snapshot-count=10000".into(),
        "--trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt".into(),
    ];
    if let Some(q) = opts.etcd_quota_bytes {
        cmd.push(format!("--quota-backend-bytes={q}"));
    }
    let annotations = format!("  annotations:\n    kubeadm.kubernetes.io/etcd.advertise-client-urls: https://{addr}:{ETCD_CLIENT_PORT}\n  creationTimestamp: null\n");
    let probe = format!(
        "    livenessProbe:\n      failureThreshold: 8\n      httpGet:\n        host: {addr}\n        path: /livez\n        port: {ETCD_METRICS_PORT}\n        scheme: HTTP\n      initialDelaySeconds: 10\n      periodSeconds: 10\n      timeoutSeconds: 15\n"
    );
    pod(
        "etcd",
        &annotations,
        &cmd,
        "registry.k8s.io/etcd:3.5.21-0",
        &probe,
        "      requests:\n        cpu: 100m\n        memory: 100Mi\n",
        &(mount("etcd-data", "/var/lib/etcd", false)
            + mount("etcd-certs", "/etc/kubernetes/pki/etcd", false).as_str()),
        &(host_path(
            "etcd-certs",
            "/etc/kubernetes/pki/etcd",
            "DirectoryOrCreate",
        ) + host_path("etcd-data", "/var/lib/etcd", "DirectoryOrCreate").as_str()),
    )
}

pub fn apiserver(layout: &Layout, i: usize) -> String {
    let addr = layout.master_addr(i);
    let cmd: Vec<String> = vec![
        "kube-apiserver".into(),
        format!("--advertise-address={addr}"),
        "--allow-privileged=true".into(),
        "--authorization-mode=Node,RBAC".into(),
        format!("--bind-address={addr}"),
        "--client-ca-file=/etc/kubernetes/pki/ca.crt".into(),
        "--enable-admission-plugins=NodeRestriction".into(),
        "--enable-bootstrap-token-auth=true".into(),
        "--etcd-cafile=/etc/kubernetes/pki/etcd/ca.crt".into(),
        "--etcd-certfile=/etc/kubernetes/pki/apiserver-etcd-client.crt".into(),
        "--etcd-keyfile=/etc/kubernetes/pki/apiserver-etcd-client.key".into(),
        format!("--etcd-servers=https://{addr}:{ETCD_CLIENT_PORT}"),
        "--kubelet-client-certificate=/etc/kubernetes/pki/apiserver-kubelet-client.crt".into(),
        "--kubelet-client-key=/etc/kubernetes/pki/apiserver-kubelet-client.key".into(),
        "--proxy-client-cert-file=/etc/kubernetes/pki/front-proxy-client.crt".into(),
        "--proxy-client-key-file=/etc/kubernetes/pki/front-proxy-client.key".into(),
        "--requestheader-client-ca-file=/etc/kubernetes/pki/front-proxy-ca.crt".into(),
        format!("--secure-port={API_PORT}"),
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
        "--service-account-key-file=/etc/kubernetes/pki/sa.pub".into(),
        "--service-account-signing-key-file=/etc/kubernetes/pki/sa.key".into(),
        "--service-cluster-ip-range=10.96.0.0/12".into(),
        "--tls-cert-file=/etc/kubernetes/pki/apiserver.crt".into(),
        "--tls-private-key-file=/etc/kubernetes/pki/apiserver.key".into(),
    ];
    let annotations = format!("  annotations:\n    kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint: {addr}:{API_PORT}\n  creationTimestamp: null\n");
    pod(
        "kube-apiserver",
        &annotations,
        &cmd,
        "registry.k8s.io/kube-apiserver:v1.33.0",
        &probe(&addr.to_string(), API_PORT, "/livez", "HTTPS"),
        "      requests:\n        cpu: 250m\n",
        &(mount("ca-certs", "/etc/ssl/certs", true)
            + mount("k8s-certs", "/etc/kubernetes/pki", true).as_str()),
        &(host_path("ca-certs", "/etc/ssl/certs", "DirectoryOrCreate")
            + host_path("k8s-certs", "/etc/kubernetes/pki", "DirectoryOrCreate").as_str()),
    )
}

fn component(
    name: &str,
    kubeconfig: &str,
    port: u16,
    layout: &Layout,
    i: usize,
    extra: &[String],
) -> String {
    let addr = layout.master_addr(i);
    let mut cmd = vec![
        name.to_string(),
        format!("--authentication-kubeconfig=/etc/kubernetes/{kubeconfig}"),
        format!("--authorization-kubeconfig=/etc/kubernetes/{kubeconfig}"),
        format!("--bind-address={addr}"),
        format!("--kubeconfig=/etc/kubernetes/{kubeconfig}"),
        "--leader-elect=true".into(),
    ];
    cmd.extend(extra.iter().cloned());
    pod(
        name,
        "  creationTimestamp: null\n",
        &cmd,
        &format!("registry.k8s.io/{name}:v1.33.0"),
        &probe(&addr.to_string(), port, "/healthz", "HTTPS"),
        "      requests:\n        cpu: 200m\n",
        &mount("kubeconfig", &format!("/etc/kubernetes/{kubeconfig}"), true),
        &host_path(
            "kubeconfig",
            &format!("/etc/kubernetes/{kubeconfig}"),
            "FileOrCreate",
        ),
    )
}

pub fn controller_manager(layout: &Layout, i: usize) -> String {
    let extra = vec![
        "--client-ca-file=/etc/kubernetes/pki/ca.crt".to_string(),
        "--cluster-name=kubernetes".into(),
        "--cluster-signing-cert-file=/etc/kubernetes/pki/ca.crt".into(),
        "--cluster-signing-key-file=/etc/kubernetes/pki/ca.key".into(),
        "--controllers=*,bootstrapsigner,tokencleaner".into(),
        "--requestheader-client-ca-file=/etc/kubernetes/pki/front-proxy-ca.crt".into(),
        "--root-ca-file=/etc/kubernetes/pki/ca.crt".into(),
        "--service-account-private-key-file=/etc/kubernetes/pki/sa.key".into(),
        "--use-service-account-credentials=true".into(),
    ];
    component(
        "kube-controller-manager",
        "controller-manager.conf",
        crate::layout::CONTROLLER_MANAGER_PORT,
        layout,
        i,
        &extra,
    )
}

pub fn scheduler(layout: &Layout, i: usize) -> String {
    component(
        "kube-scheduler",
        "scheduler.conf",
        crate::layout::SCHEDULER_PORT,
        layout,
        i,
        &[],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn manifests_name_the_masters_own_addresses() {
        let l = Layout::new("/tmp/lab", 3, Ipv4Addr::new(127, 0, 0, 10));
        let etcd = etcd(&l, 2, &Options::default());
        assert!(etcd.contains("    - --listen-client-urls=https://127.0.0.12:2379\n"));
        assert!(etcd.contains("--initial-cluster=master-1=https://127.0.0.11:2380,master-2=https://127.0.0.12:2380,master-3=https://127.0.0.13:2380"));
        let api = apiserver(&l, 1);
        assert!(api.contains("    - --etcd-servers=https://127.0.0.11:2379\n"));
        assert!(api.contains("    - --tls-cert-file=/etc/kubernetes/pki/apiserver.crt\n"));
        assert!(for_master(
            &l,
            1,
            &Options {
                etcd_quota_bytes: Some(33554432)
            }
        )[0]
        .1
        .contains("--quota-backend-bytes=33554432"));
    }
}
