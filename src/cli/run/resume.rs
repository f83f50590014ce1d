//! `remedy resume RUN`, as stages: the run record (interrupted, or its
//! rollback failed; not a dry-run) → the same runbook (unless --force) → the same inventory,
//! params and --limit giving the same hosts → a kubeconfig its API steps
//! would use is usable → its events folded into what is done → it was
//! approved (if its policy asks) → the rest of the run.

use super::{
    library, prepare, request, runtime, sha256_hex, site, Exit, Global, Prepared, Quiet, Shape, Who,
};
use crate::cli::journal;
use remedy_dsl::{Approval, Source};
use remedy_engine::resume::{Recorded, ResumeState};
use remedy_journal::{Journal, NewRun, RunRecord, StoredEvent};
use remedy_transport::ssh::SshConnector;
use std::path::Path;
use std::sync::Arc;

/// Continue an interrupted run where its journal says it stopped (or retry
/// the rollback that failed), with the same runbook (unless --force),
/// inventory, params and --limit.
pub fn resume(g: &Global, run: &str, force: bool, quiet: Quiet) -> Exit {
    resume_staged(g, run, force, quiet).unwrap_or_else(|exit| exit)
}

fn resume_staged(g: &Global, run: &str, force: bool, quiet: Quiet) -> Result<Exit, Exit> {
    let journal = journal::open().map_err(|msg| {
        eprintln!("error: {msg}");
        Exit::Invalid
    })?;
    let record = resumable(&journal, run)?;
    let source = load_runbook(&record)?;
    let (config, requester, actor) = site(g)?;
    unchanged(&record, &source, force)?;
    let prepared = same_hosts(g, &record, source)?;
    super::usable_kubeconfig(g, &prepared.runbook)?;
    let events = journal.events(&record.run_id).map_err(|e| {
        eprintln!("error: {e}");
        Exit::Invalid
    })?;
    let state = ResumeState::from_events(events.iter().map(|e| Recorded {
        host: e.host.as_deref(),
        step: e.step.as_deref(),
        kind: &e.kind,
        payload: &e.payload,
    }));
    if !quiet.quiet {
        eprintln!(
            "resuming run {} ({} on {}): {}",
            record.run_id,
            record.runbook,
            record.hosts.join(", "),
            state.describe()
        );
    }
    let runtime = runtime()?;
    let connector =
        SshConnector::new(&prepared.inventory, g.accept_new_host_keys).verbose(g.verbose);
    let new = again(&record, actor);
    // An approval covers the run it was given for; a run that died before
    // it was approved (or authorised by break-glass) is not resumed into one.
    if let (Approval::Required(_), _) =
        crate::cli::approval::effective(&prepared.runbook, &prepared.inventory, &config)
    {
        was_approved(&record, &events)?;
    }
    let who = Who {
        config: &config,
        requester: &requester,
        break_glass: None,
    };
    let shape = Shape::new(g, quiet);
    let session =
        super::session::Session::new(g, &prepared, &connector, &journal, new, &who, shape);
    Ok(runtime.block_on(session.run(false, Some(state))))
}

/// The run, if it is interrupted (not running, not ended) or its rollback
/// failed, and was real.
fn resumable(journal: &Arc<Journal>, run: &str) -> Result<RunRecord, Exit> {
    let record = journal.run(run).map_err(|e| {
        eprintln!("error: {e}");
        Exit::Invalid
    })?;
    let status = record.effective_status();
    // A failed rollback is retried (restoring is idempotent): the host may
    // answer again.
    if status != "interrupted" && status != "rollback_failed" {
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
        return Err(Exit::Invalid);
    }
    if record.dry_run {
        eprintln!(
            "error: run {} was a dry-run; plan again instead of resuming",
            record.run_id
        );
        return Err(Exit::Invalid);
    }
    Ok(record)
}

/// The run's runbook, loaded again.
fn load_runbook(record: &RunRecord) -> Result<Arc<Source>, Exit> {
    let name = record
        .runbook_ref
        .strip_prefix("builtin:")
        .unwrap_or(&record.runbook_ref);
    library::load(name, &[]).map_err(|msg| {
        eprintln!("error: cannot load the run's runbook again: {msg}");
        Exit::Invalid
    })
}

/// A runbook that changed since the run started is used only with --force.
fn unchanged(record: &RunRecord, source: &Source, force: bool) -> Result<(), Exit> {
    let sha = sha256_hex(source.text.as_bytes());
    if sha == record.runbook_sha256 {
        return Ok(());
    }
    if !force {
        eprintln!(
            "error: runbook {} changed since run {} started (sha256 {} then, {} now)\n  = hint: resuming with different steps can skip or repeat work; check the change, then pass --force to resume with the new content",
            record.runbook_ref,
            record.run_id,
            &record.runbook_sha256[..12.min(record.runbook_sha256.len())],
            &sha[..12]
        );
        return Err(Exit::Invalid);
    }
    eprintln!(
        "warning: runbook {} changed since the run started; resuming with the new content (--force)",
        record.runbook_ref
    );
    Ok(())
}

/// The same params, --limit and inventory as the run that stopped, which
/// must still give the same hosts.
fn same_hosts(g: &Global, record: &RunRecord, source: Arc<Source>) -> Result<Prepared, Exit> {
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
    let prepared = prepare(
        &g2,
        source,
        Path::new(&record.inventory),
        request::request(&g2),
    )?;
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
        return Err(Exit::Invalid);
    }
    Ok(prepared)
}

/// The run record again, as this process (and `actor`) holds it now.
fn again(record: &RunRecord, actor: String) -> NewRun {
    NewRun {
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
    }
}

fn was_approved(record: &RunRecord, events: &[StoredEvent]) -> Result<(), Exit> {
    let approved = events.iter().any(|e| {
        matches!(
            e.kind.as_str(),
            "approval_granted" | "break_glass" | "approval_auto"
        )
    });
    if approved {
        return Ok(());
    }
    eprintln!(
        "error: run {} stopped before it was approved, so it cannot be resumed\n  = hint: start it again with `remedy run {}` (it will ask for approval)",
        record.run_id, record.runbook
    );
    Err(Exit::Denied)
}
