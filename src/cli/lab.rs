//! `remedy lab up | status | down | break | restart`: the practice control plane, and
//! the hidden entry points its processes run (`lab kubelet`, `lab crictl`).

use super::flags::{OutputArg, Overlay};
use super::{Exit, Global, Output};
use clap::Subcommand;
use remedy_lab::faults::{self, FAULTS};
use remedy_lab::lab::{self, UpOptions};
use remedy_lab::layout;
use std::net::Ipv4Addr;
use std::path::PathBuf;

/// Every fault `lab break` knows, for the command line to accept (the list
/// is the lab's, so a new fault cannot be missing here).
fn fault_names() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(FAULTS.iter().map(|(name, _, _)| *name))
}

/// `lab break --help`'s list: one line per fault, its summary.
fn fault_list() -> String {
    let mut out = String::from("Faults:\n");
    for (name, summary, _) in FAULTS {
        out.push_str(&format!("  {name:25}{summary}\n"));
    }
    out.push_str(
        "\nExamples:\n  remedy lab break apiserver-bad-flag --host master-2\n  remedy lab break etcd-member-down --dir /tmp/lab",
    );
    out
}

#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Build and start a lab: N masters (real sshd; PKI, kubeconfigs and manifests
    /// from the real kubeadm; the real etcd, kube-apiserver, controller-manager and
    /// scheduler run by a kubelet stand-in) behind a real HAProxy, with an
    /// inventory, known_hosts and admin.conf.
    ///
    /// Master i listens on base+i (master-1 on 127.0.0.11): sshd :2222, API server
    /// :6443, etcd :2379/:2380. The base address is HAProxy's VIP (:6443) and lb-1's sshd.
    /// Needs root, the packages scripts/setup installs and the binaries it builds.
    #[command(after_help = "\
Examples:
  remedy lab up
  remedy lab up --cert-expiry 1d --dir /tmp/lab --base-address 127.1.0.10")]
    Up {
        /// How many masters.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=20))]
        masters: u16,
        /// Lifetime of the leaf certificates: 365d, 1d for near expiry, -1h for already expired.
        #[arg(long, default_value = "365d", allow_hyphen_values = true)]
        cert_expiry: String,
        /// The lab's directory [default: $REMEDY_HOME/lab].
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Move the whole lab (tests run beside a lab that is up).
        #[arg(long, default_value = "127.0.0.10")]
        base_address: Ipv4Addr,
        /// Start etcd with this --quota-backend-bytes (e.g. 32MiB) to rehearse NOSPACE.
        #[arg(long)]
        etcd_quota: Option<String>,
        /// Load balancers, each an sshd and a HAProxy with the same backend:
        /// lb-1 at the base address (the VIP), lb-i at base+100+i.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=5))]
        lbs: u16,
        /// Also start an ops etcd for coordinating jump hosts: 3 members on
        /// base+61..63 (:2379) with their own PKI, and <dir>/coordination.yaml
        /// for a site config.
        #[arg(long)]
        ops_etcd: bool,
    },
    /// Show each lab process and health check.
    #[command(after_help = "Example:\n  remedy lab status --dir /tmp/lab -o json")]
    Status {
        /// The lab's directory [default: $REMEDY_HOME/lab].
        #[arg(long)]
        dir: Option<PathBuf>,
        #[command(flatten)]
        output: OutputArg,
    },
    /// Stop everything the lab started (also after a failed `up`).
    #[command(after_help = "Example:\n  remedy lab down --dir /tmp/lab")]
    Down {
        /// The lab's directory [default: $REMEDY_HOME/lab].
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Inject an incident to rehearse on (`remedy lab break --help` lists them).
    #[command(after_help = fault_list())]
    Break {
        /// The fault (listed below).
        #[arg(value_parser = fault_names(), hide_possible_values = true)]
        fault: String,
        /// The master to break [default: the last one].
        #[arg(long)]
        host: Option<String>,
        /// The lab's directory [default: $REMEDY_HOME/lab].
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Restart a static pod on a lab master, as `remedy run static-pod-restart`
    /// does on a real one (journaled; it must come back as a new container
    /// and answer its health check).
    #[command(after_help = "\
Examples:
  remedy lab restart kube-apiserver --host master-2
  remedy lab restart etcd --host master-1 --dir /tmp/lab")]
    Restart {
        /// The static pod: kube-apiserver, etcd, kube-controller-manager, kube-scheduler.
        #[arg(add = super::complete::components())]
        component: String,
        /// The master.
        #[arg(long)]
        host: String,
        /// The lab's directory [default: $REMEDY_HOME/lab].
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// (internal) The kubelet stand-in of one master, run inside its namespace.
    #[command(hide = true)]
    Kubelet {
        #[arg(long)]
        node: String,
        #[arg(long)]
        lab_dir: PathBuf,
    },
    /// (internal) The lab's crictl (ps, logs, inspect) on a master: the
    /// masters' /usr/local/bin/crictl runs this.
    #[command(hide = true, disable_help_flag = true)]
    Crictl {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

impl Overlay for LabCommand {
    fn overlay(&self, g: &mut Global) {
        if let LabCommand::Status { output, .. } = self {
            output.overlay(g);
        }
    }
}

fn dir_or_default(dir: &Option<PathBuf>) -> PathBuf {
    dir.clone().unwrap_or_else(layout::default_dir)
}

pub fn lab(g: &Global, cmd: &LabCommand) -> i32 {
    match cmd {
        LabCommand::Up {
            masters,
            cert_expiry,
            dir,
            base_address,
            etcd_quota,
            lbs,
            ops_etcd,
        } => {
            let Some(expiry) = lab::parse_signed_duration(cert_expiry) else {
                eprintln!(
                    "error: --cert-expiry `{cert_expiry}` is not a duration (e.g. 365d, 1d, -1h)"
                );
                return Exit::Invalid.into();
            };
            let quota = match etcd_quota.as_deref().map(remedy_dsl::param::parse_bytes) {
                Some(None) => {
                    eprintln!("error: --etcd-quota must be a size such as 32MiB");
                    return Exit::Invalid.into();
                }
                Some(Some(b)) => Some(b as u64),
                None => None,
            };
            let remedy_exe = match std::env::current_exe() {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("error: cannot find the remedy binary itself: {e}");
                    return Exit::StepFailed.into();
                }
            };
            let opts = UpOptions {
                dir: dir_or_default(dir),
                masters: *masters as usize,
                base: *base_address,
                cert_expiry_secs: expiry,
                etcd_quota_bytes: quota,
                lbs: *lbs as usize,
                remedy_exe,
                ops_etcd: *ops_etcd,
            };
            let started = std::time::Instant::now();
            let progress = &mut |line: &str| {
                eprintln!("lab: [{:4.1}s] {line}", started.elapsed().as_secs_f64())
            };
            match lab::up(&opts, progress) {
                Ok(state) => {
                    let l = state.layout();
                    println!(
                        "lab is up in {:.0}s: {} masters behind HAProxy at {}:6443",
                        started.elapsed().as_secs_f64(),
                        state.masters,
                        l.vip()
                    );
                    for (i, name) in l.master_names().iter().enumerate() {
                        println!("  {name}: ssh root@{} -p 2222   API https://{}:6443   etcd https://{}:2379", l.master_addr(i + 1), l.master_addr(i + 1), l.master_addr(i + 1));
                    }
                    for (i, name) in l.lb_names().iter().enumerate() {
                        println!(
                            "  {name}: ssh root@{} -p 2222   HAProxy {}:6443   admin socket {}",
                            l.lb_addr(i + 1),
                            l.lb_addr(i + 1),
                            l.lb_socket(i + 1).display()
                        );
                    }
                    if state.ops_etcd {
                        println!(
                            "  ops etcd: {} (coordination: {})",
                            (1..=remedy_lab::ops_etcd::MEMBERS)
                                .map(|i| format!(
                                    "https://{}:2379",
                                    remedy_lab::ops_etcd::member_addr(l.base, i)
                                ))
                                .collect::<Vec<_>>()
                                .join(" "),
                            l.dir.join("coordination.yaml").display()
                        );
                    }
                    println!("inventory:   {}", l.inventory().display());
                    println!("known_hosts: {}", l.known_hosts().display());
                    println!("ssh key:     {}", l.client_key().display());
                    println!(
                        "kubectl:     {} --kubeconfig {} get nodes",
                        l.dir.join("bin/kubectl").display(),
                        l.dir.join("admin.conf").display()
                    );
                    println!("try: remedy plan manifest-edit --inventory {} -p set=--max-requests-inflight=800", if dir.is_none() { "lab".to_string() } else { l.inventory().display().to_string() });
                    Exit::Ok.into()
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    Exit::StepFailed.into()
                }
            }
        }
        LabCommand::Status { dir, .. } => match remedy_lab::status::status(&dir_or_default(dir)) {
            Ok((_, checks)) => {
                if g.output == Output::Json {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&checks).unwrap_or_default()
                    );
                } else {
                    let w = checks.iter().map(|c| c.what.len()).max().unwrap_or(0);
                    for c in &checks {
                        println!(
                            "{} {:w$}  {}",
                            if c.ok { "ok  " } else { "DOWN" },
                            c.what,
                            c.detail
                        );
                    }
                }
                if checks.iter().all(|c| c.ok) {
                    Exit::Ok.into()
                } else {
                    Exit::StepFailed.into()
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                Exit::Invalid.into()
            }
        },
        LabCommand::Down { dir } => {
            let dir = dir_or_default(dir);
            let stopped = lab::stop(&dir);
            let running: Vec<_> = stopped
                .iter()
                .filter(|(_, s)| *s != remedy_lab::process::Stopped::AlreadyGone)
                .collect();
            // The lab is down whatever happens to this report (`| head`
            // closes the pipe early): a write error is not the command's.
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let _ = writeln!(
                out,
                "stopped {} process(es) of the lab in {}",
                running.len(),
                dir.display()
            );
            for (rec, how) in running {
                let _ = writeln!(out, "  {} (pid {}): {:?}", rec.name, rec.pid, how);
            }
            Exit::Ok.into()
        }
        LabCommand::Break { fault, host, dir } => {
            match faults::break_lab(&dir_or_default(dir), fault, host.as_deref()) {
                Ok(msg) => {
                    println!("{msg}");
                    Exit::Ok.into()
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    if matches!(e, lab::LabError::UnknownFault(_)) {
                        for (name, what, _) in FAULTS {
                            eprintln!("  {name:18} {what}");
                        }
                    }
                    Exit::Invalid.into()
                }
            }
        }
        LabCommand::Restart {
            component,
            host,
            dir,
        } => {
            // The inventory `lab up` wrote (Layout::inventory).
            let inventory = dir_or_default(dir).join("inventory.yaml");
            if !inventory.is_file() {
                eprintln!(
                    "error: no lab is up in {} (no {})\n  = hint: remedy lab up{}",
                    dir_or_default(dir).display(),
                    inventory.display(),
                    dir.as_ref()
                        .map(|d| format!(" --dir {}", d.display()))
                        .unwrap_or_default()
                );
                return Exit::Invalid.into();
            }
            let g = Global {
                inventory: Some(inventory),
                limit: Some(host.clone()),
                params: vec![format!("pods={component}")],
                yes: true,
                ..g.clone()
            };
            super::run::run(
                &g,
                &[],
                "static-pod-restart",
                false,
                None,
                super::run::Quiet { quiet: false },
            )
            .into()
        }
        LabCommand::Kubelet { node, lab_dir } => {
            let cfg = remedy_lab::kubelet::KubeletConfig::standard(node.clone(), lab_dir.clone());
            match remedy_lab::kubelet::run(cfg) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("kubelet stand-in: {e}");
                    1
                }
            }
        }
        LabCommand::Crictl { args } => remedy_lab::crictl::main(args),
    }
}
