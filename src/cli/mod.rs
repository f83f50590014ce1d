//! The command line: clap definitions and dispatch. One file per subcommand;
//! output rendering in `render`, live progress in `progress`.

mod approval;
mod approve;
mod audit;
pub(crate) mod backup;
mod check;
mod complete;
mod config;
mod daemon;
mod exec;
mod exit;
mod flags;
mod input;
mod inventory;
mod journal;
mod lab;
mod leadership;
mod library;
mod list;
mod metrics;
mod progress;
mod render;
mod request;
mod run;
mod schema;
mod service_log;
mod show;
mod terminal;
mod validate;

use clap::{Args, Parser, Subcommand};
pub use exit::Exit;
use flags::{
    ActorArgs, ApplyArgs, ConfigArg, HostArgs, InventoryArg, OutputArg, Overlay, ParallelArg,
    RunbookArgs, SshArgs, YesArg,
};
pub use flags::{Global, Output};
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
  remedy run  manifest-edit -i inv.yaml -p set=--max-requests-inflight=800

Each command's --help shows the options it takes, with examples. Tab completion:
  source <(remedy completions bash)        (zsh, fish too; see `remedy completions --help`)";

#[derive(Debug, Parser)]
#[command(name = "remedy", version, about = ABOUT, long_about = LONG_ABOUT, after_help = exit::TABLE)]
pub struct Cli {
    /// Options given before the command's name (`remedy -i inv.yaml run X`),
    /// as every option could be before each command took only its own.
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Where runbooks beyond the built-in ones are found.
#[derive(Debug, Args)]
pub struct RunbookDirs {
    /// Also look for runbooks (NAME.yaml) in DIR; repeat for more.
    #[arg(long = "dir", value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
    pub dirs: Vec<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a runbook: plan, confirm, back up, apply, verify (rolls back a failing host).
    #[command(after_help = "\
Examples:
  remedy run cert-renew --dry-run -i inventory.yaml
  remedy run manifest-edit -i inventory.yaml -l master-1 -p set=--max-requests-inflight=800")]
    Run {
        /// Built-in runbook name, a name in --dir, or a path to a .yaml file.
        #[arg(add = complete::runbooks())]
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
        yes: YesArg,
        #[command(flatten)]
        args: RunbookArgs,
        #[command(flatten)]
        quiet: run::Quiet,
    },
    /// Dry-run a runbook: show per host what would change (same as `run --dry-run`).
    #[command(after_help = "\
Examples:
  remedy plan cert-renew -i inventory.yaml
  remedy plan etcd-maintenance -i inventory.yaml -o json")]
    Plan {
        /// Built-in runbook name, a name in --dir, or a path to a .yaml file.
        #[arg(add = complete::runbooks())]
        runbook: String,
        #[command(flatten)]
        dirs: RunbookDirs,
        #[command(flatten)]
        args: RunbookArgs,
        #[command(flatten)]
        quiet: run::Quiet,
    },
    /// Check runbooks (YAML, keys, types, Rhai, references) without running anything.
    ///
    /// With no FILES, checks every built-in runbook and those in --dir. Exits 2 on any error.
    #[command(after_help = "\
Examples:
  remedy validate
  remedy validate my-runbook.yaml -i inventory.yaml")]
    Validate {
        /// Runbook files to check.
        #[arg(value_hint = clap::ValueHint::FilePath)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        dirs: RunbookDirs,
        #[command(flatten)]
        inventory: InventoryArg,
        #[command(flatten)]
        output: OutputArg,
    },
    /// List built-in runbooks (and those in --dir), or every action with --actions.
    #[command(after_help = "\
Examples:
  remedy list
  remedy list --actions")]
    List {
        /// List the actions a step can use instead.
        #[arg(long)]
        actions: bool,
        #[command(flatten)]
        dirs: RunbookDirs,
        #[command(flatten)]
        output: OutputArg,
    },
    /// Run an ad-hoc command on hosts, in parallel (like `ansible -a` or parallel-ssh).
    ///
    /// With one host, its stdout and stderr pass through unchanged and remedy exits
    /// with the command's status (255 when the host cannot be reached), so it pipes
    /// like ssh. With several, lines are prefixed with the host name and failures
    /// are summarised on stderr.
    #[command(after_help = "\
Examples:
  remedy exec -i inventory.yaml masters -- uptime
  remedy exec -i inventory.yaml master-1 -- crictl ps")]
    Exec {
        /// Hosts: a group, a host, or a pattern such as 'master-*,!master-3'.
        #[arg(add = complete::limit())]
        targets: String,
        /// The command, after `--`.
        #[arg(last = true, required = true, value_name = "COMMAND")]
        command: Vec<String>,
        /// Give up on a host's command after this long.
        #[arg(long, default_value = "10m", value_parser = parse_duration_arg)]
        timeout: u64,
        #[command(flatten)]
        hosts: HostArgs,
        #[command(flatten)]
        parallel: ParallelArg,
    },
    /// Explain a runbook (summary, params, steps) or an action (arguments, results).
    #[command(after_help = "\
Examples:
  remedy show cert-renew
  remedy show file.edit")]
    Show {
        /// A runbook name or path, or an action name such as file.edit.
        #[arg(add = complete::runbooks())]
        name: String,
        #[command(flatten)]
        dirs: RunbookDirs,
        #[command(flatten)]
        output: OutputArg,
    },
    /// Continue an interrupted run (the process died) where its journal says it stopped.
    ///
    /// Steps that finished are skipped; a step that recorded its intent but no
    /// outcome is planned again and applied only if still needed. A run whose
    /// rollback failed (exit 5, the host stopped answering) has its rollback
    /// retried. Same runbook (refused if it changed, unless --force),
    /// inventory, params and --limit.
    #[command(after_help = "\
Examples:
  remedy resume last
  remedy resume 4d5e --yes")]
    Resume {
        /// Run id (or a unique prefix or suffix, or `last`: the newest real run), from `remedy runs`.
        run: String,
        /// Resume even though the runbook changed since the run started.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        apply: ApplyArgs,
        #[command(flatten)]
        quiet: run::Quiet,
    },
    /// A static pod's log on a host, like `crictl logs` there: the newest
    /// container of COMPONENT (running or exited, so a crash-looping one's
    /// last words too), over SSH.
    ///
    /// Output passes through byte for byte; the exit status is crictl's (255
    /// when the host cannot be reached, 3 when it has no such container).
    #[command(after_help = "\
Examples:
  remedy logs master-2 kube-apiserver --tail 50
  remedy logs master-1 etcd -i inventory.yaml | grep -i slow")]
    Logs {
        /// The host (a name from the inventory).
        #[arg(add = complete::limit())]
        host: String,
        /// The static pod: kube-apiserver, etcd, kube-controller-manager, kube-scheduler, ...
        #[arg(add = complete::components())]
        component: String,
        /// Only the last N lines.
        #[arg(long, value_name = "N")]
        tail: Option<u32>,
        #[command(flatten)]
        inventory: InventoryArg,
        #[command(flatten)]
        ssh: SshArgs,
    },
    /// Approval requests waiting for a decision, with their plan summary and age.
    #[command(after_help = "\
Examples:
  remedy approvals
  remedy approvals -o json")]
    Approvals {
        #[command(flatten)]
        output: OutputArg,
    },
    /// Approve a waiting run (as your OS user; --as only where the site config allows).
    #[command(after_help = "\
Examples:
  remedy approve last
  remedy approve 4d5e --host master-2 --comment 'checked the plan'")]
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
        #[command(flatten)]
        actor: ActorArgs,
    },
    /// Deny a waiting run: it ends as denied with nothing applied.
    #[command(after_help = "\
Example:
  remedy deny last --reason 'not during the release freeze'")]
    Deny {
        /// Run id (or a unique prefix or suffix, or `last`).
        run: String,
        /// The host, when approvals are per host or per step.
        #[arg(long)]
        host: Option<String>,
        /// The step, when approvals are per step.
        #[arg(long)]
        step: Option<String>,
        /// Why (recorded, and shown to the requester).
        #[arg(long, value_name = "TEXT")]
        reason: String,
        #[command(flatten)]
        actor: ActorArgs,
    },
    /// Receive chat approvals: Slack and Mattermost buttons, a signed generic webhook.
    ///
    /// POST /slack/actions (Slack signing secret), /mattermost/actions (token),
    /// /webhook (X-Remedy-Signature HMAC-SHA256); GET /healthz, and GET
    /// /metrics for Prometheus. Secrets and chat-user mapping come from the
    /// site config's `chat:` section.
    #[command(after_help = "\
Example:
  remedy serve --config /etc/remedy/config.yaml --listen 127.0.0.1:8088")]
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8088", value_name = "ADDR:PORT")]
        listen: String,
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        log: service_log::LogArgs,
    },
    /// Run runbooks on the cron schedules of the site config's `daemon:` block (--config FILE).
    ///
    /// Each firing is `remedy run RUNBOOK --yes` in a child process, writing to
    /// the same journal: same locks, same approval policy (give the policy an
    /// `auto_approve` rule for unattended runs). A firing is skipped, with a
    /// journal event, while the kill-switch file exists, outside its
    /// maintenance window, or when its targets are locked or unhealthy (their
    /// plan fails). See examples/config.yaml and examples/remedy-daemon.service.
    #[command(after_help = "\
Example:
  remedy daemon --config /etc/remedy/config.yaml --metrics-listen 127.0.0.1:9187")]
    Daemon(daemon::DaemonArgs),
    /// What the daemon will run when: `schedule list` or `schedule next`.
    #[command(subcommand)]
    Schedule(ScheduleCommand),
    /// Recent runs with their status (running, ok, failed, interrupted, ...);
    /// `runs last`: the newest real run only.
    #[command(after_help = "\
Examples:
  remedy runs
  remedy runs last -o json")]
    Runs {
        /// `last`: only the newest real (not dry-run) run, as `resume last` and
        /// `audit show last` mean it.
        #[arg(value_parser = ["last"])]
        which: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 20)]
        last: usize,
        #[command(flatten)]
        output: OutputArg,
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
    #[command(after_help = "\
Examples:
  remedy check -i inventory.yaml
  remedy check -i inventory.yaml -l master-2 -o json")]
    Check {
        #[command(flatten)]
        hosts: HostArgs,
    },
    /// A practice control plane of real servers on this machine: up, status, down, break.
    #[command(subcommand)]
    Lab(lab::LabCommand),
    /// Inventories: `discover` writes one from what the Kubernetes API knows.
    #[command(subcommand)]
    Inventory(inventory::InventoryCommand),
    /// Print a JSON Schema, for editors (the YAML language server) and other tools.
    ///
    /// Example: `remedy schema runbook > runbook.schema.json`, then put
    /// `# yaml-language-server: $schema=runbook.schema.json` on a runbook's first line.
    Schema {
        /// What the schema describes.
        #[arg(value_enum)]
        kind: schema::SchemaKind,
    },
    /// The site config: `config check` validates it.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print a shell completion script: subcommands, options, runbook names,
    /// the inventory's hosts and groups (-l, exec), the runbook's params (-p).
    #[command(after_help = "\
Examples:
  source <(remedy completions bash)                 # in ~/.bashrc
  source <(remedy completions zsh)                  # in ~/.zshrc
  remedy completions fish > ~/.config/fish/completions/remedy.fish")]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: complete::Shell,
    },
    /// Write the man pages: remedy.1 on stdout, or every page into --dir.
    #[command(after_help = "\
Examples:
  remedy man | man -l -
  remedy man --dir /usr/local/share/man/man1")]
    Man {
        /// Write remedy.1 and one page per subcommand (remedy-run.1, …) here.
        #[arg(long, value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum ScheduleCommand {
    /// Every schedule in the site config (--config) with its next and last firing.
    #[command(after_help = "Example:\n  remedy schedule list --config /etc/remedy/config.yaml")]
    List {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        output: OutputArg,
    },
    /// The next firings across all schedules, in time order.
    #[command(after_help = "Example:\n  remedy schedule next --count 5")]
    Next {
        /// How many.
        #[arg(long, default_value_t = 10)]
        count: usize,
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        output: OutputArg,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Check the site config (--config, REMEDY_CONFIG or $REMEDY_HOME/config.yaml):
    /// keys, groups, allow_as, the approval policy and its groups, chat users,
    /// notifier URLs, chat secrets resolvable here, the daemon's schedules.
    /// Every problem at once, with its file:line; exit 2 if any.
    #[command(after_help = "\
Examples:
  remedy config check
  remedy config check --config /etc/remedy/config.yaml")]
    Check {
        #[command(flatten)]
        config: ConfigArg,
    },
}

impl Overlay for ScheduleCommand {
    fn overlay(&self, g: &mut Global) {
        match self {
            ScheduleCommand::List { config, output }
            | ScheduleCommand::Next { config, output, .. } => {
                config.overlay(g);
                output.overlay(g);
            }
        }
    }
}

impl Overlay for Command {
    fn overlay(&self, g: &mut Global) {
        match self {
            Command::Run { yes, args, .. } => {
                yes.overlay(g);
                args.overlay(g);
            }
            Command::Plan { args, .. } => args.overlay(g),
            Command::Validate {
                inventory, output, ..
            } => {
                inventory.overlay(g);
                output.overlay(g);
            }
            Command::List { output, .. }
            | Command::Show { output, .. }
            | Command::Approvals { output }
            | Command::Runs { output, .. } => output.overlay(g),
            Command::Exec {
                hosts, parallel, ..
            } => {
                hosts.overlay(g);
                parallel.overlay(g);
            }
            Command::Resume { apply, .. } => apply.overlay(g),
            Command::Logs { inventory, ssh, .. } => {
                inventory.overlay(g);
                ssh.overlay(g);
            }
            Command::Approve { actor, .. } | Command::Deny { actor, .. } => actor.overlay(g),
            Command::Serve { config, .. } => config.overlay(g),
            Command::Daemon(args) => args.config.overlay(g),
            Command::Schedule(cmd) => cmd.overlay(g),
            Command::Backup(cmd) => cmd.overlay(g),
            Command::Audit(cmd) => cmd.overlay(g),
            Command::Lock(cmd) => cmd.overlay(g),
            Command::Check { hosts } => hosts.overlay(g),
            Command::Lab(cmd) => cmd.overlay(g),
            Command::Inventory(cmd) => cmd.overlay(g),
            Command::Config(ConfigCommand::Check { config }) => config.overlay(g),
            Command::Completions { .. } | Command::Man { .. } | Command::Schema { .. } => {}
        }
    }
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
                | Command::Backup(backup::BackupCommand::List { .. })
                | Command::Lock(audit::LockCommand::List { .. })
                | Command::Schedule(_)
                | Command::Schema { .. }
                | Command::Config(_)
                | Command::Completions { .. }
                | Command::Man { .. }
        )
    }
}

/// Parse the command line and run it; returns the exit code.
pub fn main() -> i32 {
    complete::answer_if_asked();
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
    let mut resolved = cli.global.clone();
    cli.command.overlay(&mut resolved);
    let g = &resolved;
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
            ..
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
            ..
        } => run::run(g, &dirs.dirs, runbook, true, None, *quiet).into(),
        Command::Approvals { .. } => approve::approvals(g).into(),
        Command::Approve {
            run,
            host,
            step,
            comment,
            ..
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
            ..
        } => approve::decide(
            g,
            run,
            host.as_deref(),
            step.as_deref(),
            false,
            Some(reason),
        )
        .into(),
        Command::Serve { listen, log, .. } => approve::serve(g, listen, log).into(),
        Command::Daemon(args) => daemon::daemon(g, args).into(),
        Command::Schedule(ScheduleCommand::List { .. }) => daemon::list(g, None).into(),
        Command::Schedule(ScheduleCommand::Next { count, .. }) => {
            daemon::list(g, Some(*count)).into()
        }
        Command::Validate { files, dirs, .. } => validate::validate(g, &dirs.dirs, files).into(),
        Command::List { actions, dirs, .. } => list::list(g, &dirs.dirs, *actions).into(),
        Command::Show { name, dirs, .. } => show::show(g, &dirs.dirs, name).into(),
        Command::Lab(cmd) => lab::lab(g, cmd),
        Command::Inventory(cmd) => inventory::inventory(g, cmd),
        Command::Schema { kind } => schema::schema(*kind).into(),
        Command::Check { .. } => check::check(g),
        Command::Resume {
            run, force, quiet, ..
        } => run::resume(g, run, *force, *quiet).into(),
        Command::Runs { which, last, .. } => match which {
            Some(_) => audit::last_run(g).into(),
            None => audit::runs(g, *last).into(),
        },
        Command::Audit(cmd) => audit::audit(g, cmd).into(),
        Command::Backup(cmd) => backup::backup_command(g, cmd).into(),
        Command::Lock(cmd) => audit::lock(g, cmd).into(),
        Command::Config(ConfigCommand::Check { .. }) => config::check(g).into(),
        Command::Logs {
            host,
            component,
            tail,
            ..
        } => exec::logs(g, host, component, *tail),
        Command::Completions { shell } => complete::script(*shell).into(),
        Command::Man { dir } => complete::man(dir.as_deref()).into(),
        Command::Exec {
            targets,
            command,
            timeout,
            ..
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
