//! Secret references: the config names where a secret lives (`env:NAME`,
//! `file:PATH`), never the secret itself, so config files can be committed and
//! shown in reviews without leaking tokens.

use remedy_jumphost::expand_home;

/// Resolves a reference to its value: `env:NAME` reads the environment variable,
/// `file:PATH` reads the file's first line (`~/` is the home directory). A
/// literal value is refused — the message never repeats it, since it may be the
/// secret itself.
pub fn resolve_secret(reference: &str) -> Result<String, String> {
    let reference = reference.trim();
    if let Some(name) = reference.strip_prefix("env:") {
        if name.is_empty() {
            return Err("secret reference `env:` names no variable: write env:NAME".into());
        }
        let value = std::env::var(name).map_err(|e| match e {
            std::env::VarError::NotPresent => {
                format!("secret reference env:{name}: the environment variable {name} is not set")
            }
            std::env::VarError::NotUnicode(_) => {
                format!("secret reference env:{name}: the value of {name} is not valid UTF-8")
            }
        })?;
        let value = value.trim().to_string();
        if value.is_empty() {
            return Err(format!(
                "secret reference env:{name}: the environment variable {name} is empty"
            ));
        }
        return Ok(value);
    }
    if let Some(path) = reference.strip_prefix("file:") {
        if path.is_empty() {
            return Err("secret reference `file:` names no file: write file:PATH".into());
        }
        let full = expand_home(path);
        let text = std::fs::read_to_string(&full).map_err(|e| {
            format!(
                "secret reference file:{path}: cannot read {}: {e}",
                full.display()
            )
        })?;
        let first = text.lines().next().unwrap_or("").trim().to_string();
        if first.is_empty() {
            return Err(format!(
                "secret reference file:{path}: the first line of {} is empty",
                full.display()
            ));
        }
        return Ok(first);
    }
    Err(
        "a secret must be given by reference, not written into the config: put it in an \
         environment variable or a file (mode 0600) and write `env:NAME` or `file:PATH`"
            .into(),
    )
}

/// Whether `reference` has the shape of a reference (without resolving it), for
/// checking a config before the environment it will run in exists.
pub fn is_reference(reference: &str) -> bool {
    let reference = reference.trim();
    ["env:", "file:"].iter().any(|p| {
        reference
            .strip_prefix(p)
            .is_some_and(|rest| !rest.is_empty())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_is_refused_without_echoing_it() {
        let err = resolve_secret("xoxb-very-secret").unwrap_err();
        assert!(err.contains("env:NAME"), "{err}");
        assert!(!err.contains("very-secret"), "{err}");
    }

    #[test]
    fn file_reference_reads_the_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "s3cret\nsecond line\n").unwrap();
        let got = resolve_secret(&format!("file:{}", path.display())).unwrap();
        assert_eq!(got, "s3cret");
    }

    #[test]
    fn missing_file_and_variable_say_which() {
        let err = resolve_secret("file:/nonexistent/remedy-token").unwrap_err();
        assert!(err.contains("/nonexistent/remedy-token"), "{err}");
        let err = resolve_secret("env:REMEDY_CHATOPS_TEST_UNSET_VARIABLE").unwrap_err();
        assert!(err.contains("is not set"), "{err}");
        assert!(resolve_secret("env:").is_err());
    }

    #[test]
    fn env_reference_reads_the_variable() {
        // PATH is always set in a test process; no need to mutate the environment.
        let path = std::env::var("PATH").unwrap();
        assert_eq!(resolve_secret("env:PATH").unwrap(), path.trim());
        assert!(is_reference("env:X") && is_reference("file:/x"));
        assert!(!is_reference("env:") && !is_reference("hunter2"));
    }
}
