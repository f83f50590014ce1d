//! `remedy run` and `remedy plan`: compile, bind, plan, confirm, execute,
//! report. A real run without --yes shows the dry-run plan first and asks.

use super::{library, progress::Progress, render, request, Exit, Global, Output};
use remedy_dsl::{Approval, Diagnostics};
use remedy_engine::clock::SystemClock;
use remedy_engine::event::{EventSink, MemorySink};
use remedy_engine::redact::Redactor;
use remedy_engine::transport::ssh::SshConnector;
use remedy_engine::{bind, BoundRun, Executor, RunOptions, RunReport, RunStatus};
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

fn invalid(d: &Diagnostics) -> Exit {
    eprint!("{}", d.render());
    Exit::Invalid
}

pub fn run(g: &Global, dirs: &[PathBuf], name: &str, dry_run: bool) -> Exit {
    let source = match library::load(name, dirs) {
        Ok(s) => s,
        Err(msg) => {
            eprintln!("error: {msg}");
            return Exit::Invalid;
        }
    };
    let runbook = match remedy_dsl::compile(source) {
        Ok(rb) => rb,
        Err(d) => return invalid(&d),
    };
    let (inventory, req) = match (request::inventory(g), request::request(g)) {
        (Ok(i), Ok(r)) => (i, r),
        (i, r) => {
            let mut all = Diagnostics::default();
            for d in [i.err(), r.err()].into_iter().flatten() {
                all.0.extend(d.0);
            }
            return invalid(&all);
        }
    };
    let bound = match bind(&runbook, &inventory, &req) {
        Ok(b) => b,
        Err(d) => return invalid(&d),
    };
    if let (Approval::Required(p), false) = (&runbook.approval, dry_run) {
        eprintln!(
            "note: runbook `{}` asks for approval (quorum {} of {}); this version of remedy does not enforce approvals yet — confirm only with a second pair of eyes.",
            runbook.name,
            p.quorum,
            p.approvers.join(", ")
        );
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return Exit::StepFailed;
        }
    };
    let connector = SshConnector::new(&inventory, g.accept_new_host_keys);
    runtime.block_on(async_run(g, &runbook, &bound, &connector, dry_run))
}

async fn async_run(
    g: &Global,
    runbook: &remedy_dsl::Runbook,
    bound: &BoundRun,
    connector: &SshConnector,
    dry_run: bool,
) -> Exit {
    let cancel = Arc::new(AtomicBool::new(false));
    {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                cancel.store(true, Ordering::SeqCst);
                eprintln!("\ninterrupt: stopping after the step that is running (Ctrl-C again to abort at once — that can leave a step half-done)");
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(Exit::Interrupted.into());
                }
            }
        });
    }
    let json = g.output == Output::Json;
    let color = super::use_color();
    let redactor = Redactor::new(bound);

    if dry_run {
        let report = execute(
            runbook,
            bound,
            connector,
            true,
            &MemorySink::default(),
            cancel.clone(),
            g.parallel as usize,
        )
        .await;
        return finish(&report, json, color, true, &redactor);
    }

    if !g.yes && !std::io::stdin().is_terminal() {
        eprintln!("error: refusing to change hosts without confirmation: standard input is not a terminal\n  = hint: review the plan with `remedy plan {}` (same options), then pass --yes", runbook.name);
        return Exit::Denied;
    }
    // Every real run plans all its hosts first, in parallel and read-only —
    // with --yes too — so a problem on any host (an external CA on the last
    // master, an unreachable host) stops the run before anything changes.
    let preview = execute(
        runbook,
        bound,
        connector,
        true,
        &MemorySink::default(),
        cancel.clone(),
        g.parallel as usize,
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
        print!(
            "Apply to {changing} host(s), {}? [y/N] ",
            strategy_words(runbook)
        );
        let _ = std::io::stdout().flush();
        let mut answer = String::new();
        let _ = std::io::stdin().lock().read_line(&mut answer);
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
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
    let progress = Progress::new(redactor.clone());
    let report = execute(
        runbook,
        bound,
        connector,
        false,
        &progress,
        cancel.clone(),
        g.parallel as usize,
    )
    .await;
    progress.finish();
    finish(&report, json, color, false, &redactor)
}

async fn execute(
    runbook: &remedy_dsl::Runbook,
    run: &BoundRun,
    connector: &SshConnector,
    dry_run: bool,
    sink: &dyn EventSink,
    cancel: Arc<AtomicBool>,
    parallel: usize,
) -> RunReport {
    let exec = Executor {
        runbook,
        run,
        connector,
        sink,
        clock: &SystemClock,
        cancel: &cancel,
        options: RunOptions {
            max_parallel: parallel,
            ..RunOptions::new(dry_run)
        },
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
