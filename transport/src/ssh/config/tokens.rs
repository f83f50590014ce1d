//! OpenSSH's expansions in the settings remedy honours: `~` (the local
//! account's home, from the password database as OpenSSH takes it, not
//! `$HOME`), `${VAR}` and the `%` tokens of ssh_config(5) "TOKENS". Each
//! keyword accepts its own set of tokens; an unknown token is an error, as in
//! OpenSSH (`percent_expand: unknown key`).

use sha1::{Digest, Sha1};
use std::ffi::CStr;

/// The local side of a connection: who runs remedy, on which machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Local {
    pub user: String,
    pub home: String,
    pub uid: u32,
    /// `gethostname()`, as `%l`; `%L` is its first label.
    pub hostname: String,
}

impl Local {
    /// The account remedy runs as (getpwuid), as OpenSSH looks it up.
    pub fn current() -> Local {
        // SAFETY: getuid cannot fail.
        let uid = unsafe { libc::getuid() };
        let (user, home) = passwd_entry(uid).unwrap_or_else(|| {
            (
                std::env::var("USER").unwrap_or_else(|_| uid.to_string()),
                std::env::var("HOME").unwrap_or_else(|_| "/".into()),
            )
        });
        Local {
            user,
            home,
            uid,
            hostname: local_hostname(),
        }
    }
}

/// Name and home directory of `uid` from the password database.
fn passwd_entry(uid: libc::uid_t) -> Option<(String, String)> {
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: an all-zero passwd is a valid value for getpwuid_r to fill.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call and buf outlives the
    // strings getpwuid_r points into it.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut found) };
    if rc != 0 || found.is_null() || pwd.pw_name.is_null() || pwd.pw_dir.is_null() {
        return None;
    }
    // SAFETY: getpwuid_r succeeded, so both are NUL-terminated strings in buf.
    let (name, dir) = unsafe { (CStr::from_ptr(pwd.pw_name), CStr::from_ptr(pwd.pw_dir)) };
    Some((
        name.to_string_lossy().into_owned(),
        dir.to_string_lossy().into_owned(),
    ))
}

fn local_hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is writable for its whole length.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return String::new();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// What the `%` tokens stand for, for one connection.
#[derive(Debug, Clone)]
pub struct Values<'a> {
    /// `%h`: the host name connected to (after `HostName`).
    pub host: &'a str,
    /// `%n`: the name as given (the inventory name, or a jump hop's).
    pub original: &'a str,
    pub port: u16,
    /// `%r`: the remote user.
    pub user: &'a str,
    /// `HostKeyAlias`, which `%k` prefers to `%n`.
    pub host_key_alias: Option<&'a str>,
    pub local: &'a Local,
}

/// The tokens `ProxyCommand` accepts (sshconnect.c, expand_proxy_command).
pub const PROXY_COMMAND: &str = "hknpr";
/// The tokens `IdentityFile` (and most path keywords) accept.
pub const IDENTITY_FILE: &str = "CdhikLlnpru";

/// Expand `%` tokens: `%%` is a `%`, `%X` for X in `allowed` its value; any
/// other `%X`, or a `%` at the end, is an error naming the keyword.
pub fn percent(keyword: &str, text: &str, allowed: &str, v: &Values) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let token = match chars.next() {
            Some('%') => {
                out.push('%');
                continue;
            }
            Some(t) if allowed.contains(t) => t,
            Some(t) => {
                return Err(format!(
                    "{keyword} `{text}`: OpenSSH does not expand %{t} there (it accepts %% and {})",
                    allowed
                        .chars()
                        .map(|a| format!("%{a}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                ))
            }
            None => return Err(format!("{keyword} `{text}` ends with a lone `%`")),
        };
        let port = v.port.to_string();
        let value = match token {
            'h' => v.host.to_string(),
            'n' => v.original.to_string(),
            'p' => port,
            'r' => v.user.to_string(),
            'k' => v.host_key_alias.unwrap_or(v.original).to_string(),
            'u' => v.local.user.clone(),
            'd' => v.local.home.clone(),
            'i' => v.local.uid.to_string(),
            'l' => v.local.hostname.clone(),
            'L' => v
                .local
                .hostname
                .split('.')
                .next()
                .unwrap_or_default()
                .to_string(),
            'C' => connection_hash(&v.local.hostname, v.host, &port, v.user),
            other => return Err(format!("{keyword} `{text}`: unknown token %{other}")),
        };
        out.push_str(&value);
    }
    Ok(out)
}

/// `%C`: SHA-1 of `%l%h%p%r`, in hex (OpenSSH 9.2's ssh_connection_hash).
fn connection_hash(local_host: &str, host: &str, port: &str, user: &str) -> String {
    let mut h = Sha1::new();
    for part in [local_host, host, port, user] {
        h.update(part.as_bytes());
    }
    h.finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
}

/// `${VAR}` from the environment; an unset variable is an error, as in OpenSSH.
pub fn dollar(keyword: &str, text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(format!("{keyword} `{text}`: `${{` without a closing `}}`"));
        };
        let name = &after[..end];
        match std::env::var(name) {
            Ok(value) => out.push_str(&value),
            Err(_) => {
                return Err(format!(
                    "{keyword} `{text}`: environment variable `{name}` is not set"
                ))
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A leading `~` or `~/` is the local account's home. (`~user/` is left as
/// it is: remedy does not look up other accounts.)
pub fn tilde(text: &str, local: &Local) -> String {
    if text == "~" {
        return local.home.clone();
    }
    match text.strip_prefix("~/") {
        Some(rest) => format!("{}/{}", local.home.trim_end_matches('/'), rest),
        None => text.to_string(),
    }
}

/// A path keyword such as `IdentityFile`: `~`, then `${VAR}`, then `%` tokens
/// (the order of OpenSSH's tilde_expand_filename and
/// default_client_percent_dollar_expand).
pub fn path(keyword: &str, text: &str, v: &Values) -> Result<String, String> {
    let expanded = dollar(keyword, &tilde(text, v.local))?;
    percent(keyword, &expanded, IDENTITY_FILE, v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> Local {
        Local {
            user: "alice".into(),
            home: "/home/alice".into(),
            uid: 1000,
            hostname: "jump.example.org".into(),
        }
    }

    #[test]
    fn tokens_expand_per_keyword_and_unknown_ones_are_refused() {
        let l = local();
        let v = Values {
            host: "10.0.0.5",
            original: "master-1",
            port: 2222,
            user: "root",
            host_key_alias: None,
            local: &l,
        };
        assert_eq!(
            path("IdentityFile", "~/.ssh/%r@%n_%h:%p-%u-%L-%i-%%", &v).unwrap(),
            "/home/alice/.ssh/root@master-1_10.0.0.5:2222-alice-jump-1000-%"
        );
        assert_eq!(
            percent("ProxyCommand", "ssh -W %h:%p %k", PROXY_COMMAND, &v).unwrap(),
            "ssh -W 10.0.0.5:2222 master-1"
        );
        let err = percent("ProxyCommand", "nc %h %u", PROXY_COMMAND, &v).unwrap_err();
        assert!(err.contains("does not expand %u"), "{err}");
        assert!(percent("ProxyCommand", "nc %", PROXY_COMMAND, &v).is_err());
        // sha1("jump.example.org" "10.0.0.5" "2222" "root")
        assert_eq!(
            percent("IdentityFile", "%C", IDENTITY_FILE, &v).unwrap(),
            connection_hash("jump.example.org", "10.0.0.5", "2222", "root")
        );
        assert_eq!(connection_hash("", "", "", "").len(), 40);
    }

    #[test]
    fn environment_variables_expand_and_a_missing_one_is_an_error() {
        std::env::set_var("REMEDY_TOKENS_TEST", "keys");
        assert_eq!(
            dollar("IdentityFile", "/x/${REMEDY_TOKENS_TEST}/id").unwrap(),
            "/x/keys/id"
        );
        assert!(dollar("IdentityFile", "/x/${REMEDY_TOKENS_UNSET_VAR}/id")
            .unwrap_err()
            .contains("REMEDY_TOKENS_UNSET_VAR"));
        assert_eq!(tilde("~user/x", &local()), "~user/x");
        assert_eq!(tilde("~", &local()), "/home/alice");
    }
}
