//! `remedy backup list|show|restore`: every backup the journal knows of
//! (each `backup_taken` event: run, step, host, path, sha256, time), one of
//! them in full (its content read over SSH on request), and putting one back.
//!
//! A restore is a real run of the built-in runbook `backup-restore` limited to
//! the backup's host: plan with a diff, the approval policy, a backup of what
//! it replaces, the journal, `--dry-run`, `resume` — nothing of its own. The
//! copy must still hash to the recorded sha256 (`file.copy`'s `sha256`), so a
//! changed copy is refused before anything is written.
//!
//! An object backup (a Kubernetes object a `kube.*` step changed, kept on the
//! jump host) is listed with its resourceVersion and restored the same way
//! through the API, as a run of `object-restore` (`kube.restore`), once,
//! through the first master of the run's inventory, or the one `--limit`
//! names (when the first one's API server is down).

use super::audit::{open, print_json};
use super::flags::{ApplyArgs, InventoryArg, OutputArg, Overlay, SshArgs};
use super::{request, Exit, Global, Output};
use clap::{Args, Subcommand};
use remedy_engine::backup::{sha256_hex, BackupRecord, KnownBackup};
use remedy_journal::Journal;
use remedy_transport::ssh::SshConnector;
use remedy_transport::Connector;
use serde_json::{json, Value};
use std::io::Write;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Every backup in the journal, oldest first: ID, time, run, step, host, path, sha256 (objects: k8s:… and resourceVersion).
    #[command(after_help = "\
Examples:
  remedy backup list --host master-1
  remedy backup list --path kube-apiserver.yaml -o json")]
    List {
        #[command(flatten)]
        filter: Filter,
        #[command(flatten)]
        output: OutputArg,
    },
    /// One backup in full; with --content, the copy itself, read over SSH and checked.
    #[command(after_help = "Example:\n  remedy backup show 42 --content")]
    Show {
        /// The backup's ID (first column of `remedy backup list`).
        id: i64,
        /// Also fetch the copy from its host (needs the inventory: -i, or the run's).
        #[arg(long)]
        content: bool,
        #[command(flatten)]
        inventory: InventoryArg,
        #[command(flatten)]
        output: OutputArg,
        #[command(flatten)]
        ssh: SshArgs,
    },
    /// Put a backup back (a file on its host: `backup-restore`; an API object: `object-restore`), as a run (plan, approval, journal).
    #[command(after_help = "\
Examples:
  remedy backup restore 42 --dry-run
  remedy backup restore 42
  remedy backup restore 57 -l master-2     an object backup, through master-2's API server")]
    Restore {
        /// The backup's ID (first column of `remedy backup list`).
        id: i64,
        /// Plan only: show the diff from what is there now to the backup; write nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        inventory: InventoryArg,
        #[command(flatten)]
        apply: ApplyArgs,
        /// Refused with a reason (the backup names its host and file), not
        /// with clap's bare "unexpected argument".
        #[command(flatten)]
        refused: RefusedRunArgs,
    },
}

/// What `backup restore` refuses (but `--limit` for an object backup),
/// accepted so the refusal can say why.
#[derive(Debug, Args)]
pub struct RefusedRunArgs {
    /// An object backup only: the master whose API server to go through
    /// (default: the inventory's first master). A file backup names its host.
    #[arg(long, short = 'l', value_name = "MASTER")]
    limit: Option<String>,
    #[arg(long = "param", short = 'p', hide = true)]
    params: Vec<String>,
    #[arg(long, hide = true)]
    params_file: Option<PathBuf>,
}

impl Overlay for BackupCommand {
    fn overlay(&self, g: &mut Global) {
        match self {
            BackupCommand::List { output, .. } => output.overlay(g),
            BackupCommand::Show {
                inventory,
                output,
                ssh,
                ..
            } => {
                inventory.overlay(g);
                output.overlay(g);
                ssh.overlay(g);
            }
            BackupCommand::Restore {
                inventory,
                apply,
                refused,
                ..
            } => {
                inventory.overlay(g);
                apply.overlay(g);
                if refused.limit.is_some() {
                    g.limit = refused.limit.clone();
                }
                g.params.extend(refused.params.iter().cloned());
                if refused.params_file.is_some() {
                    g.params_file = refused.params_file.clone();
                }
            }
        }
    }
}

#[derive(Debug, Args)]
pub struct Filter {
    /// Only backups of this host.
    #[arg(long)]
    pub host: Option<String>,
    /// Only backups of paths containing this (e.g. kube-apiserver.yaml).
    #[arg(long)]
    pub path: Option<String>,
    /// Only backups taken by this run (id, unique prefix or suffix, or `last`).
    #[arg(long)]
    pub run: Option<String>,
}

/// One backup as the journal recorded it, with its run's runbook and inventory.
struct Backup {
    known: KnownBackup,
    runbook: String,
    /// The inventory the run used: where its hosts are found again.
    inventory: String,
}

impl Backup {
    fn json(&self) -> Value {
        let (k, r) = (&self.known, &self.known.record);
        json!({
            "id": k.id,
            "time": super::audit::time(k.time_ms),
            "run_id": k.run_id,
            "runbook": self.runbook,
            "step": k.step,
            "host": k.host,
            "path": r.path,
            "sha256": r.sha256,
            "location": r.location,
            "mode": r.mode.map(|m| format!("{m:04o}")),
            "owner": r.owner.map(|(u, g)| format!("{u}:{g}")),
            "size": r.size,
            "on_jump_host": r.local,
            "object": r.object,
            "inventory": self.inventory,
        })
    }
}

/// Every backup of a path that existed, oldest first (a path recorded as
/// absent has no copy to restore): what `backup list` shows and what a run
/// hands its actions (`RunOptions::known_backups`).
pub fn known(j: &Journal) -> Result<Vec<KnownBackup>, String> {
    let events = j
        .events_of_kind("backup_taken")
        .map_err(|e| format!("cannot read the backups in the journal: {e}"))?;
    Ok(events
        .iter()
        .filter_map(|e| {
            let record: BackupRecord =
                serde_json::from_value(e.payload.get("backup")?.clone()).ok()?;
            record.existed.then(|| KnownBackup {
                id: e.id,
                run_id: e.run_id.clone(),
                host: e.host.clone().unwrap_or_default(),
                step: e.step.clone().unwrap_or_default(),
                time_ms: e.time_ms,
                record,
            })
        })
        .collect())
}

fn all(j: &Journal) -> Result<Vec<Backup>, String> {
    let mut runs: std::collections::HashMap<String, (String, String)> = Default::default();
    Ok(known(j)?
        .into_iter()
        .map(|known| {
            let (runbook, inventory) = runs
                .entry(known.run_id.clone())
                .or_insert_with(|| match j.run(&known.run_id) {
                    Ok(r) => (r.runbook, r.inventory),
                    Err(_) => ("?".into(), String::new()),
                })
                .clone();
            Backup {
                known,
                runbook,
                inventory,
            }
        })
        .collect())
}

/// Backup `id`, from the journal.
fn find(id: i64) -> Result<Backup, Exit> {
    let j = open()?;
    let backups = all(&j).map_err(|msg| {
        eprintln!("error: {msg}");
        Exit::Invalid
    })?;
    backups.into_iter().find(|b| b.known.id == id).ok_or_else(|| {
        eprintln!(
            "error: no backup {id} in the journal {}\n  = hint: `remedy backup list` shows every backup with its ID",
            j.path().display()
        );
        Exit::Invalid
    })
}

pub fn backup_command(g: &Global, cmd: &BackupCommand) -> Exit {
    match cmd {
        BackupCommand::List { filter, .. } => list(g, filter),
        BackupCommand::Show { id, content, .. } => show(g, *id, *content),
        BackupCommand::Restore { id, dry_run, .. } => restore(g, *id, *dry_run),
    }
}

fn list(g: &Global, filter: &Filter) -> Exit {
    let j = match open() {
        Ok(j) => j,
        Err(e) => return e,
    };
    let run = match &filter.run {
        Some(r) => match j.run(r) {
            Ok(rec) => Some(rec.run_id),
            Err(e) => {
                eprintln!("error: --run {r}: {e}");
                return Exit::Invalid;
            }
        },
        None => None,
    };
    let mut backups = match all(&j) {
        Ok(b) => b,
        Err(msg) => {
            eprintln!("error: {msg}");
            return Exit::Invalid;
        }
    };
    backups.retain(|b| {
        let k = &b.known;
        filter.host.as_ref().is_none_or(|h| &k.host == h)
            && filter
                .path
                .as_ref()
                .is_none_or(|p| k.record.path.contains(p.as_str()))
            && run.as_ref().is_none_or(|r| &k.run_id == r)
    });
    if g.output == Output::Json {
        print_json(&backups.iter().map(Backup::json).collect::<Vec<_>>());
        return Exit::Ok;
    }
    if backups.is_empty() {
        println!("No backups recorded (that match).");
        return Exit::Ok;
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{:<6}  {:<20}  {:<8}  {:<20}  {:<14}  {:<12}  {:<12}  PATH",
        "ID", "TIME", "RUN", "RUNBOOK", "STEP", "HOST", "SHA256"
    );
    for b in &backups {
        let k = &b.known;
        let sha = k.record.sha256.as_deref().unwrap_or("-");
        let _ = writeln!(
            out,
            "{:<6}  {:<20}  {:<8}  {:<20}  {:<14}  {:<12}  {:<12}  {}{}",
            k.id,
            super::audit::time(k.time_ms),
            &k.run_id[k.run_id.len().saturating_sub(8)..],
            b.runbook,
            k.step,
            k.host,
            &sha[..sha.len().min(12)],
            k.record.path,
            match (&k.record.object, k.record.local) {
                (Some(o), _) => format!(
                    " (resourceVersion {}, on the jump host)",
                    o.resource_version.as_deref().unwrap_or("-")
                ),
                (None, true) => " (jump host)".into(),
                (None, false) => String::new(),
            }
        );
    }
    Exit::Ok
}

/// `g` with the inventory the backup's run used, unless one is given.
fn with_inventory(g: &Global, b: &Backup) -> Global {
    let mut g = g.clone();
    if !request::inventory_named(&g) && !b.inventory.is_empty() {
        g.inventory = Some(PathBuf::from(&b.inventory));
    }
    g
}

fn show(g: &Global, id: i64, content: bool) -> Exit {
    let b = match find(id) {
        Ok(b) => b,
        Err(e) => return e,
    };
    let fetched = if content {
        match fetch(&with_inventory(g, &b), &b) {
            Ok(bytes) => Some(bytes),
            Err(msg) => {
                eprintln!("error: backup {id}: {msg}");
                return Exit::StepFailed;
            }
        }
    } else {
        None
    };
    if g.output == Output::Json {
        let mut v = b.json();
        if let Some(bytes) = &fetched {
            v["content"] = Value::String(String::from_utf8_lossy(bytes).into_owned());
        }
        print_json(&v);
        return Exit::Ok;
    }
    let v = b.json();
    let mut out = std::io::stdout().lock();
    for key in [
        "id", "time", "run_id", "runbook", "step", "host", "path", "sha256", "location", "mode",
        "owner", "size",
    ] {
        let value = match &v[key] {
            Value::String(s) => s.clone(),
            Value::Null => "-".into(),
            other => other.to_string(),
        };
        let _ = writeln!(out, "{key:<9} {value}");
    }
    if let Some(o) = &b.known.record.object {
        let _ = writeln!(
            out,
            "object    {} {}",
            o.object.api_version,
            o.object.display()
        );
        let _ = writeln!(
            out,
            "resourceVersion {}",
            o.resource_version.as_deref().unwrap_or("-")
        );
    }
    if b.known.record.local {
        let _ = writeln!(out, "(the copy is on the jump host)");
    }
    let _ = writeln!(
        out,
        "restore   remedy backup restore {id} [--dry-run]{}",
        if b.known.record.local && b.known.record.object.is_none() {
            " (not for jump-host files: copy it back by hand)"
        } else {
            ""
        }
    );
    if let Some(bytes) = fetched {
        let _ = writeln!(out, "--- content (sha256 checked) ---");
        let _ = out.write_all(&bytes);
    }
    Exit::Ok
}

/// The copy's bytes, read from its host (or the jump host) and checked
/// against the recorded sha256.
fn fetch(g: &Global, b: &Backup) -> Result<Vec<u8>, String> {
    let location = b
        .known
        .record
        .location
        .as_deref()
        .ok_or("no copy was recorded")?;
    let bytes = if b.known.record.local {
        std::fs::read(location).map_err(|e| format!("reading {location} on the jump host: {e}"))?
    } else {
        let path = request::inventory_path(g).map_err(|d| d.render())?;
        let inventory = request::load_inventory(&path).map_err(|d| d.render())?;
        let host = inventory.host(&b.known.host).ok_or_else(|| {
            format!(
                "host {} is not in the inventory {}; pass the inventory it is in with -i",
                b.known.host,
                path.display()
            )
        })?;
        let runtime = super::run::runtime().map_err(|_| "cannot start the async runtime")?;
        let connector = SshConnector::new(&inventory, g.accept_new_host_keys).verbose(g.verbose);
        runtime.block_on(async {
            let t = connector
                .connect(host)
                .await
                .map_err(|e| format!("connecting to {}: {e}", b.known.host))?;
            t.read_file(location)
                .await
                .map_err(|e| format!("reading {location} on {}: {e}", b.known.host))
        })?
    };
    let found = sha256_hex(&bytes);
    match &b.known.record.sha256 {
        Some(expected) if *expected != found => Err(format!(
            "{location} has sha256 {found}, not the recorded {expected}: the copy changed after it was taken"
        )),
        _ => Ok(bytes),
    }
}

fn restore(g: &Global, id: i64, dry_run: bool) -> Exit {
    let b = match find(id) {
        Ok(b) => b,
        Err(e) => return e,
    };
    let object = b.known.record.object.is_some();
    if (g.limit.is_some() && !object) || !g.params.is_empty() || g.params_file.is_some() {
        eprintln!("error: `backup restore` takes no --limit, --param or --params-file: the backup names its host, file and copy (--limit names the master to go through, for an object backup only)\n  = hint: remedy backup show {id}");
        return Exit::Invalid;
    }
    let (Some(location), Some(sha256)) = (&b.known.record.location, &b.known.record.sha256) else {
        eprintln!(
            "error: backup {id} of {} has no copy recorded",
            b.known.record.path
        );
        return Exit::Invalid;
    };
    if let Some(o) = &b.known.record.object {
        return restore_object(g, &b, &o.object, location, sha256, dry_run);
    }
    if b.known.record.local {
        eprintln!(
            "error: backup {id} is of {} on the jump host, not on a target host: copy it back by hand\n  = hint: sha256sum {location} (must be {sha256}), then cp -p {location} {}",
            b.known.record.path, b.known.record.path
        );
        return Exit::Invalid;
    }
    let mut g = with_inventory(g, &b);
    g.limit = Some(b.known.host.clone());
    g.params_file = None;
    g.params = vec![
        format!("path={}", b.known.record.path),
        format!("backup={location}"),
        format!("sha256={sha256}"),
        format!(
            "mode={}",
            b.known
                .record
                .mode
                .map(|m| format!("{m:04o}"))
                .unwrap_or_default()
        ),
    ];
    super::run::run(
        &g,
        &[],
        "backup-restore",
        dry_run,
        None,
        super::run::Quiet { quiet: false },
    )
}

/// An object backup goes back through the API, as a run of `object-restore`
/// (once, through the first master of the run's inventory, or of `--limit`).
fn restore_object(
    g: &Global,
    b: &Backup,
    r: &remedy_k8s::ObjectRef,
    location: &str,
    sha256: &str,
    dry_run: bool,
) -> Exit {
    let mut g = with_inventory(g, b);
    g.params_file = None;
    g.params = vec![
        format!("api_version={}", r.api_version),
        format!("kind={}", r.kind),
        format!("namespace={}", r.namespace.as_deref().unwrap_or_default()),
        format!("name={}", r.name),
        format!("backup={location}"),
        format!("sha256={sha256}"),
    ];
    super::run::run(
        &g,
        &[],
        "object-restore",
        dry_run,
        None,
        super::run::Quiet { quiet: false },
    )
}
