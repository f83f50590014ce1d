//! `~/` in paths the user writes (an inventory's `identity_file`, `~/.ssh/config`,
//! a chat token's `file:~/…`): expanded against `$HOME`, as a shell would.

use std::path::PathBuf;

/// `~/x` → `$HOME/x`. Anything else, or no usable `$HOME`, is left as it is.
pub fn expand_home(path: &str) -> PathBuf {
    match (
        path.strip_prefix("~/"),
        std::env::var_os("HOME").filter(|h| !h.is_empty()),
    ) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_leading_tilde_slash_is_expanded() {
        let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) else {
            return;
        };
        assert_eq!(
            expand_home("~/.ssh/id"),
            PathBuf::from(home).join(".ssh/id")
        );
        assert_eq!(expand_home("/etc/x"), PathBuf::from("/etc/x"));
        assert_eq!(expand_home("~user/x"), PathBuf::from("~user/x"));
        assert_eq!(expand_home("keys/id"), PathBuf::from("keys/id"));
    }
}
