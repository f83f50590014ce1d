//! `~/` in paths the user writes (an inventory's `identity_file`, `~/.ssh/config`,
//! a chat token's `file:~/…`): expanded against `$HOME`, as a shell would.

use std::ffi::OsString;
use std::path::PathBuf;

/// `~/x` → `$HOME/x`. Anything else, or no usable `$HOME`, is left as it is.
pub fn expand_home(path: &str) -> PathBuf {
    expand_with(path, std::env::var_os("HOME"))
}

/// [`expand_home`] against `home` (what `$HOME` holds, if set).
fn expand_with(path: &str, home: Option<OsString>) -> PathBuf {
    match (path.strip_prefix("~/"), home.filter(|h| !h.is_empty())) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_leading_tilde_slash_is_expanded() {
        let home = || Some(OsString::from("/home/op"));
        assert_eq!(
            expand_with("~/.ssh/id", home()),
            PathBuf::from("/home/op/.ssh/id")
        );
        assert_eq!(expand_with("/etc/x", home()), PathBuf::from("/etc/x"));
        assert_eq!(expand_with("~user/x", home()), PathBuf::from("~user/x"));
        assert_eq!(expand_with("keys/id", home()), PathBuf::from("keys/id"));
    }

    #[test]
    fn without_a_usable_home_the_path_is_left_as_written() {
        assert_eq!(expand_with("~/.ssh/id", None), PathBuf::from("~/.ssh/id"));
        assert_eq!(
            expand_with("~/.ssh/id", Some(OsString::new())),
            PathBuf::from("~/.ssh/id")
        );
    }
}
