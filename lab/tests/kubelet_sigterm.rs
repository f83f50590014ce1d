//! SIGTERM stops the kubelet stand-in and its pods: the real signal handler
//! of `kubelet::run`, in a process of its own.
//!
//! A test target without libtest's harness (`harness = false`): its `main`
//! is the test, and the same executable, started again with
//! `REMEDY_LAB_KUBELET_CHILD=<dir>`, is the kubelet it signals. (As a
//! `#[test]`, the child's body would be listed as a test that always passes.)

use remedy_lab::kubelet::{run, KubeletConfig};
use remedy_lab::process::start_time;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHILD: &str = "REMEDY_LAB_KUBELET_CHILD";

fn main() {
    if let Some(root) = std::env::var_os(CHILD) {
        let code = match run(KubeletConfig::under("master-1", Path::new(&root))) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("{e}");
                1
            }
        };
        std::process::exit(code);
    }
    sigterm_stops_the_kubelet_and_its_pods();
    println!("test sigterm_stops_the_kubelet_and_its_pods ... ok");
}

/// The kubelet child, killed (and its pod's group) if the test fails first.
struct Kubelet {
    child: Child,
    pod: Option<u32>,
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if let Some(pid) = self.pod.filter(|p| start_time(*p).is_some()) {
            remedy_lab::container::signal_group(pid, libc::SIGKILL);
        }
    }
}

/// Until `f` gives a value; generous, for a loaded 2-core machine.
fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "not within 60 s: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn sigterm_stops_the_kubelet_and_its_pods() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    std::fs::create_dir_all(root.join("manifests")).expect("manifests dir");
    std::fs::write(
        root.join("manifests/sleeper.yaml"),
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: sleeper\n  namespace: kube-system\nspec:\n  containers:\n  - command:\n    - /bin/sleep\n    - \"300\"\n    image: registry.k8s.io/sleeper:v1.33.0\n    name: sleeper\n",
    )
    .expect("manifest");
    let state = root.join("pods/sleeper.json");
    let mut kubelet = Kubelet {
        child: Command::new(std::env::current_exe().expect("this test's executable"))
            .env(CHILD, root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("start the kubelet child"),
        pod: None,
    };
    let pid = wait_for("the pod runs", || {
        let s: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&state).ok()?).ok()?;
        let pid = s["pid"].as_u64()? as u32;
        start_time(pid).map(|_| pid)
    });
    kubelet.pod = Some(pid);
    // SAFETY: kill(2) on our own child, not yet reaped.
    unsafe {
        libc::kill(kubelet.child.id() as libc::pid_t, libc::SIGTERM);
    }
    let status = wait_for("the kubelet exits after SIGTERM", || {
        kubelet.child.try_wait().expect("try_wait")
    });
    assert!(status.success(), "{status}");
    assert!(start_time(pid).is_none(), "its pod outlived it");
    assert!(!state.exists(), "its pod's state file is left");
    assert!(
        remedy_lab::process::recorded(&root.join("lab")).is_empty(),
        "pid files are left"
    );
}
