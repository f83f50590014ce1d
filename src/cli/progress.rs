//! Live progress of a real run on stderr: one line per transition that
//! matters (applying, backed up, retry, failed, rolled back), and a spinner for
//! long waits on a terminal (plain lines every 10 s otherwise). On a terminal
//! without -v: one live line per host instead (its step, how long that step
//! has taken, the wait it is in), and only failures, rollbacks and warnings
//! printed above them.

use super::terminal;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use remedy_engine::event::{Event, EventKind, EventSink};
use remedy_engine::redact::Redactor;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

pub struct Progress {
    redactor: Redactor,
    spinner: Option<ProgressBar>,
    live: Option<Live>,
}

/// The live lines: one per host, in the order of the run's hosts.
struct Live {
    multi: MultiProgress,
    width: usize,
    /// Each host's line and the step it shows.
    hosts: Mutex<Vec<(String, ProgressBar, Option<String>)>>,
}

/// The live lines being drawn, for [`note`] (one run per process).
static SHOWN: Mutex<Option<(MultiProgress, usize)>> = Mutex::new(None);

/// A line for the person on stderr (an interrupt, an approval that is
/// waiting): printed above the live lines while they are drawn, which
/// would otherwise draw over it.
pub fn note(text: &str) {
    let shown = SHOWN.lock().unwrap_or_else(|e| e.into_inner());
    match &*shown {
        Some((multi, width)) => {
            let _ = multi.println(terminal::wrap(text, *width));
        }
        None => eprintln!("{text}"),
    }
}

impl Live {
    fn new(width: usize) -> Live {
        let multi = MultiProgress::new();
        *SHOWN.lock().unwrap_or_else(|e| e.into_inner()) = Some((multi.clone(), width));
        Live {
            multi,
            width,
            hosts: Mutex::new(Vec::new()),
        }
    }

    /// The host's line (made on first use), with `step` shown: a new step
    /// starts its clock again.
    fn line(&self, host: &str, step: Option<&str>) -> ProgressBar {
        let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        let name_w = hosts.iter().map(|(h, ..)| h.len()).max().unwrap_or(0);
        let at = match hosts.iter().position(|(h, ..)| h == host) {
            Some(at) => at,
            None => {
                let pb = self.multi.add(ProgressBar::new_spinner());
                pb.set_style(
                    ProgressStyle::with_template("{spinner} {prefix} {elapsed:>4}  {wide_msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                pb.enable_steady_tick(Duration::from_millis(120));
                pb.set_message("waiting for its batch");
                hosts.push((host.to_string(), pb, None));
                let name_w = name_w.max(host.len());
                for (h, pb, _) in hosts.iter() {
                    pb.set_prefix(format!("{h:name_w$}"));
                }
                hosts.len() - 1
            }
        };
        let (_, pb, shown) = &mut hosts[at];
        if let Some(step) = step.filter(|s| shown.as_deref() != Some(*s)) {
            *shown = Some(step.to_string());
            pb.reset_elapsed();
            pb.set_message(step.to_string());
        }
        pb.clone()
    }

    /// What a host's line shows next to its step.
    fn show(&self, e: &Event, what: String) {
        if let Some(host) = &e.host {
            let pb = self.line(host, e.step.as_deref());
            match &e.step {
                Some(step) => pb.set_message(format!("{step}: {what}")),
                None => pb.set_message(what),
            }
        }
    }

    fn finish(&self) {
        let hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        for (_, pb, _) in hosts.iter() {
            pb.finish_and_clear();
        }
        let _ = self.multi.clear();
        *SHOWN.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// The live lines' part of an event; `false` when it is printed as a
    /// line above them instead.
    fn handle(&self, e: &Event, redactor: &Redactor) -> bool {
        if let (Some(host), step) = (&e.host, e.step.as_deref()) {
            self.line(host, step);
        }
        match &e.kind {
            EventKind::RunStarted { hosts, .. } => {
                for h in hosts {
                    self.line(h, None);
                }
            }
            EventKind::HostStarted => self.show(e, "starting".into()),
            EventKind::StepIntent { attempt } if *attempt > 1 => {
                self.show(e, format!("applying (attempt {attempt})"))
            }
            EventKind::StepIntent { .. } => self.show(e, "applying".into()),
            EventKind::StepRetry {
                wait_secs, reason, ..
            } => self.show(
                e,
                redactor.apply(&format!("retry in {wait_secs}s: {reason}")),
            ),
            EventKind::Waiting { what, .. } => self.show(e, redactor.apply(what)),
            EventKind::StepApplied { .. } => self.show(e, "verifying".into()),
            EventKind::HostFinished { status } => {
                if let Some(host) = &e.host {
                    let pb = self.line(host, None);
                    pb.set_message(status.clone());
                    pb.disable_steady_tick();
                }
            }
            EventKind::StepFailed { .. }
            | EventKind::RollbackStarted { .. }
            | EventKind::StepRolledBack { .. }
            | EventKind::RollbackFailed { .. }
            | EventKind::StrandedFound { .. }
            | EventKind::InvariantFailed { .. } => return false,
            _ => {}
        }
        true
    }
}

impl Progress {
    /// `live`: the width of the terminal for one live line per host (only
    /// when stderr is a terminal too: otherwise the lines as before).
    pub fn new(redactor: Redactor, live: Option<usize>) -> Progress {
        let live = live
            .filter(|_| std::io::stderr().is_terminal())
            .map(Live::new);
        let spinner = (live.is_none() && std::io::stderr().is_terminal()).then(|| {
            let pb = ProgressBar::new_spinner();
            pb.set_style(
                ProgressStyle::with_template("{spinner} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            pb.enable_steady_tick(Duration::from_millis(120));
            pb
        });
        Progress {
            redactor,
            spinner,
            live,
        }
    }

    fn line(&self, text: String) {
        let text = self.redactor.apply(&text);
        match (&self.live, &self.spinner) {
            (Some(live), _) => {
                let _ = live.multi.println(terminal::wrap(&text, live.width));
            }
            (None, Some(pb)) => pb.println(text),
            (None, None) => eprintln!("{text}"),
        }
    }

    pub fn finish(&self) {
        if let Some(pb) = &self.spinner {
            pb.finish_and_clear();
        }
        if let Some(live) = &self.live {
            live.finish();
        }
    }
}

impl EventSink for Progress {
    fn emit(&self, e: &Event) -> Result<(), String> {
        if let Some(live) = &self.live {
            if live.handle(e, &self.redactor) {
                return Ok(());
            }
        }
        let at = match (&e.host, &e.step) {
            (Some(h), Some(s)) => format!("{h} › {s}"),
            (Some(h), None) => h.clone(),
            _ => String::new(),
        };
        match &e.kind {
            EventKind::BatchStarted { index, hosts } => {
                self.line(format!("batch {}: {}", index + 1, hosts.join(", ")))
            }
            EventKind::StepIntent { attempt } if *attempt > 1 => {
                self.line(format!("{at}: applying (attempt {attempt})"))
            }
            EventKind::StepIntent { .. } => {
                if let Some(pb) = &self.spinner {
                    pb.set_message(format!("{at}: applying"));
                }
            }
            EventKind::BackupTaken { backup } => {
                let what = match (&backup.location, &backup.sha256) {
                    (Some(loc), Some(sha)) => format!(
                        "backed up {} → {loc} (sha256 {})",
                        backup.path,
                        &sha[..12.min(sha.len())]
                    ),
                    _ => format!("noted {} does not exist yet", backup.path),
                };
                self.line(format!("{at}: {what}"));
            }
            EventKind::StepApplied { result, .. } if result["changed"].as_bool() == Some(true) => {
                self.line(format!("{at}: changed"))
            }
            EventKind::StepRetry {
                wait_secs, reason, ..
            } => self.line(format!("{at}: retry in {wait_secs}s: {reason}")),
            EventKind::Waiting { what, elapsed_secs } => match &self.spinner {
                Some(pb) => pb.set_message(
                    self.redactor
                        .apply(&format!("{at}: {what} ({elapsed_secs}s)")),
                ),
                None if elapsed_secs % 10 < 2 => {
                    self.line(format!("{at}: {what} ({elapsed_secs}s)"))
                }
                None => {}
            },
            EventKind::StepFailed { error } => self.line(format!("{at}: FAILED: {error}")),
            EventKind::RollbackStarted { reason } => {
                self.line(format!("{at}: rolling back ({reason})"))
            }
            EventKind::StepRolledBack { restored } if restored.is_empty() => self.line(format!(
                "{at}: nothing to restore (already as before the run, or no declared files)"
            )),
            EventKind::StepRolledBack { restored } => {
                self.line(format!("{at}: restored {}", restored.join(", ")))
            }
            EventKind::RollbackFailed { error } => {
                self.line(format!("{at}: ROLLBACK FAILED: {error}"))
            }
            EventKind::HostFinished { status } => self.line(format!("{at}: {status}")),
            EventKind::StrandedFound { error, hint } => {
                self.line(format!("warning: {error}\n  = hint: {hint}"))
            }
            EventKind::InvariantFailed { error, hint } => {
                self.line(format!("error: {error}\n  = hint: {hint}"))
            }
            _ => {}
        }
        Ok(())
    }
}
