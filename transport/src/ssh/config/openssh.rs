//! OpenSSH's own answer: `ssh -G` prints the configuration it would use for
//! a host after every `Include`, `Match`, `Host` block, canonicalisation and
//! default, one `keyword value` per line. remedy runs it with the inventory's
//! settings as command-line options, which win over the file exactly as they
//! would for `ssh`.

use super::{config_path, tokens::Local, Answer, Ask, ConfigFile};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::Command;

/// `ssh -G` only reads files, unless a `Match exec` runs a command: bounded
/// all the same.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The arguments that make `ssh -G` answer for `ask` from `file`.
pub(crate) fn arguments(file: &ConfigFile, ask: &Ask, local: &Local) -> Vec<String> {
    let mut args = vec!["-G".to_string()];
    match file {
        ConfigFile::Default => {}
        ConfigFile::Path(p) => {
            args.push("-F".into());
            args.push(config_path(p, local).display().to_string());
        }
        ConfigFile::None => {
            args.push("-F".into());
            args.push("none".into());
        }
    }
    if let Some(h) = &ask.hostname {
        args.push("-o".into());
        args.push(format!("HostName={h}"));
    }
    if let Some(p) = ask.port {
        args.push("-p".into());
        args.push(p.to_string());
    }
    if let Some(u) = &ask.user {
        args.push("-l".into());
        args.push(u.clone());
    }
    // `--`: a name starting with `-` is a host, never an option.
    args.push("--".into());
    args.push(ask.name.clone());
    args
}

/// What `ssh -G` says for `ask`.
pub(crate) async fn answer(program: &Path, file: &ConfigFile, ask: &Ask) -> Result<Answer, String> {
    run(program, &arguments(file, ask, &Local::current())).await
}

/// OpenSSH's defaults: its answer with no configuration file at all.
pub(crate) async fn defaults(program: &Path) -> Result<Answer, String> {
    run(
        program,
        &["-G", "-F", "none", "--", "remedy-defaults"].map(String::from),
    )
    .await
}

async fn run(program: &Path, args: &[String]) -> Result<Answer, String> {
    let shown = format!("{} {}", program.display(), args.join(" "));
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let out = tokio::time::timeout(TIMEOUT, cmd.output())
        .await
        .map_err(|_| format!("`{shown}` did not answer within {}s", TIMEOUT.as_secs()))?
        .map_err(|e| format!("cannot run `{shown}`: {e}"))?;
    if !out.status.success() {
        // ssh names the file and line: "FILE line N: Bad port 'x'."
        let stderr = String::from_utf8_lossy(&out.stderr);
        let reason: Vec<&str> = stderr
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("Pseudo-terminal"))
            .collect();
        return Err(format!(
            "OpenSSH rejects the SSH client configuration: {} (from `{shown}`)",
            if reason.is_empty() {
                format!("exit status {}", out.status)
            } else {
                reason.join("; ")
            }
        ));
    }
    Ok(parse(&String::from_utf8_lossy(&out.stdout)))
}

/// `keyword value` lines.
fn parse(text: &str) -> Answer {
    Answer(
        text.lines()
            .filter_map(|line| {
                let (k, v) = line.split_once(' ')?;
                Some((k.to_ascii_lowercase(), v.to_string()))
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inventory_settings_become_command_line_options() {
        let local = Local::current();
        let ask = Ask {
            name: "master-1".into(),
            hostname: Some("10.0.0.11".into()),
            port: Some(2222),
            user: Some("ops".into()),
        };
        assert_eq!(
            arguments(&ConfigFile::None, &ask, &local),
            [
                "-G",
                "-F",
                "none",
                "-o",
                "HostName=10.0.0.11",
                "-p",
                "2222",
                "-l",
                "ops",
                "--",
                "master-1"
            ]
        );
        let named = Ask {
            name: "m".into(),
            ..Ask::default()
        };
        assert_eq!(
            arguments(&ConfigFile::Path("/etc/x".into()), &named, &local),
            ["-G", "-F", "/etc/x", "--", "m"]
        );
    }

    #[test]
    fn lines_become_keywords_and_values() {
        let a = parse("hostname 10.0.0.1\nidentityfile ~/.ssh/a\nidentityfile ~/.ssh/b c\n");
        assert_eq!(a.get("hostname"), Some("10.0.0.1"));
        assert_eq!(a.all("identityfile"), ["~/.ssh/a", "~/.ssh/b c"]);
    }
}
