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
//! - a container that exits is restarted with back-off 1 s, 2 s, 4 s … capped
//!   at 10 s (CrashLoopBackOff), each start with a new container id; the
//!   back-off starts over after a container ran for 20 s.
//!
//! Where it differs: there are no images or containers. `command[0]` picks a
//! program — `etcd` runs the etcd binary, `kube-apiserver`,
//! `kube-controller-manager` and `kube-scheduler` run remedy's stand-ins
//! (`remedy lab pod …`, see [`crate::standin`]), an absolute path runs as is.
//! Volumes, probes, resources and `args` semantics beyond appending are
//! ignored. It polls (every 500 ms) instead of watching with inotify, writes
//! one JSON file per pod to the pods state directory (the real kubelet keeps
//! per-UID directories there) and logs to `<logs_dir>/<pod>.log` (the real one
//! uses `<ns>_<pod>_<uid>/<container>/<n>.log`). When it stops, it stops its
//! pods; the real kubelet leaves them running.
//!
//! The few pieces the stand-ins share (signal handling, log lines, SHA-256)
//! live here too, since the stand-ins are this kubelet's pods.

use remedy_dsl::yaml;
use remedy_dsl::Source;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io::{self, Read as _, Write as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a pod gets between SIGTERM and SIGKILL (the real default
/// terminationGracePeriodSeconds is 30 s; 10 s keeps `lab down` quick).
const GRACE: Duration = Duration::from_secs(10);
/// First and largest restart delay (the real kubelet: 10 s … 5 min).
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A container that ran this long starts the back-off over (the real kubelet
/// uses twice its maximum back-off, too).
const BACKOFF_RESET: Duration = Duration::from_secs(20);
/// How often the poll sleep looks at the stop flag.
const STOP_CHECK: Duration = Duration::from_millis(50);

/// Where one master's kubelet stand-in finds and keeps things.
#[derive(Debug, Clone)]
pub struct KubeletConfig {
    /// The master's name, used for pid-file names (`<node>-<pod>`).
    pub node: String,
    /// `/etc/kubernetes/manifests`.
    pub manifests_dir: PathBuf,
    /// `/var/lib/kubelet/pods`: one `<pod>.json` per pod.
    pub pods_state_dir: PathBuf,
    /// `/var/lib/kubelet/lab-faults`: handed to the stand-ins as
    /// `REMEDY_LAB_FAULTS_DIR`.
    pub faults_dir: PathBuf,
    /// `/var/log/pods`: one `<pod>.log` per pod, appended across restarts.
    pub logs_dir: PathBuf,
    /// The lab directory, for pid files via [`crate::process::record`].
    pub lab_dir: PathBuf,
    /// The `remedy` binary, which runs the API-server and component stand-ins.
    pub remedy_exe: PathBuf,
    /// The etcd binary for `command: [etcd, …]`.
    pub etcd_exe: PathBuf,
    /// How often the manifests directory is listed and the pods checked.
    pub poll: Duration,
}

impl KubeletConfig {
    /// The kubeadm paths as a master sees them inside its mount namespace.
    pub fn standard(
        node: impl Into<String>,
        lab_dir: impl Into<PathBuf>,
        remedy_exe: impl Into<PathBuf>,
        etcd_exe: impl Into<PathBuf>,
    ) -> KubeletConfig {
        KubeletConfig {
            node: node.into(),
            manifests_dir: "/etc/kubernetes/manifests".into(),
            pods_state_dir: "/var/lib/kubelet/pods".into(),
            faults_dir: "/var/lib/kubelet/lab-faults".into(),
            logs_dir: "/var/log/pods".into(),
            lab_dir: lab_dir.into(),
            remedy_exe: remedy_exe.into(),
            etcd_exe: etcd_exe.into(),
            poll: Duration::from_millis(500),
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
    let stop = terminate_on_signals().map_err(KubeletError::Signals)?;
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
    kubelet.say("stopping: terminating all pods");
    let all: Vec<Pod> = std::mem::take(&mut kubelet.pods).into_values().collect();
    kubelet.stop_pods(all);
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

/// The process of a running container.
struct Running {
    child: Child,
    pid: u32,
    container_id: String,
    started: Instant,
    started_at: f64,
}

/// Where a pod is in its life.
enum Phase {
    Running(Running),
    /// Waiting to (re)start: after a crash, or after a start that failed.
    Waiting {
        until: Instant,
        crashed: bool,
        reason: Option<String>,
    },
    /// Will not start until its manifest changes.
    Failed(String),
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
    /// The last container, kept while it is not running (as crictl shows
    /// exited containers).
    last_container: Option<String>,
    last_started_at: Option<f64>,
}

/// `<pods_state_dir>/<pod>.json`: what runbooks and the crictl shim read.
#[derive(Debug, Serialize)]
struct PodState<'a> {
    name: &'a str,
    container_id: Option<&'a str>,
    pid: Option<u32>,
    started_at: Option<f64>,
    manifest_sha256: &'a str,
    manifest: String,
    restarts: u32,
    state: String,
    image: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
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
                Ok(bytes) => (sha256_hex(&bytes), Ok(bytes)),
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
        self.stop_pods(stopping);

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
                            self.stop_pods(vec![old]);
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
                            last_container: None,
                            last_started_at: None,
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
                if !has_exited(run.pid) {
                    return;
                }
                // The leader is a zombie until reaped, so its process group id
                // cannot have been reused: kill what it left behind, as the
                // runtime tears down a container's whole cgroup.
                signal_group(run.pid, libc::SIGKILL);
                let status = match run.child.try_wait() {
                    Ok(Some(status)) => status.to_string(),
                    Ok(None) => "unknown status".to_string(),
                    Err(e) => format!("unknown status ({e})"),
                };
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
            Phase::Waiting { .. } | Phase::Failed(_) => {}
        }
    }

    fn start(&mut self, name: &str) {
        let Some(pod) = self.pods.get_mut(name) else {
            return;
        };
        let Some(spec) = &pod.spec else {
            return;
        };
        let (program, args) = match program_for(&self.cfg, &spec.argv) {
            Ok(p) => p,
            Err(reason) => {
                let msg = format!("pod {name} cannot start: {reason}");
                pod.phase = Phase::Failed(reason);
                self.say(&msg);
                return;
            }
        };
        let log_path = self.cfg.logs_dir.join(format!("{name}.log"));
        let container_id = random_hex(32);
        let spawned = spawn_container(&self.cfg, &program, &args, &log_path, &container_id);
        match spawned {
            Ok(child) => {
                let pid = child.id();
                let started_at = unix_now();
                pod.starts += 1;
                pod.last_container = Some(container_id.clone());
                pod.last_started_at = Some(started_at);
                pod.phase = Phase::Running(Running {
                    child,
                    pid,
                    container_id: container_id.clone(),
                    started: Instant::now(),
                    started_at,
                });
                let restarts = pod.starts - 1;
                let pid_name = self.pid_name(name);
                let mut msg = format!("started {name} pid {pid} container {}", &container_id[..12]);
                if restarts > 0 {
                    msg.push_str(&format!(" (restart {restarts})"));
                }
                self.say(&msg);
                // A process that exits at once cannot be recorded; the next
                // poll reaps it and backs off.
                if let Err(e) = crate::process::record(&self.cfg.lab_dir, &pid_name, pid) {
                    self.say(&format!("cannot record {name}'s pid: {e}"));
                }
            }
            Err(e) => {
                pod.crashes += 1;
                let delay = backoff(pod.crashes);
                let reason = format!("cannot start {}: {e}", program.display());
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
    /// their pid and state files.
    fn stop_pods(&mut self, pods: Vec<Pod>) {
        let this = &*self;
        std::thread::scope(|s| {
            for mut pod in pods {
                s.spawn(move || {
                    if let Phase::Running(run) = &mut pod.phase {
                        let how = stop_container(run);
                        this.say(&format!("stopped {} (pid {}): {how}", pod.name, run.pid));
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
            let (container_id, pid, started_at) = match &pod.phase {
                Phase::Running(run) => (
                    Some(run.container_id.as_str()),
                    Some(run.pid),
                    Some(run.started_at),
                ),
                _ => (pod.last_container.as_deref(), None, pod.last_started_at),
            };
            let (state, message) = match (&pod.invalid, &pod.phase) {
                (Some(msg), _) => ("invalid".to_string(), Some(msg.as_str())),
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
                (None, Phase::Failed(r)) => (format!("failed: {r}"), None),
            };
            let record = PodState {
                name: &pod.name,
                container_id,
                pid,
                started_at,
                manifest_sha256: &pod.sha,
                manifest: pod.file.display().to_string(),
                restarts: pod.starts.saturating_sub(1),
                state,
                image: pod.spec.as_ref().map(|s| s.image.as_str()).unwrap_or(""),
                message,
            };
            let Ok(json) = serde_json::to_string_pretty(&record) else {
                continue;
            };
            if self.written.get(&pod.name) == Some(&json) {
                continue;
            }
            match write_atomic(&self.state_path(&pod.name), json.as_bytes()) {
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

/// The program and arguments for a container's command.
fn program_for(cfg: &KubeletConfig, argv: &[String]) -> Result<(PathBuf, Vec<String>), String> {
    let (first, rest) = argv
        .split_first()
        .ok_or("unknown image/command: the container has no command")?;
    if first == "etcd" {
        Ok((cfg.etcd_exe.clone(), rest.to_vec()))
    } else if crate::standin::COMPONENTS.contains(&first.as_str()) {
        let mut args = vec!["lab".to_string(), "pod".to_string(), first.clone()];
        args.extend(rest.iter().cloned());
        Ok((cfg.remedy_exe.clone(), args))
    } else if first.starts_with('/') {
        Ok((PathBuf::from(first), rest.to_vec()))
    } else {
        Err(format!("unknown image/command {first:?}"))
    }
}

fn spawn_container(
    cfg: &KubeletConfig,
    program: &Path,
    args: &[String],
    log_path: &Path,
    container_id: &str,
) -> io::Result<Child> {
    let mut out = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)?;
    // A marker between containers, since one file holds them all.
    writeln!(
        out,
        "{} kubelet: container {container_id} starting",
        timestamp()
    )?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env("REMEDY_LAB_FAULTS_DIR", &cfg.faults_dir)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out);
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    // Its own session and process group let a stop reach every process of the
    // container, and keep a Ctrl-C at the kubelet's terminal away from it.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// Exited (a zombie waiting to be reaped), without reaping it, so its
/// process group can still be signalled safely.
fn has_exited(pid: u32) -> bool {
    // SAFETY: a zeroed siginfo_t is a valid out-parameter for waitid.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waitid on our own child with WNOWAIT leaves it unreaped.
    let rc = unsafe {
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    // SAFETY: si_pid is set by waitid; 0 means no state change yet.
    rc == 0 && unsafe { info.si_pid() } != 0
}

fn signal_group(pgid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) on the process group of a child we have not reaped yet,
    // so the id still names that group.
    unsafe {
        libc::kill(-(pgid as libc::pid_t), sig);
    }
}

/// SIGTERM to the container's process group, SIGKILL after the grace period,
/// then reap it.
fn stop_container(run: &mut Running) -> &'static str {
    if has_exited(run.pid) {
        signal_group(run.pid, libc::SIGKILL);
        let _ = run.child.wait();
        return "had already exited";
    }
    signal_group(run.pid, libc::SIGTERM);
    let deadline = Instant::now() + GRACE;
    while Instant::now() < deadline {
        if has_exited(run.pid) {
            // Children that ignored the SIGTERM go with their container.
            signal_group(run.pid, libc::SIGKILL);
            let _ = run.child.wait();
            return "terminated";
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    signal_group(run.pid, libc::SIGKILL);
    let _ = run.child.wait();
    "killed after the grace period"
}

fn file_stem(file: &Path) -> String {
    file.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Write through a temporary file and rename, so readers never see half.
fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    fs::write(&tmp, bytes)?;
    fs::rename(&tmp, path)
}

// ---- Shared with the stand-ins ----

/// Set by SIGTERM/SIGINT once [`terminate_on_signals`] installed the handler.
static TERMINATED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_terminate(_: libc::c_int) {
    // Only an atomic store: the one thing safe to do in a signal handler.
    TERMINATED.store(true, Ordering::SeqCst);
}

/// Make SIGTERM and SIGINT set a flag instead of killing the process, so it
/// can stop its children (or stop accepting) first. Returns the flag.
pub(crate) fn terminate_on_signals() -> io::Result<&'static AtomicBool> {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: a zeroed sigaction with a plain handler and an empty mask
        // is valid; the handler only stores to an atomic.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_terminate as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::sigemptyset(&mut action.sa_mask);
            if libc::sigaction(sig, &action, std::ptr::null_mut()) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    Ok(&TERMINATED)
}

/// Print one timestamped log line to stdout (which the kubelet sends to the
/// pod's log file).
pub(crate) fn log(who: &str, msg: &str) {
    println!("{} {who}: {msg}", timestamp());
}

/// Seconds since the epoch.
pub(crate) fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// UTC as RFC 3339 with milliseconds, like the Kubernetes components' logs.
fn timestamp() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        now.subsec_millis()
    )
}

/// Lower-case hex SHA-256.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    // SHA-256 from the TLS library already linked rather than one more crate:
    // the TLS 1.3 AES-128-GCM-SHA256 suite hashes with SHA-256 by definition.
    let suite = rustls::crypto::aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256;
    match suite.tls13() {
        Some(s) => hex(s.common.hash_provider.hash(data).as_ref()),
        None => unreachable!("TLS13_AES_128_GCM_SHA256 is a TLS 1.3 suite"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `n` random bytes as hex: container ids look like containerd's (64 hex).
fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    let random = fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut buf));
    if random.is_err() {
        // Unique is what matters: time, pid and a counter, hashed.
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let seed = format!(
            "{:?}-{}-{}",
            SystemTime::now(),
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        return sha256_hex(seed.as_bytes())[..2 * n.min(32)].to_string();
    }
    hex(&buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::thread::JoinHandle;

    /// A kubelet stand-in on a thread, over its own temporary directories;
    /// dropping it stops the kubelet (and so its pods), even after a failed
    /// assertion, and kills any pid the test saw as a last resort.
    struct Harness {
        dir: tempfile::TempDir,
        stop: Arc<AtomicBool>,
        thread: Option<JoinHandle<Result<(), KubeletError>>>,
        seen_pids: Vec<u32>,
    }

    /// Everything under `root`; `remedy_exe` is a script that records its
    /// environment's fault directory and arguments in `<root>/remedy.args`
    /// and then sleeps like a server.
    fn test_config(root: &Path) -> KubeletConfig {
        fs::create_dir_all(root.join("manifests")).expect("manifests dir");
        let remedy = root.join("remedy");
        fs::write(
            &remedy,
            "#!/bin/sh\nprintf '%s\\n' \"$REMEDY_LAB_FAULTS_DIR\" \"$@\" > \"$0.args\"\nexec sleep 300\n",
        )
        .expect("fake remedy");
        fs::set_permissions(&remedy, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        KubeletConfig {
            node: "master-1".into(),
            manifests_dir: root.join("manifests"),
            pods_state_dir: root.join("pods"),
            faults_dir: root.join("faults"),
            logs_dir: root.join("logs"),
            lab_dir: root.join("lab"),
            remedy_exe: remedy,
            etcd_exe: "/nonexistent/etcd".into(),
            poll: Duration::from_millis(100),
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
                    signal_group(*pid, libc::SIGKILL);
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

        let first = h.wait_for("sleeper", Duration::from_secs(2), "a live pid", |s| {
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
        let second = h.wait_for("sleeper", Duration::from_secs(3), "a new pid", |s| {
            live(s).is_some_and(|p| p != pid1)
        });
        assert_ne!(second["container_id"], first["container_id"]);
        assert_ne!(second["manifest_sha256"], first["manifest_sha256"]);
        assert_eq!(second["restarts"], 0, "a changed manifest is a new pod");
        assert!(dead(pid1), "the old container must be stopped");
        let pid2 = live(&second).expect("live pid");

        // Removing the manifest stops the pod and drops its records.
        fs::remove_file(h.path("manifests/sleeper.yaml")).expect("remove manifest");
        let deadline = Instant::now() + Duration::from_secs(3);
        while !(dead(pid2) && h.state("sleeper").is_none()) {
            assert!(
                Instant::now() < deadline,
                "pod still there 3 s after its manifest was removed"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(crate::process::recorded(&h.path("lab")).is_empty());
        assert!(h.state("hidden").is_none());
    }

    #[test]
    fn a_container_that_dies_is_restarted_with_a_new_id() {
        let mut h = Harness::start();
        h.manifest("sleeper.yaml", "sleeper", &["/bin/sleep", "300"]);
        let first = h.wait_for("sleeper", Duration::from_secs(2), "a live pid", |s| {
            live(s).is_some()
        });
        let pid1 = live(&first).expect("live pid");
        signal_group(pid1, libc::SIGKILL);
        let second = h.wait_for("sleeper", Duration::from_secs(4), "a restart", |s| {
            s["restarts"] == 1 && live(s).is_some_and(|p| p != pid1)
        });
        assert_eq!(second["state"], "running");
        assert_ne!(second["container_id"], first["container_id"]);
        let log = fs::read_to_string(h.path("logs/sleeper.log")).expect("pod log");
        assert_eq!(log.matches("starting").count(), 2, "{log}");
    }

    #[test]
    fn an_invalid_manifest_keeps_the_old_pod_running() {
        let mut h = Harness::start();
        h.manifest("sleeper.yaml", "sleeper", &["/bin/sleep", "300"]);
        let first = h.wait_for("sleeper", Duration::from_secs(2), "a live pid", |s| {
            live(s).is_some()
        });
        let pid = live(&first).expect("live pid");
        fs::write(h.path("manifests/sleeper.yaml"), "spec: [unclosed\n").expect("write");
        let broken = h.wait_for("sleeper", Duration::from_secs(2), "invalid", |s| {
            s["state"] == "invalid"
        });
        assert_eq!(live(&broken), Some(pid));
        assert!(broken["message"].as_str().is_some_and(|m| !m.is_empty()));

        // A command it cannot map is a failed pod, not a crash loop.
        h.manifest("other.yaml", "other", &["mystery-binary", "--flag"]);
        let failed = h.wait_for("other", Duration::from_secs(2), "failed", |s| {
            s["state"]
                .as_str()
                .is_some_and(|st| st.starts_with("failed: unknown image/command"))
        });
        assert!(failed["pid"].is_null());
    }

    #[test]
    fn the_first_file_in_name_order_wins_a_duplicate_pod_name() {
        let mut h = Harness::start();
        h.manifest("a.yaml", "dup", &["/bin/sleep", "300"]);
        h.manifest("b.yaml", "dup", &["/bin/sleep", "301"]);
        let state = h.wait_for("dup", Duration::from_secs(2), "a live pid", |s| {
            live(s).is_some()
        });
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
    fn commands_map_to_programs() {
        let cfg = KubeletConfig::standard("m", "/lab", "/bin/remedy", "/bin/etcd");
        let argv = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            program_for(&cfg, &argv(&["etcd", "--name=m"])),
            Ok(("/bin/etcd".into(), argv(&["--name=m"])))
        );
        assert_eq!(
            program_for(&cfg, &argv(&["kube-apiserver", "--secure-port=6443"])),
            Ok((
                "/bin/remedy".into(),
                argv(&["lab", "pod", "kube-apiserver", "--secure-port=6443"])
            ))
        );
        assert!(program_for(&cfg, &argv(&["coredns"]))
            .is_err_and(|e| e.starts_with("unknown image/command")));
    }

    #[test]
    fn lab_manifests_parse() {
        let layout = crate::layout::Layout::new("/tmp/lab", 3, crate::layout::DEFAULT_BASE);
        let opts = crate::manifests::Options::default();
        for (file, text) in crate::manifests::for_master(&layout, 1, &opts) {
            let spec = parse_manifest(Path::new(&file), &text).expect("parses");
            assert_eq!(format!("{}.yaml", spec.name), file);
            assert_eq!(spec.argv[0], spec.name);
            assert!(spec.image.starts_with("registry.k8s.io/"));
        }
    }

    #[test]
    fn timestamps_are_rfc3339() {
        let t = timestamp();
        assert_eq!(t.len(), "2025-01-01T00:00:00.000Z".len(), "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z'), "{t}");
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn control_plane_commands_run_remedy_lab_pod() {
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
        h.wait_for("kube-scheduler", Duration::from_secs(2), "running", |s| {
            live(s).is_some()
        });
        let args_file = h.path("remedy.args");
        let deadline = Instant::now() + Duration::from_secs(2);
        while !fs::read_to_string(&args_file).is_ok_and(|a| a.contains("leader-elect")) {
            assert!(Instant::now() < deadline, "the fake remedy never ran");
            std::thread::sleep(Duration::from_millis(20));
        }
        let args = fs::read_to_string(&args_file).expect("args");
        let expected = format!(
            "{}\nlab\npod\nkube-scheduler\n--bind-address=127.0.0.11\n--leader-elect=true\n",
            h.path("faults").display()
        );
        assert_eq!(args, expected);
    }

    /// Not a test by itself: the body of the child process that
    /// `sigterm_stops_the_kubelet_and_its_pods` starts by running this test
    /// binary again, so the real signal handler of [`run`] is exercised.
    #[test]
    fn kubelet_child_process() {
        let Some(root) = std::env::var_os("REMEDY_LAB_KUBELET_CHILD") else {
            return;
        };
        let code = match run(test_config(Path::new(&root))) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("{e}");
                1
            }
        };
        std::process::exit(code);
    }

    #[test]
    fn sigterm_stops_the_kubelet_and_its_pods() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        test_config(root);
        write_manifest(root, "sleeper.yaml", "sleeper", &["/bin/sleep", "300"]);
        let mut kubelet = Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "kubelet::tests::kubelet_child_process",
                "--nocapture",
            ])
            .env("REMEDY_LAB_KUBELET_CHILD", root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn");
        let deadline = Instant::now() + Duration::from_secs(10);
        let pid = loop {
            if let Some(pid) = read_state(root, "sleeper").as_ref().and_then(live) {
                break pid;
            }
            if Instant::now() > deadline {
                let _ = kubelet.kill();
                let _ = kubelet.wait();
                panic!("the pod never started");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        // SAFETY: kill(2) on our own child, not yet reaped.
        unsafe {
            libc::kill(kubelet.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        let status = loop {
            if let Some(status) = kubelet.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = kubelet.kill();
                let _ = kubelet.wait();
                signal_group(pid, libc::SIGKILL);
                panic!("the kubelet ignored SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "{status}");
        assert!(dead(pid), "its pod outlived it");
        assert!(read_state(root, "sleeper").is_none());
        assert!(crate::process::recorded(&root.join("lab")).is_empty());
    }
}
