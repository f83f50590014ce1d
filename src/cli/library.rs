//! Finding runbooks: a path, a runbook in a `--dir`, or one of the built-in
//! runbooks embedded in the binary from `runbooks/`.

use super::input::{self, ReadError};
use remedy_dsl::Source;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The built-in runbooks, embedded at build time. A test checks this list
/// matches the files in `runbooks/`.
pub const BUILTIN: &[(&str, &str)] = &[
    (
        "apiserver-recover",
        include_str!("../../runbooks/apiserver-recover.yaml"),
    ),
    (
        "apiserver-tune",
        include_str!("../../runbooks/apiserver-tune.yaml"),
    ),
    (
        "backup-restore",
        include_str!("../../runbooks/backup-restore.yaml"),
    ),
    ("cert-renew", include_str!("../../runbooks/cert-renew.yaml")),
    (
        "etcd-maintenance",
        include_str!("../../runbooks/etcd-maintenance.yaml"),
    ),
    (
        "etcd-nospace-recover",
        include_str!("../../runbooks/etcd-nospace-recover.yaml"),
    ),
    (
        "etcd-restore",
        include_str!("../../runbooks/etcd-restore.yaml"),
    ),
    (
        "etcd-snapshot",
        include_str!("../../runbooks/etcd-snapshot.yaml"),
    ),
    ("lb-drain", include_str!("../../runbooks/lb-drain.yaml")),
    ("lb-ready", include_str!("../../runbooks/lb-ready.yaml")),
    (
        "manifest-edit",
        include_str!("../../runbooks/manifest-edit.yaml"),
    ),
    (
        "object-restore",
        include_str!("../../runbooks/object-restore.yaml"),
    ),
    (
        "static-pod-restart",
        include_str!("../../runbooks/static-pod-restart.yaml"),
    ),
    (
        "webhook-deadlock-break",
        include_str!("../../runbooks/webhook-deadlock-break.yaml"),
    ),
];

/// Where a runbook name resolved to: a path (anything with a `/` or a YAML
/// extension), `NAME.yaml` in a `--dir`, or a built-in runbook.
pub fn load(name: &str, dirs: &[PathBuf]) -> Result<Arc<Source>, ReadError> {
    if name.contains('/') || name.ends_with(".yaml") || name.ends_with(".yml") {
        return Ok(input::read(Path::new(name), "runbook")?);
    }
    for dir in dirs {
        for ext in ["yaml", "yml"] {
            let p = dir.join(format!("{name}.{ext}"));
            if p.is_file() {
                return Ok(input::read(&p, "runbook")?);
            }
        }
    }
    if let Some((n, text)) = BUILTIN.iter().find(|(n, _)| *n == name) {
        return Ok(Source::new(format!("builtin:{n}"), *text));
    }
    let mut known: Vec<String> = BUILTIN.iter().map(|(n, _)| n.to_string()).collect();
    for dir in dirs {
        known.extend(runbooks_in(dir).into_iter().map(|(n, _)| n));
    }
    let hint = remedy_dsl::diagnostic::did_you_mean(name, known.iter().map(String::as_str))
        .unwrap_or_else(|| {
            format!(
                "known runbooks: {}; or give a path to a .yaml file",
                known.join(", ")
            )
        });
    Err(ReadError(remedy_dsl::Diagnostic::new(format!(
        "no runbook named `{name}`; {hint}"
    ))))
}

/// `(name, path)` of every `*.yaml`/`*.yml` in a directory.
pub fn runbooks_in(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut out: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .filter_map(|p| Some((p.file_stem()?.to_str()?.to_string(), p)))
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_list_matches_the_runbooks_directory() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("runbooks");
        let on_disk: Vec<String> = runbooks_in(&dir).into_iter().map(|(n, _)| n).collect();
        let mut embedded: Vec<String> = BUILTIN.iter().map(|(n, _)| n.to_string()).collect();
        embedded.sort();
        assert_eq!(
            on_disk, embedded,
            "add new runbooks to BUILTIN in src/cli/library.rs"
        );
    }

    #[test]
    fn every_builtin_compiles_and_is_named_after_its_file() {
        for (name, text) in BUILTIN {
            let rb =
                remedy_dsl::compile(Source::new(*name, *text)).unwrap_or_else(|d| panic!("{d}"));
            assert_eq!(&rb.name, name);
        }
    }
}
