//! `remedy exec TARGETS -- COMMAND`: an ad-hoc command on many hosts at once.
//! One host: output passes through byte for byte and the exit status is the
//! command's (255 when the host cannot be reached, like ssh). Several hosts:
//! each line is prefixed with its host, and failures are summarised.

use super::{request, Exit, Global, Output};
use futures::stream::{self, StreamExt};
use remedy_engine::Host;
use remedy_transport::ssh::SshConnector;
use remedy_transport::{Connector, RawOutput};
use serde_json::json;
use std::io::Write;
use std::time::Duration;

/// `remedy logs HOST COMPONENT [--tail N]`: `crictl logs` of the newest
/// container of the static pod on the host, through `exec` on that one host
/// (so its output and exit status pass through as crictl's).
pub fn logs(g: &Global, host: &str, component: &str, tail: Option<u32>) -> i32 {
    if host.contains([',', '*', '!']) {
        eprintln!("error: `remedy logs` reads one host's log; `{host}` is a pattern\n  = hint: name one host, or use `remedy exec {host} -- crictl ps` to see several");
        return Exit::Invalid.into();
    }
    exec(g, host, &logs_command(component, tail), 600, 1)
}

/// The shell command `remedy logs` runs on the host.
fn logs_command(component: &str, tail: Option<u32>) -> String {
    let name = remedy_transport::shell::word(&format!("^{component}$"));
    let said = remedy_transport::shell::word(component);
    let tail = tail.map(|n| format!("--tail {n} ")).unwrap_or_default();
    format!(
        "id=$(crictl ps -a -q --name {name} | head -n1); [ -n \"$id\" ] || {{ echo \"no container of {said} on $(hostname) (crictl ps -a shows the static pods there)\" >&2; exit 3; }}; exec crictl logs {tail}\"$id\""
    )
}

/// What happened on one host.
struct HostResult {
    host: String,
    outcome: Result<RawOutput, String>,
}

pub fn exec(g: &Global, targets: &str, command: &str, timeout_secs: u64, parallel: usize) -> i32 {
    let inventory = match request::inventory(g) {
        Ok(i) => i,
        Err(d) => {
            eprint!("{}", d.render());
            return Exit::Invalid.into();
        }
    };
    let mut hosts: Vec<Host> = match inventory.select(targets) {
        Ok(h) => h.into_iter().cloned().collect(),
        Err(msg) => {
            eprintln!("error: {msg}");
            return Exit::Invalid.into();
        }
    };
    if let Some(limit) = &g.limit {
        match inventory.select(limit) {
            Ok(allowed) => {
                let names: Vec<String> = allowed.iter().map(|h| h.name.clone()).collect();
                hosts.retain(|h| names.contains(&h.name));
            }
            Err(msg) => {
                eprintln!("error: --limit: {msg}");
                return Exit::Invalid.into();
            }
        }
    }
    let runtime = match super::run::runtime() {
        Ok(r) => r,
        Err(exit) => return exit.into(),
    };
    let connector = SshConnector::new(&inventory, g.accept_new_host_keys).verbose(g.verbose);
    let timeout = Duration::from_secs(timeout_secs);
    let results: Vec<HostResult> = runtime.block_on(async {
        stream::iter(hosts.iter())
            .map(|h| {
                let connector = &connector;
                async move {
                    let outcome = match connector.connect(h).await {
                        Err(e) => Err(e.to_string()),
                        Ok(t) => t
                            .exec_raw(command, timeout)
                            .await
                            .map_err(|e| e.to_string()),
                    };
                    HostResult {
                        host: h.name.clone(),
                        outcome,
                    }
                }
            })
            .buffered(parallel.max(1))
            .collect()
            .await
    });
    if g.output == Output::Json {
        let v: Vec<_> = results
            .iter()
            .map(|r| match &r.outcome {
                Ok(o) => json!({ "host": r.host, "status": o.status, "signal": o.signal, "stdout": String::from_utf8_lossy(&o.stdout), "stderr": String::from_utf8_lossy(&o.stderr), "error": null }),
                Err(e) => json!({ "host": r.host, "status": null, "signal": null, "stdout": "", "stderr": "", "error": e }),
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return summary_code(&results);
    }
    if results.len() == 1 {
        let r = &results[0];
        return match &r.outcome {
            Ok(o) => {
                let _ = std::io::stdout().write_all(&o.stdout);
                let _ = std::io::stderr().write_all(&o.stderr);
                match (o.status, &o.signal) {
                    (Some(code), _) => code.clamp(0, 255),
                    (None, Some(sig)) => {
                        eprintln!(
                            "remedy: `{command}` on {} was killed by signal {sig}",
                            r.host
                        );
                        255
                    }
                    (None, None) => 255,
                }
            }
            Err(e) => {
                eprintln!("remedy: {e}");
                255
            }
        };
    }
    let width = results.iter().map(|r| r.host.len()).max().unwrap_or(0);
    let mut out = std::io::stdout().lock();
    let mut failures = Vec::new();
    for r in &results {
        match &r.outcome {
            Ok(o) => {
                for line in String::from_utf8_lossy(&o.stdout).lines() {
                    let _ = writeln!(out, "{:width$} | {line}", r.host);
                }
                for line in String::from_utf8_lossy(&o.stderr).lines() {
                    let _ = writeln!(out, "{:width$} ! {line}", r.host);
                }
                match (o.status, &o.signal) {
                    (Some(0), _) => {}
                    (Some(code), _) => failures.push(format!("{}: exit {code}", r.host)),
                    (None, sig) => failures.push(format!(
                        "{}: killed by signal {}",
                        r.host,
                        sig.clone().unwrap_or_default()
                    )),
                }
            }
            Err(e) => {
                let _ = writeln!(out, "{:width$} ! remedy: {e}", r.host);
                failures.push(format!("{}: {}", r.host, e.lines().next().unwrap_or("")));
            }
        }
    }
    drop(out);
    let ok = results.len() - failures.len();
    if failures.is_empty() {
        eprintln!("{} hosts: all {ok} ok", results.len());
    } else {
        eprintln!(
            "{} hosts: {ok} ok, {} failed",
            results.len(),
            failures.len()
        );
        for f in &failures {
            eprintln!("  {f}");
        }
    }
    summary_code(&results)
}

/// 0 when every host ran the command successfully, 255 when a host could not
/// be reached, else 1.
fn summary_code(results: &[HostResult]) -> i32 {
    if results.iter().any(|r| r.outcome.is_err()) {
        255
    } else if results
        .iter()
        .all(|r| matches!(&r.outcome, Ok(o) if o.status == Some(0)))
    {
        0
    } else {
        1
    }
}
