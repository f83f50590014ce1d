//! The options each subcommand takes, in small groups a subcommand flattens
//! only when they mean something to it (`remedy approve --help` shows no
//! `--yes`), and [`Global`]: all of them resolved into the one value the
//! subcommands read.
//!
//! Before this split every option was global, so `remedy -i inv.yaml run X`
//! and `remedy -v exec …` were valid lines. They still are: [`Global`] is
//! also parsed, hidden, before the subcommand's name, and the subcommand's
//! own groups are laid over it ([`Overlay`]).

use super::complete;
use clap::{Args, ValueEnum};
use std::path::PathBuf;

/// Every option a subcommand may read, resolved: the hidden options given
/// before the subcommand's name, with the subcommand's own laid over them.
#[derive(Debug, Clone, Args)]
pub struct Global {
    #[arg(long, short = 'i', hide = true)]
    pub inventory: Option<PathBuf>,
    #[arg(long, short = 'l', hide = true)]
    pub limit: Option<String>,
    #[arg(long = "param", short = 'p', hide = true)]
    pub params: Vec<String>,
    #[arg(long, hide = true)]
    pub params_file: Option<PathBuf>,
    #[arg(long, short = 'y', hide = true)]
    pub yes: bool,
    #[arg(long, short = 'o', hide = true, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    #[arg(long, hide = true)]
    pub accept_new_host_keys: bool,
    #[arg(long, short = 'v', hide = true)]
    pub verbose: bool,
    #[arg(long, hide = true, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..))]
    pub parallel: u16,
    #[arg(long = "as", hide = true)]
    pub as_name: Option<String>,
    // The environment is read here, once, whichever subcommand follows.
    // Global: scripts pass the site config to every command they run (a
    // subcommand that reads it shows its own --config in its help).
    #[arg(long, hide = true, global = true, env = "REMEDY_CONFIG")]
    pub config: Option<PathBuf>,
    /// `--kubeconfig` only: `KUBECONFIG` is read by [`Global::kubeconfig`],
    /// which says which of the two it was.
    #[arg(long, hide = true)]
    pub kubeconfig: Option<PathBuf>,
    #[arg(long, hide = true)]
    pub context: Option<String>,
}

impl Default for Global {
    /// What a command line without options means.
    fn default() -> Global {
        Global {
            inventory: None,
            limit: None,
            params: Vec::new(),
            params_file: None,
            yes: false,
            output: Output::Text,
            accept_new_host_keys: false,
            verbose: false,
            parallel: 32,
            as_name: None,
            config: None,
            kubeconfig: None,
            context: None,
        }
    }
}

pub use remedy_engine::action::kube::KubeconfigFrom;

impl Global {
    /// The kubeconfig to reach the API with: `--kubeconfig`, else
    /// `KUBECONFIG` (its first file, when it lists several), and which of
    /// the two named it — a variable set long ago in a shell must not switch
    /// a run to another cluster unseen.
    pub fn kubeconfig(&self) -> Option<(PathBuf, KubeconfigFrom)> {
        let (value, from) = match &self.kubeconfig {
            Some(p) => (p.clone().into_os_string(), KubeconfigFrom::Flag),
            None => (
                std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty())?,
                KubeconfigFrom::Env,
            ),
        };
        std::env::split_paths(&value)
            .find(|p| !p.as_os_str().is_empty())
            .map(|p| (p, from))
    }

    /// How steps reach the API: [`Global::kubeconfig`], else through the masters.
    pub fn kube_access(&self) -> remedy_engine::action::kube::KubeAccess {
        use remedy_engine::action::kube::KubeAccess;
        match self.kubeconfig() {
            Some((path, from)) => KubeAccess::Kubeconfig {
                path,
                context: self.context.clone(),
                from,
            },
            None => KubeAccess::Ssh,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

/// A subcommand's own options, laid over what was given before its name.
pub trait Overlay {
    fn overlay(&self, g: &mut Global);
}

impl<T: Overlay> Overlay for Option<T> {
    fn overlay(&self, g: &mut Global) {
        if let Some(t) = self {
            t.overlay(g);
        }
    }
}

/// `-i`: the inventory.
#[derive(Debug, Clone, Args)]
pub struct InventoryArg {
    /// Inventory file: hosts, groups, vars. Default: $REMEDY_INVENTORY,
    /// ./inventory.yaml, ~/.config/remedy/inventory.yaml,
    /// /etc/remedy/inventory.yaml (the first that exists; `lab`: the default
    /// lab's).
    #[arg(long, short = 'i', value_name = "PATH", add = complete::inventory_files())]
    pub inventory: Option<PathBuf>,
}

impl Overlay for InventoryArg {
    fn overlay(&self, g: &mut Global) {
        if self.inventory.is_some() {
            g.inventory = self.inventory.clone();
        }
    }
}

/// `-l`: narrow the hosts.
#[derive(Debug, Clone, Args)]
pub struct LimitArg {
    /// Narrow the targets to hosts also matching PATTERN (e.g. master-1, 'master-*,!master-3').
    #[arg(long, short = 'l', value_name = "PATTERN", add = complete::limit())]
    pub limit: Option<String>,
}

impl Overlay for LimitArg {
    fn overlay(&self, g: &mut Global) {
        if self.limit.is_some() {
            g.limit = self.limit.clone();
        }
    }
}

/// `-p`, `--params-file`: a runbook's params.
#[derive(Debug, Clone, Args)]
pub struct ParamArgs {
    /// A runbook param; repeat for more. List params take one item per --param.
    #[arg(long = "param", short = 'p', value_name = "NAME=VALUE", add = complete::params())]
    pub params: Vec<String>,
    /// A YAML file of params (name: value); --param wins over it.
    #[arg(long, value_name = "FILE")]
    pub params_file: Option<PathBuf>,
}

impl Overlay for ParamArgs {
    fn overlay(&self, g: &mut Global) {
        g.params.extend(self.params.iter().cloned());
        if self.params_file.is_some() {
            g.params_file = self.params_file.clone();
        }
    }
}

/// `-y`: no confirmation prompt.
#[derive(Debug, Clone, Args)]
pub struct YesArg {
    /// Apply without asking for confirmation (for scripts and schedules).
    #[arg(long, short = 'y')]
    pub yes: bool,
}

impl Overlay for YesArg {
    fn overlay(&self, g: &mut Global) {
        g.yes |= self.yes;
    }
}

/// `-o`: text or JSON.
#[derive(Debug, Clone, Args)]
pub struct OutputArg {
    /// Output format [default: text].
    #[arg(long, short = 'o', value_enum, value_name = "FORMAT")]
    pub output: Option<Output>,
}

impl Overlay for OutputArg {
    fn overlay(&self, g: &mut Global) {
        if let Some(o) = self.output {
            g.output = o;
        }
    }
}

/// How hosts are reached over SSH.
#[derive(Debug, Clone, Args)]
pub struct SshArgs {
    /// Record the host keys of hosts not yet in known_hosts (never a changed key).
    #[arg(long)]
    pub accept_new_host_keys: bool,
    /// Say how the SSH client configuration is read and how each host is
    /// reached (address, user, keys, jump host or ProxyCommand). On a
    /// terminal, a run ends with the full per-step report, not the summary.
    #[arg(long, short = 'v')]
    pub verbose: bool,
}

impl Overlay for SshArgs {
    fn overlay(&self, g: &mut Global) {
        g.accept_new_host_keys |= self.accept_new_host_keys;
        g.verbose |= self.verbose;
    }
}

/// `--parallel`: how many hosts at once.
#[derive(Debug, Clone, Args)]
pub struct ParallelArg {
    /// How many hosts to work on at once (dry-runs and `exec` fan out; a real
    /// run's batches follow the runbook's strategy, up to this many at once)
    /// [default: 32].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub parallel: Option<u16>,
}

impl Overlay for ParallelArg {
    fn overlay(&self, g: &mut Global) {
        if let Some(n) = self.parallel {
            g.parallel = n;
        }
    }
}

/// Who acts, and the site config that says who may.
#[derive(Debug, Clone, Args)]
pub struct ActorArgs {
    /// Record NAME as the person acting (the OS user is recorded too), for
    /// shared accounts on a jump host (only where the site config's
    /// `allow_as` lists the OS user).
    #[arg(long = "as", value_name = "NAME")]
    pub as_name: Option<String>,
    #[command(flatten)]
    pub config: ConfigArg,
}

impl Overlay for ActorArgs {
    fn overlay(&self, g: &mut Global) {
        if self.as_name.is_some() {
            g.as_name = self.as_name.clone();
        }
        self.config.overlay(g);
    }
}

/// `--config`: the site config.
#[derive(Debug, Clone, Args)]
pub struct ConfigArg {
    /// Site config: approver groups, allow_as, an approval policy for this
    /// jump host, chat identities, secrets, notifiers and schedules
    /// (default: $REMEDY_CONFIG, else $REMEDY_HOME/config.yaml when it exists).
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
}

impl Overlay for ConfigArg {
    fn overlay(&self, g: &mut Global) {
        if self.config.is_some() {
            g.config = self.config.clone();
        }
    }
}

/// `--kubeconfig`, `--context`: reaching the Kubernetes API from here.
#[derive(Debug, Clone, Args)]
pub struct KubeArgs {
    /// Reach the Kubernetes API (kube.* and api.health steps, `inventory
    /// discover`) with this kubeconfig on the jump host, instead of through
    /// each master's SSH connection with its admin.conf (default: $KUBECONFIG).
    /// A plan or run with such steps names the kubeconfig and which of the two chose it.
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig's context to use (default: its current context).
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
}

impl Overlay for KubeArgs {
    fn overlay(&self, g: &mut Global) {
        if self.kubeconfig.is_some() {
            g.kubeconfig = self.kubeconfig.clone();
        }
        if self.context.is_some() {
            g.context = self.context.clone();
        }
    }
}

/// What `run` and `plan` share: the hosts, the params, SSH, the API, who acts, the format.
#[derive(Debug, Clone, Args)]
pub struct RunbookArgs {
    #[command(flatten)]
    pub inventory: InventoryArg,
    #[command(flatten)]
    pub limit: LimitArg,
    #[command(flatten)]
    pub params: ParamArgs,
    #[command(flatten)]
    pub output: OutputArg,
    #[command(flatten)]
    pub parallel: ParallelArg,
    #[command(flatten)]
    pub ssh: SshArgs,
    #[command(flatten)]
    pub kube: KubeArgs,
    #[command(flatten)]
    pub actor: ActorArgs,
}

impl Overlay for RunbookArgs {
    fn overlay(&self, g: &mut Global) {
        self.inventory.overlay(g);
        self.limit.overlay(g);
        self.params.overlay(g);
        self.output.overlay(g);
        self.parallel.overlay(g);
        self.ssh.overlay(g);
        self.kube.overlay(g);
        self.actor.overlay(g);
    }
}

/// What commands that reach hosts of an inventory read-only share (`check`, `exec`).
#[derive(Debug, Clone, Args)]
pub struct HostArgs {
    #[command(flatten)]
    pub inventory: InventoryArg,
    #[command(flatten)]
    pub limit: LimitArg,
    #[command(flatten)]
    pub output: OutputArg,
    #[command(flatten)]
    pub ssh: SshArgs,
}

impl Overlay for HostArgs {
    fn overlay(&self, g: &mut Global) {
        self.inventory.overlay(g);
        self.limit.overlay(g);
        self.output.overlay(g);
        self.ssh.overlay(g);
    }
}

/// What commands that apply a recorded run share (`resume`, `backup restore`).
#[derive(Debug, Clone, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub yes: YesArg,
    #[command(flatten)]
    pub output: OutputArg,
    #[command(flatten)]
    pub parallel: ParallelArg,
    #[command(flatten)]
    pub ssh: SshArgs,
    #[command(flatten)]
    pub kube: KubeArgs,
    #[command(flatten)]
    pub actor: ActorArgs,
}

impl Overlay for ApplyArgs {
    fn overlay(&self, g: &mut Global) {
        self.yes.overlay(g);
        self.output.overlay(g);
        self.parallel.overlay(g);
        self.ssh.overlay(g);
        self.kube.overlay(g);
        self.actor.overlay(g);
    }
}
