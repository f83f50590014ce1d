//! Shell text: [`quote`] (for every command remedy builds from values) and
//! the scripts of file operations over SSH. File operations run as small
//! POSIX-sh scripts with coreutils on the host rather than over SFTP, so that
//! the same code path works for root and for `become` (sudo) users, and so a
//! replace is a real rename(2) over the old file (OpenSSH's SFTP rename
//! refuses an existing target, and russh-sftp offers no posix-rename).

/// Single-quote `s` for sh.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// `s` as one sh word in a command shown to a person: as it is when sh
/// would read it unchanged (a plain path), else quoted.
pub fn word(s: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-,:=@+%".contains(c);
    match !s.is_empty() && s.chars().all(plain) {
        true => s.to_string(),
        false => quote(s),
    }
}

/// `stat` of a path, or the word `absent`.
pub fn stat(path: &str) -> String {
    let p = quote(path);
    format!("if [ -e {p} ]; then stat -L -c '%a %u %g %s %F' -- {p}; else echo absent; fi")
}

/// Why a unix socket could not be opened: `absent`, `hidden` (a directory
/// above it is closed to this user), `not-socket`, or
/// `socket OWNER:GROUP MODE writable|denied` (write access as whoever runs it).
pub fn socket_check(path: &str) -> String {
    let p = quote(path);
    format!(
        "if [ -e {p} ]; then \
           if [ ! -S {p} ]; then echo not-socket; \
           else printf 'socket %s ' \"$(stat -c '%U:%G %a' -- {p})\"; \
             if [ -w {p} ]; then echo writable; else echo denied; fi; fi; \
         else case \"$(LC_ALL=C stat -- {p} 2>&1)\" in \
           *'Permission denied'*) echo hidden;; *) echo absent;; esac; fi"
    )
}

/// Write stdin to `path` atomically: a hidden temporary file in the same
/// directory (the kubelet ignores dot-files), fsync, mode and owner (given, or
/// the old file's, or 0644), rename over the target, fsync the directory.
pub fn write_atomic(path: &str, mode: Option<u32>, owner: Option<(u32, u32)>) -> String {
    let p = quote(path);
    let chmod = match mode {
        Some(m) => format!("chmod {m:o} \"$t\""),
        None => {
            format!("if [ -e {p} ]; then chmod --reference={p} \"$t\"; else chmod 644 \"$t\"; fi")
        }
    };
    let chown = match owner {
        Some((u, g)) => format!("chown {u}:{g} \"$t\""),
        None => format!("if [ -e {p} ]; then chown --reference={p} \"$t\"; fi"),
    };
    format!(
        "set -e; d=$(dirname -- {p}); b=$(basename -- {p}); t=$(mktemp \"$d/.$b.remedy-XXXXXX\"); trap 'rm -f -- \"$t\"' EXIT; cat > \"$t\"; {chmod}; {chown}; sync -- \"$t\"; mv -f -- \"$t\" {p}; trap - EXIT; sync -- \"$d\" 2>/dev/null || true"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_word_is_shown_as_it_is() {
        assert_eq!(word("/tmp/lab/inventory.yaml"), "/tmp/lab/inventory.yaml");
        assert_eq!(word("my inv.yaml"), "'my inv.yaml'");
        assert_eq!(word("$HOME/x"), "'$HOME/x'");
        assert_eq!(word(""), "''");
    }

    #[test]
    fn quoting_survives_quotes_and_spaces() {
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf %s {}", quote("x'y z$HOME")))
            .output()
            .unwrap();
        assert_eq!(out.stdout, b"x'y z$HOME");
    }

    #[test]
    fn atomic_write_script_keeps_mode_and_replaces_the_file() {
        use std::io::Write;
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("it's.conf");
        std::fs::write(&f, "old").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(write_atomic(f.to_str().unwrap(), None, None))
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(b"new\n").unwrap();
        assert!(child.wait().unwrap().success());
        assert_eq!(std::fs::read(&f).unwrap(), b"new\n");
        assert_eq!(
            std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o640
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file left"
        );
    }
}
