//! remedy-lab: a disposable control plane of real servers on one Linux machine
//! (root): per master an OpenSSH server in its own mount and UTS namespace,
//! the PKI, kubeconfigs and static-pod manifests the real kubeadm writes, and
//! the real etcd, kube-apiserver, kube-controller-manager and kube-scheduler
//! (built from source, see [`binaries`]) started from those manifests by a
//! kubelet stand-in; a lab `crictl` on each master; and a real HAProxy in
//! front.

pub mod binaries;
pub mod civil;
pub mod container;
pub mod crictl;
pub mod faults;
pub mod hosts;
pub mod kubeadm;
pub mod kubelet;
pub mod lab;
pub mod layout;
pub mod node_status;
pub mod ops_etcd;
pub mod overload;
pub mod pod_state;
pub mod process;
pub mod redate;
pub mod status;
