//! The editor's tests: fixtures and helpers here, cases by concern.

mod documents;
mod flags;
mod resources;

use crate::parse::{parse, Node, Text};
pub(crate) use crate::{edit, EditError, EditOp};

pub(crate) const APISERVER: &str = "\
apiVersion: v1
kind: Pod
metadata:
  annotations:
    kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint: 10.0.0.11:6443
  creationTimestamp: null
  labels:
    component: kube-apiserver
    tier: control-plane
  name: kube-apiserver
  namespace: kube-system
spec:
  containers:
  - command:
    - kube-apiserver
    - --advertise-address=10.0.0.11
    - --allow-privileged=true
    - --authorization-mode=Node,RBAC
    - --client-ca-file=/etc/kubernetes/pki/ca.crt
    - --enable-admission-plugins=NodeRestriction
    - --enable-bootstrap-token-auth=true
    - --etcd-cafile=/etc/kubernetes/pki/etcd/ca.crt
    - --etcd-certfile=/etc/kubernetes/pki/apiserver-etcd-client.crt
    - --etcd-keyfile=/etc/kubernetes/pki/apiserver-etcd-client.key
    - --etcd-servers=https://127.0.0.1:2379
    - --kubelet-client-certificate=/etc/kubernetes/pki/apiserver-kubelet-client.crt
    - --kubelet-client-key=/etc/kubernetes/pki/apiserver-kubelet-client.key
    - --secure-port=6443
    - --service-account-issuer=https://kubernetes.default.svc.cluster.local
    - --service-account-key-file=/etc/kubernetes/pki/sa.pub
    - --service-cluster-ip-range=10.96.0.0/12
    - --tls-cert-file=/etc/kubernetes/pki/apiserver.crt
    - --tls-private-key-file=/etc/kubernetes/pki/apiserver.key
    image: registry.k8s.io/kube-apiserver:v1.29.4
    imagePullPolicy: IfNotPresent
    livenessProbe:
      failureThreshold: 8
      httpGet:
        host: 10.0.0.11
        path: /livez
        port: 6443
        scheme: HTTPS
      initialDelaySeconds: 10
      periodSeconds: 10
      timeoutSeconds: 15
    name: kube-apiserver
    readinessProbe:
      failureThreshold: 3
      httpGet:
        host: 10.0.0.11
        path: /readyz
        port: 6443
        scheme: HTTPS
      periodSeconds: 1
      timeoutSeconds: 15
    resources:
      requests:
        cpu: 250m
    startupProbe:
      failureThreshold: 24
      httpGet:
        host: 10.0.0.11
        path: /livez
        port: 6443
        scheme: HTTPS
      initialDelaySeconds: 10
      periodSeconds: 10
      timeoutSeconds: 15
    volumeMounts:
    - mountPath: /etc/ssl/certs
      name: ca-certs
      readOnly: true
    - mountPath: /etc/kubernetes/pki
      name: k8s-certs
      readOnly: true
  hostNetwork: true
  priority: 2000001000
  priorityClassName: system-node-critical
  securityContext:
    seccompProfile:
      type: RuntimeDefault
  volumes:
  - hostPath:
      path: /etc/ssl/certs
      type: DirectoryOrCreate
    name: ca-certs
  - hostPath:
      path: /etc/kubernetes/pki
      type: DirectoryOrCreate
    name: k8s-certs
status: {}
";

/// kube-controller-manager as some kubeadm versions write it, with
/// `resources: {}`.
pub(crate) const CONTROLLER_MANAGER: &str = "\
apiVersion: v1
kind: Pod
metadata:
  creationTimestamp: null
  labels:
    component: kube-controller-manager
    tier: control-plane
  name: kube-controller-manager
  namespace: kube-system
spec:
  containers:
  - command:
    - kube-controller-manager
    - --authentication-kubeconfig=/etc/kubernetes/controller-manager.conf
    - --authorization-kubeconfig=/etc/kubernetes/controller-manager.conf
    - --bind-address=127.0.0.1
    - --cluster-signing-cert-file=/etc/kubernetes/pki/ca.crt
    - --kubeconfig=/etc/kubernetes/controller-manager.conf
    - --leader-elect=true
    - --use-service-account-credentials=true
    image: registry.k8s.io/kube-controller-manager:v1.29.4
    imagePullPolicy: IfNotPresent
    name: kube-controller-manager
    resources: {}
    volumeMounts:
    - mountPath: /etc/kubernetes/controller-manager.conf
      name: kubeconfig
      readOnly: true
  hostNetwork: true
  priorityClassName: system-node-critical
  volumes:
  - hostPath:
      path: /etc/kubernetes/controller-manager.conf
      type: FileOrCreate
    name: kubeconfig
status: {}
";

/// A pod with an app container and a sidecar that only has `args`.
pub(crate) const TWO_CONTAINERS: &str = "\
apiVersion: v1
kind: Pod
metadata:
  name: etcd-backup
  namespace: kube-system
spec:
  containers:
  - name: main
    image: registry.example.com/main:1.0
    command:
      - /bin/main
      - --port=8080
  - name: sidecar
    image: registry.example.com/sidecar:2.3
    args:
      - --interval=30s
      - --verbose
";

pub(crate) fn set_flag(name: &str, value: &str) -> EditOp {
    EditOp::SetFlag {
        name: name.into(),
        value: value.into(),
    }
}

pub(crate) fn remove_flag(name: &str) -> EditOp {
    EditOp::RemoveFlag { name: name.into() }
}

pub(crate) fn set_resource(key: &str, value: &str) -> EditOp {
    EditOp::SetResource {
        key: key.into(),
        value: value.into(),
    }
}

pub(crate) fn remove_resource(key: &str) -> EditOp {
    EditOp::RemoveResource { key: key.into() }
}

/// `text` with `old` (which must occur exactly once) replaced by `new`.
pub(crate) fn replaced(text: &str, old: &str, new: &str) -> String {
    assert_eq!(
        text.matches(old).count(),
        1,
        "fixture must contain {old:?} once"
    );
    text.replacen(old, new, 1)
}

/// The differing lines of two texts, after stripping the common leading
/// and trailing lines: (removed, added). Enough for single-hunk edits.
pub(crate) fn hunk<'t>(before: &'t str, after: &'t str) -> (Vec<&'t str>, Vec<&'t str>) {
    let a: Vec<&str> = before.lines().collect();
    let b: Vec<&str> = after.lines().collect();
    let head = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let tail = a[head..]
        .iter()
        .rev()
        .zip(b[head..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    (
        a[head..a.len() - tail].to_vec(),
        b[head..b.len() - tail].to_vec(),
    )
}

/// The value of a flag in the first container, read back by parsing.
pub(crate) fn read_flag(text: &str, container: usize, name: &str) -> Option<String> {
    let t = Text::new(text);
    let root = parse(&t).expect("parses");
    let c = &root.get("spec")?.1.get("containers")?.1.items()[container];
    ["command", "args"]
        .iter()
        .filter_map(|k| c.get(k))
        .flat_map(|(_, l)| l.items())
        .filter_map(Node::str)
        .find_map(|v| v.strip_prefix(name)?.strip_prefix('=').map(String::from))
}

pub(crate) fn read_resource(text: &str, section: &str, resource: &str) -> Option<String> {
    let t = Text::new(text);
    let root = parse(&t).expect("parses");
    let c = &root.get("spec")?.1.get("containers")?.1.items()[0];
    let r = &c.get("resources")?.1;
    r.get(section)?.1.get(resource)?.1.str().map(String::from)
}
