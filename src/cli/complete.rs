//! Shell completion: `remedy completions bash|zsh|fish` prints a script that
//! asks remedy itself for each completion (clap_complete's dynamic protocol,
//! through the variable `REMEDY_COMPLETE`), so runbook names, the
//! inventory's hosts and groups (for `-l` and `exec`'s targets) and the
//! params of the runbook being typed (for `-p`) come from the same files a
//! run would read. `remedy man` writes the man pages.

use super::{library, request, Cli, Exit, Global};
use clap::{CommandFactory, ValueEnum};
use clap_complete::engine::{ArgValueCompleter, CompletionCandidate, PathCompleter};
use clap_complete::env::EnvCompleter;
use std::ffi::OsStr;
use std::path::PathBuf;

/// The shells `remedy completions` writes a script for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// The environment variable that turns a `remedy` call into a completion
/// request (its own name: a `COMPLETE` set for something else in a cron job
/// must not turn a run into a completion).
const VAR: &str = "REMEDY_COMPLETE";

/// Answers a completion request and exits when the shell's script made one
/// (`REMEDY_COMPLETE=bash remedy -- remedy run cert-`); returns otherwise.
pub fn answer_if_asked() {
    clap_complete::CompleteEnv::with_factory(Cli::command)
        .var(VAR)
        .complete();
}

/// `remedy completions SHELL`: the script to source (bash, zsh) or to put
/// in fish's completions directory.
pub fn script(shell: Shell) -> Exit {
    // The script calls this program back by the name it was run as, as
    // clap_complete's registration does: `remedy` through $PATH, or the
    // path given.
    let argv0 = std::env::args_os()
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("remedy"));
    let completer = if argv0.components().count() > 1 {
        std::env::current_dir()
            .map(|d| d.join(&argv0))
            .unwrap_or(argv0)
    } else {
        argv0
    };
    let completer = completer.display().to_string();
    let writer: &dyn EnvCompleter = match shell {
        Shell::Bash => &clap_complete::env::Bash,
        Shell::Zsh => &clap_complete::env::Zsh,
        Shell::Fish => &clap_complete::env::Fish,
    };
    let mut out = Vec::new();
    if let Err(e) = writer.write_registration(VAR, "remedy", "remedy", &completer, &mut out) {
        eprintln!("error: cannot write the completion script: {e}");
        return Exit::StepFailed;
    }
    use std::io::Write;
    match std::io::stdout().write_all(&out) {
        Ok(()) => Exit::Ok,
        Err(e) => {
            eprintln!("error: writing the completion script: {e}");
            Exit::StepFailed
        }
    }
}

/// `remedy man [--dir DIR]`: remedy.1 and one page per subcommand
/// (remedy-run.1, remedy-lab-up.1, …) into DIR; without --dir, remedy.1 on stdout.
pub fn man(dir: Option<&std::path::Path>) -> Exit {
    let cmd = Cli::command();
    let result = match dir {
        Some(dir) => std::fs::create_dir_all(dir)
            .and_then(|()| clap_mangen::generate_to(cmd, dir))
            .map(|()| eprintln!("wrote the man pages to {}", dir.display())),
        None => clap_mangen::Man::new(cmd).render(&mut std::io::stdout()),
    };
    match result {
        Ok(()) => Exit::Ok,
        Err(e) => {
            eprintln!(
                "error: writing the man pages{}: {e}",
                dir.map(|d| format!(" to {}", d.display()))
                    .unwrap_or_default()
            );
            Exit::StepFailed
        }
    }
}

/// The words typed so far on the line being completed: the shell's script
/// runs `remedy -- remedy WORD…`, so they follow the first `--`.
fn typed_words() -> Vec<String> {
    std::env::args().skip_while(|a| a != "--").skip(2).collect()
}

/// Options that take a value as the next word (so that word is no runbook name).
const TAKES_VALUE: &[&str] = &[
    "-i",
    "--inventory",
    "-l",
    "--limit",
    "-p",
    "--param",
    "--params-file",
    "-o",
    "--output",
    "--parallel",
    "--as",
    "--config",
    "--kubeconfig",
    "--context",
    "--dir",
    "--reason",
    "--timeout",
];

/// What the line typed so far says: `-i`, `--dir` and the runbook of `run`/`plan`.
#[derive(Debug, Default, PartialEq)]
struct Typed {
    inventory: Option<PathBuf>,
    dirs: Vec<PathBuf>,
    runbook: Option<String>,
}

fn typed(words: &[String]) -> Typed {
    let mut t = Typed::default();
    let mut command: Option<&str> = None;
    let mut i = 0;
    while i < words.len() {
        let w = words[i].as_str();
        let next = words.get(i + 1).cloned();
        match w {
            "-i" | "--inventory" => t.inventory = next.map(PathBuf::from),
            "--dir" => t.dirs.extend(next.map(PathBuf::from)),
            _ if w.starts_with("--inventory=") => {
                t.inventory = Some(PathBuf::from(&w["--inventory=".len()..]))
            }
            _ if w.starts_with("--dir=") => t.dirs.push(PathBuf::from(&w["--dir=".len()..])),
            _ if w.starts_with("-i") && w.len() > 2 && !w.starts_with("--") => {
                t.inventory = Some(PathBuf::from(&w[2..]))
            }
            _ => {}
        }
        if TAKES_VALUE.contains(&w) {
            i += 2;
            continue;
        }
        if !w.starts_with('-') {
            match command {
                None => command = Some(w),
                Some("run" | "plan") if t.runbook.is_none() => t.runbook = Some(w.to_string()),
                Some(_) => {}
            }
        }
        i += 1;
    }
    t
}

fn candidates<'a>(
    current: &OsStr,
    items: impl IntoIterator<Item = (String, &'a str)>,
) -> Vec<CompletionCandidate> {
    let current = current.to_string_lossy();
    items
        .into_iter()
        .filter(|(v, _)| v.starts_with(current.as_ref()))
        .map(|(v, help)| CompletionCandidate::new(v).help(Some(help.to_string().into())))
        .collect()
}

/// Runbook names (built-in and in the typed `--dir`s), or paths once the
/// word looks like one.
pub fn runbooks() -> ArgValueCompleter {
    ArgValueCompleter::new(|current: &OsStr| {
        let word = current.to_string_lossy();
        if word.contains('/') || word.starts_with('.') {
            return clap_complete::engine::ValueCompleter::complete(&PathCompleter::any(), current);
        }
        let mut names: Vec<(String, &str)> = library::BUILTIN
            .iter()
            .map(|(n, _)| (n.to_string(), "built-in runbook"))
            .collect();
        for dir in typed(&typed_words()).dirs {
            names.extend(
                library::runbooks_in(&dir)
                    .into_iter()
                    .map(|(n, _)| (n, "runbook in --dir")),
            );
        }
        candidates(current, names)
    })
}

/// Inventory files: paths, and `lab` (the default lab's inventory).
pub fn inventory_files() -> ArgValueCompleter {
    ArgValueCompleter::new(|current: &OsStr| {
        let mut out = candidates(
            current,
            [("lab".to_string(), "the default lab's inventory")],
        );
        out.extend(clap_complete::engine::ValueCompleter::complete(
            &PathCompleter::any(),
            current,
        ));
        out
    })
}

/// The inventory the typed line would use, read quietly.
fn typed_inventory(t: &Typed) -> Option<remedy_engine::Inventory> {
    let g = Global {
        inventory: t.inventory.clone(),
        ..Global::default()
    };
    let (path, _) = request::find_inventory(&g).ok()?;
    request::load_inventory(&path).ok()
}

/// Hosts and groups of the inventory (`-i` as typed, or the default one),
/// for the last item of a pattern such as `master-*,!mas`.
pub fn limit() -> ArgValueCompleter {
    ArgValueCompleter::new(|current: &OsStr| {
        let word = current.to_string_lossy();
        let (prefix, item) = match word.rfind(',') {
            Some(i) => word.split_at(i + 1),
            None => ("", word.as_ref()),
        };
        let (negate, item) = match item.strip_prefix('!') {
            Some(rest) => ("!", rest),
            None => ("", item),
        };
        let Some(inv) = typed_inventory(&typed(&typed_words())) else {
            return Vec::new();
        };
        let names = inv
            .groups
            .iter()
            .map(|g| (g.clone(), "group"))
            .chain(inv.hosts.iter().map(|h| (h.name.clone(), "host")));
        candidates(OsStr::new(item), names)
            .into_iter()
            .map(|c| c.add_prefix(format!("{prefix}{negate}")))
            .collect()
    })
}

/// The control plane's static pods, for `remedy logs` and `lab restart`.
pub fn components() -> ArgValueCompleter {
    ArgValueCompleter::new(|current: &OsStr| {
        candidates(
            current,
            [
                "kube-apiserver",
                "etcd",
                "kube-controller-manager",
                "kube-scheduler",
            ]
            .map(|c| (c.to_string(), "static pod")),
        )
    })
}

/// `NAME=` for each param of the runbook typed after `run`/`plan`.
pub fn params() -> ArgValueCompleter {
    ArgValueCompleter::new(|current: &OsStr| {
        let t = typed(&typed_words());
        let Some(name) = &t.runbook else {
            return Vec::new();
        };
        let Ok(Ok(rb)) = library::load(name, &t.dirs).map(remedy_dsl::compile) else {
            return Vec::new();
        };
        // After `NAME=`: the param's choices, when it has some.
        let word = current.to_string_lossy();
        if let Some((name, _)) = word.split_once('=') {
            let choices = rb
                .params
                .iter()
                .find(|p| p.name == name)
                .and_then(|p| p.choices.clone())
                .unwrap_or_default();
            let values: Vec<String> = choices
                .iter()
                .map(|v| match v {
                    serde_json::Value::String(s) => format!("{name}={s}"),
                    other => format!("{name}={other}"),
                })
                .collect();
            return candidates(current, values.into_iter().map(|v| (v, "choice")));
        }
        let params: Vec<(String, String)> = rb
            .params
            .iter()
            .map(|p| (format!("{}=", p.name), p.doc.clone()))
            .collect();
        candidates(current, params.iter().map(|(v, h)| (v.clone(), h.as_str())))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        line.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn the_typed_line_names_its_inventory_dirs_and_runbook() {
        let t = typed(&words(
            "run -i inv.yaml --dir rb -l master-1 cert-renew -p ",
        ));
        assert_eq!(t.inventory, Some(PathBuf::from("inv.yaml")));
        assert_eq!(t.dirs, vec![PathBuf::from("rb")]);
        assert_eq!(t.runbook.as_deref(), Some("cert-renew"));
        let t = typed(&words("plan --inventory=x.yaml manifest-edit"));
        assert_eq!(t.inventory, Some(PathBuf::from("x.yaml")));
        assert_eq!(t.runbook.as_deref(), Some("manifest-edit"));
        assert_eq!(typed(&words("exec -ix.yaml masters")).runbook, None);
    }
}
