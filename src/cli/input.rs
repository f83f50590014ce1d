//! Reading the files a user names — runbooks, inventories, params files, the
//! site config — into a [`Source`]. Every one is read the same way: at most
//! [`MAX_SOURCE_BYTES`] (the rest is never read into memory), as UTF-8, and
//! each way it can fail (missing, a directory, no permission, too large, not
//! UTF-8) gives a message saying what is wrong, where, and what to do.

use remedy_dsl::source::MAX_SOURCE_BYTES;
use remedy_dsl::{Diagnostic, Source};
use std::io::Read as _;
use std::path::Path;
use std::sync::Arc;

/// Read `path` as the `what` named in messages ("runbook", "inventory", …).
pub fn read(path: &Path, what: &str) -> Result<Arc<Source>, Diagnostic> {
    let name = path.display().to_string();
    let failed = |e: std::io::Error| cannot_read(&name, what, e);
    let file = std::fs::File::open(path).map_err(failed)?;
    let meta = file.metadata().map_err(failed)?;
    if meta.is_dir() {
        return Err(
            Diagnostic::new(format!("{what} {name} is a directory, not a file"))
                .with_hint(if what == "runbook" {
                    format!("name a .yaml file in it, or pass `--dir {name}` to use the runbooks it holds")
                } else {
                    format!("name the {what} file itself")
                }),
        );
    }
    let mut bytes = Vec::new();
    file.take(MAX_SOURCE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(failed)?;
    if bytes.len() > MAX_SOURCE_BYTES {
        // A regular file says how large it is; a pipe does not.
        let size = if meta.is_file() {
            format!("{} bytes", meta.len())
        } else {
            format!("more than {MAX_SOURCE_BYTES} bytes")
        };
        return Err(Diagnostic::new(format!(
            "{what} {name} is {size}; remedy reads runbooks, inventories and params files of at most {} MiB",
            MAX_SOURCE_BYTES >> 20
        ))
        .with_hint("is this the file you meant? split a very large inventory into several"));
    }
    Source::from_bytes(name, bytes)
}

fn cannot_read(name: &str, what: &str, e: std::io::Error) -> Diagnostic {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::NotFound => Diagnostic::new(format!("{what} {name} does not exist")).with_hint(
            match std::env::current_dir() {
                Ok(dir) if Path::new(name).is_relative() => {
                    format!("check the path; it is relative to {}", dir.display())
                }
                _ => "check the path".to_string(),
            },
        ),
        ErrorKind::PermissionDenied => {
            Diagnostic::new(format!("cannot read {what} {name}: permission denied")).with_hint(
                format!("check its permissions (`ls -l {name}`) or run as a user who may read it"),
            )
        }
        _ => Diagnostic::new(format!("cannot read {what} {name}: {e}")),
    }
}

/// A file that could not be read, for callers that print `error: {e}`: the
/// diagnostic's message, then its location and hint lines.
#[derive(Debug)]
pub struct ReadError(pub Diagnostic);

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.render_body().trim_end())
    }
}

impl From<Diagnostic> for ReadError {
    fn from(d: Diagnostic) -> Self {
        ReadError(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_unreadable_file_says_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let missing = read(&dir.path().join("nope.yaml"), "runbook").unwrap_err();
        assert!(
            missing.message.ends_with("nope.yaml does not exist"),
            "{}",
            missing.message
        );
        let d = read(dir.path(), "inventory").unwrap_err();
        assert!(
            d.message.ends_with("is a directory, not a file"),
            "{}",
            d.message
        );
        assert_eq!(d.hint.as_deref(), Some("name the inventory file itself"));

        let big = dir.path().join("big.yaml");
        std::fs::write(&big, vec![b'#'; MAX_SOURCE_BYTES + 10]).unwrap();
        let d = read(&big, "runbook").unwrap_err();
        assert!(
            d.message.contains("is 4194314 bytes; remedy reads"),
            "{}",
            d.message
        );

        let bad = dir.path().join("bad.yaml");
        std::fs::write(&bad, b"a: 1\nb: \xc3\x28\n").unwrap();
        let d = read(&bad, "runbook").unwrap_err();
        assert_eq!(d.location(), Some(format!("{}:2:4", bad.display())));
    }

    #[test]
    fn a_pipe_is_read_up_to_the_limit_only() {
        // /dev/zero never ends: reading it whole would never return.
        let d = read(Path::new("/dev/zero"), "params file").unwrap_err();
        assert!(
            d.message.contains("is more than 4194304 bytes"),
            "{}",
            d.message
        );
    }
}
