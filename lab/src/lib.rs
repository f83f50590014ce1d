//! remedy-lab: a disposable control plane of real servers on one Linux machine
//! (root): per master an OpenSSH server in its own mount and UTS namespace, a
//! kubeadm-layout PKI made with the `openssl` CLI, static-pod manifests, a real
//! etcd started from its manifest by a kubelet stand-in, an API-server
//! stand-in; and a real HAProxy in front.

pub mod kubelet;
pub mod lab;
pub mod layout;
pub mod manifests;
pub mod pki;
pub mod process;
pub mod standin;
