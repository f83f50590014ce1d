//! `remedy run` and `remedy plan`: compile, bind, plan, confirm, execute,
//! report. A real run without --yes shows the dry-run plan first and asks.

use super::approval;
use super::config::SiteConfig;
use super::journal::{self, JournalSink};
use super::{library, progress::Progress, render, request, Exit, Global, Output};
use remedy_chatops::NoticeKind;
use remedy_clock::SystemClock;
use remedy_dsl::{Approval, Diagnostics};
use remedy_engine::event::{EventSink, MemorySink, Tee};
use remedy_engine::executor::ApprovalGate;
use remedy_engine::redact::Redactor;
use remedy_engine::resume::{Recorded, ResumeState};
use remedy_engine::{bind, BoundRun, Executor, RunOptions, RunReport, RunStatus};
use remedy_journal::{Holder, Journal, NewRun};
use remedy_transport::ssh::SshConnector;
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn invalid(d: &Diagnostics) -> Exit {
    eprint!("{}", d.render());
    Exit::Invalid
}

/// A runbook bound to an inventory and params, ready to plan.
pub struct Prepared {
    pub runbook: remedy_dsl::Runbook,
    pub inventory: remedy_engine::Inventory,
    /// Absolute when it exists: the journal and the locks record it.
    pub inventory_path: String,
    pub bound: BoundRun,
}

fn prepare(
    g: &Global,
    source: Arc<remedy_dsl::Source>,
    inventory_path: &Path,
    req: Result<remedy_engine::Request, Diagnostics>,
) -> Result<Prepared, Exit> {
    let runbook = remedy_dsl::compile(source).map_err(|d| invalid(&d))?;
    let (inventory, req) = match (request::load_inventory(inventory_path), req) {
        (Ok(i), Ok(r)) => (i, r),
        (i, r) => {
            let mut all = Diagnostics::default();
            for d in [i.err(), r.err()].into_iter().flatten() {
                all.0.extend(d.0);
            }
            return Err(invalid(&all));
        }
    };
    let bound = bind(&runbook, &inventory, &req).map_err(|d| invalid(&d))?;
    let _ = g;
    Ok(Prepared {
        runbook,
        inventory,
        inventory_path: std::fs::canonicalize(inventory_path)
            .unwrap_or_else(|_| inventory_path.to_path_buf())
            .display()
            .to_string(),
        bound,
    })
}

/// The site config and who is acting (identity, and the journal's actor).
pub fn site(g: &Global) -> Result<(SiteConfig, String, String), Exit> {
    let config = super::config::load(g).map_err(|d| invalid(&d))?;
    let (requester, actor) = config.identity(g.as_name.as_deref()).map_err(|msg| {
        eprintln!("error: {msg}");
        Exit::Invalid
    })?;
    Ok((config, requester, actor))
}

pub fn runtime() -> Result<tokio::runtime::Runtime, Exit> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("error: cannot start the async runtime: {e}");
            Exit::StepFailed
        })
}

pub fn run(
    g: &Global,
    dirs: &[PathBuf],
    name: &str,
    dry_run: bool,
    break_glass: Option<&str>,
) -> Exit {
    let source = match library::load(name, dirs) {
        Ok(s) => s,
        Err(msg) => {
            eprintln!("error: {msg}");
            return Exit::Invalid;
        }
    };
    let inventory_path = request::inventory_path(g);
    let req = request::request(g);
    let inventory_path = match inventory_path {
        Ok(p) => p,
        Err(mut d) => {
            if let Err(r) = req {
                d.0.extend(r.0);
            }
            return invalid(&d);
        }
    };
    let prepared = match prepare(g, source.clone(), &inventory_path, req) {
        Ok(p) => p,
        Err(exit) => return exit,
    };
    let (config, requester, actor) = match site(g) {
        Ok(x) => x,
        Err(exit) => return exit,
    };
    let journal = match journal::open() {
        Ok(j) => j,
        Err(msg) => {
            eprintln!("error: {msg}");
            return Exit::Invalid;
        }
    };
    let runtime = match runtime() {
        Ok(r) => r,
        Err(exit) => return exit,
    };
    let connector = SshConnector::new(&prepared.inventory, g.accept_new_host_keys);
    let record = NewRun {
        run_id: uuid_v7(),
        runbook: prepared.runbook.name.clone(),
        runbook_ref: runbook_ref(&source.name),
        runbook_sha256: sha256_hex(source.text.as_bytes()),
        inventory: prepared.inventory_path.clone(),
        limit: g.limit.clone(),
        params: param_args(g),
        hosts: prepared
            .bound
            .hosts
            .iter()
            .map(|h| h.name.clone())
            .collect(),
        dry_run,
        actor,
        os_user: remedy_journal::os_user(),
        jump_host: remedy_journal::hostname(),
        pid: std::process::id(),
        pid_start: remedy_journal::process_start(std::process::id()),
        started_ms: journal::now_ms(),
    };
    let who = Who {
        config: &config,
        requester: &requester,
        break_glass,
    };
    runtime.block_on(async_run(
        g, &prepared, &connector, dry_run, &journal, record, None, &who,
    ))
}

/// Who runs it, under which site config, and whether approval is skipped
/// (break-glass, with its reason).
pub struct Who<'a> {
    pub config: &'a SiteConfig,
    pub requester: &'a str,
    pub break_glass: Option<&'a str>,
}

/// `remedy resume RUN`: continue an interrupted run where its journal says
/// it stopped, with the same runbook (unless --force), inventory, params and
/// --limit.
pub fn resume(g: &Global, run: &str, force: bool) -> Exit {
    let journal = match journal::open() {
        Ok(j) => j,
        Err(msg) => {
            eprintln!("error: {msg}");
            return Exit::Invalid;
        }
    };
    let record = match journal.run(run) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Invalid;
        }
    };
    let status = record.effective_status();
    if status != "interrupted" {
        let why = if status == "running" {
            format!(
                "it is still running (pid {} on {})",
                record.pid, record.jump_host
            )
        } else {
            format!("it ended with status `{status}`; there is nothing left to resume")
        };
        eprintln!(
            "error: cannot resume run {}: {why}\n  = hint: `remedy audit show {}` shows what it did",
            record.run_id, record.run_id
        );
        return Exit::Invalid;
    }
    if record.dry_run {
        eprintln!(
            "error: run {} was a dry-run; plan again instead of resuming",
            record.run_id
        );
        return Exit::Invalid;
    }
    let source = match library::load(
        record
            .runbook_ref
            .strip_prefix("builtin:")
            .unwrap_or(&record.runbook_ref),
        &[],
    ) {
        Ok(s) => s,
        Err(msg) => {
            eprintln!("error: cannot load the run's runbook again: {msg}");
            return Exit::Invalid;
        }
    };
    let (config, requester, actor) = match site(g) {
        Ok(x) => x,
        Err(exit) => return exit,
    };
    let sha = sha256_hex(source.text.as_bytes());
    if sha != record.runbook_sha256 {
        if !force {
            eprintln!(
                "error: runbook {} changed since run {} started (sha256 {} then, {} now)\n  = hint: resuming with different steps can skip or repeat work; check the change, then pass --force to resume with the new content",
                record.runbook_ref,
                record.run_id,
                &record.runbook_sha256[..12.min(record.runbook_sha256.len())],
                &sha[..12]
            );
            return Exit::Invalid;
        }
        eprintln!(
            "warning: runbook {} changed since the run started; resuming with the new content (--force)",
            record.runbook_ref
        );
    }
    // The same params, --limit and inventory as the run that stopped.
    let g2 = Global {
        params: record
            .params
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect(),
        limit: record.limit.clone(),
        params_file: None,
        ..g.clone()
    };
    let prepared = match prepare(
        &g2,
        source.clone(),
        Path::new(&record.inventory),
        request::request(&g2),
    ) {
        Ok(p) => p,
        Err(exit) => return exit,
    };
    let hosts: Vec<String> = prepared
        .bound
        .hosts
        .iter()
        .map(|h| h.name.clone())
        .collect();
    if hosts != record.hosts {
        eprintln!(
            "error: the inventory {} now gives hosts {} where the run had {}\n  = hint: restore the inventory as it was, or finish by hand (`remedy audit show {}` lists what was done)",
            record.inventory,
            hosts.join(", "),
            record.hosts.join(", "),
            record.run_id
        );
        return Exit::Invalid;
    }
    let events = match journal.events(&record.run_id) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Invalid;
        }
    };
    let state = ResumeState::from_events(events.iter().map(|e| Recorded {
        host: e.host.as_deref(),
        step: e.step.as_deref(),
        kind: &e.kind,
        payload: &e.payload,
    }));
    eprintln!(
        "resuming run {} ({} on {}): {}",
        record.run_id,
        record.runbook,
        record.hosts.join(", "),
        state.describe()
    );
    let runtime = match runtime() {
        Ok(r) => r,
        Err(exit) => return exit,
    };
    let connector = SshConnector::new(&prepared.inventory, g.accept_new_host_keys);
    let new = NewRun {
        run_id: record.run_id.clone(),
        runbook: record.runbook.clone(),
        runbook_ref: record.runbook_ref.clone(),
        runbook_sha256: record.runbook_sha256.clone(),
        inventory: record.inventory.clone(),
        limit: record.limit.clone(),
        params: record.params.clone(),
        hosts: record.hosts.clone(),
        dry_run: false,
        actor,
        os_user: remedy_journal::os_user(),
        jump_host: remedy_journal::hostname(),
        pid: std::process::id(),
        pid_start: remedy_journal::process_start(std::process::id()),
        started_ms: journal::now_ms(),
    };
    // An approval covers the run it was given for; a run that died before
    // it was approved (or authorised by break-glass) is not resumed into one.
    if let (Approval::Required(_), _) =
        approval::effective(&prepared.runbook, &prepared.inventory, &config)
    {
        let approved = events.iter().any(|e| {
            matches!(
                e.kind.as_str(),
                "approval_granted" | "break_glass" | "approval_auto"
            )
        });
        if !approved {
            eprintln!(
                "error: run {} stopped before it was approved, so it cannot be resumed\n  = hint: start it again with `remedy run {}` (it will ask for approval)",
                record.run_id, record.runbook
            );
            return Exit::Denied;
        }
    }
    let who = Who {
        config: &config,
        requester: &requester,
        break_glass: None,
    };
    runtime.block_on(async_run(
        g,
        &prepared,
        &connector,
        false,
        &journal,
        new,
        Some(state),
        &who,
    ))
}

fn uuid_v7() -> String {
    RunOptions::new(false).run_id
}

/// How to load the runbook again: `builtin:NAME` or an absolute path.
fn runbook_ref(source_name: &str) -> String {
    if source_name.starts_with("builtin:") {
        return source_name.to_string();
    }
    std::fs::canonicalize(source_name)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| source_name.to_string())
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The params as the user gave them (secret ones are references).
fn param_args(g: &Global) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(path) = &g.params_file {
        if let Ok(text) = std::fs::read_to_string(path) {
            let src = remedy_dsl::Source::new(path.display().to_string(), text);
            if let Ok(root) = remedy_dsl::yaml::parse(&src) {
                if let serde_json::Value::Object(m) = root.to_json() {
                    for (k, v) in m {
                        match v {
                            serde_json::Value::String(s) => out.push((k, s)),
                            serde_json::Value::Array(items) => {
                                for i in items {
                                    out.push((
                                        k.clone(),
                                        i.as_str()
                                            .map(str::to_string)
                                            .unwrap_or_else(|| i.to_string()),
                                    ));
                                }
                            }
                            other => out.push((k, other.to_string())),
                        }
                    }
                }
            }
        }
    }
    let mut given = Vec::new();
    for p in &g.params {
        if let Some((k, v)) = p.split_once('=') {
            given.push((k.trim().to_string(), v.to_string()));
        }
    }
    // --param wins over the file, a list param's items included.
    out.retain(|(k, _)| !given.iter().any(|(g, _)| g == k));
    out.extend(given);
    out
}

#[allow(clippy::too_many_arguments)]
async fn async_run(
    g: &Global,
    prepared: &Prepared,
    connector: &SshConnector,
    dry_run: bool,
    journal: &Arc<Journal>,
    record: NewRun,
    resume: Option<ResumeState>,
    who: &Who<'_>,
) -> Exit {
    let runbook = &prepared.runbook;
    let bound = &prepared.bound;
    let cancel = Arc::new(AtomicBool::new(false));
    {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                cancel.store(true, Ordering::SeqCst);
                eprintln!("\ninterrupt: stopping after the step that is running (Ctrl-C again to abort at once — that can leave a step half-done; `remedy resume` finishes it)");
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(Exit::Interrupted.into());
                }
            }
        });
    }
    let json = g.output == Output::Json;
    let color = super::use_color();
    let redactor = Redactor::new(bound);
    let run_id = record.run_id.clone();
    let options = |dry: bool| RunOptions {
        max_parallel: g.parallel as usize,
        run_id: run_id.clone(),
        ..RunOptions::new(dry)
    };

    if dry_run {
        // Only the journal records that a dry-run happened.
        if let Err(e) = journal.create_run(&record) {
            eprintln!("error: cannot record the dry-run in the journal: {e}");
            return Exit::StepFailed;
        }
        let sink = JournalSink::new(
            journal.clone(),
            record.actor.clone(),
            redactor.clone(),
            None,
        );
        let report = execute(
            runbook,
            bound,
            connector,
            &sink,
            cancel.clone(),
            options(true),
        )
        .await;
        let _ = journal.finish_run(&run_id, status_name(report.status));
        return finish(&report, json, color, true, &redactor);
    }

    if !g.yes && !std::io::stdin().is_terminal() {
        eprintln!("error: refusing to change hosts without confirmation: standard input is not a terminal\n  = hint: review the plan with `remedy plan {}` (same options), then pass --yes", runbook.name);
        return Exit::Denied;
    }
    // One lock per host of this inventory, held (and renewed) for the whole
    // run, planning included: two runs must not plan against each other.
    let targets: Vec<String> = bound
        .hosts
        .iter()
        .map(|h| journal::lock_target(&prepared.inventory_path, &h.name))
        .collect();
    let holder = Holder {
        run_id: run_id.clone(),
        user: record.os_user.clone(),
        host: record.jump_host.clone(),
        pid: record.pid,
        pid_start: record.pid_start,
    };
    let token = match journal.acquire(&targets, &holder, LOCK_TTL) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Denied;
        }
    };
    let _release = Release(journal.clone(), run_id.clone());
    {
        let journal = journal.clone();
        let run_id = run_id.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(LOCK_TTL / 3).await;
                let j = journal.clone();
                let id = run_id.clone();
                let _ = tokio::task::spawn_blocking(move || j.renew(&id, LOCK_TTL)).await;
            }
        });
    }

    let resuming = resume.is_some();
    let mut gate: Option<Arc<dyn ApprovalGate>> = None;
    if !resuming {
        // Every real run plans all its hosts first, in parallel and read-only —
        // with --yes too — so a problem on any host (an external CA on the last
        // master, an unreachable host) stops the run before anything changes.
        let preview = execute(
            runbook,
            bound,
            connector,
            &MemorySink::default(),
            cancel.clone(),
            options(true),
        )
        .await;
        if preview.status != RunStatus::Ok {
            let out = redactor.apply(&render::report(&preview, color));
            if json {
                eprint!("{out}");
            } else {
                print!("{out}");
            }
            eprintln!("The plan failed on some hosts (above); nothing was changed on any host.");
            return Exit::StepFailed;
        }
        let changing = preview
            .hosts
            .iter()
            .filter(|h| h.status == remedy_engine::HostStatus::WouldChange)
            .count();
        if !g.yes {
            print!("{}", redactor.apply(&render::report(&preview, color)));
            if changing == 0 {
                println!("Nothing to change.");
                return Exit::Ok;
            }
            if !confirm(&format!(
                "Apply to {changing} host(s), {}? [y/N] ",
                strategy_words(runbook)
            )) {
                eprintln!("Not confirmed: nothing was changed.");
                return Exit::Denied;
            }
        } else if !json {
            eprintln!(
                "planned {} host(s): {}",
                preview.hosts.len(),
                preview
                    .summary
                    .split(": ")
                    .nth(1)
                    .unwrap_or(&preview.summary)
            );
        }
        if let Err(e) = journal.create_run(&record) {
            eprintln!("error: cannot record the run in the journal, so nothing was changed: {e}");
            return Exit::StepFailed;
        }
        match approve(
            g,
            prepared,
            connector,
            journal,
            &record,
            who,
            preview,
            &redactor,
            cancel.clone(),
        )
        .await
        {
            Ok(g) => gate = g,
            Err(exit) => {
                let _ = journal.finish_run(&run_id, "denied");
                return exit;
            }
        }
    } else {
        if !g.yes && !confirm("Continue this run? [y/N] ") {
            eprintln!("Not confirmed: nothing was changed.");
            return Exit::Denied;
        }
        if let Err(e) = journal.reopen_run(&run_id, record.pid, record.pid_start, &record.jump_host)
        {
            eprintln!(
                "error: cannot record the resume in the journal, so nothing was changed: {e}"
            );
            return Exit::StepFailed;
        }
    }
    let _ = journal.append(&remedy_journal::NewEvent {
        run_id: run_id.clone(),
        time_ms: journal::now_ms(),
        actor: record.actor.clone(),
        host: None,
        step: None,
        kind: "locks_acquired".into(),
        payload: serde_json::json!({ "targets": targets, "token": token, "holder": format!("{}@{} pid {}", holder.user, holder.host, holder.pid) }),
    });
    let progress = Progress::new(redactor.clone());
    let sink = JournalSink::new(
        journal.clone(),
        record.actor.clone(),
        redactor.clone(),
        Some(journal::Fence {
            inventory: prepared.inventory_path.clone(),
            token,
        }),
    );
    let tee = Tee(vec![&sink, &progress]);
    let report = execute(
        runbook,
        bound,
        connector,
        &tee,
        cancel.clone(),
        RunOptions {
            resume,
            gate,
            ..options(false)
        },
    )
    .await;
    progress.finish();
    let _ = journal.finish_run(&run_id, status_name(report.status));
    if !who.config.chat.notify.is_empty() {
        let asker = asker_for(
            journal,
            who,
            &record,
            runbook,
            &who.config.chat.notify,
            cancel.clone(),
        );
        let kind = if report.status == RunStatus::Ok {
            NoticeKind::RunFinished
        } else {
            NoticeKind::RunFailed
        };
        let notice = asker.notice(
            kind,
            format!(
                "{} on {}: {}",
                runbook.name,
                record.hosts.join(", "),
                status_name(report.status)
            ),
            redactor.apply(&report.summary),
        );
        asker.notify(&notice).await;
    }
    finish(&report, json, color, false, &redactor)
}

fn asker_for(
    journal: &Arc<Journal>,
    who: &Who<'_>,
    record: &NewRun,
    runbook: &remedy_dsl::Runbook,
    notifiers: &[remedy_chatops::NotifierConfig],
    cancel: Arc<AtomicBool>,
) -> approval::Asker {
    approval::Asker {
        journal: journal.clone(),
        policy: remedy_dsl::ApprovalPolicy {
            quorum: 1,
            approvers: Vec::new(),
            forbid_requester: true,
            ttl_secs: 1800,
            scope: remedy_dsl::ApprovalScope::Run,
            auto_approve: None,
        },
        approvers: Vec::new(),
        run_id: record.run_id.clone(),
        runbook: runbook.name.clone(),
        hosts: record.hosts.clone(),
        requester: who.requester.to_string(),
        notifiers: notifiers.to_vec(),
        callback: who.config.chat.callback().ok().flatten(),
        retry: notify_retry(),
        cancel,
    }
}

/// Notification retries: REMEDY_NOTIFY_RETRY_MS shortens the backoff (tests).
fn notify_retry() -> remedy_chatops::Retry {
    let mut r = remedy_chatops::Retry::default();
    if let Some(ms) = std::env::var("REMEDY_NOTIFY_RETRY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        r.base_delay = Duration::from_millis(ms);
    }
    r
}

/// Obtain what the policy asks before anything changes: nothing, a
/// break-glass record, an auto-approval, a run-wide approval bound to the
/// plan hash (the plan is made again after it, and asked again if it
/// drifted), or a gate for per-host / per-step approvals.
#[allow(clippy::too_many_arguments)]
async fn approve(
    g: &Global,
    prepared: &Prepared,
    connector: &SshConnector,
    journal: &Arc<Journal>,
    record: &NewRun,
    who: &Who<'_>,
    mut preview: RunReport,
    redactor: &Redactor,
    cancel: Arc<AtomicBool>,
) -> Result<Option<Arc<dyn ApprovalGate>>, Exit> {
    let runbook = &prepared.runbook;
    let event = |kind: &str, payload: serde_json::Value| {
        let _ = journal.append(&remedy_journal::NewEvent {
            run_id: record.run_id.clone(),
            time_ms: journal::now_ms(),
            actor: record.actor.clone(),
            host: None,
            step: None,
            kind: kind.into(),
            payload,
        });
    };
    let (policy, from) = approval::effective(runbook, &prepared.inventory, who.config);
    if let Some(reason) = who.break_glass {
        event(
            "break_glass",
            serde_json::json!({ "reason": reason, "policy_from": from, "plan_hash": approval::plan_hash(&preview) }),
        );
        let _ = journal.set_review(
            &record.run_id,
            &format!("break-glass by {}: {reason}", record.actor),
        );
        eprintln!("BREAK-GLASS: approval skipped ({reason}); the run is marked for review");
        if !who.config.chat.notify.is_empty() {
            let asker = asker_for(
                journal,
                who,
                record,
                runbook,
                &who.config.chat.notify,
                cancel,
            );
            let notice = asker.notice(
                NoticeKind::BreakGlass,
                format!(
                    "BREAK-GLASS: {} runs {} on {} without approval: {reason}",
                    who.requester,
                    runbook.name,
                    record.hosts.join(", ")
                ),
                redactor.apply(&render::report(&preview, false)),
            );
            asker.notify(&notice).await;
        }
        return Ok(None);
    }
    let Approval::Required(policy) = policy else {
        return Ok(None);
    };
    let approvers = who.config.expand(&policy.approvers).map_err(|msg| {
        eprintln!("error: {msg} (approval policy from {from})");
        Exit::Invalid
    })?;
    let plan = approval::plan_value(
        &preview,
        &prepared.bound.hosts,
        &runbook.strategy.batch_sizes(prepared.bound.hosts.len()),
    );
    match approval::auto_approved(&policy, &plan) {
        Ok(Some(rule)) => {
            event(
                "approval_auto",
                serde_json::json!({ "rule": rule, "plan_hash": approval::plan_hash(&preview), "policy_from": from }),
            );
            eprintln!("approved by the policy's auto_approve rule: {rule}");
            return Ok(None);
        }
        Ok(None) => {}
        Err(msg) => eprintln!("warning: {msg}; asking people instead"),
    }
    let asker = approval::Asker {
        journal: journal.clone(),
        policy: policy.clone(),
        approvers,
        run_id: record.run_id.clone(),
        runbook: runbook.name.clone(),
        hosts: record.hosts.clone(),
        requester: who.requester.to_string(),
        notifiers: who.config.chat.notify.clone(),
        callback: who.config.chat.callback().ok().flatten(),
        retry: notify_retry(),
        cancel: cancel.clone(),
    };
    match policy.scope {
        remedy_dsl::ApprovalScope::Run => loop {
            let hash = approval::plan_hash(&preview);
            let summary = redactor.apply(&render::report(&preview, false));
            if let Err(reason) = asker.ask("run", &hash, &summary).await {
                eprintln!("Not approved: {reason}. Nothing was changed.");
                return Err(Exit::Denied);
            }
            // Approved for that plan: make it again right before applying.
            let fresh = execute(
                runbook,
                &prepared.bound,
                connector,
                &MemorySink::default(),
                cancel.clone(),
                RunOptions {
                    max_parallel: g.parallel as usize,
                    ..RunOptions::new(true)
                },
            )
            .await;
            let now = approval::plan_hash(&fresh);
            if now == hash {
                return Ok(None);
            }
            event(
                "approval_invalidated",
                serde_json::json!({ "approved_hash": hash, "plan_hash": now, "reason": "the plan changed between approval and apply" }),
            );
            eprintln!(
                "The plan changed after it was approved (plan {} → {}): asking again.",
                &hash[..12],
                &now[..12]
            );
            preview = fresh;
        },
        scope => Ok(Some(Arc::new(approval::Gate::new(
            asker,
            scope,
            Box::new(OneHost {
                runbook: runbook.clone(),
                bound: prepared.bound.clone(),
                inventory: prepared.inventory.clone(),
                accept_new_host_keys: g.accept_new_host_keys,
                redactor: redactor.clone(),
            }),
        )))),
    }
}

/// A read-only plan of one host, for a host-scope approval.
#[derive(Debug)]
struct OneHost {
    runbook: remedy_dsl::Runbook,
    bound: BoundRun,
    inventory: remedy_engine::Inventory,
    accept_new_host_keys: bool,
    redactor: Redactor,
}

#[async_trait::async_trait(?Send)]
impl approval::HostPreview for OneHost {
    async fn preview(&self, host: &str) -> Result<(String, String), String> {
        let mut bound = self.bound.clone();
        bound.hosts.retain(|h| h.name == host);
        let connector = SshConnector::new(&self.inventory, self.accept_new_host_keys);
        let report = execute(
            &self.runbook,
            &bound,
            &connector,
            &MemorySink::default(),
            Arc::new(AtomicBool::new(false)),
            RunOptions::new(true),
        )
        .await;
        if report.status != RunStatus::Ok {
            return Err(format!(
                "planning {host} for its approval failed: {}",
                report.summary
            ));
        }
        Ok((
            approval::plan_hash(&report),
            self.redactor.apply(&render::report(&report, false)),
        ))
    }
}

const LOCK_TTL: Duration = Duration::from_secs(60);

/// Releases the run's locks however the run ends (not on SIGKILL: then the
/// lock goes stale and `remedy resume` takes it over).
struct Release(Arc<Journal>, String);

impl Drop for Release {
    fn drop(&mut self) {
        let _ = self.0.release(&self.1);
    }
}

fn confirm(question: &str) -> bool {
    print!("{question}");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    matches!(answer.trim(), "y" | "Y" | "yes")
}

fn status_name(s: RunStatus) -> &'static str {
    match s {
        RunStatus::Ok => "ok",
        RunStatus::Failed => "failed",
        RunStatus::Interrupted => "interrupted",
        RunStatus::RollbackFailed => "rollback_failed",
    }
}

async fn execute(
    runbook: &remedy_dsl::Runbook,
    run: &BoundRun,
    connector: &SshConnector,
    sink: &dyn EventSink,
    cancel: Arc<AtomicBool>,
    options: RunOptions,
) -> RunReport {
    let exec = Executor {
        runbook,
        run,
        connector,
        sink,
        clock: &SystemClock,
        cancel: &cancel,
        options,
    };
    exec.execute().await
}

fn strategy_words(rb: &remedy_dsl::Runbook) -> String {
    use remedy_dsl::Batch;
    let batch = match rb.strategy.batch {
        Batch::Count(1) => "one host at a time".to_string(),
        Batch::Count(n) => format!("{n} hosts at a time"),
        Batch::Percent(p) => format!("{p}% of hosts at a time"),
        Batch::Parallel => "all hosts at once".to_string(),
    };
    format!("{batch}, on failure: {}", rb.on_failure.name())
}

fn finish(report: &RunReport, json: bool, color: bool, dry_run: bool, redactor: &Redactor) -> Exit {
    if json {
        match serde_json::to_string_pretty(report) {
            Ok(s) => println!("{}", redactor.apply(&s)),
            Err(e) => eprintln!("error: cannot render JSON: {e}"),
        }
    } else {
        print!("{}", redactor.apply(&render::report(report, color)));
        if dry_run {
            println!("Dry-run: nothing was changed.");
        }
    }
    match report.status {
        RunStatus::Ok => Exit::Ok,
        RunStatus::Failed => Exit::StepFailed,
        RunStatus::Interrupted => Exit::Interrupted,
        RunStatus::RollbackFailed => Exit::RollbackFailed,
    }
}
