//! `remedy lab up | status | down | break`: the practice control plane, and
//! the hidden entry points its processes run (`lab kubelet`, `lab crictl`).

use super::{Exit, Global, Output};
use clap::Subcommand;
use remedy_lab::faults::{self, FAULTS};
use remedy_lab::lab::{self, UpOptions};
use remedy_lab::layout;
use std::net::Ipv4Addr;
use std::path::PathBuf;

/// Every fault `lab break` knows, with what it does, for --help (the list
/// is the lab's, so a new fault cannot be missing here).
fn fault_names() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(
        FAULTS
            .iter()
            .map(|(name, what)| clap::builder::PossibleValue::new(*name).help(*what)),
    )
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
    Status {
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Stop everything the lab started (also after a failed `up`).
    Down {
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Inject an incident to rehearse on (`remedy lab break --help` lists them).
    Break {
        /// The fault.
        #[arg(value_parser = fault_names())]
        fault: String,
        /// The master to break [default: the last one].
        #[arg(long)]
        host: Option<String>,
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
        LabCommand::Status { dir } => match remedy_lab::status::status(&dir_or_default(dir)) {
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
                        for (name, what) in FAULTS {
                            eprintln!("  {name:18} {what}");
                        }
                    }
                    Exit::Invalid.into()
                }
            }
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
