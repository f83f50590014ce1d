//! Whether a client configuration can tell hosts apart. When no file it
//! reads has a `Host` pattern other than `*` or a `Match` block, every host
//! gets the same settings from it — but for what the inventory gives on the
//! command line (`HostName`, port, user) and what is derived from the name
//! itself (`%h`, `%C`, …), which the caller checks on `ssh -G`'s answers
//! for two made-up names ([`super::Resolver`]). Then two `ssh -G` at once
//! answer for every host of a run instead of one process per host (100 for
//! 100 hosts).
//!
//! Conservative: whatever this reader is not sure of — a file it cannot
//! read, a quoted argument, `%` or `${}` in an `Include`, a wildcard in an
//! `Include`'s directory, `Include`s nested deeper than OpenSSH allows —
//! counts as "can tell hosts apart", and each host is asked about as before.

use super::{config_path, tokens, ConfigFile, Local};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

/// What `ssh` reads after the user's file when no `-F` is given.
pub(crate) const SYSTEM_CONFIG: &str = "/etc/ssh/ssh_config";

/// OpenSSH refuses `Include`s nested deeper than this (READCONF_MAX_DEPTH).
const MAX_DEPTH: usize = 16;

/// True when every file `file` makes `ssh` read (with the system-wide file
/// at `system` for [`ConfigFile::Default`]) treats all host names alike.
pub(crate) fn treats_hosts_alike(file: &ConfigFile, local: &Local, system: &Path) -> bool {
    let ssh_dir = Path::new(&local.home).join(".ssh");
    match file {
        ConfigFile::None => true,
        // `ssh -F` with a missing file is an error: let `ssh -G` say it.
        ConfigFile::Path(p) => file_alike(&config_path(p, local), &ssh_dir, local, 0, false),
        ConfigFile::Default => {
            let system_dir = system.parent().unwrap_or(Path::new("/"));
            file_alike(&ssh_dir.join("config"), &ssh_dir, local, 0, true)
                && file_alike(system, system_dir, local, 0, true)
        }
    }
}

/// `path`'s lines, and the files they include, treat all hosts alike.
/// Relative `Include`s are under `dir` (`~/.ssh` for the user's files,
/// `/etc/ssh` for the system's), as OpenSSH takes them.
fn file_alike(path: &Path, dir: &Path, local: &Local, depth: usize, may_be_absent: bool) -> bool {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => return may_be_absent && e.kind() == ErrorKind::NotFound,
    };
    for line in text.lines() {
        let Some((keyword, args)) = words(line) else {
            return false;
        };
        let alike = match keyword.to_ascii_lowercase().as_str() {
            "match" => false,
            "host" => !args.is_empty() && args.iter().all(|a| *a == "*"),
            "include" => args.iter().all(|a| include_alike(a, dir, local, depth + 1)),
            _ => true,
        };
        if !alike {
            return false;
        }
    }
    true
}

/// A line's keyword and arguments (`keyword args`, `keyword=args`; a `#`
/// word ends them). `Some(("", []))` for a blank or comment line; `None`
/// for a line with a quote, which this reader does not split.
fn words(line: &str) -> Option<(&str, Vec<&str>)> {
    if line.contains('"') {
        return None;
    }
    let line = line.trim_start();
    let end = line
        .find(|c: char| c.is_whitespace() || c == '=')
        .unwrap_or(line.len());
    let (keyword, rest) = line.split_at(end);
    if keyword.starts_with('#') {
        return Some(("", Vec::new()));
    }
    let rest = rest.trim_start();
    let rest = rest.strip_prefix('=').unwrap_or(rest);
    let args = rest
        .split_whitespace()
        .take_while(|w| !w.starts_with('#'))
        .collect();
    Some((keyword, args))
}

/// Every file an `Include` argument names treats all hosts alike.
fn include_alike(arg: &str, dir: &Path, local: &Local, depth: usize) -> bool {
    if depth > MAX_DEPTH || arg.contains(['%', '$', '[']) {
        return false;
    }
    let path = PathBuf::from(tokens::tilde(arg, local));
    let path = if path.is_absolute() {
        path
    } else {
        dir.join(path)
    };
    let (Some(parent), Some(pattern)) = (path.parent(), path.file_name()) else {
        return false;
    };
    let Some(pattern) = pattern.to_str() else {
        return false;
    };
    if parent.to_string_lossy().contains(['*', '?']) {
        return false;
    }
    if !pattern.contains(['*', '?']) {
        // A file that is not there is skipped by OpenSSH too.
        return file_alike(&path, dir, local, depth, true);
    }
    let entries = match std::fs::read_dir(parent) {
        Ok(e) => e,
        Err(e) => return e.kind() == ErrorKind::NotFound,
    };
    for entry in entries {
        let Ok(entry) = entry else {
            return false;
        };
        let name = entry.file_name();
        // Matching more files than glob(3) would (dot files) only makes
        // this reader more careful.
        if wildcard(pattern, &name.to_string_lossy())
            && !file_alike(&entry.path(), dir, local, depth, false)
        {
            return false;
        }
    }
    true
}

/// `*` (any run of characters) and `?` (one character), as in a file name glob.
fn wildcard(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(home: &Path) -> Local {
        Local {
            user: "alice".into(),
            home: home.display().to_string(),
            uid: 1000,
            hostname: "jump".into(),
        }
    }

    fn alike(dir: &Path, config: &str, others: &[(&str, &str)]) -> bool {
        let file = dir.join("config");
        std::fs::write(&file, config).unwrap();
        for (name, text) in others {
            let p = dir.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        treats_hosts_alike(
            &ConfigFile::Path(file),
            &local(dir),
            Path::new("/nonexistent/ssh_config"),
        )
    }

    #[test]
    fn only_star_hosts_and_no_match_are_alike() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        assert!(alike(p, "", &[]));
        assert!(alike(
            p,
            "# c\n\nUser ops\nHost *\n  Port 2222\nHost=*\n",
            &[]
        ));
        assert!(alike(p, "Host * # everyone\n  SendEnv LANG LC_*\n", &[]));
        assert!(!alike(p, "Host master-*\n  User ops\n", &[]));
        assert!(!alike(p, "Host * !bastion\n  User ops\n", &[]));
        assert!(!alike(p, "Host *\nMatch host master-1\n  User ops\n", &[]));
        assert!(!alike(p, "  match all\n", &[]));
        assert!(!alike(p, "Host \"*\"\n", &[]), "quotes are not split here");
    }

    #[test]
    fn included_files_count_wherever_they_are() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        let inc = p.join("conf.d");
        let glob = format!("Include {}/*.conf\n", inc.display());
        assert!(alike(p, &glob, &[("conf.d/a.conf", "Host *\n  User a\n")]));
        assert!(!alike(
            p,
            &glob,
            &[("conf.d/b.conf", "Host *\nMatch exec true\n  User b\n")]
        ));
        // A Match in a file the glob does not name is not read by ssh either.
        std::fs::remove_file(inc.join("b.conf")).unwrap();
        assert!(alike(p, &glob, &[("conf.d/b.txt", "Match all\n")]));
        // Relative: under ~/.ssh; nested.
        assert!(!alike(
            p,
            "Include more\n",
            &[
                (".ssh/more", "Include /dev/null\nInclude deeper\n"),
                (".ssh/deeper", "Host m1\n")
            ]
        ));
        assert!(alike(p, "Include absent-file /no/such/dir/*\n", &[]));
        assert!(!alike(p, "Include ${HOME}/x\n", &[]));
        assert!(!alike(p, "Include /etc/*/x\n", &[]));
        // An Include that includes itself: stopped at OpenSSH's depth.
        let me = p.join("config");
        assert!(!alike(p, &format!("Include {}\n", me.display()), &[]));
    }

    #[test]
    fn the_default_reads_the_user_and_the_system_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        let system = p.join("etc/ssh_config");
        std::fs::create_dir_all(p.join("etc")).unwrap();
        let l = local(p);
        // Neither file exists: alike.
        assert!(treats_hosts_alike(&ConfigFile::Default, &l, &system));
        std::fs::write(&system, "Host *\n  SendEnv LANG\n").unwrap();
        assert!(treats_hosts_alike(&ConfigFile::Default, &l, &system));
        std::fs::write(p.join("etc/m.conf"), "Host db-*\n").unwrap();
        std::fs::write(&system, "Include m.conf\n").unwrap();
        assert!(!treats_hosts_alike(&ConfigFile::Default, &l, &system));
        std::fs::write(&system, "").unwrap();
        std::fs::create_dir_all(p.join(".ssh")).unwrap();
        std::fs::write(p.join(".ssh/config"), "Host bastion\n").unwrap();
        assert!(!treats_hosts_alike(&ConfigFile::Default, &l, &system));
        assert!(treats_hosts_alike(&ConfigFile::None, &l, &system));
        // `-F` a missing file: not decided here.
        let missing = ConfigFile::Path(p.join("missing"));
        assert!(!treats_hosts_alike(&missing, &l, &system));
    }

    #[test]
    fn wildcards() {
        assert!(wildcard("*.conf", "a.conf"));
        assert!(wildcard("*", ""));
        assert!(wildcard("a?c*", "abcdef"));
        assert!(!wildcard("*.conf", "a.conf~"));
        assert!(wildcard("*a*b", "xaxxab"));
        assert!(!wildcard("a", "ab"));
    }
}
