//! One `remedy run` (or resumed run) from the plan to the report, as
//! stages: a dry-run is recorded and reported; a real run is confirmed
//! possible, locks its hosts (here, and in the ops etcd when jump hosts are
//! coordinated), previews every host and obtains consent (or confirms the
//! resume), records its locks, executes, publishes the journal's head,
//! notifies, reports.

use super::{execute, finish, status_name, strategy_words, Prepared, Shape, Who};
use crate::cli::journal::{self, CoordFence, JournalSink};
use crate::cli::progress::{self, Progress};
use crate::cli::{Exit, Global, Output};
use remedy_chatops::NoticeKind;
use remedy_coordination::{
    Coordination, CoordinationError, Coordinator, LockHolder, PublishedHead,
};
use remedy_engine::action::EtcdClients;
use remedy_engine::backup::KnownBackup;
use remedy_engine::event::{EventSink, MemorySink, Tee};
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
use tokio::sync::Notify;

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
    /// Woken by Ctrl-C, for a prompt waiting on a person.
    interrupted: Arc<Notify>,
    /// Set once the run may change hosts. Before that, Ctrl-C ends the run
    /// with nothing changed and its locks released.
    changing: Arc<AtomicBool>,
    json: bool,
    color: bool,
    /// Where the run's text goes and how much of it.
    shape: Shape,
    /// The journal's backups when the run started, for actions that
    /// restore one (read once: the preview, the approval and the apply
    /// must plan with the same).
    pub(super) known_backups: Vec<KnownBackup>,
    /// The etcd clients of this run's preview, its re-plans and the run
    /// itself: one connection per member for all of them.
    etcd_clients: EtcdClients,
    /// The ops etcd, once this run holds its locks there (approval
    /// requests are published through it).
    pub(super) coordinator: std::sync::OnceLock<Coordinator>,
}

/// The run's host locks, held (and renewed) until this is dropped.
struct Locks {
    targets: Vec<String>,
    holder: Holder,
    token: u64,
    /// The ops etcd's locks on the same hosts (None: not coordinated, or
    /// break-glass while the ops etcd was unreachable — see `bypassed`).
    coordinated: Option<Arc<CoordFence>>,
    /// Why the ops etcd's locks were not taken under break-glass.
    bypassed: Option<String>,
    _release: Release,
}

/// Releases the run's locks however the run ends (not on SIGKILL: then the
/// lock goes stale and `remedy resume` takes it over), unless disarmed.
struct Release(Arc<Journal>, String, bool);

impl Drop for Release {
    fn drop(&mut self) {
        if self.2 {
            if let Err(e) = self.0.release(&self.1) {
                eprintln!(
                    "error: the locks of run {} could not be released: {e}\n  = they read stale once this process is gone; when the run's hosts are as the report says, remove them with `remedy lock break TARGET --reason …` (see `remedy lock list`)",
                    self.1
                );
            }
        }
    }
}

impl Locks {
    /// Leave the locks held when this run ends (they go stale with the
    /// process, as after a crash).
    fn keep(&mut self) {
        self._release.2 = false;
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
        shape: Shape,
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
            interrupted: Arc::new(Notify::new()),
            changing: Arc::new(AtomicBool::new(false)),
            etcd_clients: EtcdClients::default(),
            coordinator: std::sync::OnceLock::new(),
            json: g.output == Output::Json,
            color: crate::cli::use_color(),
            shape,
            known_backups: crate::cli::backup::known(journal).unwrap_or_else(|msg| {
                eprintln!("warning: {msg}; actions that restore a backup see none");
                Vec::new()
            }),
        }
    }

    /// Run it: a dry-run, a new run, or (with `resume`) the rest of an
    /// interrupted one.
    pub(super) async fn run(self, dry_run: bool, resume: Option<ResumeState>) -> Exit {
        self.stop_on_ctrl_c(resume.is_some());
        let ended = if dry_run {
            self.dry_run().await
        } else {
            self.real_run(resume).await
        };
        ended.unwrap_or_else(|exit| exit)
    }

    /// Ctrl-C stops after the running step (before any change: at once,
    /// prompts included); a second one aborts at once. An abort before any
    /// change releases a new run's locks on the way out: nothing is
    /// half-done, and no run would be there to resume. (A resume keeps the
    /// interrupted run's locks until it is finished.)
    fn stop_on_ctrl_c(&self, resuming: bool) {
        let (flag, woken, changing) = (
            self.cancel.clone(),
            self.interrupted.clone(),
            self.changing.clone(),
        );
        let (journal, run_id) = (self.journal.clone(), self.record.run_id.clone());
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                flag.store(true, Ordering::SeqCst);
                journal::CTRL_C_HANDLED.store(true, Ordering::SeqCst);
                if changing.load(Ordering::SeqCst) {
                    progress::note("\ninterrupt: stopping after the step that is running (Ctrl-C again to abort at once — that can leave a step half-done; `remedy resume` finishes it)");
                } else {
                    progress::note("\ninterrupt: stopping before anything is changed");
                }
                woken.notify_waiters();
                if tokio::signal::ctrl_c().await.is_ok() {
                    if !resuming && !changing.load(Ordering::SeqCst) {
                        let _ = journal.release(&run_id);
                    }
                    std::process::exit(Exit::Interrupted.into());
                }
            }
        });
    }

    /// Ask a yes/no question on the terminal. Ctrl-C while it waits ends
    /// the wait at once (the blocked read is left to the exiting process).
    async fn confirm(&self, question: &str) -> Answer {
        print!("{question}");
        let _ = std::io::stdout().flush();
        let woken = self.interrupted.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        if self.cancel.load(Ordering::SeqCst) {
            return Answer::Interrupted;
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let mut answer = String::new();
            let _ = std::io::stdin().lock().read_line(&mut answer);
            let _ = tx.send(answer);
        });
        tokio::select! {
            answer = rx => match answer {
                Ok(a) if matches!(a.trim(), "y" | "Y" | "yes") => Answer::Yes,
                _ => Answer::No,
            },
            () = &mut woken => Answer::Interrupted,
        }
    }

    /// Before anything changed: Ctrl-C ends the run here.
    fn stop_if_interrupted(&self, stage: &str) -> Result<(), Exit> {
        if !self.cancel.load(Ordering::SeqCst) {
            return Ok(());
        }
        eprintln!("Interrupted {stage}: nothing was changed.");
        Err(Exit::Interrupted)
    }
}

impl Session<'_> {
    pub(super) fn options(&self, dry_run: bool) -> RunOptions {
        RunOptions {
            max_parallel: self.g.parallel as usize,
            run_id: self.record.run_id.clone(),
            kube: self.g.kube_access(),
            inventory: Some(self.prepared.inventory_path.clone()),
            known_backups: self.known_backups.clone(),
            etcd_clients: self.etcd_clients.clone(),
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
        // Room to record a rollback even if the disk fills during the run.
        self.journal.ensure_room().map_err(|e| {
            eprintln!("error: {e}");
            Exit::StepFailed
        })?;
        let mut locks = self.lock_hosts().await?;
        let ended = self.locked_run(&mut locks, resume).await;
        if let Some(c) = &locks.coordinated {
            if let Err(e) = c.coordinator.release(&c.held).await {
                eprintln!("warning: the run's locks in the ops etcd could not be released ({e}); they end with their lease, {}s after this process", c.coordinator.config().lease_ttl.as_secs());
            }
        }
        ended
    }

    /// A real run once its hosts are locked.
    async fn locked_run(
        &self,
        locks: &mut Locks,
        resume: Option<ResumeState>,
    ) -> Result<Exit, Exit> {
        let gate = match resume {
            None => self.preview_and_consent().await?,
            Some(_) => {
                // Not resumed after all: the run stays as it was, its
                // targets locked for the next `remedy resume`.
                self.confirm_resume().await.inspect_err(|_| locks.keep())?;
                None
            }
        };
        // Recorded, not started: it stays resumable, with nothing done.
        self.stop_if_interrupted("before the run started")
            .inspect_err(|_| {
                let _ = self.journal.finish_run(&self.record.run_id, "interrupted");
            })?;
        self.changing.store(true, Ordering::SeqCst);
        self.record_locks(locks).await;
        let report = self.apply(locks, resume, gate).await;
        if let Err(e) = self
            .journal
            .finish_run(&self.record.run_id, status_name(report.status))
        {
            eprintln!(
                "error: NOT RECORDED in the journal: run {} ended {}: {e}\n  = the report below is what happened on each host; keep it",
                self.record.run_id,
                status_name(report.status)
            );
        }
        if self.journal.reserve_used() {
            eprintln!(
                "warning: the disk under the journal ({}) filled up during this run; remedy used the room it keeps in reserve to record the run's end. Free space there before the next run (it will not start without that room).",
                self.journal.path().display()
            );
        }
        self.publish_head(locks).await;
        self.notify_finished(&report).await;
        Ok(self.finish(&report, false))
    }

    /// The audit witness: the journal's head after this run, published in
    /// the ops etcd for `remedy audit verify` to hold the journal to.
    async fn publish_head(&self, locks: &Locks) {
        let Some(c) = &locks.coordinated else {
            return;
        };
        let head = match self.journal.head() {
            Ok((event_id, hash)) => PublishedHead {
                event_id,
                hash,
                time_ms: journal::now_ms(),
            },
            Err(e) => {
                eprintln!("warning: the journal's head could not be read to publish it: {e}");
                return;
            }
        };
        if let Err(e) = c.coordinator.publish_head(&head).await {
            eprintln!("warning: the journal's head (event {}) was not published in the ops etcd: {e}\n  = `remedy audit verify` checks against the last head published", head.event_id);
        }
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
        finish(
            report,
            (self.json, self.color),
            self.shape,
            dry_run,
            &self.redactor,
        )
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
    async fn lock_hosts(&self) -> Result<Locks, Exit> {
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
        let release = Release(self.journal.clone(), run_id.clone(), true);
        let (journal, id) = (self.journal.clone(), run_id.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(LOCK_TTL / 3).await;
                let (j, id) = (journal.clone(), id.clone());
                let _ = tokio::task::spawn_blocking(move || j.renew(&id, LOCK_TTL)).await;
            }
        });
        let (coordinated, bypassed) = match &self.who.config.coordination {
            None => (None, None),
            Some(config) => self.lock_in_ops_etcd(config).await?,
        };
        Ok(Locks {
            targets,
            holder,
            token,
            coordinated,
            bypassed,
            _release: release,
        })
    }

    /// The same hosts locked in the ops etcd, all or none, under this run's
    /// lease (kept alive while the run lives). Fails closed: an unreachable
    /// ops etcd refuses the run, unless break-glass, which goes on with the
    /// local locks only (journaled and announced in `record_locks`).
    async fn lock_in_ops_etcd(
        &self,
        config: &Coordination,
    ) -> Result<(Option<Arc<CoordFence>>, Option<String>), Exit> {
        let hosts: Vec<String> = self
            .prepared
            .bound
            .hosts
            .iter()
            .map(|h| h.name.clone())
            .collect();
        let holder = LockHolder {
            run_id: self.record.run_id.clone(),
            user: self.record.os_user.clone(),
            jump_host: config.jump_host.clone(),
            pid: self.record.pid,
            acquired_ms: journal::now_ms(),
        };
        let taken = match Coordinator::connect(config).await {
            Ok(coordinator) => coordinator
                .acquire(&hosts, &holder)
                .await
                .map(|held| (coordinator, held)),
            Err(e) => Err(e),
        };
        match (taken, self.who.break_glass) {
            (Ok((coordinator, held)), _) => {
                let _ = self.coordinator.set(coordinator.clone());
                Ok((Some(Arc::new(CoordFence { coordinator, held })), None))
            }
            (Err(e @ CoordinationError::Held { .. }), _) => {
                eprintln!("error: {e}");
                Err(Exit::Denied)
            }
            (Err(e), Some(reason)) => {
                eprintln!("BREAK-GLASS: {e}\n  the run goes on with this jump host's locks only ({reason}): other jump hosts are not excluded; journaled and announced");
                Ok((None, Some(e.to_string())))
            }
            (Err(e), None) => {
                eprintln!("error: {e}\n  = this run changes hosts, and without the ops etcd's locks another jump host could change them at the same time: nothing was changed (`remedy plan` still works)");
                Err(Exit::Denied)
            }
        }
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
        self.stop_if_interrupted("while planning")?;
        self.check_preview(&preview)?;
        self.confirm_preview(&preview).await?;
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
        let out = self
            .redactor
            .apply(&self.shape.full_report(preview, self.color));
        if self.json {
            eprint!("{out}");
        } else {
            print!("{out}");
        }
        eprintln!("The plan failed on some hosts (above); nothing was changed on any host.");
        Err(Exit::StepFailed)
    }

    /// Without --yes: show the plan and ask. Nothing to change ends the run.
    async fn confirm_preview(&self, preview: &RunReport) -> Result<(), Exit> {
        if self.g.yes {
            if !self.json && !self.shape.quiet {
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
            self.redactor
                .apply(&self.shape.full_report(preview, self.color))
        );
        if changing == 0 {
            println!("Nothing to change.");
            return Err(Exit::Ok);
        }
        let question = format!(
            "Apply to {changing} host(s), {}? [y/N] ",
            strategy_words(&self.prepared.runbook)
        );
        self.confirmed(&question).await
    }

    /// The person's answer as the run's next stage.
    async fn confirmed(&self, question: &str) -> Result<(), Exit> {
        match self.confirm(question).await {
            Answer::Yes => Ok(()),
            Answer::No => {
                eprintln!("Not confirmed: nothing was changed.");
                Err(Exit::Denied)
            }
            Answer::Interrupted => {
                eprintln!("Interrupted at the prompt: nothing was changed.");
                Err(Exit::Interrupted)
            }
        }
    }

    async fn confirm_resume(&self) -> Result<(), Exit> {
        if !self.g.yes {
            self.confirmed("Continue this run? [y/N] ").await?;
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

    async fn record_locks(&self, locks: &Locks) {
        let holder = &locks.holder;
        self.event(
            "locks_acquired",
            serde_json::json!({ "targets": locks.targets, "token": locks.token, "holder": format!("{}@{} pid {}", holder.user, holder.host, holder.pid) }),
        );
        if let Some(c) = &locks.coordinated {
            self.event(
                "coordinated_locks_acquired",
                serde_json::json!({ "hosts": c.held.hosts, "token": c.held.revision, "lease": c.held.lease, "jump_host": c.coordinator.config().jump_host }),
            );
        }
        if let Some(why) = &locks.bypassed {
            self.bypassed_ops_etcd(why).await;
        }
    }

    /// Break-glass without the ops etcd: journaled, flagged for review and
    /// announced, like skipping an approval.
    async fn bypassed_ops_etcd(&self, why: &str) {
        let reason = self.who.break_glass.unwrap_or_default();
        self.event(
            "coordination_bypassed",
            serde_json::json!({ "reason": reason, "unreachable": why }),
        );
        let _ = self.journal.set_review(
            &self.record.run_id,
            &format!(
                "break-glass by {} without the ops etcd's locks: {reason}",
                self.record.actor
            ),
        );
        self.announce_break_glass(
            &format!("with local locks only (the ops etcd is unreachable): {reason}"),
            why.to_string(),
        )
        .await;
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
        locks: &Locks,
        resume: Option<ResumeState>,
        gate: Option<Arc<dyn ApprovalGate>>,
    ) -> RunReport {
        let live = self.shape.compact().filter(|_| !self.json);
        // --quiet: the outcome only, no progress.
        let progress = (!self.shape.quiet).then(|| Progress::new(self.redactor.clone(), live));
        let mut sink = JournalSink::new(
            self.journal.clone(),
            self.record.actor.clone(),
            self.redactor.clone(),
            Some(journal::Fence {
                inventory: self.prepared.inventory_path.clone(),
                token: locks.token,
            }),
        );
        sink.coordinated = locks.coordinated.clone();
        let mut sinks: Vec<&dyn EventSink> = vec![&sink];
        if let Some(progress) = &progress {
            sinks.push(progress);
        }
        let tee = Tee(sinks);
        let options = RunOptions {
            resume,
            gate,
            ..self.options(false)
        };
        let report = self.execute(&tee, options).await;
        if let Some(progress) = &progress {
            progress.finish();
        }
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
        let mut notice = asker.notice(
            kind,
            format!(
                "{} on {}: {}",
                self.prepared.runbook.name,
                self.record.hosts.join(", "),
                status_name(report.status)
            ),
            self.redactor.apply(&report.summary),
        );
        // The head after the run's last event, kept by the chat: a journal
        // later cut back before it fails `remedy audit verify --head`.
        notice.chain_head = self.journal.head().ok().map(|(_, hash)| hash);
        asker.notify(&notice).await;
    }
}

/// What a person answered at a prompt.
enum Answer {
    Yes,
    No,
    Interrupted,
}
