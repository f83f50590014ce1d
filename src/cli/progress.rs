//! Live progress of a real run on stderr: one line per transition that
//! matters (applying, backed up, retry, failed, rolled back), and a spinner for
//! long waits on a terminal (plain lines every 10 s otherwise).

use indicatif::{ProgressBar, ProgressStyle};
use remedy_engine::event::{Event, EventKind, EventSink};
use remedy_engine::redact::Redactor;
use std::io::IsTerminal;
use std::time::Duration;

pub struct Progress {
    redactor: Redactor,
    spinner: Option<ProgressBar>,
}

impl Progress {
    pub fn new(redactor: Redactor) -> Progress {
        let spinner = std::io::stderr().is_terminal().then(|| {
            let pb = ProgressBar::new_spinner();
            pb.set_style(
                ProgressStyle::with_template("{spinner} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            pb.enable_steady_tick(Duration::from_millis(120));
            pb
        });
        Progress { redactor, spinner }
    }

    fn line(&self, text: String) {
        let text = self.redactor.apply(&text);
        match &self.spinner {
            Some(pb) => pb.println(text),
            None => eprintln!("{text}"),
        }
    }

    pub fn finish(&self) {
        if let Some(pb) = &self.spinner {
            pb.finish_and_clear();
        }
    }
}

impl EventSink for Progress {
    fn emit(&self, e: &Event) -> Result<(), String> {
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
