//! The lab's `crictl`: the few commands of the real `crictl` an operator (and
//! remedy) uses on a kubeadm master, answered from the kubelet stand-in's
//! records ([`crate::pod_state`]) instead of a container runtime. Each lab
//! master has it as `/usr/local/bin/crictl` (a wrapper running `remedy lab
//! crictl`), so the usual emergency commands work there as on a real master:
//!
//! ```text
//! crictl ps [-a] [--name REGEX] [--state running|exited] [-q]
//! crictl logs [--tail N] ID
//! crictl inspect ID…
//! crictl logs $(crictl ps -a -q --name kube-apiserver | head -1)
//! ```
//!
//! It is a stand-in: there is no runtime, no `pods`, `images`, `exec` or
//! `stats`, and `logs` prints a container's stdout and stderr together on
//! stdout (the stand-in keeps them in one file). Output formats follow crictl
//! 1.3x: the `ps` table and its truncated ids, full ids with `-q`, the
//! `inspect` JSON's `status` fields (state, exit code, restart count …).

use crate::container::{rfc3339, unix_now};
use crate::kubelet::NAMESPACE;
use crate::pod_state::{self, ContainerRecord, PodRecord};
use std::io::{self, Write};
use std::path::Path;

const USAGE: &str = "usage: crictl ps [-a] [--name REGEX] [--state STATE] [-q] | crictl logs [--tail N] ID | crictl inspect ID… (the lab's crictl: a stand-in reading the kubelet stand-in's records)";

/// A container with its pod, as the commands see it.
struct Entry<'a> {
    pod: &'a PodRecord,
    c: &'a ContainerRecord,
}

/// Run `crictl <args>` over the records in `pods_dir` for node `node`; the
/// exit code (0 ok, 1 error, as crictl).
pub fn run(
    args: &[String],
    pods_dir: &Path,
    node: &str,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let pods = pod_state::load_all(pods_dir);
    let result = match args.split_first() {
        Some((cmd, rest)) if cmd == "ps" => ps(rest, &pods, node, out),
        Some((cmd, rest)) if cmd == "logs" => logs(rest, &pods, out),
        Some((cmd, rest)) if cmd == "inspect" => inspect(rest, &pods, node, out),
        Some((cmd, _)) => Err(format!("No help topic for '{cmd}'\n{USAGE}")),
        None => Err(USAGE.to_string()),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(err, "{e}");
            1
        }
    }
}

/// Flags of one command: `-x`, `--long`, `--long=v`, `--long v`, and
/// combined short flags (`-aq`).
struct Flags {
    switches: Vec<String>,
    values: Vec<(String, String)>,
    positional: Vec<String>,
}

fn parse(args: &[String], switches: &[&str], valued: &[&str]) -> Result<Flags, String> {
    let mut f = Flags {
        switches: Vec::new(),
        values: Vec::new(),
        positional: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if let Some(long) = a.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            if valued.contains(&name) {
                let v = match inline {
                    Some(v) => v,
                    None => it
                        .next()
                        .cloned()
                        .ok_or_else(|| format!("flag needs an argument: --{name}"))?,
                };
                f.values.push((name.to_string(), v));
            } else if switches.contains(&name) && inline.is_none() {
                f.switches.push(name.to_string());
            } else {
                return Err(format!("flag provided but not defined: -{name}\n{USAGE}"));
            }
        } else if let Some(short) = a.strip_prefix('-').filter(|s| !s.is_empty()) {
            for ch in short.chars() {
                let name = ch.to_string();
                if !switches.contains(&name.as_str()) {
                    return Err(format!("flag provided but not defined: -{name}\n{USAGE}"));
                }
                f.switches.push(name);
            }
        } else {
            f.positional.push(a.clone());
        }
    }
    Ok(f)
}

impl Flags {
    fn has(&self, names: &[&str]) -> bool {
        self.switches.iter().any(|s| names.contains(&s.as_str()))
    }
    fn value(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn entries(pods: &[PodRecord]) -> Vec<Entry<'_>> {
    let mut all: Vec<Entry<'_>> = pods
        .iter()
        .flat_map(|pod| pod.containers.iter().map(move |c| Entry { pod, c }))
        .collect();
    // Newest first, as crictl sorts by creation time.
    all.sort_by(|a, b| b.c.started_at.total_cmp(&a.c.started_at));
    all
}

fn state_name(c: &ContainerRecord) -> &'static str {
    if c.running() {
        "Running"
    } else {
        "Exited"
    }
}

fn ps(args: &[String], pods: &[PodRecord], node: &str, out: &mut dyn Write) -> Result<(), String> {
    let f = parse(args, &["a", "all", "q", "quiet"], &["name", "state"])?;
    if let Some(p) = f.positional.first() {
        return Err(format!("unexpected argument {p:?}\n{USAGE}"));
    }
    let name = f
        .value("name")
        .map(|n| regex::Regex::new(n).map_err(|e| format!("invalid --name {n:?}: {e}")))
        .transpose()?;
    let state = f.value("state").map(str::to_ascii_lowercase);
    if let Some(s) = &state {
        if !["running", "exited", "created", "unknown"].contains(&s.as_str()) {
            return Err(format!(
                "unsupported state: {s:?} (running, exited, created or unknown)"
            ));
        }
    }
    let all = f.has(&["a", "all"]);
    let shown: Vec<Entry<'_>> = entries(pods)
        .into_iter()
        .filter(|e| name.as_ref().is_none_or(|re| re.is_match(&e.pod.name)))
        .filter(|e| match state.as_deref() {
            Some(s) => state_name(e.c).eq_ignore_ascii_case(s),
            None => all || e.c.running(),
        })
        .collect();
    let mut text = String::new();
    if f.has(&["q", "quiet"]) {
        for e in &shown {
            text.push_str(&e.c.id);
            text.push('\n');
        }
    } else {
        let now = unix_now();
        let mut rows = vec![[
            "CONTAINER",
            "IMAGE",
            "CREATED",
            "STATE",
            "NAME",
            "ATTEMPT",
            "POD ID",
            "POD",
            "NAMESPACE",
        ]
        .map(String::from)
        .to_vec()];
        for e in &shown {
            rows.push(vec![
                short(&e.c.id),
                e.pod.image.clone(),
                format!("{} ago", human(now - e.c.started_at)),
                state_name(e.c).to_string(),
                e.pod.name.clone(),
                e.c.attempt.to_string(),
                short(&e.pod.uid.replace('-', "")),
                format!("{}-{node}", e.pod.name),
                NAMESPACE.to_string(),
            ]);
        }
        text = table(&rows);
    }
    out.write_all(text.as_bytes()).map_err(|e| e.to_string())
}

/// Columns padded like crictl's tabwriter (minimum width 20, padding 3).
fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..cols)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count() + 3)
                .max()
                .unwrap_or(0)
                .max(20)
        })
        .collect();
    let mut text = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == cols {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}", w = widths[i]));
            }
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

fn short(id: &str) -> String {
    id.chars().take(13).collect()
}

/// How long ago, in the words crictl uses (go-units' HumanDuration).
fn human(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    match s {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        2..=59 => format!("{s} seconds"),
        60..=119 => "About a minute".into(),
        120..=3599 => format!("{} minutes", s / 60),
        3600..=7199 => "About an hour".into(),
        7200..=172_799 => format!("{} hours", s / 3600),
        _ => format!("{} days", s / 86_400),
    }
}

/// The one container `id` names: a full id or a unique prefix.
fn find<'a>(pods: &'a [PodRecord], id: &str) -> Result<Entry<'a>, String> {
    let matches: Vec<Entry<'a>> = entries(pods)
        .into_iter()
        .filter(|e| !id.is_empty() && e.c.id.starts_with(id))
        .collect();
    match matches.len() {
        1 => Ok(matches.into_iter().next().ok_or("unreachable")?),
        0 => Err(format!("rpc error: code = NotFound desc = an error occurred when try to find container {id:?}: not found")),
        n => Err(format!("container id {id:?} is ambiguous: {n} containers start with it")),
    }
}

fn logs(args: &[String], pods: &[PodRecord], out: &mut dyn Write) -> Result<(), String> {
    let f = parse(args, &[], &["tail"])?;
    let [id] = f.positional.as_slice() else {
        return Err(format!("ID cannot be empty\n{USAGE}"));
    };
    let e = find(pods, id)?;
    let tail = match f.value("tail") {
        None => None,
        Some(v) => Some(
            v.parse::<i64>()
                .map_err(|_| format!("invalid value {v:?} for flag -tail"))?,
        ),
    };
    let bytes = std::fs::read(&e.c.log_path).map_err(|err| {
        format!(
            "failed to try resolving symlinks in path {:?}: {err}",
            e.c.log_path
        )
    })?;
    let text = match tail {
        Some(n) if n >= 0 => last_lines(&bytes, n as usize),
        _ => &bytes[..],
    };
    out.write_all(text).map_err(|e| e.to_string())
}

/// The last `n` lines of `bytes` (a final line without newline counts).
fn last_lines(bytes: &[u8], n: usize) -> &[u8] {
    if n == 0 {
        return &[];
    }
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let mut seen = 0;
    for (i, b) in body.iter().enumerate().rev() {
        if *b == b'\n' {
            seen += 1;
            if seen == n {
                return &bytes[i + 1..];
            }
        }
    }
    bytes
}

fn inspect(
    args: &[String],
    pods: &[PodRecord],
    node: &str,
    out: &mut dyn Write,
) -> Result<(), String> {
    let f = parse(args, &[], &["output", "o"])?;
    if f.positional.is_empty() {
        return Err(format!("ID cannot be empty\n{USAGE}"));
    }
    for id in &f.positional {
        let e = find(pods, id)?;
        let json = inspect_json(&e, node);
        let text = serde_json::to_string_pretty(&json).map_err(|e| e.to_string())?;
        writeln!(out, "{text}").map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn inspect_json(e: &Entry<'_>, node: &str) -> serde_json::Value {
    let (state, reason) = match e.c.exit_code {
        _ if e.c.running() => ("CONTAINER_RUNNING", ""),
        Some(0) => ("CONTAINER_EXITED", "Completed"),
        _ => ("CONTAINER_EXITED", "Error"),
    };
    let time = |t: Option<f64>| t.map_or("0001-01-01T00:00:00Z".to_string(), rfc3339);
    serde_json::json!({
        "status": {
            "id": e.c.id,
            "metadata": { "attempt": e.c.attempt, "name": e.pod.name },
            "state": state,
            "createdAt": time(Some(e.c.started_at)),
            "startedAt": time(Some(e.c.started_at)),
            "finishedAt": time(e.c.finished_at),
            "exitCode": e.c.exit_code.unwrap_or(0),
            "image": { "image": e.pod.image },
            "reason": reason,
            "message": "",
            "labels": {
                "io.kubernetes.container.name": e.pod.name,
                "io.kubernetes.pod.name": format!("{}-{node}", e.pod.name),
                "io.kubernetes.pod.namespace": NAMESPACE,
                "io.kubernetes.pod.uid": e.pod.uid,
            },
            "annotations": {
                "io.kubernetes.container.restartCount": e.c.attempt.to_string(),
                "kubernetes.io/config.source": "file",
                "kubernetes.io/config.hash": e.pod.uid.replace('-', ""),
            },
            "logPath": e.c.log_path,
        },
        "info": {
            "pid": e.c.pid.unwrap_or(0),
            "runtimeType": "remedy-lab kubelet stand-in",
        }
    })
}

/// This machine's host name (the master's, inside its UTS namespace).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// `remedy lab crictl` on this host's standard paths, printing to stdout and
/// stderr.
pub fn main(args: &[String]) -> i32 {
    let (mut out, mut err) = (io::stdout().lock(), io::stderr().lock());
    run(
        args,
        Path::new("/var/lib/kubelet/pods"),
        &hostname(),
        &mut out,
        &mut err,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, containers: Vec<ContainerRecord>) -> PodRecord {
        PodRecord {
            name: name.into(),
            uid: "0123abcd-4567-89ef-0123-456789abcdef".into(),
            container_id: containers.first().map(|c| c.id.clone()),
            pid: containers.first().and_then(|c| c.pid),
            started_at: containers.first().map(|c| c.started_at),
            manifest_sha256: "x".into(),
            manifest: format!("/etc/kubernetes/manifests/{name}.yaml"),
            restarts: containers.len().saturating_sub(1) as u32,
            state: "running".into(),
            image: format!("registry.k8s.io/{name}:v1.35.4"),
            message: None,
            containers,
        }
    }

    fn container(
        id: char,
        attempt: u32,
        ago: f64,
        exit: Option<i32>,
        log: &Path,
    ) -> ContainerRecord {
        ContainerRecord {
            id: id.to_string().repeat(64),
            attempt,
            pid: exit.is_none().then_some(4242),
            started_at: unix_now() - ago,
            finished_at: exit.map(|_| unix_now() - ago + 1.0),
            exit_code: exit,
            log_path: log.display().to_string(),
        }
    }

    /// Two pods: an API server crash-looping (attempt 1 exited with 1, attempt
    /// 2 running) and a scheduler running.
    fn fixture(dir: &Path) {
        let log = dir.join("api-1.log");
        std::fs::write(&log, "line 1\nline 2\nError: unknown flag: --bogus\n").unwrap();
        let api = record(
            "kube-apiserver",
            vec![
                container('b', 2, 5.0, None, &dir.join("api-2.log")),
                container('a', 1, 30.0, Some(1), &log),
            ],
        );
        let sched = record(
            "kube-scheduler",
            vec![container('c', 0, 90.0, None, &dir.join("s.log"))],
        );
        for r in [api, sched] {
            std::fs::write(
                dir.join(format!("{}.json", r.name)),
                serde_json::to_string(&r).unwrap(),
            )
            .unwrap();
        }
    }

    fn crictl(dir: &Path, args: &[&str]) -> (i32, String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let code = run(&args, dir, "master-1", &mut out, &mut err);
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    #[test]
    fn ps_lists_running_containers_and_all_with_a() {
        let dir = tempfile::tempdir().unwrap();
        fixture(dir.path());
        let (code, out, _) = crictl(dir.path(), &["ps"]);
        assert_eq!(code, 0);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("CONTAINER           IMAGE"), "{out}");
        assert_eq!(lines.len(), 3, "{out}");
        let cells: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            cells[..2],
            ["bbbbbbbbbbbbb", "registry.k8s.io/kube-apiserver:v1.35.4"],
            "{out}"
        );
        assert_eq!(
            lines[0].find("IMAGE"),
            lines[1].find("registry"),
            "aligned: {out}"
        );
        assert!(
            lines[1].contains("5 seconds ago") && lines[1].contains("Running"),
            "{out}"
        );
        assert!(
            lines[1].ends_with("kube-apiserver-master-1   kube-system"),
            "{out}"
        );
        assert!(lines[2].contains("About a minute ago"), "{out}");

        let (_, out, _) = crictl(dir.path(), &["ps", "-a", "-q", "--name", "kube-apiserver"]);
        assert_eq!(out, format!("{}\n{}\n", "b".repeat(64), "a".repeat(64)));
        let (_, out, _) = crictl(
            dir.path(),
            &["ps", "-aq", "--name=^kube-apiserver$", "--state", "Exited"],
        );
        assert_eq!(out, format!("{}\n", "a".repeat(64)));
        let (_, out, _) = crictl(
            dir.path(),
            &[
                "ps",
                "--name",
                "^kube-apiserver$",
                "--state",
                "running",
                "-q",
            ],
        );
        assert_eq!(out, format!("{}\n", "b".repeat(64)));
        let (_, out, _) = crictl(dir.path(), &["ps", "-q", "--name", "etcd"]);
        assert_eq!(out, "");
    }

    #[test]
    fn logs_and_inspect_find_a_container_by_id_or_prefix() {
        let dir = tempfile::tempdir().unwrap();
        fixture(dir.path());
        let a = "a".repeat(64);
        let (code, out, _) = crictl(dir.path(), &["logs", &a]);
        assert_eq!(
            (code, out.as_str()),
            (0, "line 1\nline 2\nError: unknown flag: --bogus\n")
        );
        let (_, out, _) = crictl(dir.path(), &["logs", "--tail", "1", "aaaa"]);
        assert_eq!(out, "Error: unknown flag: --bogus\n");
        let (_, out, _) = crictl(dir.path(), &["logs", "--tail=2", &a]);
        assert_eq!(out, "line 2\nError: unknown flag: --bogus\n");

        let (code, out, _) = crictl(dir.path(), &["inspect", &a[..13]]);
        assert_eq!(code, 0);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["status"]["state"], "CONTAINER_EXITED");
        assert_eq!(v["status"]["exitCode"], 1);
        assert_eq!(v["status"]["reason"], "Error");
        assert_eq!(
            v["status"]["annotations"]["io.kubernetes.container.restartCount"],
            "1"
        );
        assert_eq!(v["status"]["metadata"]["name"], "kube-apiserver");
        let (_, out, _) = crictl(dir.path(), &["inspect", &"b".repeat(64)]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["status"]["state"], "CONTAINER_RUNNING");
        assert_eq!(v["info"]["pid"], 4242);
    }

    #[test]
    fn bad_input_is_an_error_like_crictl_s() {
        let dir = tempfile::tempdir().unwrap();
        fixture(dir.path());
        let (code, _, err) = crictl(dir.path(), &["logs", "ffff"]);
        assert_eq!(code, 1);
        assert!(
            err.contains("code = NotFound") && err.contains("\"ffff\""),
            "{err}"
        );
        let (code, _, err) = crictl(dir.path(), &["ps", "--bogus"]);
        assert_eq!(code, 1);
        assert!(
            err.starts_with("flag provided but not defined: -bogus"),
            "{err}"
        );
        let (code, _, err) = crictl(dir.path(), &["logs"]);
        assert_eq!(code, 1);
        assert!(err.starts_with("ID cannot be empty"), "{err}");
        let (code, _, err) = crictl(dir.path(), &["ps", "--state", "sleeping"]);
        assert_eq!(code, 1);
        assert!(err.contains("unsupported state"), "{err}");
        assert_eq!(crictl(dir.path(), &["images"]).0, 1);
    }

    #[test]
    fn tails_count_lines_from_the_end() {
        assert_eq!(last_lines(b"a\nb\nc\n", 2), b"b\nc\n");
        assert_eq!(last_lines(b"a\nb\nc", 1), b"c");
        assert_eq!(last_lines(b"a\n", 5), b"a\n");
        assert_eq!(last_lines(b"a\nb\n", 0), b"");
        assert_eq!(human(0.4), "Less than a second");
        assert_eq!(human(7300.0), "2 hours");
    }
}
