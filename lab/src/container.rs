//! What the kubelet stand-in does in place of a container runtime: start a
//! static pod's command as a process in its own session (so one signal
//! reaches all it started), with a clean environment and its output in a
//! per-container log file; notice it exited without reaping it; stop it with
//! SIGTERM, then SIGKILL after a grace period.
//!
//! The small pieces the kubelet and the lab's crictl share live here too:
//! log lines, RFC 3339 timestamps, SHA-256 and random container ids.

use sha2::{Digest as _, Sha256};
use std::fs;
use std::io::{self, Read as _, Write as _};
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The PATH a container's command is looked up in and runs with (what a
/// control-plane image sets); `/usr/local/bin` is where the lab puts the real
/// binaries on each master.
pub const CONTAINER_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A running container: its process and identity.
pub struct Container {
    pub child: Child,
    pub pid: u32,
    pub id: String,
    pub started: Instant,
    pub started_at: f64,
}

/// `command[0]` as an executable: a path as is, a bare name looked up in
/// `path` (a PATH-style list). The error reads like the runtime's.
pub fn resolve(command: &str, path: &str) -> Result<PathBuf, String> {
    if command.contains('/') {
        let p = PathBuf::from(command);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!(
                "exec: {command:?}: stat {command}: no such file or directory"
            ))
        };
    }
    path.split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(command))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("exec: {command:?}: executable file not found in $PATH"))
}

/// Start `program` with `args` and nothing of the kubelet's environment but
/// `PATH`, stdout and stderr appended to `log_path` (created with its
/// directory), in a session of its own.
pub fn spawn(program: &Path, args: &[String], log_path: &Path, path: &str) -> io::Result<Child> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .env("PATH", path)
        .current_dir("/");
    crate::process::detach(&mut cmd, log_path)?;
    cmd.spawn()
}

/// Exited (a zombie waiting to be reaped), without reaping it, so its
/// process group can still be signalled safely.
pub fn has_exited(pid: u32) -> bool {
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

pub fn signal_group(pgid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) on the process group of a child we have not reaped yet,
    // so the id still names that group.
    unsafe {
        libc::kill(-(pgid as libc::pid_t), sig);
    }
}

/// Reap an exited container (killing what it left in its group first): its
/// exit code as runtimes report it (128 + n for signal n).
pub fn reap(c: &mut Container) -> Option<i32> {
    signal_group(c.pid, libc::SIGKILL);
    let status = c.child.wait().ok()?;
    status.code().or_else(|| status.signal().map(|s| 128 + s))
}

/// SIGTERM to the container's process group, SIGKILL after `grace`, then
/// reap it: how it went, and its exit code.
pub fn stop(c: &mut Container, grace: Duration) -> (&'static str, Option<i32>) {
    if has_exited(c.pid) {
        return ("had already exited", reap(c));
    }
    signal_group(c.pid, libc::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if has_exited(c.pid) {
            // Children that ignored the SIGTERM go with their container.
            return ("terminated", reap(c));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    ("killed after the grace period", reap(c))
}

/// Write through a temporary file and rename, so readers never see half.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    fs::write(&tmp, bytes)?;
    fs::rename(&tmp, path)
}

/// Set by SIGTERM/SIGINT once [`terminate_on_signals`] installed the handler.
pub static TERMINATED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_terminate(_: libc::c_int) {
    // Only an atomic store: the one thing safe to do in a signal handler.
    TERMINATED.store(true, Ordering::SeqCst);
}

/// Make SIGTERM and SIGINT set a flag instead of killing the process, so it
/// can stop its children first. Returns the flag.
pub fn terminate_on_signals() -> io::Result<&'static AtomicBool> {
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

/// Print one timestamped log line to stdout (the kubelet's log file).
pub fn log(who: &str, msg: &str) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{} {who}: {msg}", rfc3339(unix_now()));
}

/// Seconds since the epoch.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// UTC as RFC 3339 with milliseconds, like the Kubernetes components' logs.
pub fn rfc3339(unix: f64) -> String {
    let millis = (unix.max(0.0) * 1000.0).round() as i64;
    let t = crate::civil::Utc::from_unix(millis.div_euclid(1000));
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year,
        t.month,
        t.day,
        t.hour,
        t.minute,
        t.second,
        millis.rem_euclid(1000)
    )
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// `n` random bytes as hex: container ids look like containerd's (64 hex).
pub fn random_hex(n: usize) -> String {
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
    hex::encode(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(rfc3339(0.0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_700_000_000.25), "2023-11-14T22:13:20.250Z");
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(random_hex(32).len(), 64);
    }

    #[test]
    fn commands_are_found_on_the_path_like_a_runtime_finds_them() {
        assert_eq!(
            resolve("sh", "/nonexistent:/bin"),
            Ok(PathBuf::from("/bin/sh"))
        );
        assert_eq!(resolve("/bin/sh", ""), Ok(PathBuf::from("/bin/sh")));
        assert_eq!(
            resolve("kube-apiserver", "/nonexistent"),
            Err("exec: \"kube-apiserver\": executable file not found in $PATH".into())
        );
        assert!(resolve("/nonexistent/etcd", "")
            .is_err_and(|e| e.contains("no such file or directory")));
    }

    #[test]
    fn a_container_gets_only_path_and_its_exit_code_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("pod/c/0.log");
        let child = spawn(
            Path::new("/bin/sh"),
            &["-c".into(), "env; exit 3".into()],
            &log,
            "/usr/bin:/bin",
        )
        .unwrap();
        let pid = child.id();
        let mut c = Container {
            child,
            pid,
            id: random_hex(32),
            started: Instant::now(),
            started_at: unix_now(),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !has_exited(pid) {
            assert!(Instant::now() < deadline, "sh did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(reap(&mut c), Some(3));
        let env = fs::read_to_string(&log).unwrap();
        let names: Vec<&str> = env.lines().filter_map(|l| l.split('=').next()).collect();
        assert!(names.contains(&"PATH"), "{env}");
        assert!(
            !names.contains(&"HOME") && !names.contains(&"CARGO"),
            "{env}"
        );
    }
}
