//! One `remedy run` (or resumed run) from the plan to the report, as
//! stages: a dry-run is recorded and reported; a real run is confirmed
//! possible, locks its hosts, previews every host and obtains consent (or
//! confirms the resume), records its locks, executes, notifies, reports.

use super::{execute, finish, status_name, strategy_words, Prepared, Who};
use crate::cli::journal::{self, JournalSink};
use crate::cli::{progress::Progress, render, Exit, Global, Output};
use remedy_chatops::NoticeKind;
use remedy_engine::event::{MemorySink, Tee};
use remedy_engine::executor::ApprovalGate;
use remedy_engine::redact::Redactor;
use remedy_engine::resume::ResumeState;
use remedy_engine::{HostStatus, RunOptions, RunReport, RunStatus};
use remedy_journal::{Holder, Journal, NewRun};
use remedy_transport::ssh::SshConnector;
use std::io::{BufRead, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long a host lock lasts unless renewed (renewed every third of it).
const LOCK_TTL: Duration = Duration::from_secs(60);

/// Everything one run carries from stage to stage.
pub(super) struct Session<'a> {
    pub(super) g: &'a Global,
    pub(super) prepared: &'a Prepared,
    pub(super) connector: &'a SshConnector,
    pub(super) journal: &'a Arc<Journal>,
    pub(super) record: NewRun,
    pub(super) who: &'a Who<'a>,
    pub(super) redactor: Redactor,
    /// Set by Ctrl-C: stop after the step that is running.
    pub(super) cancel: Arc<AtomicBool>,
    json: bool,
    color: bool,
}

/// The run's host locks, held (and renewed) until this is dropped.
struct Locks {
    targets: Vec<String>,
    holder: Holder,
    token: u64,
    _release: Release,
}

/// Releases the run's locks however the run ends (not on SIGKILL: then the
/// lock goes stale and `remedy resume` takes it over).
struct Release(Arc<Journal>, String);

impl Drop for Release {
    fn drop(&mut self) {
        let _ = self.0.release(&self.1);
    }
}

impl<'a> Session<'a> {
    pub(super) fn new(
        g: &'a Global,
        prepared: &'a Prepared,
        connector: &'a SshConnector,
        journal: &'a Arc<Journal>,
        record: NewRun,
        who: &'a Who<'a>,
    ) -> Session<'a> {
        Session {
            g,
            prepared,
            connector,
            journal,
            record,
            who,
            redactor: Redactor::new(&prepared.bound),
            cancel: Arc::new(AtomicBool::new(false)),
            json: g.output == Output::Json,
            color: crate::cli::use_color(),
        }
    }

    /// Run it: a dry-run, a new run, or (with `resume`) the rest of an
    /// interrupted one.
    pub(super) async fn run(self, dry_run: bool, resume: Option<ResumeState>) -> Exit {
        self.stop_on_ctrl_c();
        let ended = if dry_run {
            self.dry_run().await
        } else {
            self.real_run(resume).await
        };
        ended.unwrap_or_else(|exit| exit)
    }

    /// Ctrl-C stops after the running step; a second one aborts at once.
    fn stop_on_ctrl_c(&self) {
        let flag = self.cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                flag.store(true, Ordering::SeqCst);
                eprintln!("\ninterrupt: stopping after the step that is running (Ctrl-C again to abort at once — that can leave a step half-done; `remedy resume` finishes it)");
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(Exit::Interrupted.into());
                }
            }
        });
    }
}

impl Session<'_> {
    fn options(&self, dry_run: bool) -> RunOptions {
        RunOptions {
            max_parallel: self.g.parallel as usize,
            run_id: self.record.run_id.clone(),
            kube: self.g.kube_access(),
            ..RunOptions::new(dry_run)
        }
    }

    /// Only the journal records that a dry-run happened.
    async fn dry_run(&self) -> Result<Exit, Exit> {
        self.journal.create_run(&self.record).map_err(|e| {
            eprintln!("error: cannot record the dry-run in the journal: {e}");
            Exit::StepFailed
        })?;
        let sink = JournalSink::new(
            self.journal.clone(),
            self.record.actor.clone(),
            self.redactor.clone(),
            None,
        );
        let report = self.execute(&sink, self.options(true)).await;
        let _ = self
            .journal
            .finish_run(&self.record.run_id, status_name(report.status));
        Ok(self.finish(&report, true))
    }

    async fn real_run(&self, resume: Option<ResumeState>) -> Result<Exit, Exit> {
        self.confirmation_possible()?;
        let locks = self.lock_hosts()?;
        let gate = match resume {
            None => self.preview_and_consent().await?,
            Some(_) => {
                self.confirm_resume()?;
                None
            }
        };
        self.record_locks(&locks);
        let report = self.apply(locks.token, resume, gate).await;
        let _ = self
            .journal
            .finish_run(&self.record.run_id, status_name(report.status));
        self.notify_finished(&report).await;
        Ok(self.finish(&report, false))
    }

    async fn execute(
        &self,
        sink: &dyn remedy_engine::event::EventSink,
        options: RunOptions,
    ) -> RunReport {
        execute(
            &self.prepared.runbook,
            &self.prepared.bound,
            self.connector,
            sink,
            self.cancel.clone(),
            options,
        )
        .await
    }

    fn finish(&self, report: &RunReport, dry_run: bool) -> Exit {
        finish(report, self.json, self.color, dry_run, &self.redactor)
    }

    fn confirmation_possible(&self) -> Result<(), Exit> {
        if self.g.yes || std::io::stdin().is_terminal() {
            return Ok(());
        }
        eprintln!("error: refusing to change hosts without confirmation: standard input is not a terminal\n  = hint: review the plan with `remedy plan {}` (same options), then pass --yes", self.prepared.runbook.name);
        Err(Exit::Denied)
    }

    /// One lock per host of this inventory, held (and renewed) for the whole
    /// run, planning included: two runs must not plan against each other.
    fn lock_hosts(&self) -> Result<Locks, Exit> {
        let run_id = &self.record.run_id;
        let targets: Vec<String> = self
            .prepared
            .bound
            .hosts
            .iter()
            .map(|h| journal::lock_target(&self.prepared.inventory_path, &h.name))
            .collect();
        let holder = Holder {
            run_id: run_id.clone(),
            user: self.record.os_user.clone(),
            host: self.record.jump_host.clone(),
            pid: self.record.pid,
            pid_start: self.record.pid_start,
        };
        let token = self
            .journal
            .acquire(&targets, &holder, LOCK_TTL)
            .map_err(|e| {
                eprintln!("error: {e}");
                Exit::Denied
            })?;
        let release = Release(self.journal.clone(), run_id.clone());
        let (journal, id) = (self.journal.clone(), run_id.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(LOCK_TTL / 3).await;
                let (j, id) = (journal.clone(), id.clone());
                let _ = tokio::task::spawn_blocking(move || j.renew(&id, LOCK_TTL)).await;
            }
        });
        Ok(Locks {
            targets,
            holder,
            token,
            _release: release,
        })
    }

    /// Every real run plans all its hosts first, in parallel and read-only —
    /// with --yes too — so a problem on any host (an external CA on the last
    /// master, an unreachable host) stops the run before anything changes.
    /// Then the person confirms, the run is recorded, and the approval
    /// policy is satisfied.
    async fn preview_and_consent(&self) -> Result<Option<Arc<dyn ApprovalGate>>, Exit> {
        let preview = self
            .execute(&MemorySink::default(), self.options(true))
            .await;
        self.check_preview(&preview)?;
        self.confirm_preview(&preview)?;
        self.journal.create_run(&self.record).map_err(|e| {
            eprintln!("error: cannot record the run in the journal, so nothing was changed: {e}");
            Exit::StepFailed
        })?;
        self.consent(preview).await.inspect_err(|_| {
            let _ = self.journal.finish_run(&self.record.run_id, "denied");
        })
    }

    fn check_preview(&self, preview: &RunReport) -> Result<(), Exit> {
        if preview.status == RunStatus::Ok {
            return Ok(());
        }
        let out = self.redactor.apply(&render::report(preview, self.color));
        if self.json {
            eprint!("{out}");
        } else {
            print!("{out}");
        }
        eprintln!("The plan failed on some hosts (above); nothing was changed on any host.");
        Err(Exit::StepFailed)
    }

    /// Without --yes: show the plan and ask. Nothing to change ends the run.
    fn confirm_preview(&self, preview: &RunReport) -> Result<(), Exit> {
        if self.g.yes {
            if !self.json {
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
            return Ok(());
        }
        let changing = preview
            .hosts
            .iter()
            .filter(|h| h.status == HostStatus::WouldChange)
            .count();
        print!(
            "{}",
            self.redactor.apply(&render::report(preview, self.color))
        );
        if changing == 0 {
            println!("Nothing to change.");
            return Err(Exit::Ok);
        }
        if !confirm(&format!(
            "Apply to {changing} host(s), {}? [y/N] ",
            strategy_words(&self.prepared.runbook)
        )) {
            eprintln!("Not confirmed: nothing was changed.");
            return Err(Exit::Denied);
        }
        Ok(())
    }

    fn confirm_resume(&self) -> Result<(), Exit> {
        if !self.g.yes && !confirm("Continue this run? [y/N] ") {
            eprintln!("Not confirmed: nothing was changed.");
            return Err(Exit::Denied);
        }
        let r = &self.record;
        self.journal
            .reopen_run(&r.run_id, r.pid, r.pid_start, &r.jump_host)
            .map_err(|e| {
                eprintln!(
                    "error: cannot record the resume in the journal, so nothing was changed: {e}"
                );
                Exit::StepFailed
            })
    }

    fn record_locks(&self, locks: &Locks) {
        let holder = &locks.holder;
        self.event(
            "locks_acquired",
            serde_json::json!({ "targets": locks.targets, "token": locks.token, "holder": format!("{}@{} pid {}", holder.user, holder.host, holder.pid) }),
        );
    }

    /// A run-level event in the journal (its failure is not the run's).
    pub(super) fn event(&self, kind: &str, payload: serde_json::Value) {
        let _ = self.journal.append(&remedy_journal::NewEvent {
            run_id: self.record.run_id.clone(),
            time_ms: journal::now_ms(),
            actor: self.record.actor.clone(),
            host: None,
            step: None,
            kind: kind.into(),
            payload,
        });
    }

    /// The real thing: events to the journal (fenced by the lock token) and
    /// to the progress display.
    async fn apply(
        &self,
        token: u64,
        resume: Option<ResumeState>,
        gate: Option<Arc<dyn ApprovalGate>>,
    ) -> RunReport {
        let progress = Progress::new(self.redactor.clone());
        let sink = JournalSink::new(
            self.journal.clone(),
            self.record.actor.clone(),
            self.redactor.clone(),
            Some(journal::Fence {
                inventory: self.prepared.inventory_path.clone(),
                token,
            }),
        );
        let tee = Tee(vec![&sink, &progress]);
        let options = RunOptions {
            resume,
            gate,
            ..self.options(false)
        };
        let report = self.execute(&tee, options).await;
        progress.finish();
        report
    }

    async fn notify_finished(&self, report: &RunReport) {
        if self.who.config.chat.notify.is_empty() {
            return;
        }
        let asker = self.notifier();
        let kind = if report.status == RunStatus::Ok {
            NoticeKind::RunFinished
        } else {
            NoticeKind::RunFailed
        };
        let notice = asker.notice(
            kind,
            format!(
                "{} on {}: {}",
                self.prepared.runbook.name,
                self.record.hosts.join(", "),
                status_name(report.status)
            ),
            self.redactor.apply(&report.summary),
        );
        asker.notify(&notice).await;
    }
}

fn confirm(question: &str) -> bool {
    print!("{question}");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    matches!(answer.trim(), "y" | "Y" | "yes")
}
