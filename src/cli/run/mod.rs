//! `remedy run` and `remedy plan`: compile, bind, plan, confirm, execute,
//! report. A real run without --yes shows the dry-run plan first and asks.
//! The run itself is `session.rs`, approvals `consent.rs`, `remedy resume`
//! `resume.rs`.

mod consent;
mod resume;
mod session;

pub use resume::resume;

use super::config::SiteConfig;
use super::flags::KubeconfigFrom;
use super::journal;
use super::{library, render, request, terminal, Exit, Global};
use remedy_clock::SystemClock;
use remedy_dsl::Diagnostics;
use remedy_engine::event::EventSink;
use remedy_engine::redact::Redactor;
use remedy_engine::{bind, BoundRun, Executor, RunOptions, RunReport, RunStatus};
use remedy_journal::NewRun;
use remedy_transport::ssh::SshConnector;
use std::path::Path;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

fn invalid(d: &Diagnostics) -> Exit {
    eprint!("{}", d.render());
    Exit::Invalid
}

/// How much a run prints: the run, plan and resume commands' own flag.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct Quiet {
    /// Print only the outcome, one line (for cron and scripts); errors still
    /// go to stderr and the exit code says how the run ended. With -o json,
    /// the JSON report as usual.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// Where a run's text goes and how much of it, decided once per run: on a
/// terminal (without -v) live lines and a compact summary, every line
/// fitted to its width; elsewhere the full report, exactly as it always
/// was (scripts and tests read it).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    /// The terminal's width, when stdout is one.
    width: Option<usize>,
    quiet: bool,
    verbose: bool,
}

impl Shape {
    fn new(g: &Global, quiet: Quiet) -> Shape {
        Shape {
            width: terminal::stdout_width(),
            quiet: quiet.quiet,
            verbose: g.verbose,
        }
    }

    /// The terminal's width when the run shows live lines and ends with
    /// the compact summary.
    fn compact(&self) -> Option<usize> {
        self.width.filter(|_| !self.quiet && !self.verbose)
    }

    /// The full report: on a terminal wrapped to its width, with identical
    /// tables folded across hosts.
    fn full_report(&self, report: &RunReport, color: bool) -> String {
        match self.width {
            Some(width) => terminal::wrap(&render::report_folded(report, color), width),
            None => render::report(report, color),
        }
    }
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

/// A kubeconfig the runbook's API steps would use must be readable and
/// valid: said now, naming what named it, rather than by every step.
pub(super) fn usable_kubeconfig(g: &Global, runbook: &remedy_dsl::Runbook) -> Result<(), Exit> {
    let Some((path, from)) = g.kubeconfig() else {
        return Ok(());
    };
    if !remedy_engine::action::kube::reaches_api(runbook) {
        return Ok(());
    }
    if let Err(e) = remedy_k8s::Access::from_file(&path, g.context.as_deref()) {
        let hint = match from {
            KubeconfigFrom::Env => "fix it, or unset KUBECONFIG to reach the API through each master's admin.conf over SSH",
            KubeconfigFrom::Flag => "give a kubeconfig that works, or leave --kubeconfig out to reach the API through each master's admin.conf over SSH",
        };
        eprintln!(
            "error: the kubeconfig from {from} ({}) cannot be used: {e}\n  = hint: {hint}",
            path.display()
        );
        return Err(Exit::Invalid);
    }
    Ok(())
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
    quiet: Quiet,
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
    if let Err(exit) = usable_kubeconfig(g, &prepared.runbook) {
        return exit;
    }
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
    let connector =
        SshConnector::new(&prepared.inventory, g.accept_new_host_keys).verbose(g.verbose);
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
    let shape = Shape::new(g, quiet);
    let session = session::Session::new(g, &prepared, &connector, &journal, record, &who, shape);
    runtime.block_on(session.run(dry_run, None))
}

/// Who runs it, under which site config, and whether approval is skipped
/// (break-glass, with its reason).
pub struct Who<'a> {
    pub config: &'a SiteConfig,
    pub requester: &'a str,
    pub break_glass: Option<&'a str>,
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

fn finish(
    report: &RunReport,
    (json, color): (bool, bool),
    shape: Shape,
    dry_run: bool,
    redactor: &Redactor,
) -> Exit {
    if json {
        match serde_json::to_string_pretty(report) {
            Ok(s) => println!("{}", redactor.apply(&s)),
            Err(e) => eprintln!("error: cannot render JSON: {e}"),
        }
    } else if shape.quiet {
        let run = if dry_run {
            String::new()
        } else {
            format!(" (run {})", report.run_id)
        };
        println!("{}{run}", redactor.apply(&report.summary));
    } else if let Some(width) = shape.compact().filter(|_| !dry_run) {
        print!("{}", redactor.apply(&render::summary(report, color, width)));
    } else {
        print!("{}", redactor.apply(&shape.full_report(report, color)));
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
