//! `remedy daemon --config FILE` runs the runbooks scheduled in the site
//! config's `daemon:` block on their cron schedules, and `remedy schedule
//! list|next` shows what will run when. Each firing is a
//! normal `remedy run … --yes` in a child process (same journal, same locks,
//! same approval policy — an `auto_approve` rule is how a schedule runs
//! unattended), and every firing, skip and catch-up is a journal event under
//! the run id `schedule:NAME`. With `coordination:` in the site config,
//! several daemons share the schedules: each slot is settled by one of them
//! (`leadership.rs`).
//!
//! ```yaml
//! daemon:
//!   timezone: Europe/Berlin          # default UTC; cron times are local to it
//!   kill_switch: /etc/remedy/STOP    # while this file exists nothing starts
//!   catch_up: skip                   # after downtime: skip (default) | run_once
//!   schedules:
//!     - name: etcd-nightly
//!       cron: "0 30 3 * * *"         # 5 fields, or 6 with seconds first
//!       runbook: etcd-maintenance
//!       inventory: /etc/remedy/prod.yaml
//!       params: { retention: 1000 }
//!       limit: "master-*"
//!       window: "02:00-05:00"         # only start inside this local window
//! ```
//!
//! It logs through `tracing` (`service_log`) and, with `--metrics-listen`,
//! answers `GET /metrics` (`metrics`) and `GET /healthz` on that address.

use super::leadership::{Leadership, Slot};
use super::{journal, metrics, service_log, Exit, Global, Output};
use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use serde::Deserialize;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    timezone: Option<String>,
    #[serde(default)]
    kill_switch: Option<PathBuf>,
    #[serde(default)]
    catch_up: Option<String>,
    schedules: Vec<FileSchedule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSchedule {
    name: String,
    cron: String,
    runbook: String,
    inventory: PathBuf,
    #[serde(default)]
    params: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    limit: Option<String>,
    #[serde(default)]
    window: Option<String>,
    #[serde(default)]
    dirs: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CatchUp {
    Skip,
    RunOnce,
}

struct Schedule {
    name: String,
    cron_text: String,
    cron: Cron,
    runbook: String,
    inventory: PathBuf,
    params: Vec<String>,
    limit: Option<String>,
    /// Minutes of the day [from, to) in the schedule's time zone.
    window: Option<(u32, u32)>,
    dirs: Vec<PathBuf>,
}

pub(super) struct Config {
    path: PathBuf,
    /// `--config` given to the daemon, passed on to each run.
    site_config: Option<PathBuf>,
    tz: Tz,
    kill_switch: Option<PathBuf>,
    catch_up: CatchUp,
    schedules: Vec<Schedule>,
}

impl Config {
    /// How many schedules it holds.
    pub(super) fn schedule_count(&self) -> usize {
        self.schedules.len()
    }
}

fn parse_window(text: &str) -> Option<(u32, u32)> {
    let (a, b) = text.split_once('-')?;
    let minutes = |t: &str| -> Option<u32> {
        let (h, m) = t.trim().split_once(':')?;
        let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
        (h < 24 && m < 60).then_some(h * 60 + m)
    };
    Some((minutes(a)?, minutes(b)?))
}

/// The `daemon:` block, checked (with the rest of the site config).
pub(super) fn load(g: &Global) -> Result<Config, String> {
    let path = g
        .config
        .clone()
        .unwrap_or_else(|| remedy_journal::remedy_home().join("config.yaml"));
    let path = path.as_path();
    // The rest of the file is checked as the site config.
    super::config::load(g).map_err(|d| d.render_body())?;
    let src = super::input::read(path, "site config").map_err(|d| {
        let d = match d.source {
            None => d.with_hint(
                "pass --config FILE with a `daemon:` block of schedules (see examples/config.yaml)",
            ),
            Some(_) => d,
        };
        super::input::ReadError(d).to_string()
    })?;
    let root =
        remedy_dsl::yaml::parse(&src).map_err(|d| remedy_dsl::Diagnostics(d).render_body())?;
    let Some(block) = root.get("daemon") else {
        return Err(format!(
            "{}: no `daemon:` block, so nothing is scheduled\n  = hint: add `daemon: {{ schedules: [...] }}` (see examples/config.yaml)",
            path.display()
        ));
    };
    let file: FileConfig = serde_json::from_value(block.to_json()).map_err(|e| {
        format!(
            "{}: `daemon`: {e}\n  = hint: keys: timezone, kill_switch, catch_up, schedules; each schedule: name, cron, runbook, inventory, params, limit, window, dirs",
            path.display()
        )
    })?;
    let tz: Tz = match &file.timezone {
        None => Tz::UTC,
        Some(t) => t.parse().map_err(|_| {
            format!(
                "{}: unknown time zone `{t}`\n  = hint: an IANA name such as UTC, Europe/Berlin, America/New_York",
                path.display()
            )
        })?,
    };
    let catch_up = match file.catch_up.as_deref() {
        None | Some("skip") => CatchUp::Skip,
        Some("run_once") => CatchUp::RunOnce,
        Some(other) => {
            return Err(format!(
                "{}: catch_up `{other}` is not one of: skip, run_once",
                path.display()
            ))
        }
    };
    let mut problems = Vec::new();
    let mut schedules = Vec::new();
    for s in file.schedules {
        let at = format!("{}: schedule `{}`", path.display(), s.name);
        let cron = match Cron::from_str(&s.cron) {
            Ok(c) => c,
            Err(e) => {
                problems.push(format!(
                    "{at}: cron `{}`: {e} (5 fields, or 6 with seconds first)",
                    s.cron
                ));
                continue;
            }
        };
        if let Err(e) = super::library::load(&s.runbook, &s.dirs) {
            problems.push(format!("{at}: {e}"));
        }
        if !s.inventory.is_file() {
            problems.push(format!(
                "{at}: inventory {} does not exist",
                s.inventory.display()
            ));
        }
        let window = match &s.window {
            None => None,
            Some(w) => match parse_window(w) {
                Some(x) => Some(x),
                None => {
                    problems.push(format!("{at}: window `{w}` is not HH:MM-HH:MM"));
                    None
                }
            },
        };
        if schedules.iter().any(|x: &Schedule| x.name == s.name) {
            problems.push(format!("{at}: the name is used twice"));
        }
        let mut params = Vec::new();
        for (k, v) in &s.params {
            match v {
                serde_json::Value::Array(items) => {
                    for i in items {
                        params.push(format!(
                            "{k}={}",
                            i.as_str()
                                .map(str::to_string)
                                .unwrap_or_else(|| i.to_string())
                        ));
                    }
                }
                serde_json::Value::String(t) => params.push(format!("{k}={t}")),
                other => params.push(format!("{k}={other}")),
            }
        }
        schedules.push(Schedule {
            name: s.name,
            cron_text: s.cron,
            cron,
            runbook: s.runbook,
            inventory: std::fs::canonicalize(&s.inventory).unwrap_or(s.inventory),
            params,
            limit: s.limit,
            window,
            dirs: s.dirs,
        });
    }
    if !problems.is_empty() {
        return Err(problems.join("\n"));
    }
    Ok(Config {
        path: path.to_path_buf(),
        site_config: g.config.clone(),
        tz,
        kill_switch: file.kill_switch,
        catch_up,
        schedules,
    })
}

fn next_after(s: &Schedule, tz: &Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    s.cron
        .find_next_occurrence(&after.with_timezone(tz), false)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn local(t: DateTime<Utc>, tz: &Tz) -> String {
    t.with_timezone(tz)
        .format("%Y-%m-%d %H:%M:%S %Z")
        .to_string()
}

fn schedule_run_id(name: &str) -> String {
    format!("schedule:{name}")
}

/// The last time the schedule fired (or was caught up or skipped), from the journal.
fn last_fired(j: &remedy_journal::Journal, name: &str) -> Option<DateTime<Utc>> {
    let events = j.events(&schedule_run_id(name)).ok()?;
    events
        .iter()
        .rev()
        .find_map(|e| e.payload["scheduled_ms"].as_i64())
        .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
}

fn record(j: &remedy_journal::Journal, name: &str, kind: &str, payload: serde_json::Value) {
    let _ = j.append(&remedy_journal::NewEvent {
        run_id: schedule_run_id(name),
        time_ms: journal::now_ms(),
        actor: format!("remedy daemon ({})", remedy_journal::os_user()),
        host: None,
        step: None,
        kind: kind.into(),
        payload,
    });
}

fn say(msg: &str) {
    tracing::info!("{msg}");
}

/// `remedy daemon`'s own flags.
#[derive(Debug, clap::Args)]
pub struct DaemonArgs {
    /// Answer GET /metrics (Prometheus) and GET /healthz on this address
    /// (e.g. 127.0.0.1:9187). Off by default.
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics_listen: Option<String>,
    #[command(flatten)]
    pub log: service_log::LogArgs,
    #[command(flatten)]
    pub config: super::flags::ConfigArg,
}

/// Serve /metrics and /healthz on `addr` from a thread of its own: the
/// schedule loop blocks while a run goes on, the scrapes must not. Binding
/// happens here, so a busy address stops the daemon before it schedules.
fn start_metrics(
    addr: &str,
    j: std::sync::Arc<remedy_journal::Journal>,
    cfg: &Config,
) -> Result<(), String> {
    let listener = std::net::TcpListener::bind(addr)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|e| {
            format!("--metrics-listen {addr}: cannot listen: {e}\n  = hint: pick a free ADDR:PORT")
        })?;
    let bound = listener
        .local_addr()
        .map_or_else(|_| addr.to_string(), |a| a.to_string());
    let url = format!("http://{bound}/metrics");
    let schedules = cfg.schedules.len();
    let kill_switch = cfg.kill_switch.clone();
    let healthz = move || {
        let kill_switch_on = kill_switch.as_ref().is_some_and(|k| k.exists());
        async move {
            axum::Json(serde_json::json!({
                "status": "ok",
                "schedules": schedules,
                "kill_switch": kill_switch_on,
            }))
        }
    };
    let router = metrics::routes(j, None).route("/healthz", axum::routing::get(healthz));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("--metrics-listen: cannot start its runtime: {e}"))?;
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            runtime.block_on(async move {
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(listener) => {
                        let limits = remedy_chatops::ServeLimits::default();
                        remedy_chatops::serve(listener, router, limits, std::future::pending())
                            .await
                    }
                    Err(e) => tracing::error!("--metrics-listen {bound}: {e}"),
                }
            })
        })
        .map_err(|e| format!("--metrics-listen: cannot start its thread: {e}"))?;
    say(&format!("metrics on {url} (and /healthz)"));
    Ok(())
}

pub fn list(g: &Global, next: Option<usize>) -> Exit {
    let cfg = match load(g) {
        Ok(c) => c,
        Err(msg) => {
            eprintln!("error: {msg}");
            return Exit::Invalid;
        }
    };
    let j = journal::open().ok();
    let now = Utc::now();
    if let Some(count) = next {
        // The next `count` firings across every schedule, in time order.
        let mut firings: Vec<(DateTime<Utc>, &str)> = Vec::new();
        for s in &cfg.schedules {
            let mut t = now;
            for _ in 0..count {
                match next_after(s, &cfg.tz, t) {
                    Some(n) => {
                        firings.push((n, &s.name));
                        t = n;
                    }
                    None => break,
                }
            }
        }
        firings.sort();
        firings.truncate(count);
        if g.output == Output::Json {
            let v: Vec<_> = firings
                .iter()
                .map(|(t, n)| serde_json::json!({ "schedule": n, "at": t.to_rfc3339(), "local": local(*t, &cfg.tz) }))
                .collect();
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        } else {
            for (t, n) in firings {
                println!("{}  {n}", local(t, &cfg.tz));
            }
        }
        return Exit::Ok;
    }
    let rows: Vec<serde_json::Value> = cfg
        .schedules
        .iter()
        .map(|s| {
            let last = j.as_ref().and_then(|j| last_fired(j, &s.name));
            serde_json::json!({
                "name": s.name,
                "cron": s.cron_text,
                "timezone": cfg.tz.name(),
                "next": next_after(s, &cfg.tz, now).map(|t| local(t, &cfg.tz)),
                "last": last.map(|t| local(t, &cfg.tz)),
                "runbook": s.runbook,
                "inventory": s.inventory.display().to_string(),
                "window": s.window.map(|(a, b)| format!("{:02}:{:02}-{:02}:{:02}", a / 60, a % 60, b / 60, b % 60)),
            })
        })
        .collect();
    if g.output == Output::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).unwrap_or_default()
        );
        return Exit::Ok;
    }
    println!(
        "{:<20}  {:<16}  {:<28}  {:<28}  {:<18}  WINDOW",
        "NAME", "CRON", "NEXT", "LAST", "RUNBOOK"
    );
    for r in rows {
        let f = |k: &str| r[k].as_str().unwrap_or("-").to_string();
        println!(
            "{:<20}  {:<16}  {:<28}  {:<28}  {:<18}  {}",
            f("name"),
            f("cron"),
            f("next"),
            f("last"),
            f("runbook"),
            f("window")
        );
    }
    if let Some(k) = &cfg.kill_switch {
        if k.exists() {
            println!("KILL SWITCH ON: {} exists; nothing will start", k.display());
        }
    }
    Exit::Ok
}

/// Why a firing must not start now, if it must not.
fn blocked(cfg: &Config, s: &Schedule, j: &remedy_journal::Journal) -> Option<String> {
    if let Some(k) = &cfg.kill_switch {
        if k.exists() {
            return Some(format!("kill switch {} exists", k.display()));
        }
    }
    if let Some((from, to)) = s.window {
        let now = Utc::now().with_timezone(&cfg.tz);
        let m = now.format("%H").to_string().parse::<u32>().unwrap_or(0) * 60
            + now.format("%M").to_string().parse::<u32>().unwrap_or(0);
        let inside = if from <= to {
            m >= from && m < to
        } else {
            m >= from || m < to
        };
        if !inside {
            return Some(format!(
                "outside the maintenance window {:02}:{:02}-{:02}:{:02} ({})",
                from / 60,
                from % 60,
                to / 60,
                to % 60,
                cfg.tz.name()
            ));
        }
    }
    let inv = s.inventory.display().to_string();
    if let Ok(locks) = j.locks() {
        if let Some(l) = locks
            .iter()
            .find(|l| l.target.ends_with(&format!("@{inv}")))
        {
            return Some(format!(
                "target {} is locked by run {} ({}@{}{})",
                l.target,
                l.run_id,
                l.user,
                l.host,
                if l.stale { ", stale" } else { "" }
            ));
        }
    }
    None
}

/// Start the schedule's run and wait for it; the journal event says how it went.
fn fire(
    cfg: &Config,
    s: &Schedule,
    scheduled: DateTime<Utc>,
    j: &remedy_journal::Journal,
    why: &str,
) {
    if let Some(reason) = blocked(cfg, s, j) {
        tracing::warn!(schedule = %s.name, "{}: skipped: {reason}", s.name);
        record(
            j,
            &s.name,
            "schedule_skipped",
            serde_json::json!({ "scheduled_ms": scheduled.timestamp_millis(), "reason": reason }),
        );
        return;
    }
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("remedy"));
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("run")
        .arg(&s.runbook)
        .arg("-i")
        .arg(&s.inventory)
        .arg("--yes")
        .stdin(std::process::Stdio::null());
    for p in &s.params {
        cmd.arg("-p").arg(p);
    }
    if let Some(l) = &s.limit {
        cmd.arg("--limit").arg(l);
    }
    for d in &s.dirs {
        cmd.arg("--dir").arg(d);
    }
    if let Some(c) = &cfg.site_config {
        cmd.arg("--config").arg(c);
    }
    cmd.env("REMEDY_SCHEDULE", &s.name);
    say(&format!("{}: starting {} ({why})", s.name, s.runbook));
    let out = cmd.output();
    let (code, stdout, stderr) = match out {
        Ok(o) => (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        ),
        Err(e) => (None, String::new(), e.to_string()),
    };
    let run_id = stdout
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("run id "))
        .map(str::to_string);
    let tail: String = stderr
        .lines()
        .rev()
        .take(5)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n");
    // A plan that fails on some host changes nothing: the target is unhealthy.
    let (kind, outcome) = if stderr.contains("The plan failed on some hosts") {
        (
            "schedule_skipped",
            "unhealthy: the plan failed on some hosts; nothing was changed".to_string(),
        )
    } else if stderr.contains("is locked by run") {
        (
            "schedule_skipped",
            "a target is locked by another run".to_string(),
        )
    } else {
        (
            "schedule_fired",
            match code {
                Some(0) => "ok".into(),
                Some(c) => format!("exit {c}"),
                None => "killed".into(),
            },
        )
    };
    let run = run_id
        .as_deref()
        .map(|r| format!(" (run {r})"))
        .unwrap_or_default();
    if outcome == "ok" {
        tracing::info!(schedule = %s.name, "{}: ok{run}", s.name);
    } else {
        tracing::warn!(schedule = %s.name, "{}: {outcome}{run}", s.name);
    }
    record(
        j,
        &s.name,
        kind,
        serde_json::json!({
            "scheduled_ms": scheduled.timestamp_millis(),
            "why": why,
            "run_id": run_id,
            "exit": code,
            "outcome": outcome,
            "stderr_tail": tail,
        }),
    );
}

/// Whether this daemon runs the slot: alone, always; coordinated, when it
/// settled the slot in the ops etcd (an unreachable ops etcd skips it, journaled).
fn settled_here(
    leadership: &mut Option<Leadership>,
    s: &Schedule,
    at: DateTime<Utc>,
    j: &remedy_journal::Journal,
) -> bool {
    let Some(l) = leadership else {
        return true;
    };
    match l.settle(&s.name, at) {
        Slot::Mine => true,
        Slot::Elsewhere(why) => {
            say(&format!("{}: slot {at} not run here: {why}", s.name));
            false
        }
        Slot::Unreachable(e) => {
            let reason = format!(
                "the ops etcd cannot be reached, so no daemon is known to settle this slot: {e}"
            );
            say(&format!("{}: skipped: {reason}", s.name));
            record(
                j,
                &s.name,
                "schedule_skipped",
                serde_json::json!({ "scheduled_ms": at.timestamp_millis(), "reason": reason }),
            );
            false
        }
    }
}

pub fn daemon(g: &Global, args: &DaemonArgs) -> Exit {
    service_log::init(&args.log);
    let cfg = match load(g) {
        Ok(c) => c,
        Err(msg) => {
            eprintln!("error: {msg}");
            return Exit::Invalid;
        }
    };
    let j = match journal::open() {
        Ok(j) => j,
        Err(msg) => {
            eprintln!("error: {msg}");
            return Exit::Invalid;
        }
    };
    let site = match super::config::load(g) {
        Ok(c) => c,
        Err(d) => {
            eprint!("{}", d.render());
            return Exit::Invalid;
        }
    };
    let mut leadership = match Leadership::start(&site) {
        Ok(l) => l,
        Err(msg) => {
            eprintln!("error: {msg}");
            return Exit::StepFailed;
        }
    };
    if let Some(addr) = &args.metrics_listen {
        if let Err(msg) = start_metrics(addr, std::sync::Arc::clone(&j), &cfg) {
            eprintln!("error: {msg}");
            return Exit::Invalid;
        }
    }
    say(&format!(
        "remedy daemon: {} schedule(s) from {} ({}), journal {}",
        cfg.schedules.len(),
        cfg.path.display(),
        cfg.tz.name(),
        j.path().display()
    ));
    // Catch up on firings missed while the daemon was down.
    let now = Utc::now();
    for s in &cfg.schedules {
        let Some(last) = last_fired(&j, &s.name) else {
            continue;
        };
        let mut missed = 0;
        let mut latest = None;
        let mut t = last;
        while let Some(n) = next_after(s, &cfg.tz, t) {
            if n >= now || missed > 10_000 {
                break;
            }
            missed += 1;
            latest = Some(n);
            t = n;
        }
        if let Some(latest) = latest {
            match cfg.catch_up {
                CatchUp::Skip => {
                    say(&format!(
                        "{}: {missed} firing(s) missed while down; skipped (catch_up: skip)",
                        s.name
                    ));
                    record(
                        &j,
                        &s.name,
                        "schedule_missed",
                        serde_json::json!({ "scheduled_ms": latest.timestamp_millis(), "missed": missed, "policy": "skip" }),
                    );
                }
                CatchUp::RunOnce => {
                    if settled_here(&mut leadership, s, latest, &j) {
                        fire(
                            &cfg,
                            s,
                            latest,
                            &j,
                            &format!("catching up {missed} missed firing(s)"),
                        )
                    }
                }
            }
        }
    }
    let mut next: Vec<Option<DateTime<Utc>>> = cfg
        .schedules
        .iter()
        .map(|s| next_after(s, &cfg.tz, Utc::now()))
        .collect();
    loop {
        let Some((i, at)) = next
            .iter()
            .enumerate()
            .filter_map(|(i, t)| t.map(|t| (i, t)))
            .min_by_key(|(_, t)| *t)
        else {
            say("no schedule has a next firing; exiting");
            return Exit::Ok;
        };
        let wait = (at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        std::thread::sleep(wait);
        let s = &cfg.schedules[i];
        if settled_here(&mut leadership, s, at, &j) {
            fire(&cfg, s, at, &j, "scheduled");
        }
        // Alone, slots a long run covered are skipped; coordinated, every
        // slot is settled once, in order (a new leader takes up the ones
        // its predecessor left).
        next[i] = match leadership {
            None => next_after(s, &cfg.tz, at.max(Utc::now())),
            Some(_) => next_after(s, &cfg.tz, at),
        };
    }
}
