//! Processes the lab starts, and stopping exactly those. Each one gets a pid
//! file `<lab>/pids/<name>.pid` holding its PID and kernel start time, written
//! the moment it is spawned, so `lab down` works after a crashed `up` and never
//! signals a recycled PID that now belongs to someone else.

use std::fs;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A process the lab started, as recorded in its pid file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub name: String,
    pub pid: u32,
    /// Kernel start time (clock ticks since boot), to tell a recycled PID apart.
    pub start_time: u64,
}

/// The start time of `pid`, or `None` if it is gone or a zombie.
pub use remedy_jumphost::running_start as start_time;

impl Recorded {
    /// Still running, and still the process we started.
    pub fn alive(&self) -> bool {
        start_time(self.pid) == Some(self.start_time)
    }
}

pub fn pid_dir(lab: &Path) -> PathBuf {
    lab.join("pids")
}

/// Record an already running process (e.g. one a kubelet stand-in started).
pub fn record(lab: &Path, name: &str, pid: u32) -> io::Result<Recorded> {
    let start_time = start_time(pid)
        .ok_or_else(|| io::Error::other(format!("{name} (pid {pid}) exited at once")))?;
    fs::create_dir_all(pid_dir(lab))?;
    let tmp = pid_dir(lab).join(format!(".{name}.pid.tmp"));
    fs::write(&tmp, format!("{pid} {start_time}\n"))?;
    fs::rename(&tmp, pid_dir(lab).join(format!("{name}.pid")))?;
    Ok(Recorded {
        name: name.into(),
        pid,
        start_time,
    })
}

/// The proxy variables a jump host or a sandbox may export. The lab's
/// components talk to each other on 127.x addresses and the lab's own
/// names; none of it may go through a proxy.
pub const PROXY_VARIABLES: [&str; 8] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// `cmd` without [`PROXY_VARIABLES`]: every process the lab starts (its
/// components, and the kubeadm, kubectl, etcdctl and curl it runs itself).
pub fn without_proxy(cmd: &mut Command) -> &mut Command {
    for v in PROXY_VARIABLES {
        cmd.env_remove(v);
    }
    cmd
}

/// Make `cmd` start in a session of its own, without proxy variables, without a terminal, its stdin
/// empty and stdout and stderr appended to `log` (created with its
/// directory): one signal to its process group reaches everything it starts,
/// and a Ctrl-C at our terminal does not reach it.
pub fn detach(cmd: &mut Command, log: &Path) -> io::Result<()> {
    if let Some(parent) = log.parent() {
        fs::create_dir_all(parent)?;
    }
    let out = fs::OpenOptions::new().create(true).append(true).open(log)?;
    without_proxy(cmd)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out);
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(())
}

/// Start `cmd` detached (see [`detach`]), output appended to `log`, and
/// record it.
pub fn spawn(lab: &Path, name: &str, mut cmd: Command, log: &Path) -> io::Result<Recorded> {
    detach(&mut cmd, log)?;
    let child = cmd.spawn().map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot start {name} ({:?}): {e}", cmd.get_program()),
        )
    })?;
    let pid = child.id();
    // The pid file first: if anything below fails, `down` still finds it.
    let rec = record(lab, name, pid).map_err(|_| {
        // Exited at once: report its log.
        let tail = fs::read_to_string(log).unwrap_or_default();
        let last: Vec<&str> = tail.lines().rev().take(5).collect();
        io::Error::other(format!(
            "{name} exited at once; last lines of {}:\n{}",
            log.display(),
            last.into_iter().rev().collect::<Vec<_>>().join("\n")
        ))
    })?;
    // Reap it in the background if it ends while we are still alive.
    std::thread::spawn(move || {
        let mut child = child;
        let _ = child.wait();
    });
    Ok(rec)
}

/// Every recorded process of the lab.
pub fn recorded(lab: &Path) -> Vec<Recorded> {
    let mut out = Vec::new();
    for entry in fs::read_dir(pid_dir(lab)).into_iter().flatten().flatten() {
        let path = entry.path();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".pid"))
        else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        let mut parts = text.split_whitespace();
        if let (Some(Ok(pid)), Some(Ok(start_time))) =
            (parts.next().map(str::parse), parts.next().map(str::parse))
        {
            out.push(Recorded {
                name: name.to_string(),
                pid,
                start_time,
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// What `stop` did to one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stopped {
    /// Exited after SIGTERM.
    Terminated,
    /// Needed SIGKILL.
    Killed,
    /// Was already gone (or its PID now belongs to another process).
    AlreadyGone,
}

/// SIGTERM, wait up to `grace`, then SIGKILL. Only if it is still ours.
pub fn stop(rec: &Recorded, grace: Duration) -> Stopped {
    if !rec.alive() {
        return Stopped::AlreadyGone;
    }
    signal(rec.pid, libc::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if !rec.alive() {
            return Stopped::Terminated;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if rec.alive() {
        signal(rec.pid, libc::SIGKILL);
        let deadline = Instant::now() + Duration::from_secs(5);
        while rec.alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Stopped::Killed
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) with a PID we verified (start time) is ours.
    unsafe {
        libc::kill(pid as i32, sig);
    }
}

/// Stop every recorded process (in parallel) and remove the pid files.
pub fn stop_all(lab: &Path, grace: Duration) -> Vec<(Recorded, Stopped)> {
    let handles: Vec<_> = recorded(lab)
        .into_iter()
        .map(|rec| {
            std::thread::spawn(move || {
                let outcome = stop(&rec, grace);
                (rec, outcome)
            })
        })
        .collect();
    let results: Vec<(Recorded, Stopped)> =
        handles.into_iter().filter_map(|h| h.join().ok()).collect();
    for (rec, _) in &results {
        let _ = fs::remove_file(pid_dir(lab).join(format!("{}.pid", rec.name)));
    }
    results
}

/// Wait until something accepts TCP connections on `addr`.
pub fn wait_for_port(addr: std::net::SocketAddr, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spawn_record_and_stop_only_our_process() {
        let lab = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let rec = spawn(
            lab.path(),
            "sleeper",
            cmd,
            &lab.path().join("logs/sleeper.log"),
        )
        .unwrap();
        assert!(rec.alive());
        assert_eq!(recorded(lab.path()), vec![rec.clone()]);
        // A record whose start time does not match is not ours: never signalled.
        let impostor = Recorded {
            start_time: rec.start_time + 1,
            ..rec.clone()
        };
        assert_eq!(
            stop(&impostor, Duration::from_millis(100)),
            Stopped::AlreadyGone
        );
        assert!(rec.alive());
        // A generous grace: it ends as soon as sleep does, and a busy
        // machine must not turn a termination into a kill.
        let stopped = stop_all(lab.path(), Duration::from_secs(30));
        assert_eq!(stopped, vec![(rec.clone(), Stopped::Terminated)]);
        assert!(!rec.alive());
        assert!(recorded(lab.path()).is_empty());
    }

    #[test]
    fn a_process_that_exits_at_once_is_reported_with_its_log() {
        let lab = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo bad config >&2; exit 1"]);
        let err = spawn(
            lab.path(),
            "broken",
            cmd,
            &lab.path().join("logs/broken.log"),
        );
        // Either it exited before we read its start time (error with the log),
        // or it was recorded and is gone by now: never alive.
        if let Ok(rec) = err {
            std::thread::sleep(Duration::from_millis(200));
            assert!(!rec.alive());
        }
    }
}
