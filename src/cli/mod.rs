//! The command line: clap definitions and dispatch. One file per subcommand;
//! output rendering in `render`, live progress in `progress`.

mod approval;
mod approve;
mod audit;
pub(crate) mod backup;
mod check;
mod config;
mod daemon;
mod exec;
mod exit;
mod input;
mod inventory;
mod journal;
mod lab;
mod library;
mod list;
mod progress;
mod render;
mod request;
mod run;
mod show;
mod terminal;
mod validate;

use clap::{Args, Parser, Subcommand, ValueEnum};
pub use exit::Exit;
use std::path::PathBuf;

const ABOUT: &str =
    "Fix and maintain Kubernetes control planes over SSH, with runbooks that plan before they act.";

const LONG_ABOUT: &str = "\
Fix and maintain Kubernetes control planes over SSH, with runbooks that plan before they act.

A runbook is YAML with Rhai for its decisions. remedy checks it completely, binds it to an
inventory, plans every step read-only, shows you the plan, backs up every file it will change,
applies, verifies, and rolls back a host whose step fails.

Start here:
  remedy list                               built-in runbooks
  remedy show manifest-edit                 what a runbook does and its params
  remedy plan manifest-edit -i inv.yaml -p set=--max-requests-inflight=800
  remedy run  manifest-edit -i inv.yaml -p set=--max-requests-inflight=800";

#[derive(Debug, Parser)]
#[command(name = "remedy", version, about = ABOUT, long_about = LONG_ABOUT, after_help = exit::TABLE)]
pub struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Options every subcommand accepts, anywhere on the line.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Inventory file: hosts, groups, vars.
    #[arg(
        long,
        short = 'i',
        global = true,
        env = "REMEDY_INVENTORY",
        value_name = "PATH"
    )]
    pub inventory: Option<PathBuf>,
    /// Narrow the runbook's targets to hosts also matching PATTERN (e.g. master-1, 'master-*,!master-3').
    #[arg(long, short = 'l', global = true, value_name = "PATTERN")]
    pub limit: Option<String>,
    /// A runbook param; repeat for more. List params take one item per --param.
    #[arg(long = "param", short = 'p', global = true, value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// A YAML file of params (name: value); --param wins over it.
    #[arg(long, global = true, value_name = "FILE")]
    pub params_file: Option<PathBuf>,
    /// Apply without asking for confirmation (for scripts and schedules).
    #[arg(long, short = 'y', global = true)]
    pub yes: bool,
    /// Output format for plans, results and validation.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// Record the host keys of hosts not yet in known_hosts (never a changed key).
    #[arg(long, global = true)]
    pub accept_new_host_keys: bool,
    /// Say how the SSH client configuration is read and how each host is
    /// reached (address, user, keys, jump host or ProxyCommand). On a
    /// terminal, a run ends with the full per-step report, not the summary.
    #[arg(long, short = 'v', global = true)]
    pub verbose: bool,
    /// How many hosts to work on at once (dry-runs and `exec` fan out; a real
    /// run's batches follow the runbook's strategy, up to this many at once).
    #[arg(long, global = true, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..))]
    pub parallel: u16,
    /// Record NAME as the person acting (the OS user is recorded too), for
    /// shared accounts on a jump host.
    #[arg(long = "as", global = true, value_name = "NAME")]
    pub as_name: Option<String>,
    /// Site config: approver groups, allow_as, an approval policy for this
    /// jump host, chat identities, secrets and notifiers (default:
    /// $REMEDY_HOME/config.yaml when it exists).
    #[arg(long, global = true, env = "REMEDY_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Reach the Kubernetes API (kube.* and api.health steps, `inventory
    /// discover`) with this kubeconfig on the jump host, instead of through
    /// each master's SSH connection with its admin.conf.
    #[arg(long, global = true, env = "KUBECONFIG", value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig's context to use (default: its current context).
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
}

impl Global {
    /// How steps reach the API: `--kubeconfig`/`KUBECONFIG` (its first
    /// file, when it lists several), else through the masters.
    pub fn kube_access(&self) -> remedy_engine::action::kube::KubeAccess {
        use remedy_engine::action::kube::KubeAccess;
        let first = self
            .kubeconfig
            .as_ref()
            .and_then(|p| std::env::split_paths(p).find(|p| !p.as_os_str().is_empty()));
        match first {
            Some(path) => KubeAccess::Kubeconfig {
                path,
                context: self.context.clone(),
            },
            None => KubeAccess::Ssh,
        }
    }
}

/// Where runbooks beyond the built-in ones are found.
#[derive(Debug, Args)]
pub struct RunbookDirs {
    /// Also look for runbooks (NAME.yaml) in DIR; repeat for more.
    #[arg(long = "dir", value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a runbook: plan, confirm, back up, apply, verify (rolls back a failing host).
    Run {
        /// Built-in runbook name, a name in --dir, or a path to a .yaml file.
        runbook: String,
        /// Plan only: show what would change on each host; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Emergency: skip the approval policy (needs --reason). Journaled,
        /// notified, and the run is marked for review.
        #[arg(long, requires = "reason")]
        break_glass: bool,
        /// Why the approval is skipped (with --break-glass).
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
        #[command(flatten)]
        dirs: RunbookDirs,
        #[command(flatten)]
        quiet: run::Quiet,
    },
    /// Dry-run a runbook: show per host what would change (same as `run --dry-run`).
    Plan {
        /// Built-in runbook name, a name in --dir, or a path to a .yaml file.
        runbook: String,
        #[command(flatten)]
        dirs: RunbookDirs,
        #[command(flatten)]
        quiet: run::Quiet,
    },
    /// Check runbooks (YAML, keys, types, Rhai, references) without running anything.
    ///
    /// With no FILES, checks every built-in runbook and those in --dir. Exits 2 on any error.
    Validate {
        /// Runbook files to check.
        files: Vec<PathBuf>,
        #[command(flatten)]
        dirs: RunbookDirs,
    },
    /// List built-in runbooks (and those in --dir), or every action with --actions.
    List {
        /// List the actions a step can use instead.
        #[arg(long)]
        actions: bool,
        #[command(flatten)]
        dirs: RunbookDirs,
    },
    /// Run an ad-hoc command on hosts, in parallel (like `ansible -a` or parallel-ssh).
    ///
    /// With one host, its stdout and stderr pass through unchanged and remedy exits
    /// with the command's status (255 when the host cannot be reached), so it pipes
    /// like ssh. With several, lines are prefixed with the host name and failures
    /// are summarised on stderr.
    Exec {
        /// Hosts: a group, a host, or a pattern such as 'master-*,!master-3'.
        targets: String,
        /// The command, after `--`.
        #[arg(last = true, required = true, value_name = "COMMAND")]
        command: Vec<String>,
        /// Give up on a host's command after this long.
        #[arg(long, default_value = "10m", value_parser = parse_duration_arg)]
        timeout: u64,
    },
    /// Explain a runbook (summary, params, steps) or an action (arguments, results).
    Show {
        /// A runbook name or path, or an action name such as file.edit.
        name: String,
        #[command(flatten)]
        dirs: RunbookDirs,
    },
    /// Continue an interrupted run (the process died) where its journal says it stopped.
    ///
    /// Steps that finished are skipped; a step that recorded its intent but no
    /// outcome is planned again and applied only if still needed. A run whose
    /// rollback failed (exit 5, the host stopped answering) has its rollback
    /// retried. Same runbook (refused if it changed, unless --force),
    /// inventory, params and --limit.
    Resume {
        /// Run id (or a unique prefix or suffix, or `last`: the newest real run), from `remedy runs`.
        run: String,
        /// Resume even though the runbook changed since the run started.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        quiet: run::Quiet,
    },
    /// Approval requests waiting for a decision, with their plan summary and age.
    Approvals,
    /// Approve a waiting run (as your OS user; --as only where the site config allows).
    Approve {
        /// Run id (or a unique prefix or suffix, or `last`).
        run: String,
        /// The host, when approvals are per host or per step.
        #[arg(long)]
        host: Option<String>,
        /// The step, when approvals are per step.
        #[arg(long)]
        step: Option<String>,
        /// Recorded with the vote.
        #[arg(long, value_name = "TEXT")]
        comment: Option<String>,
    },
    /// Deny a waiting run: it ends as denied with nothing applied.
    Deny {
        /// Run id (or a unique prefix or suffix, or `last`).
        run: String,
        #[arg(long)]
        host: Option<String>,
        #[arg(long)]
        step: Option<String>,
        /// Why (recorded, and shown to the requester).
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
    /// Receive chat approvals: Slack and Mattermost buttons, a signed generic webhook.
    ///
    /// POST /slack/actions (Slack signing secret), /mattermost/actions (token),
    /// /webhook (X-Remedy-Signature HMAC-SHA256); GET /healthz. Secrets and
    /// chat-user mapping come from the site config's `chat:` section.
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8088", value_name = "ADDR:PORT")]
        listen: String,
    },
    /// Run runbooks on the cron schedules of the site config's `daemon:` block (--config FILE).
    ///
    /// Each firing is `remedy run RUNBOOK --yes` in a child process, writing to
    /// the same journal: same locks, same approval policy (give the policy an
    /// `auto_approve` rule for unattended runs). A firing is skipped, with a
    /// journal event, while the kill-switch file exists, outside its
    /// maintenance window, or when its targets are locked or unhealthy (their
    /// plan fails). See examples/config.yaml and examples/remedy-daemon.service.
    Daemon,
    /// What the daemon will run when: `schedule list` or `schedule next`.
    #[command(subcommand)]
    Schedule(ScheduleCommand),
    /// Recent runs with their status (running, ok, failed, interrupted, ...).
    Runs {
        /// At most this many.
        #[arg(long, default_value_t = 20)]
        last: usize,
    },
    /// Backups remedy took before changing files: list, show, restore one (as a planned, approved, journaled run).
    #[command(subcommand)]
    Backup(backup::BackupCommand),
    /// The tamper-evident journal: list, show, verify, export.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Per-host run locks: list, break a stale one.
    #[command(subcommand)]
    Lock(audit::LockCommand),
    /// Diagnose the control plane read-only: every master at once over SSH
    /// (kubelet, static pods and why one is down, API server health,
    /// certificates, stranded manifests, disk, memory, file descriptors),
    /// etcd and the load balancers; then the command that fixes each problem.
    ///
    /// Answers within 10 s even when a master hangs (that master is a
    /// finding). `-l PATTERN` narrows the masters; etcd is always checked
    /// whole. Exit 0: all ok; 1: warnings; 2: a critical finding (or invalid
    /// input). `-o json`: a list of {host, check, severity, message,
    /// evidence, fix}.
    Check,
    /// A practice control plane of real servers on this machine: up, status, down, break.
    #[command(subcommand)]
    Lab(lab::LabCommand),
    /// Inventories: `discover` writes one from what the Kubernetes API knows.
    #[command(subcommand)]
    Inventory(inventory::InventoryCommand),
}

#[derive(Debug, Subcommand)]
enum ScheduleCommand {
    /// Every schedule in the site config (--config) with its next and last firing.
    List,
    /// The next firings across all schedules, in time order.
    Next {
        /// How many.
        #[arg(long, default_value_t = 10)]
        count: usize,
    },
}

impl Command {
    /// Reads the journal, the runbooks or the site config and prints: no
    /// host, socket or child process is written to.
    fn only_reads_local_state(&self) -> bool {
        matches!(
            self,
            Command::Show { .. }
                | Command::List { .. }
                | Command::Validate { .. }
                | Command::Runs { .. }
                | Command::Audit(_)
                | Command::Backup(backup::BackupCommand::List(_))
                | Command::Lock(audit::LockCommand::List)
                | Command::Schedule(_)
        )
    }
}

/// Parse the command line and run it; returns the exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                Exit::Invalid.into()
            } else {
                Exit::Ok.into()
            };
        }
    };
    let g = &cli.global;
    if cli.command.only_reads_local_state() {
        // Like cat: `remedy show X | head -1` ends quietly when head
        // closes the pipe, not with a panic. Only commands that read local
        // state: a run must never die of SIGPIPE on a dropped connection.
        // The signal is also unblocked: a blocked mask is inherited across
        // exec (some CI runners and service managers start children so), and
        // a blocked SIGPIPE would turn the closed pipe into EPIPE instead.
        // SAFETY: restoring a signal's default disposition and unblocking it,
        // before any thread is started.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGPIPE);
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        }
    }
    match &cli.command {
        Command::Run {
            runbook,
            dry_run,
            break_glass,
            reason,
            dirs,
            quiet,
        } => run::run(
            g,
            &dirs.dirs,
            runbook,
            *dry_run,
            reason.as_deref().filter(|_| *break_glass),
            *quiet,
        )
        .into(),
        Command::Plan {
            runbook,
            dirs,
            quiet,
        } => run::run(g, &dirs.dirs, runbook, true, None, *quiet).into(),
        Command::Approvals => approve::approvals(g).into(),
        Command::Approve {
            run,
            host,
            step,
            comment,
        } => approve::decide(
            g,
            run,
            host.as_deref(),
            step.as_deref(),
            true,
            comment.as_deref(),
        )
        .into(),
        Command::Deny {
            run,
            host,
            step,
            reason,
        } => approve::decide(
            g,
            run,
            host.as_deref(),
            step.as_deref(),
            false,
            Some(reason),
        )
        .into(),
        Command::Serve { listen } => approve::serve(g, listen).into(),
        Command::Daemon => daemon::daemon(g).into(),
        Command::Schedule(ScheduleCommand::List) => daemon::list(g, None).into(),
        Command::Schedule(ScheduleCommand::Next { count }) => daemon::list(g, Some(*count)).into(),
        Command::Validate { files, dirs } => validate::validate(g, &dirs.dirs, files).into(),
        Command::List { actions, dirs } => list::list(g, &dirs.dirs, *actions).into(),
        Command::Show { name, dirs } => show::show(g, &dirs.dirs, name).into(),
        Command::Lab(cmd) => lab::lab(g, cmd),
        Command::Inventory(cmd) => inventory::inventory(g, cmd),
        Command::Check => check::check(g),
        Command::Resume { run, force, quiet } => run::resume(g, run, *force, *quiet).into(),
        Command::Runs { last } => audit::runs(g, *last).into(),
        Command::Audit(cmd) => audit::audit(g, cmd).into(),
        Command::Backup(cmd) => backup::backup_command(g, cmd).into(),
        Command::Lock(cmd) => audit::lock(g, cmd).into(),
        Command::Exec {
            targets,
            command,
            timeout,
        } => exec::exec(
            g,
            targets,
            &command.join(" "),
            *timeout,
            g.parallel as usize,
        ),
    }
}

/// Colour only on a terminal, and never with NO_COLOR set.
pub fn use_color() -> bool {
    use std::io::IsTerminal;
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stdout().is_terminal()
}

fn parse_duration_arg(s: &str) -> Result<u64, String> {
    remedy_dsl::param::parse_duration(s)
        .map(|v| v as u64)
        .ok_or_else(|| format!("`{s}` is not a duration (e.g. 30s, 10m)"))
}
