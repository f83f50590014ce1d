//! The lab's kubelet stand-in: runs the static pods of one master from its
//! manifests directory, as the real kubelet does, as far as a runbook can see.
//!
//! What it mimics:
//! - every regular file in the manifests directory whose name does not start
//!   with `.` is a pod (so a `kube-apiserver.yaml.bak` left there is loaded
//!   too); when two files name the same pod, the first in file-name order wins;
//! - a new manifest starts its pod, a removed one stops it (SIGTERM to the
//!   whole process group, SIGKILL after 10 s) within a poll interval, a changed
//!   one (other bytes, or the same bytes in another file) replaces it;
//! - a manifest that does not parse leaves the pod it used to describe
//!   running, marked `invalid`;
//! - a container runs the manifest's `command` followed by its `args`, the
//!   command looked up on the image's PATH ([`container::CONTAINER_PATH`]:
//!   the lab puts the real kube-apiserver, kube-controller-manager,
//!   kube-scheduler and etcd in each master's `/usr/local/bin`), so a bad flag
//!   fails with the component's own error;
//! - a container that exits is restarted with back-off 1 s, 2 s, 4 s … capped
//!   at 10 s (CrashLoopBackOff), each start with a new container id; the
//!   back-off starts over after a container ran for 20 s;
//! - each container's output goes to
//!   `/var/log/pods/<namespace>_<pod>_<uid>/<container>/<attempt>.log`, where
//!   the lab's `crictl logs` finds it; a pod's last five containers are kept.
//!
//! Where it differs: there are no images, containers, cgroups or network
//! namespaces — a container is a process in its own session with the
//! master's filesystem. Volumes, probes, resources, env and securityContext
//! are ignored. It polls (every 500 ms) instead of watching with inotify,
//! keeps one JSON file per pod in the pods state directory
//! ([`crate::pod_state`]; the real kubelet keeps per-UID directories there)
//! and writes logs without the CRI's per-line timestamp and stream prefix.
//! When it stops, it stops its pods; the real kubelet leaves them running.
//!
//! A rehearsal hook: while `/var/lib/kubelet/lab-faults/<pod>-crash` exists,
//! the pod's containers start with one more flag, `--lab-fault=crash`, which
//! every component rejects: the real binary exits with its real error and the
//! pod crash-loops, whatever its manifest says.

use crate::container::{self, log, unix_now, Container, TERMINATED};
use crate::pod_state::{uid_from_sha, ContainerRecord, PodRecord, KEPT_CONTAINERS};
use remedy_dsl::yaml;
use remedy_dsl::Source;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How long a pod gets between SIGTERM and SIGKILL (the real default
/// terminationGracePeriodSeconds is 30 s). The real kube-apiserver stops
/// listening at once but keeps its watch connections until its 60 s request
/// timeout, so it is killed at the end of the grace period either way; 10 s
/// saves 20 s per restart and changes nothing else a runbook can see.
const GRACE: Duration = Duration::from_secs(10);
/// When the kubelet stand-in itself stops (`lab down`), its pods get this long:
/// nothing watches a lab being torn down.
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// Why pods are stopped.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Removal {
    /// Its manifest is gone or changed: the pod is deleted.
    PodDeleted,
    /// The kubelet stand-in stops (the real one would leave them running).
    KubeletExit,
}
/// First and largest restart delay (the real kubelet: 10 s … 5 min).
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A container that ran this long starts the back-off over (the real kubelet
/// uses twice its maximum back-off, too).
const BACKOFF_RESET: Duration = Duration::from_secs(20);
/// How often the poll sleep looks at the stop flag.
const STOP_CHECK: Duration = Duration::from_millis(50);

/// The namespace of every static pod (the lab has only control-plane pods).
pub const NAMESPACE: &str = "kube-system";

/// Where one master's kubelet stand-in finds and keeps things.
#[derive(Debug, Clone)]
pub struct KubeletConfig {
    /// The master's name, used for pid-file names (`<node>-<pod>`).
    pub node: String,
    /// `/etc/kubernetes/manifests`.
    pub manifests_dir: PathBuf,
    /// `/var/lib/kubelet/pods`: one `<pod>.json` per pod.
    pub pods_state_dir: PathBuf,
    /// `/var/lib/kubelet/lab-faults`: `<pod>-crash` files (see the module doc).
    pub faults_dir: PathBuf,
    /// `/var/log/pods`: the containers' logs.
    pub logs_dir: PathBuf,
    /// The lab directory, for pid files via [`crate::process::record`].
    pub lab_dir: PathBuf,
    /// The PATH commands are looked up in and containers run with.
    pub path: String,
    /// How often the manifests directory is listed and the pods checked.
    pub poll: Duration,
    /// Posts the Node's Ready condition when set ([`crate::node_status`]).
    pub node_status: Option<crate::node_status::NodeStatus>,
}

impl KubeletConfig {
    /// The kubeadm paths as a master sees them inside its mount namespace.
    pub fn standard(node: impl Into<String>, lab_dir: impl Into<PathBuf>) -> KubeletConfig {
        let lab_dir: PathBuf = lab_dir.into();
        KubeletConfig {
            node_status: Some(crate::node_status::NodeStatus {
                kubectl: lab_dir.join("bin/kubectl"),
                kubeconfig: lab_dir.join("admin.conf"),
            }),
            node: node.into(),
            manifests_dir: "/etc/kubernetes/manifests".into(),
            pods_state_dir: "/var/lib/kubelet/pods".into(),
            faults_dir: "/var/lib/kubelet/lab-faults".into(),
            logs_dir: "/var/log/pods".into(),
            lab_dir,
            path: container::CONTAINER_PATH.into(),
            poll: Duration::from_millis(500),
        }
    }
}

impl KubeletConfig {
    /// Everything under `root` (`manifests/`, `pods/`, `faults/`, `logs/`,
    /// `lab/`), commands from /usr/bin and /bin, a quick poll: a kubelet
    /// outside any mount namespace, as the tests run one.
    pub fn under(node: impl Into<String>, root: &Path) -> KubeletConfig {
        KubeletConfig {
            node: node.into(),
            manifests_dir: root.join("manifests"),
            pods_state_dir: root.join("pods"),
            faults_dir: root.join("faults"),
            logs_dir: root.join("logs"),
            lab_dir: root.join("lab"),
            path: "/usr/bin:/bin".into(),
            poll: Duration::from_millis(100),
            node_status: None,
        }
    }
}

/// Why the kubelet stand-in could not run. Problems with single manifests or
/// pods are not errors: they are logged and recorded in the pod's state.
#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    /// A directory it must write to cannot be made.
    #[error("cannot create {what} directory {}: {source} (check the lab's host mounts, or run `remedy lab down` and `remedy lab up` again)", path.display())]
    Dir {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// SIGTERM/SIGINT handlers could not be installed.
    #[error("cannot install the SIGTERM/SIGINT handler: {0}")]
    Signals(io::Error),
}

/// Run until SIGTERM or SIGINT, then stop every pod and return.
pub fn run(cfg: KubeletConfig) -> Result<(), KubeletError> {
    let stop = container::terminate_on_signals().map_err(KubeletError::Signals)?;
    run_until(cfg, stop)
}

/// Run until `stop` is set (or SIGTERM/SIGINT, if [`run`] installed the
/// handler), then stop every pod and return.
pub fn run_until(cfg: KubeletConfig, stop: &AtomicBool) -> Result<(), KubeletError> {
    for (what, path) in [
        ("pod state", &cfg.pods_state_dir),
        ("pod log", &cfg.logs_dir),
    ] {
        fs::create_dir_all(path).map_err(|source| KubeletError::Dir {
            what,
            path: path.clone(),
            source,
        })?;
    }
    // The Node's heartbeats run beside the pods, so a slow API server never
    // holds back a pod's restart.
    let heartbeat_stop = std::sync::Arc::new(AtomicBool::new(false));
    let heartbeat = cfg.node_status.clone().map(|status| {
        let (node, done) = (cfg.node.clone(), heartbeat_stop.clone());
        std::thread::spawn(move || status.run(&node, &done))
    });
    let mut kubelet = Kubelet::new(cfg);
    kubelet.forget_previous_run();
    kubelet.say(&format!(
        "kubelet stand-in for {} watching {}",
        kubelet.cfg.node,
        kubelet.cfg.manifests_dir.display()
    ));
    while !stop.load(Ordering::SeqCst) && !TERMINATED.load(Ordering::SeqCst) {
        kubelet.sync();
        let wake = Instant::now() + kubelet.cfg.poll;
        while Instant::now() < wake && !stop.load(Ordering::SeqCst) {
            if TERMINATED.load(Ordering::SeqCst) {
                break;
            }
            std::thread::sleep(STOP_CHECK.min(kubelet.cfg.poll));
        }
    }
    // Its kubectl, if one is running, is killed and reaped: nothing of the
    // stand-in outlives it.
    heartbeat_stop.store(true, Ordering::SeqCst);
    if let Some(h) = heartbeat {
        let _ = h.join();
    }
    kubelet.say("stopping: terminating all pods");
    let all: Vec<Pod> = std::mem::take(&mut kubelet.pods).into_values().collect();
    kubelet.stop_pods(all, Removal::KubeletExit);
    Ok(())
}

/// What a manifest asks for, as far as the stand-in uses it.
#[derive(Debug, Clone, PartialEq)]
struct Spec {
    name: String,
    /// `command` followed by `args` of the first container.
    argv: Vec<String>,
    image: String,
}

/// Parse a static-pod manifest. The error is one line, for logs and state.
fn parse_manifest(file: &Path, text: &str) -> Result<Spec, String> {
    let source = Source::new(file.display().to_string(), text);
    let root = yaml::parse(&source).map_err(|diags| {
        diags
            .iter()
            .map(|d| match d.location() {
                Some(at) => format!("{at}: {}", d.message),
                None => d.message.clone(),
            })
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    if let Some(kind) = root.get("kind").and_then(|k| k.as_str()) {
        if kind != "Pod" {
            return Err(format!("kind is {kind:?}, not a Pod"));
        }
    }
    let name = root
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(|n| n.as_str())
        .filter(|n| !n.is_empty())
        .ok_or("metadata.name is missing")?
        .to_string();
    let container = root
        .get("spec")
        .and_then(|s| s.get("containers"))
        .and_then(|c| c.as_seq())
        .and_then(|c| c.first())
        .ok_or("spec.containers is missing or empty")?;
    let mut argv = Vec::new();
    for key in ["command", "args"] {
        let Some(list) = container.get(key) else {
            continue;
        };
        let items = list
            .as_seq()
            .ok_or_else(|| format!("spec.containers[0].{key} is not a list"))?;
        for item in items {
            // `- 300` is an integer to YAML but an argument to the kubelet.
            argv.push(
                item.scalar_text().ok_or_else(|| {
                    format!("spec.containers[0].{key} holds {}", item.type_name())
                })?,
            );
        }
    }
    let image = container
        .get("image")
        .and_then(|i| i.scalar_text())
        .unwrap_or_default();
    Ok(Spec { name, argv, image })
}

/// A manifest file as last read, parsed once per content.
struct Seen {
    sha: String,
    parsed: Result<Spec, String>,
}

/// Where a pod is in its life.
enum Phase {
    Running(Container),
    /// Waiting to (re)start: after a crash, or after a start that failed.
    Waiting {
        until: Instant,
        crashed: bool,
        reason: Option<String>,
    },
}

struct Pod {
    name: String,
    /// The manifest file it came from.
    file: PathBuf,
    /// None: the file never parsed, so nothing can run.
    spec: Option<Spec>,
    /// SHA-256 of the manifest `spec` came from.
    sha: String,
    /// The file's current content does not parse: this message.
    invalid: Option<String>,
    phase: Phase,
    /// Successful starts of this pod (restarts = starts − 1).
    starts: u32,
    /// Crashes since the back-off last started over.
    crashes: u32,
    /// Its containers, newest first (at most [`KEPT_CONTAINERS`]), as
    /// `crictl ps -a` lists them.
    containers: Vec<ContainerRecord>,
}

struct Kubelet {
    cfg: KubeletConfig,
    pods: BTreeMap<String, Pod>,
    seen: HashMap<PathBuf, Seen>,
    /// Duplicate-name files already reported, so the log says it once.
    duplicates: HashSet<(PathBuf, String)>,
    /// The manifests directory could not be listed last time (said once).
    unreadable: bool,
    /// Last state written per pod, to write only on change.
    written: HashMap<String, String>,
}

impl Kubelet {
    fn new(cfg: KubeletConfig) -> Kubelet {
        Kubelet {
            cfg,
            pods: BTreeMap::new(),
            seen: HashMap::new(),
            duplicates: HashSet::new(),
            unreadable: false,
            written: HashMap::new(),
        }
    }

    fn say(&self, msg: &str) {
        log(&format!("kubelet {}", self.cfg.node), msg);
    }

    fn pid_name(&self, pod: &str) -> String {
        format!("{}-{pod}", self.cfg.node)
    }

    /// State files of a previous run describe processes that are gone (or
    /// about to be replaced): drop them so nobody reads a stale pid.
    fn forget_previous_run(&self) {
        for entry in fs::read_dir(&self.cfg.pods_state_dir)
            .into_iter()
            .flatten()
            .flatten()
        {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "json") {
                let _ = fs::remove_file(path);
            }
        }
    }

    /// One poll: read the manifests, reconcile the pods, supervise them,
    /// write their state.
    fn sync(&mut self) {
        if let Some(files) = self.scan() {
            self.reconcile(files);
        }
        let names: Vec<String> = self.pods.keys().cloned().collect();
        for name in names {
            self.supervise(&name);
        }
        self.write_states();
    }

    /// The manifests, in file-name order, or None when the directory cannot be
    /// read (then nothing changes, as with the real kubelet).
    fn scan(&mut self) -> Option<Vec<PathBuf>> {
        let entries = match fs::read_dir(&self.cfg.manifests_dir) {
            Ok(entries) => entries,
            Err(e) => {
                if !self.unreadable {
                    self.say(&format!(
                        "cannot list {}: {e}; keeping the pods as they are",
                        self.cfg.manifests_dir.display()
                    ));
                    self.unreadable = true;
                }
                return None;
            }
        };
        self.unreadable = false;
        let mut files: Vec<PathBuf> = entries
            .flatten()
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .map(|e| e.path())
            // fs::metadata follows symlinks, as the kubelet's stat does.
            .filter(|p| fs::metadata(p).is_ok_and(|m| m.is_file()))
            .collect();
        files.sort();
        let mut present = Vec::new();
        for file in files {
            let (sha, content) = match fs::read(&file) {
                Ok(bytes) => (container::sha256_hex(&bytes), Ok(bytes)),
                // Removed between listing and reading: absent.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => (String::new(), Err(format!("cannot read it: {e}"))),
            };
            if self.seen.get(&file).is_none_or(|s| s.sha != sha) {
                let parsed = content.and_then(|bytes| match std::str::from_utf8(&bytes) {
                    Ok(text) => parse_manifest(&file, text),
                    Err(_) => Err("not UTF-8 text".to_string()),
                });
                if let Err(e) = &parsed {
                    self.say(&format!("manifest {} is invalid: {e}", file.display()));
                }
                self.seen.insert(file.clone(), Seen { sha, parsed });
            }
            present.push(file);
        }
        self.seen.retain(|f, _| present.contains(f));
        self.duplicates.retain(|(f, _)| present.contains(f));
        Some(present)
    }

    fn reconcile(&mut self, files: Vec<PathBuf>) {
        // Valid manifests claim their pod names first, in file-name order; an
        // invalid file can only keep the pod it described before.
        struct Want {
            file: PathBuf,
            sha: String,
            spec: Option<Spec>,
            invalid: Option<String>,
        }
        let mut want: BTreeMap<String, Want> = BTreeMap::new();
        for file in &files {
            let Some(Seen {
                sha,
                parsed: Ok(spec),
            }) = self.seen.get(file)
            else {
                continue;
            };
            if let Some(first) = want.get(&spec.name) {
                if self.duplicates.insert((file.clone(), sha.clone())) {
                    self.say(&format!(
                        "ignoring {}: pod {} is already defined by {}",
                        file.display(),
                        spec.name,
                        first.file.display()
                    ));
                }
                continue;
            }
            want.insert(
                spec.name.clone(),
                Want {
                    file: file.clone(),
                    sha: sha.clone(),
                    spec: Some(spec.clone()),
                    invalid: None,
                },
            );
        }
        for file in &files {
            let Some(Seen {
                sha,
                parsed: Err(msg),
            }) = self.seen.get(file)
            else {
                continue;
            };
            // Without a parsable name, the pod is the one this file described
            // before, or else it is named after the file.
            let name = self
                .pods
                .values()
                .find(|p| &p.file == file)
                .map(|p| p.name.clone())
                .unwrap_or_else(|| file_stem(file));
            want.entry(name).or_insert(Want {
                file: file.clone(),
                sha: sha.clone(),
                spec: None,
                invalid: Some(msg.clone()),
            });
        }

        let gone: Vec<String> = self
            .pods
            .keys()
            .filter(|n| !want.contains_key(*n))
            .cloned()
            .collect();
        let mut stopping = Vec::new();
        for name in gone {
            if let Some(pod) = self.pods.remove(&name) {
                self.say(&format!(
                    "no manifest defines pod {name} any more ({} was its file): stopping it",
                    pod.file.display()
                ));
                stopping.push(pod);
            }
        }
        self.stop_pods(stopping, Removal::PodDeleted);

        for (name, w) in want {
            match (self.pods.get_mut(&name), w.spec) {
                (Some(pod), None) => {
                    // Keep what runs; only say the file is broken.
                    pod.invalid = w.invalid;
                }
                (Some(pod), Some(_)) if pod.sha == w.sha && pod.file == w.file => {
                    if pod.invalid.take().is_some() {
                        let msg = format!("manifest for {name} is valid again and unchanged");
                        self.say(&msg);
                    }
                }
                (existing, spec) => {
                    if let Some(old) = existing {
                        let file = old.file.display().to_string();
                        self.say(&format!("manifest {file} changed: replacing pod {name}"));
                        if let Some(old) = self.pods.remove(&name) {
                            self.stop_pods(vec![old], Removal::PodDeleted);
                        }
                    } else {
                        self.stop_leftover(&name);
                    }
                    let phase = Phase::Waiting {
                        until: Instant::now(),
                        crashed: false,
                        reason: None,
                    };
                    self.pods.insert(
                        name.clone(),
                        Pod {
                            name,
                            file: w.file,
                            spec,
                            sha: w.sha,
                            invalid: w.invalid,
                            phase,
                            starts: 0,
                            crashes: 0,
                            containers: Vec::new(),
                        },
                    );
                }
            }
        }
    }

    /// A process recorded under this pod's pid-file name that is still alive
    /// (a previous kubelet was killed without stopping its pods) would hold
    /// the pod's ports: stop it before the first start, as the real kubelet
    /// would replace an orphaned container.
    fn stop_leftover(&self, pod: &str) {
        let name = self.pid_name(pod);
        for rec in crate::process::recorded(&self.cfg.lab_dir) {
            if rec.name == name && rec.alive() {
                self.say(&format!(
                    "stopping leftover {pod} (pid {}) from an earlier run",
                    rec.pid
                ));
                crate::process::stop(&rec, GRACE);
                self.forget_pid_file(pod);
            }
        }
    }

    fn forget_pid_file(&self, pod: &str) {
        let _ = fs::remove_file(
            crate::process::pid_dir(&self.cfg.lab_dir).join(format!("{}.pid", self.pid_name(pod))),
        );
    }

    /// Reap an exited container and schedule its restart, or start a pod
    /// whose wait is over.
    fn supervise(&mut self, name: &str) {
        let Some(pod) = self.pods.get_mut(name) else {
            return;
        };
        match &mut pod.phase {
            Phase::Running(run) => {
                if !container::has_exited(run.pid) {
                    return;
                }
                // The leader is a zombie until reaped, so its process group id
                // cannot have been reused: reaping kills what it left behind,
                // as the runtime tears down a container's whole cgroup.
                let code = container::reap(run);
                let ran = run.started.elapsed();
                let pid = run.pid;
                if ran >= BACKOFF_RESET {
                    pod.crashes = 0;
                }
                pod.crashes += 1;
                let delay = backoff(pod.crashes);
                pod.phase = Phase::Waiting {
                    until: Instant::now() + delay,
                    crashed: true,
                    reason: None,
                };
                if let Some(c) = pod.containers.first_mut() {
                    c.pid = None;
                    c.finished_at = Some(unix_now());
                    c.exit_code = code;
                }
                let status = code.map_or("an unknown status".into(), |c| format!("exit code {c}"));
                let msg = format!(
                    "{name} (pid {pid}) exited with {status} after {:.1} s; restarting in {} s (CrashLoopBackOff)",
                    ran.as_secs_f64(),
                    delay.as_secs()
                );
                self.forget_pid_file(name);
                self.say(&msg);
            }
            Phase::Waiting { until, .. } if Instant::now() >= *until => {
                if pod.spec.is_some() {
                    self.start(name);
                }
            }
            Phase::Waiting { .. } => {}
        }
    }

    /// Where container `attempt` of `pod` logs, as the real kubelet lays it out.
    fn log_path(&self, pod: &Pod, attempt: u32) -> PathBuf {
        let uid = uid_from_sha(&pod.sha);
        self.cfg
            .logs_dir
            .join(format!("{NAMESPACE}_{}_{uid}", pod.name))
            .join(&pod.name)
            .join(format!("{attempt}.log"))
    }

    fn start(&mut self, name: &str) {
        let Some(pod) = self.pods.get(name) else {
            return;
        };
        let Some(spec) = &pod.spec else {
            return;
        };
        let attempt = pod.starts;
        let log_path = self.log_path(pod, attempt);
        let crash = self.cfg.faults_dir.join(format!("{name}-crash")).exists();
        let spawned = match spec.argv.split_first() {
            None => Err("the container has no command".to_string()),
            Some((command, args)) => {
                container::resolve(command, &self.cfg.path).and_then(|program| {
                    let mut args = args.to_vec();
                    if crash {
                        args.push("--lab-fault=crash".into());
                    }
                    container::spawn(&program, &args, &log_path, &self.cfg.path)
                        .map_err(|e| format!("cannot start {}: {e}", program.display()))
                })
            }
        };
        let id = container::random_hex(32);
        let Some(pod) = self.pods.get_mut(name) else {
            return;
        };
        match spawned {
            Ok(child) => {
                let pid = child.id();
                let started_at = unix_now();
                pod.starts += 1;
                pod.containers.insert(
                    0,
                    ContainerRecord {
                        id: id.clone(),
                        attempt,
                        pid: Some(pid),
                        started_at,
                        finished_at: None,
                        exit_code: None,
                        log_path: log_path.display().to_string(),
                    },
                );
                // Older containers go, with their logs.
                for gone in pod
                    .containers
                    .split_off(KEPT_CONTAINERS.min(pod.containers.len()))
                {
                    let _ = fs::remove_file(&gone.log_path);
                }
                pod.phase = Phase::Running(Container {
                    child,
                    pid,
                    id: id.clone(),
                    started: Instant::now(),
                    started_at,
                });
                let pid_name = self.pid_name(name);
                let mut msg = format!("started {name} pid {pid} container {}", &id[..12]);
                if attempt > 0 {
                    msg.push_str(&format!(" (restart {attempt})"));
                }
                if crash {
                    msg.push_str(" with --lab-fault=crash (lab-faults)");
                }
                self.say(&msg);
                // A process that exits at once cannot be recorded; the next
                // poll reaps it and backs off.
                if let Err(e) = crate::process::record(&self.cfg.lab_dir, &pid_name, pid) {
                    self.say(&format!("cannot record {name}'s pid: {e}"));
                }
            }
            Err(reason) => {
                pod.crashes += 1;
                let delay = backoff(pod.crashes);
                let msg = format!("pod {name}: {reason}; retrying in {} s", delay.as_secs());
                pod.phase = Phase::Waiting {
                    until: Instant::now() + delay,
                    crashed: false,
                    reason: Some(reason),
                };
                self.say(&msg);
            }
        }
    }

    /// Stop pods in parallel (each may take the whole grace period) and drop
    /// their pid and state files; a deleted pod's container logs go too, as
    /// the kubelet removes a deleted pod's log directory.
    fn stop_pods(&mut self, pods: Vec<Pod>, why: Removal) {
        let this = &*self;
        let grace = match why {
            Removal::PodDeleted => GRACE,
            Removal::KubeletExit => EXIT_GRACE,
        };
        std::thread::scope(|s| {
            for mut pod in pods {
                s.spawn(move || {
                    if why == Removal::PodDeleted {
                        for c in &pod.containers {
                            let log = Path::new(&c.log_path);
                            let _ = fs::remove_file(log);
                            for dir in log.ancestors().skip(1).take(2) {
                                let _ = fs::remove_dir(dir);
                            }
                        }
                    }
                    if let Phase::Running(run) = &mut pod.phase {
                        let (how, code) = container::stop(run, grace);
                        let code = code.map_or(String::new(), |c| format!(", exit code {c}"));
                        this.say(&format!(
                            "stopped {} (pid {}): {how}{code}",
                            pod.name, run.pid
                        ));
                    }
                    this.forget_pid_file(&pod.name);
                    let _ = fs::remove_file(this.state_path(&pod.name));
                });
            }
        });
        let pods = &self.pods;
        self.written.retain(|name, _| pods.contains_key(name));
    }

    fn state_path(&self, pod: &str) -> PathBuf {
        self.cfg.pods_state_dir.join(format!("{pod}.json"))
    }

    fn write_states(&mut self) {
        for pod in self.pods.values() {
            let last = pod.containers.first();
            let pid = match &pod.phase {
                Phase::Running(run) => Some(run.pid),
                _ => None,
            };
            let (state, message) = match (&pod.invalid, &pod.phase) {
                (Some(msg), _) => ("invalid".to_string(), Some(msg.clone())),
                (None, Phase::Running(_)) => ("running".to_string(), None),
                (None, Phase::Waiting { crashed: true, .. }) => ("crashloop".to_string(), None),
                (
                    None,
                    Phase::Waiting {
                        reason: Some(r), ..
                    },
                ) => (format!("failed: {r}"), None),
                // Not started yet: reported as pending for the instant it lasts.
                (None, Phase::Waiting { .. }) => ("pending".to_string(), None),
            };
            let record = PodRecord {
                name: pod.name.clone(),
                uid: uid_from_sha(&pod.sha),
                container_id: last.map(|c| c.id.clone()),
                pid,
                started_at: last.map(|c| c.started_at),
                manifest_sha256: pod.sha.clone(),
                manifest: pod.file.display().to_string(),
                restarts: pod.starts.saturating_sub(1),
                state,
                image: pod
                    .spec
                    .as_ref()
                    .map(|s| s.image.clone())
                    .unwrap_or_default(),
                message,
                containers: pod.containers.clone(),
            };
            let Ok(json) = serde_json::to_string_pretty(&record) else {
                continue;
            };
            if self.written.get(&pod.name) == Some(&json) {
                continue;
            }
            match container::write_atomic(&self.state_path(&pod.name), json.as_bytes()) {
                Ok(()) => {
                    self.written.insert(pod.name.clone(), json);
                }
                Err(e) => log(
                    &format!("kubelet {}", self.cfg.node),
                    &format!("cannot write state of {}: {e}", pod.name),
                ),
            }
        }
    }
}

/// Restart delay after the `n`th crash in a row: 1 s, 2 s, 4 s … 10 s.
fn backoff(n: u32) -> Duration {
    let doubled = FIRST_BACKOFF.saturating_mul(1 << n.saturating_sub(1).min(16));
    doubled.min(MAX_BACKOFF)
}

fn file_stem(file: &Path) -> String {
    file.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::thread::JoinHandle;

    /// How long a test waits for the kubelet to act: generous, as the
    /// machine running the tests may be a busy 2-core one.
    const WAIT: Duration = Duration::from_secs(60);

    /// A kubelet stand-in on a thread, over its own temporary directories;
    /// dropping it stops the kubelet (and so its pods), even after a failed
    /// assertion, and kills any pid the test saw as a last resort.
    struct Harness {
        dir: tempfile::TempDir,
        stop: Arc<AtomicBool>,
        thread: Option<JoinHandle<Result<(), KubeletError>>>,
        seen_pids: Vec<u32>,
    }

    /// Everything under `root`. `<root>/bin` is first on the PATH and holds
    /// `kube-scheduler`, a script that records its arguments in
    /// `<root>/kube-scheduler.args`, rejects `--lab-fault=crash` as the real
    /// components reject an unknown flag, and otherwise sleeps like a server.
    fn test_config(root: &Path) -> KubeletConfig {
        fs::create_dir_all(root.join("manifests")).expect("manifests dir");
        fs::create_dir_all(root.join("bin")).expect("bin dir");
        let fake = root.join("bin/kube-scheduler");
        fs::write(
            &fake,
            format!("#!/bin/sh\nprintf '%s\\n' \"$@\" > {}/kube-scheduler.args\nfor a; do [ \"$a\" = --lab-fault=crash ] && {{ echo \"Error: unknown flag: --lab-fault\" >&2; exit 1; }}; done\nexec sleep 300\n", root.display()),
        )
        .expect("fake kube-scheduler");
        fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        KubeletConfig {
            path: format!("{}:/usr/bin:/bin", root.join("bin").display()),
            ..KubeletConfig::under("master-1", root)
        }
    }

    fn write_manifest(root: &Path, file: &str, name: &str, command: &[&str]) {
        let cmd: String = command.iter().map(|c| format!("    - \"{c}\"\n")).collect();
        let text = format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: kube-system\nspec:\n  containers:\n  - command:\n{cmd}    image: registry.k8s.io/{name}:v1.33.0\n    name: {name}\n"
        );
        fs::write(root.join("manifests").join(file), text).expect("write manifest");
    }

    fn read_state(root: &Path, pod: &str) -> Option<serde_json::Value> {
        let text = fs::read_to_string(root.join("pods").join(format!("{pod}.json"))).ok()?;
        serde_json::from_str(&text).ok()
    }

    impl Harness {
        fn start() -> Harness {
            let dir = tempfile::tempdir().expect("tempdir");
            let cfg = test_config(dir.path());
            let stop = Arc::new(AtomicBool::new(false));
            let flag = stop.clone();
            let thread = std::thread::spawn(move || run_until(cfg, &flag));
            Harness {
                dir,
                stop,
                thread: Some(thread),
                seen_pids: Vec::new(),
            }
        }

        fn path(&self, rel: &str) -> PathBuf {
            self.dir.path().join(rel)
        }

        fn manifest(&self, file: &str, name: &str, command: &[&str]) {
            write_manifest(self.dir.path(), file, name, command);
        }

        fn state(&self, pod: &str) -> Option<serde_json::Value> {
            read_state(self.dir.path(), pod)
        }

        /// Wait for the pod's state to satisfy `ok`; panic with the last
        /// state seen otherwise.
        fn wait_for(
            &mut self,
            pod: &str,
            timeout: Duration,
            what: &str,
            ok: impl Fn(&serde_json::Value) -> bool,
        ) -> serde_json::Value {
            let deadline = Instant::now() + timeout;
            loop {
                let state = self.state(pod);
                if let Some(pid) = state.as_ref().and_then(|s| s["pid"].as_u64()) {
                    self.seen_pids.push(pid as u32);
                }
                if let Some(s) = state.as_ref().filter(|s| ok(s)) {
                    return s.clone();
                }
                assert!(
                    Instant::now() < deadline,
                    "{pod}: {what} not seen within {timeout:?}; last state: {state:?}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    impl Drop for Harness {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::SeqCst);
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
            for pid in &self.seen_pids {
                if crate::process::start_time(*pid).is_some() {
                    container::signal_group(*pid, libc::SIGKILL);
                }
            }
        }
    }

    fn live(state: &serde_json::Value) -> Option<u32> {
        let pid = state["pid"].as_u64()? as u32;
        crate::process::start_time(pid).map(|_| pid)
    }

    /// Gone or a zombie (a zombie is only ever ours, and reaped soon).
    fn dead(pid: u32) -> bool {
        crate::process::start_time(pid).is_none()
    }

    #[test]
    fn pods_follow_their_manifests() {
        let mut h = Harness::start();
        h.manifest("sleeper.yaml", "sleeper", &["/bin/sleep", "300"]);
        // A hidden file is never loaded, even a valid manifest.
        h.manifest(".x.yaml", "hidden", &["/bin/sleep", "301"]);

        let first = h.wait_for("sleeper", WAIT, "a live pid", |s| {
            s["state"] == "running" && live(s).is_some()
        });
        let pid1 = live(&first).expect("live pid");
        assert_eq!(first["restarts"], 0);
        assert_eq!(first["image"], "registry.k8s.io/sleeper:v1.33.0");
        assert_eq!(first["container_id"].as_str().map(str::len), Some(64));
        let rec = crate::process::recorded(&h.path("lab"));
        assert_eq!(rec.len(), 1, "{rec:?}");
        assert_eq!(rec[0].name, "master-1-sleeper");
        assert_eq!(rec[0].pid, pid1);
        assert!(h.state("hidden").is_none());

        // Editing the manifest replaces the pod: new process, new container.
        h.manifest("sleeper.yaml", "sleeper", &["/bin/sleep", "299"]);
        let second = h.wait_for("sleeper", WAIT, "a new pid", |s| {
            live(s).is_some_and(|p| p != pid1)
        });
        assert_ne!(second["container_id"], first["container_id"]);
        assert_ne!(second["manifest_sha256"], first["manifest_sha256"]);
        assert_eq!(second["restarts"], 0, "a changed manifest is a new pod");
        assert!(dead(pid1), "the old container must be stopped");
        let pid2 = live(&second).expect("live pid");

        // Removing the manifest stops the pod and drops its records and logs.
        let log = PathBuf::from(second["containers"][0]["log_path"].as_str().expect("log"));
        assert!(log.is_file(), "{}", log.display());
        fs::remove_file(h.path("manifests/sleeper.yaml")).expect("remove manifest");
        let deadline = Instant::now() + WAIT;
        while !(dead(pid2) && h.state("sleeper").is_none()) {
            assert!(
                Instant::now() < deadline,
                "pod still there {WAIT:?} after its manifest was removed"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(crate::process::recorded(&h.path("lab")).is_empty());
        assert!(!log.exists(), "a deleted pod's logs go with it");
        assert!(h.state("hidden").is_none());
    }

    #[test]
    fn a_container_that_dies_is_restarted_with_a_new_id() {
        let mut h = Harness::start();
        h.manifest("sleeper.yaml", "sleeper", &["/bin/sleep", "300"]);
        let first = h.wait_for("sleeper", WAIT, "a live pid", |s| live(s).is_some());
        let pid1 = live(&first).expect("live pid");
        container::signal_group(pid1, libc::SIGKILL);
        let second = h.wait_for("sleeper", WAIT, "a restart", |s| {
            s["restarts"] == 1 && live(s).is_some_and(|p| p != pid1)
        });
        assert_eq!(second["state"], "running");
        assert_ne!(second["container_id"], first["container_id"]);
        // Both containers are listed, newest first, each with its own log;
        // the one killed by SIGKILL exited with 137, as runtimes report it.
        let containers = second["containers"].as_array().expect("containers");
        assert_eq!(containers.len(), 2, "{second}");
        assert_eq!(containers[0]["id"], second["container_id"]);
        assert_eq!(containers[0]["attempt"], 1);
        assert_eq!(containers[1]["id"], first["container_id"]);
        assert_eq!(containers[1]["exit_code"], 137);
        let uid = second["uid"].as_str().expect("uid");
        for (c, n) in containers.iter().zip(["1", "0"]) {
            let expected = h.path(&format!("logs/kube-system_sleeper_{uid}/sleeper/{n}.log"));
            assert_eq!(c["log_path"], expected.display().to_string());
            assert!(expected.is_file(), "{}", expected.display());
        }
    }

    #[test]
    fn an_invalid_manifest_keeps_the_old_pod_running() {
        let mut h = Harness::start();
        h.manifest("sleeper.yaml", "sleeper", &["/bin/sleep", "300"]);
        let first = h.wait_for("sleeper", WAIT, "a live pid", |s| live(s).is_some());
        let pid = live(&first).expect("live pid");
        fs::write(h.path("manifests/sleeper.yaml"), "spec: [unclosed\n").expect("write");
        let broken = h.wait_for("sleeper", WAIT, "invalid", |s| s["state"] == "invalid");
        assert_eq!(live(&broken), Some(pid));
        assert!(broken["message"].as_str().is_some_and(|m| !m.is_empty()));

        // A command not on the PATH cannot start: a failed pod, retried.
        h.manifest("other.yaml", "other", &["mystery-binary", "--flag"]);
        let failed = h.wait_for("other", WAIT, "failed", |s| {
            s["state"] == "failed: exec: \"mystery-binary\": executable file not found in $PATH"
        });
        assert!(failed["pid"].is_null());
    }

    #[test]
    fn the_first_file_in_name_order_wins_a_duplicate_pod_name() {
        let mut h = Harness::start();
        h.manifest("a.yaml", "dup", &["/bin/sleep", "300"]);
        h.manifest("b.yaml", "dup", &["/bin/sleep", "301"]);
        let state = h.wait_for("dup", WAIT, "a live pid", |s| live(s).is_some());
        assert!(state["manifest"]
            .as_str()
            .is_some_and(|m| m.ends_with("a.yaml")));
    }

    #[test]
    fn backoff_doubles_up_to_ten_seconds() {
        let secs: Vec<u64> = (1..=6).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 10, 10]);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }

    #[test]
    fn commands_run_from_the_path_and_a_crash_fault_makes_them_crash_loop() {
        let mut h = Harness::start();
        h.manifest(
            "kube-scheduler.yaml",
            "kube-scheduler",
            &[
                "kube-scheduler",
                "--bind-address=127.0.0.11",
                "--leader-elect=true",
            ],
        );
        let first = h.wait_for("kube-scheduler", WAIT, "running", |s| live(s).is_some());
        let args_file = h.path("kube-scheduler.args");
        let deadline = Instant::now() + WAIT;
        while !fs::read_to_string(&args_file).is_ok_and(|a| a.contains("leader-elect")) {
            assert!(
                Instant::now() < deadline,
                "the fake kube-scheduler did not run within {WAIT:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(
            fs::read_to_string(&args_file).expect("args"),
            "--bind-address=127.0.0.11\n--leader-elect=true\n"
        );

        // With the fault file, the next container gets a flag it rejects.
        fs::create_dir_all(h.path("faults")).expect("faults dir");
        fs::write(h.path("faults/kube-scheduler-crash"), "").expect("fault");
        container::signal_group(live(&first).expect("pid"), libc::SIGKILL);
        let crashed = h.wait_for("kube-scheduler", WAIT, "a crash", |s| {
            s["containers"][0]["exit_code"] == 1
        });
        assert!(crashed["containers"][0]["attempt"].as_u64() >= Some(1));
        let log = crashed["containers"][0]["log_path"].as_str().expect("log");
        assert_eq!(
            fs::read_to_string(log).expect("log"),
            "Error: unknown flag: --lab-fault\n"
        );
        fs::remove_file(h.path("faults/kube-scheduler-crash")).expect("remove fault");
        h.wait_for("kube-scheduler", WAIT, "running again", |s| {
            live(s).is_some()
        });
    }
}
