//! The masters, each on its own and all at once: what an on-call engineer
//! would look at over SSH. One probe script gathers the facts (kubelet,
//! each static pod's newest container and log tail through `crictl`, the
//! manifests, the staging directory, disk, memory, the API server's file
//! descriptors); the health endpoints are asked in parallel with `curl` on
//! the master; the certificates are read and judged by `remedy-pki`.

use super::{classify, within, Cause, CheckCtx, Collector, Finding, Severity};
use crate::action::cert_check::{host_layout, read_host_pki};
use async_trait::async_trait;
use remedy_pki::kubeadm;
use remedy_transport::shell::quote;
use remedy_transport::{Host, Transport};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

pub struct Masters;

/// The static pods of a kubeadm master, in the order they matter.
const PODS: [&str; 4] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
];

/// Certificates closer than this to their expiry are a warning.
const CERT_WARN_DAYS: i64 = 30;

#[async_trait]
impl Collector for Masters {
    fn name(&self) -> &'static str {
        "masters"
    }

    async fn collect(&self, ctx: &CheckCtx<'_>) -> Vec<Finding> {
        let each = ctx.masters.iter().map(|host| async move {
            match within(
                ctx,
                &format!("ssh to {}", host.name),
                ctx.connector.connect(host),
            )
            .await
            {
                Err(e) => vec![unreachable(host, e)],
                Ok(Err(e)) => vec![unreachable(host, e.to_string())],
                Ok(Ok(t)) => match within(ctx, &host.name, master(ctx, host, t.as_ref())).await {
                    Ok(found) => found,
                    Err(e) => vec![Finding::new(
                        &host.name,
                        "ssh",
                        Severity::Critical,
                        format!("connected, but the checks did not finish: {e}"),
                    )],
                },
            }
        });
        futures::future::join_all(each)
            .await
            .into_iter()
            .flatten()
            .collect()
    }
}

fn unreachable(host: &Host, e: String) -> Finding {
    Finding::new(
        &host.name,
        "ssh",
        Severity::Critical,
        format!("unreachable over SSH: {}", e.lines().next().unwrap_or("")),
    )
    .evidence([e])
    .fix(Some(format!(
        "check {} by hand: is it up, is sshd running (ssh -p {} {}@{})?",
        host.name, host.port, host.user, host.address
    )))
}

/// The probe script's output, split at its `@@@ SECTION` lines.
fn sections(out: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    let mut name: Option<String> = None;
    let mut body = String::new();
    for line in out.lines() {
        if let Some(n) = line.strip_prefix("@@@ ") {
            if let Some(prev) = name.replace(n.trim().to_string()) {
                map.insert(prev, std::mem::take(&mut body));
            }
        } else if name.is_some() {
            body.push_str(line);
            body.push('\n');
        }
    }
    if let Some(prev) = name {
        map.insert(prev, body);
    }
    map
}

/// The facts script: reads only.
fn probe_script(host: &Host) -> String {
    let manifests = host
        .var("manifests_dir")
        .unwrap_or_else(|| "/etc/kubernetes/manifests".into());
    let staging = host
        .var("staging_dir")
        .unwrap_or_else(|| "/var/lib/remedy/staging".into());
    // The lab's kubelet stand-in is `remedy lab kubelet --node NAME --lab-dir DIR`
    // (the masters share the machine's process table).
    let stand_in = match host.var("lab_dir") {
        Some(dir) => format!(
            "\"lab kubelet --node $(hostname) --lab-dir \"{}",
            quote(&dir)
        ),
        None => "\"lab kubelet --node $(hostname) \"".into(),
    };
    let mut s = format!(
        "M={m}; S={s}\n\
         echo '@@@ kubelet'\n\
         if pgrep -x kubelet >/dev/null 2>&1; then echo running; \
         elif pgrep -f -- {stand_in} >/dev/null 2>&1; then echo running; \
         elif command -v systemctl >/dev/null 2>&1 && systemctl cat kubelet >/dev/null 2>&1; then systemctl is-active kubelet; \
         else echo 'not running'; fi\n\
         echo '@@@ crictl'; command -v crictl || echo missing\n\
         echo '@@@ staging'; ls -A \"$S\" 2>/dev/null\n\
         echo '@@@ df'; df -Pk /var/lib/etcd / 2>/dev/null\n\
         echo '@@@ meminfo'; grep -E '^(MemTotal|MemAvailable):' /proc/meminfo\n",
        m = quote(&manifests),
        s = quote(&staging),
    );
    for pod in PODS {
        s.push_str(&format!(
            "id=$(crictl ps -a -q --name '^{pod}$' 2>/dev/null | head -1)\n\
             echo '@@@ inspect {pod}'; [ -n \"$id\" ] && crictl inspect \"$id\" 2>/dev/null\n\
             echo '@@@ logs {pod}'; [ -n \"$id\" ] && crictl logs --tail 40 \"$id\" 2>&1\n"
        ));
        if pod == "kube-apiserver" {
            s.push_str(
                "pid=$(crictl inspect \"$id\" 2>/dev/null | sed -n 's/^ *\"pid\": *\\([0-9][0-9]*\\).*/\\1/p' | head -1)\n\
                 echo '@@@ fds'; if [ -n \"$pid\" ] && [ \"$pid\" != 0 ] && [ -d /proc/$pid/fd ]; then \
                 ls /proc/$pid/fd | wc -l; grep 'Max open files' /proc/$pid/limits; fi\n",
            );
        }
    }
    s.push_str("exit 0\n");
    s
}

/// Everything about one master: the manifests first (the health
/// endpoints are found in them), then the facts, the health endpoints and
/// the certificates at once, each bounded by the deadline on its own so a
/// part that hangs is named and the rest still reported.
async fn master(ctx: &CheckCtx<'_>, host: &Host, t: &dyn Transport) -> Vec<Finding> {
    let name = host.name.as_str();
    let manifests = match t.probe(&manifests_script(host), ctx.left()).await {
        Ok(o) => sections(&o.stdout),
        Err(e) => {
            return vec![Finding::new(
                name,
                "ssh",
                Severity::Critical,
                format!("cannot read the manifests: {e}"),
            )]
        }
    };
    let script = probe_script(host);
    let (facts, health, certs, served) = futures::join!(
        within(
            ctx,
            "the probe (kubelet, crictl, disk, memory)",
            t.probe(&script, ctx.left())
        ),
        within(ctx, "the health endpoints", health(ctx, t, &manifests)),
        within(ctx, "the certificates", certificates(ctx, host, t)),
        within(
            ctx,
            "the served certificate",
            served_certificate(ctx, name, t, &manifests)
        ),
    );
    let mut found = Vec::new();
    let mut facts = match facts.and_then(|r| r.map_err(|e| e.to_string())) {
        Ok(o) => sections(&o.stdout),
        Err(e) => {
            found.push(Finding::new(
                name,
                "ssh",
                Severity::Critical,
                format!("the probe did not finish: {e}"),
            ));
            BTreeMap::new()
        }
    };
    facts.extend(manifests);
    let health = health.unwrap_or_else(|e| {
        found.push(Finding::new(
            name,
            "apiserver/health",
            Severity::Critical,
            e,
        ));
        Health::new()
    });
    match certs {
        Ok(c) => found.extend(c),
        Err(e) => found.push(Finding::new(name, "certificates", Severity::Warn, e)),
    }
    match served {
        Ok(s) => found.extend(s),
        Err(e) => found.push(Finding::new(name, "certificates/served", Severity::Warn, e)),
    }
    if facts.contains_key("kubelet") {
        found.extend(from_facts(ctx, host, &facts, &health));
    }
    found
}

/// The manifests of the static pods, each in its section.
fn manifests_script(host: &Host) -> String {
    let manifests = host
        .var("manifests_dir")
        .unwrap_or_else(|| "/etc/kubernetes/manifests".into());
    let mut s = format!("M={}\n", quote(&manifests));
    for pod in PODS {
        s.push_str(&format!(
            "echo '@@@ manifest {pod}'; cat \"$M/{pod}.yaml\" 2>/dev/null\n"
        ));
    }
    s.push_str("echo '@@@ manifests-dir'; ls -A \"$M\" 2>&1\nexit 0\n");
    s
}

fn from_facts(
    ctx: &CheckCtx<'_>,
    host: &Host,
    facts: &BTreeMap<String, String>,
    health: &Health,
) -> Vec<Finding> {
    let name = host.name.as_str();
    let get = |k: &str| facts.get(k).map(String::as_str).unwrap_or("");
    let mut found = Vec::new();
    let kubelet = get("kubelet").trim();
    found.push(if kubelet == "running" || kubelet == "active" {
        Finding::ok(name, "kubelet", "running")
    } else {
        Finding::new(
            name,
            "kubelet",
            Severity::Critical,
            format!("the kubelet is {kubelet}: no static pod is started or restarted"),
        )
        .fix(Some(format!(
            "on {name}: systemctl start kubelet; journalctl -u kubelet -n 50"
        )))
    });
    let has_crictl = !get("crictl").trim().ends_with("missing");
    let staged: Vec<String> = get("staging")
        .lines()
        .map(str::trim)
        .filter(|f| f.ends_with(".yaml") || f.ends_with(".yml") || f.ends_with(".json"))
        .map(str::to_string)
        .collect();
    for pod in PODS {
        found.extend(pod_findings(
            ctx, name, pod, facts, &staged, has_crictl, health,
        ));
    }
    found.extend(stranded(ctx, host, &staged, facts));
    found.extend(resources(name, facts));
    found
}

/// The certificate the API server serves, read from the master itself with
/// `openssl s_client` (never through a load balancer), against the file its
/// manifest names: expired or expiring, or not the file's (renewed on disk,
/// the API server not restarted). Nothing when nothing answers: the health
/// findings say why.
async fn served_certificate(
    ctx: &CheckCtx<'_>,
    name: &str,
    t: &dyn Transport,
    facts: &BTreeMap<String, String>,
) -> Vec<Finding> {
    let manifest = facts
        .get("manifest kube-apiserver")
        .map(String::as_str)
        .unwrap_or("");
    let Some(endpoint) =
        remedy_manifest::default_health_url("kube-apiserver", manifest).and_then(|u| {
            u.strip_prefix("https://")
                .and_then(|r| r.split('/').next())
                .map(str::to_string)
        })
    else {
        return Vec::new();
    };
    let file = remedy_manifest::flag_value(manifest, "tls-cert-file")
        .unwrap_or_else(|| "/etc/kubernetes/pki/apiserver.crt".into());
    let warn = CERT_WARN_DAYS * 86_400;
    let script = format!(
        "c=$(openssl s_client -connect {e} -servername kubernetes </dev/null 2>/dev/null | openssl x509 2>/dev/null) || exit 0
         [ -n \"$c\" ] || exit 0
         echo '@@@ served'; printf '%s\n' \"$c\" | openssl x509 -noout -enddate -fingerprint -sha256
         echo '@@@ expired'; printf '%s\n' \"$c\" | openssl x509 -noout -checkend 0 >/dev/null && echo no || echo yes
         echo '@@@ soon'; printf '%s\n' \"$c\" | openssl x509 -noout -checkend {warn} >/dev/null && echo no || echo yes
         echo '@@@ file'; openssl x509 -in {f} -noout -fingerprint -sha256 2>&1
",
        e = quote(&endpoint),
        f = quote(&file),
    );
    let out = match t.probe(&script, ctx.left()).await {
        Ok(o) => sections(&o.stdout),
        Err(e) => {
            return vec![Finding::new(
                name,
                "certificates/served",
                Severity::Warn,
                format!("cannot read the served certificate: {e}"),
            )]
        }
    };
    let Some(served) = out.get("served") else {
        return Vec::new();
    };
    let fingerprint = |text: &str| {
        text.lines().find_map(|l| {
            l.split_once("Fingerprint=")
                .map(|(_, f)| f.trim().to_string())
        })
    };
    let not_after = served
        .lines()
        .find_map(|l| l.strip_prefix("notAfter="))
        .unwrap_or("?")
        .trim()
        .to_string();
    let file_text = out.get("file").map(String::as_str).unwrap_or("");
    let same = fingerprint(served).is_some() && fingerprint(served) == fingerprint(file_text);
    let yes = |k: &str| out.get(k).map(|v| v.trim() == "yes").unwrap_or(false);
    let evidence = [
        format!("{endpoint} serves a certificate valid until {not_after}"),
        if same {
            format!("the same as {file}")
        } else {
            format!(
                "{file}: {}",
                fingerprint(file_text)
                    .map(|f| format!("another certificate (SHA-256 {f})"))
                    .unwrap_or_else(|| file_text.trim().to_string())
            )
        },
    ];
    let restart = ctx.run_fix(
        "static-pod-restart",
        &format!("-l {name} -p pods=kube-apiserver"),
    );
    let renew = ctx.run_fix("cert-renew", &format!("-l {name}"));
    let finding = if yes("expired") {
        Finding::new(
            name,
            "certificates/served",
            Severity::Critical,
            "the API server serves an EXPIRED certificate: clients refuse it",
        )
        .fix(if same { renew } else { restart })
    } else if !same {
        Finding::new(
            name,
            "certificates/served",
            Severity::Warn,
            format!("the API server does not serve {file}: renewed on disk and not restarted?"),
        )
        .fix(restart)
    } else if yes("soon") {
        Finding::new(
            name,
            "certificates/served",
            Severity::Warn,
            format!("the served certificate expires within {CERT_WARN_DAYS} days"),
        )
        .fix(renew)
    } else {
        Finding::ok(
            name,
            "certificates/served",
            format!("serves {file}, valid until {not_after}"),
        )
    };
    vec![finding.evidence(evidence)]
}

/// What each health endpoint answered: (HTTP code, body); `None` when
/// nothing answered.
type Health = BTreeMap<&'static str, Option<(u16, String)>>;

/// `/livez`, `/readyz?verbose` of the API server and the
/// controller-manager's and scheduler's `/healthz`, asked at once (curl on
/// the master, addresses from the manifests).
async fn health(ctx: &CheckCtx<'_>, t: &dyn Transport, facts: &BTreeMap<String, String>) -> Health {
    let manifest = |pod: &str| {
        facts
            .get(&format!("manifest {pod}"))
            .cloned()
            .unwrap_or_default()
    };
    let base = |pod: &str| {
        remedy_manifest::default_health_url(pod, &manifest(pod))
            .and_then(|u| u.rsplit_once('/').map(|(b, _)| b.to_string()))
    };
    let asks: Vec<(&'static str, Option<String>)> = vec![
        (
            "livez",
            base("kube-apiserver").map(|b| format!("{b}/livez")),
        ),
        (
            "readyz",
            base("kube-apiserver").map(|b| format!("{b}/readyz?verbose")),
        ),
        (
            "kube-controller-manager",
            base("kube-controller-manager").map(|b| format!("{b}/healthz")),
        ),
        (
            "kube-scheduler",
            base("kube-scheduler").map(|b| format!("{b}/healthz")),
        ),
    ];
    let budget = ctx.left().min(Duration::from_secs(3));
    let secs = (budget.as_secs_f64() - 0.3).max(0.5);
    let calls = asks.into_iter().map(|(what, url)| async move {
        let Some(url) = url else { return (what, None) };
        let cmd = format!(
            "curl -sk --max-time {secs:.1} -w '\\n%{{http_code}}' {}",
            quote(&url)
        );
        let answer = t.probe(&cmd, budget).await.ok().and_then(|o| {
            let (body, code) = o
                .stdout
                .trim_end()
                .rsplit_once('\n')
                .unwrap_or(("", o.stdout.trim()));
            let code: u16 = code.trim().parse().ok()?;
            (code != 0).then(|| (code, body.to_string()))
        });
        (what, answer)
    });
    futures::future::join_all(calls).await.into_iter().collect()
}

/// The newest container of `pod`, as `crictl inspect` shows it.
struct Container {
    running: bool,
    exit_code: i64,
    restarts: u64,
    state: String,
}

fn container(inspect: &str) -> Option<Container> {
    let v: Value = serde_json::from_str(inspect).ok()?;
    let status = &v["status"];
    let state = status["state"].as_str()?.to_string();
    Some(Container {
        running: state == "CONTAINER_RUNNING",
        exit_code: status["exitCode"].as_i64().unwrap_or(0),
        restarts: status["annotations"]["io.kubernetes.container.restartCount"]
            .as_str()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
        state,
    })
}

/// The fix for a pod that will not start, by cause.
fn fix_for(ctx: &CheckCtx<'_>, host: &str, pod: &str, cause: &Cause) -> Option<String> {
    let limit = format!("-l {host}");
    match (cause, pod) {
        (Cause::CertificateTime, _) => ctx.run_fix("cert-renew", &limit),
        (Cause::EtcdUnreachable, _) => Some(super::ETCD_FIRST.into()),
        (Cause::EtcdDataUnusable, _) => ctx.restore_fix(),
        (Cause::UnknownFlag(_) | Cause::FileNotFound(_), "kube-apiserver") => {
            ctx.run_fix("apiserver-recover", &limit)
        }
        (Cause::UnknownFlag(flag), _) => ctx.run_fix(
            "manifest-edit",
            &format!(
                "{limit} -p component={pod} -p unset={}",
                flag.split('=').next().unwrap_or(flag)
            ),
        ),
        (Cause::OutOfMemory, _) => ctx.run_fix(
            "manifest-edit",
            &format!("{limit} -p component={pod} -p resources=limits.memory=<more>"),
        ),
        (Cause::AddressInUse, _) => Some(format!(
            "on {host}: find what holds the port (ss -ltnp) and stop it"
        )),
        (Cause::FileNotFound(_), _) => Some(format!(
            "on {host}: restore the file its manifest names, or the manifest from its backup"
        )),
    }
}

fn pod_findings(
    ctx: &CheckCtx<'_>,
    host: &str,
    pod: &'static str,
    facts: &BTreeMap<String, String>,
    staged: &[String],
    has_crictl: bool,
    health: &Health,
) -> Vec<Finding> {
    let get = |k: String| facts.get(&k).map(String::as_str).unwrap_or("");
    let check = format!("pod/{pod}");
    let manifest = get(format!("manifest {pod}"));
    let mut out = Vec::new();
    // Important pods down are critical; the controller-manager and
    // scheduler have leader-elected twins on the other masters.
    let down_severity = if matches!(pod, "etcd" | "kube-apiserver") {
        Severity::Critical
    } else {
        Severity::Warn
    };
    if manifest.is_empty() {
        if staged.iter().any(|f| f == &format!("{pod}.yaml")) {
            // The stranded-manifest finding says what to do.
            return vec![Finding::new(
                host,
                check,
                down_severity,
                "not running: its manifest is stranded in the staging directory",
            )];
        }
        return vec![Finding::new(host, check, down_severity, "no manifest in the manifests directory: the kubelet does not run it")
            .fix(Some(format!("restore {pod}.yaml from its backup (remedy's backup directory on {host}, /var/lib/remedy/backups)")))];
    }
    if let Err(e) = remedy_manifest::check_pod(manifest) {
        let fix = if pod == "kube-apiserver" {
            ctx.run_fix("apiserver-recover", &format!("-l {host}"))
        } else {
            Some(format!(
                "restore {pod}.yaml on {host} from its backup (/var/lib/remedy/backups)"
            ))
        };
        out.push(
            Finding::new(
                host,
                format!("manifest/{pod}"),
                Severity::Critical,
                format!("{pod}.yaml does not parse: the kubelet cannot start it"),
            )
            .evidence([e.to_string()])
            .fix(fix),
        );
    }
    if !has_crictl {
        out.push(Finding::new(
            host,
            check,
            Severity::Warn,
            "no crictl on the master: the container state cannot be read",
        ));
        return out;
    }
    let logs = get(format!("logs {pod}"));
    let Some(c) = container(get(format!("inspect {pod}"))) else {
        out.push(Finding::new(
            host,
            check,
            down_severity,
            "no container: the kubelet has not started it",
        ));
        return out;
    };
    let seen = format!(
        "{} (restarts {}, last exit code {})",
        c.state, c.restarts, c.exit_code
    );
    if c.running {
        let unhealthy = match pod {
            "kube-controller-manager" | "kube-scheduler" => health
                .get(pod)
                .and_then(|h| h.as_ref())
                .filter(|(code, _)| *code == 200)
                .is_none()
                .then(|| "its /healthz does not answer 200".to_string()),
            _ => None,
        };
        match unhealthy {
            None => out.push(Finding::ok(
                host,
                check,
                format!("running, restarts {}", c.restarts),
            )),
            Some(what) => {
                let mut f =
                    Finding::new(host, check, Severity::Warn, format!("running but {what}"));
                if let Some((cause, line)) = classify(logs) {
                    f.message.push_str(&format!(": {}", cause.describe()));
                    f = f.evidence([line]).fix(fix_for(ctx, host, pod, &cause));
                }
                out.push(f);
            }
        }
        if pod == "kube-apiserver" {
            out.extend(apiserver_health(ctx, host, health, logs));
        }
        return out;
    }
    let mut f = Finding::new(host, check, down_severity, format!("not running: {seen}"));
    match classify(logs) {
        Some((cause, line)) => {
            f.message = format!("not running: {} — {seen}", cause.describe());
            f = f.evidence([line]).fix(fix_for(ctx, host, pod, &cause));
        }
        None => {
            f = f.evidence(
                logs.lines()
                    .rev()
                    .take(3)
                    .map(str::to_string)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev(),
            );
        }
    }
    out.push(f);
    out
}

/// The API server's `/livez` and `/readyz?verbose`, failing checks named.
fn apiserver_health(ctx: &CheckCtx<'_>, host: &str, health: &Health, logs: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    for (what, check) in [("livez", "apiserver/livez"), ("readyz", "apiserver/readyz")] {
        match health.get(what).and_then(|h| h.as_ref()) {
            Some((200, _)) => out.push(Finding::ok(host, check, "ok")),
            answer => {
                let failing: Vec<String> = answer
                    .map(|(_, body)| {
                        body.lines()
                            .filter(|l| l.starts_with("[-]"))
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default();
                let message = match answer {
                    None => "does not answer".to_string(),
                    Some((code, _)) if failing.is_empty() => format!("HTTP {code}"),
                    Some((code, _)) => format!(
                        "HTTP {code}, failing: {}",
                        failing
                            .iter()
                            .map(|l| l
                                .trim_start_matches("[-]")
                                .split_whitespace()
                                .next()
                                .unwrap_or(""))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                let mut f = Finding::new(host, check, Severity::Critical, message)
                    .evidence(failing.clone());
                if failing.iter().any(|l| l.contains("etcd")) {
                    f = f.fix(fix_for(
                        ctx,
                        host,
                        "kube-apiserver",
                        &Cause::EtcdUnreachable,
                    ));
                } else if let Some((cause, line)) = classify(logs) {
                    f = f
                        .evidence([line])
                        .fix(fix_for(ctx, host, "kube-apiserver", &cause));
                }
                out.push(f);
            }
        }
    }
    out
}

/// Manifests an interrupted restart left in the staging directory.
fn stranded(
    ctx: &CheckCtx<'_>,
    host: &Host,
    staged: &[String],
    facts: &BTreeMap<String, String>,
) -> Vec<Finding> {
    let name = host.name.as_str();
    if staged.is_empty() {
        return vec![Finding::ok(name, "staging", "no stranded manifests")];
    }
    let in_place = facts.get("manifests-dir").map(String::as_str).unwrap_or("");
    let only: Vec<&str> = staged
        .iter()
        .filter(|f| !in_place.lines().any(|l| l.trim() == f.as_str()))
        .filter_map(|f| f.strip_suffix(".yaml"))
        .collect();
    let params: Vec<String> = only.iter().map(|p| format!("-p pods={p}")).collect();
    let fix = if only.is_empty() {
        Some(format!(
            "on {name}: the staged copies are also in place: compare them (diff) and keep one"
        ))
    } else {
        ctx.run_fix(
            "static-pod-restart",
            &format!("-l {name} {}", params.join(" ")),
        )
    };
    vec![Finding::new(
        name,
        "staging",
        Severity::Critical,
        format!(
            "manifest(s) stranded in the staging directory (the kubelet is not running them): {}",
            staged.join(", ")
        ),
    )
    .fix(fix)]
}

/// Disk, memory, the API server's file descriptors.
fn resources(host: &str, facts: &BTreeMap<String, String>) -> Vec<Finding> {
    let mut out = Vec::new();
    let df = facts.get("df").map(String::as_str).unwrap_or("");
    for (mount, line) in ["/var/lib/etcd", "/"].into_iter().zip(df.lines().skip(1)) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
        let (Some(used), Some(avail)) = (num(2), num(3)) else {
            continue;
        };
        // As df's Use% counts: of what non-root users can have (the
        // blocks reserved for root are not free for etcd either way).
        let pct = avail as f64 * 100.0 / (used + avail).max(1) as f64;
        let gib = avail as f64 / 1048576.0;
        // A big disk keeps many GiB at a low percentage: both must be low.
        let severity = match (level(pct, 5.0, 10.0), gib) {
            (Severity::Critical, g) if g < 2.0 => Severity::Critical,
            (Severity::Ok, _) => Severity::Ok,
            (_, g) if g < 10.0 => Severity::Warn,
            _ => Severity::Ok,
        };
        out.push(
            Finding::new(
                host,
                format!("disk {mount}"),
                severity,
                format!("{gib:.1} GiB free ({pct:.0}%)"),
            )
            .evidence([line.to_string()]),
        );
    }
    let mem = facts.get("meminfo").map(String::as_str).unwrap_or("");
    let kb = |k: &str| {
        mem.lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    if let (Some(total), Some(avail)) = (kb("MemTotal:"), kb("MemAvailable:")) {
        let pct = avail as f64 * 100.0 / total.max(1) as f64;
        out.push(Finding::new(
            host,
            "memory",
            level(pct, 5.0, 10.0),
            format!(
                "{:.1} GiB available of {:.1} GiB ({pct:.0}%)",
                avail as f64 / 1048576.0,
                total as f64 / 1048576.0
            ),
        ));
    }
    let fds = facts.get("fds").map(String::as_str).unwrap_or("");
    let mut lines = fds.lines();
    if let (Some(open), Some(limit)) = (
        lines.next().and_then(|l| l.trim().parse::<u64>().ok()),
        lines
            .next()
            .and_then(|l| l.split_whitespace().nth(3))
            .and_then(|v| v.parse::<u64>().ok()),
    ) {
        let used = open as f64 * 100.0 / limit.max(1) as f64;
        out.push(Finding::new(host, "apiserver/fds", level(100.0 - used, 5.0, 20.0), format!("{open} open file descriptors of {limit} ({used:.0}%)"))
            .fix((used >= 80.0).then(|| format!("on {host}: find what holds connections to the API server (ss -tnp), or raise its LimitNOFILE"))));
    }
    out
}

/// Critical under `critical`% left, warn under `warn`%.
fn level(left_pct: f64, critical: f64, warn: f64) -> Severity {
    if left_pct < critical {
        Severity::Critical
    } else if left_pct < warn {
        Severity::Warn
    } else {
        Severity::Ok
    }
}

/// Every certificate and kubeconfig client certificate, as
/// `kubeadm certs check-expiration` lists them.
async fn certificates(ctx: &CheckCtx<'_>, host: &Host, t: &dyn Transport) -> Vec<Finding> {
    let name = host.name.as_str();
    let mut names = kubeadm::KUBECONFIGS.to_vec();
    names.push(kubeadm::KUBELET_CONF);
    let layout = host_layout(host, &None, &None, &names);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let report = match read_host_pki(t, name, &layout)
        .await
        .map_err(|e| e.to_string())
        .and_then(|found| layout.expiration(&found, now).map_err(|e| e.to_string()))
    {
        Ok(r) => r,
        Err(e) => {
            return vec![Finding::new(
                name,
                "certificates",
                Severity::Warn,
                format!("cannot read the PKI: {e}"),
            )]
        }
    };
    let mut expired = Vec::new();
    let mut soon = Vec::new();
    let mut kubelet = Vec::new();
    for e in &report.entries {
        let Some(days) = e.days_left else { continue };
        let line = format!(
            "{} ({}): {}",
            e.name,
            e.path,
            if e.not_after.is_some_and(|t| t <= now) {
                "EXPIRED".to_string()
            } else {
                format!("{days} days left")
            }
        );
        if e.left_to_kubelet() {
            if days < CERT_WARN_DAYS {
                kubelet.push(line);
            }
        } else if e.not_after.is_some_and(|t| t <= now) {
            expired.push(line);
        } else if days < CERT_WARN_DAYS {
            soon.push(line);
        }
    }
    let renew = ctx.run_fix("cert-renew", &format!("-l {name}"));
    let mut out = Vec::new();
    if !expired.is_empty() {
        out.push(
            Finding::new(
                name,
                "certificates",
                Severity::Critical,
                format!("{} certificate(s) EXPIRED", expired.len()),
            )
            .evidence(expired)
            .fix(renew),
        );
    } else if !soon.is_empty() {
        out.push(
            Finding::new(
                name,
                "certificates",
                Severity::Warn,
                format!(
                    "{} certificate(s) expire within {CERT_WARN_DAYS} days",
                    soon.len()
                ),
            )
            .evidence(soon)
            .fix(renew),
        );
    } else {
        out.push(Finding::ok(
            name,
            "certificates",
            format!(
                "{} certificates, earliest renewable expiry in {} days",
                report.entries.len(),
                report.min_days_left()
            ),
        ));
    }
    if !kubelet.is_empty() {
        out.push(Finding::new(name, "certificates/kubelet.conf", Severity::Warn, "the kubelet's client certificate expired or expires soon; the kubelet rotates it itself (not renewed by remedy)").evidence(kubelet).fix(Some(format!("on {name}: check the kubelet's certificate rotation (rotateCertificates, /var/lib/kubelet/pki)"))));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_output_splits_into_sections() {
        let s = sections("junk\n@@@ kubelet\nrunning\n@@@ staging\n@@@ df\na\nb\n");
        assert_eq!(s["kubelet"], "running\n");
        assert_eq!(s["staging"], "");
        assert_eq!(s["df"], "a\nb\n");
        assert!(!s.contains_key("junk"));
    }

    #[test]
    fn crictl_inspect_gives_state_restarts_and_exit_code() {
        let c = container(r#"{"status":{"state":"CONTAINER_EXITED","exitCode":1,"annotations":{"io.kubernetes.container.restartCount":"3"}},"info":{"pid":0}}"#).unwrap();
        assert!(!c.running);
        assert_eq!((c.exit_code, c.restarts), (1, 3));
        assert!(container("not json").is_none());
    }

    #[test]
    fn disk_is_judged_as_df_counts_and_a_big_disk_is_not_full_at_8_percent() {
        let df = |used: u64, avail: u64| {
            let mut facts = BTreeMap::new();
            facts.insert(
                "df".to_string(),
                format!("Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/vda 264212084 {used} {avail} 79% /var/lib/etcd\n/dev/vda 264212084 {used} {avail} 79% /\n"),
            );
            resources("m", &facts)
                .into_iter()
                .map(|f| (f.check, f.severity))
                .collect::<Vec<_>>()
        };
        // 19 GiB free of a 264 GB disk, 21% as df counts: fine.
        assert_eq!(
            df(75436684, 20064580)[0],
            ("disk /var/lib/etcd".to_string(), Severity::Ok)
        );
        // 3 GiB free, 4%: a warning; 1 GiB, 1%: critical.
        assert_eq!(
            df(75436684, 3 << 20)[1],
            ("disk /".to_string(), Severity::Warn)
        );
        assert_eq!(
            df(75436684, 1 << 20)[1],
            ("disk /".to_string(), Severity::Critical)
        );
    }

    #[test]
    fn levels_follow_what_is_left() {
        assert_eq!(level(50.0, 5.0, 10.0), Severity::Ok);
        assert_eq!(level(8.0, 5.0, 10.0), Severity::Warn);
        assert_eq!(level(2.0, 5.0, 10.0), Severity::Critical);
    }
}
