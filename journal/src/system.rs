//! Facts about this machine the journal records and checks: where it lives,
//! who runs remedy, the host name. Whether a recorded process still runs is
//! `remedy-jumphost`'s (re-exported by the crate root).

use std::ffi::{CStr, OsString};
use std::path::PathBuf;

/// The directory for remedy's state: `$REMEDY_HOME`, else
/// `~/.local/state/remedy` (XDG state dir: the journal is state, not config).
pub fn remedy_home() -> PathBuf {
    if let Some(home) = std::env::var_os("REMEDY_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(home);
    }
    let home = std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .or_else(|| passwd().map(|p| p.dir))
        .unwrap_or_else(|| OsString::from("."));
    PathBuf::from(home).join(".local/state/remedy")
}

/// The journal file: `remedy_home()/remedy.db`.
pub fn default_path() -> PathBuf {
    remedy_home().join("remedy.db")
}

/// The effective user's name, from the password database because `$USER`
/// is whatever the shell says (and is wrong under `sudo`). Falls back to
/// `$USER`, then the numeric uid.
pub fn os_user() -> String {
    passwd()
        .map(|p| p.name)
        .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| {
            // SAFETY: geteuid has no preconditions and cannot fail.
            unsafe { libc::geteuid() }.to_string()
        })
}

/// This machine's name, as recorded for the jump host of a run or lock.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most
    // that many bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown-host".to_string();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

struct Passwd {
    name: String,
    dir: OsString,
}

/// The password-database entry of the effective user (thread-safe `_r` call).
fn passwd() -> Option<Passwd> {
    use std::os::unix::ffi::OsStrExt;
    let mut buf = vec![0u8; 16 * 1024];
    // SAFETY: all-zero is a valid `passwd` (null pointers, zero ids).
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: pointers are valid for the call; buf outlives the use of the
    // strings it backs, which are copied out below.
    let rc = unsafe {
        libc::getpwuid_r(
            libc::geteuid(),
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
        return None;
    }
    // SAFETY: on success pw_name and pw_dir point to NUL-terminated strings in buf.
    let name = unsafe { CStr::from_ptr(pwd.pw_name) }
        .to_string_lossy()
        .into_owned();
    let dir = if pwd.pw_dir.is_null() {
        OsString::new()
    } else {
        // SAFETY: as above.
        std::ffi::OsStr::from_bytes(unsafe { CStr::from_ptr(pwd.pw_dir) }.to_bytes()).to_owned()
    };
    (!name.is_empty()).then_some(Passwd { name, dir })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_not_empty() {
        assert!(!os_user().is_empty());
        assert!(!hostname().is_empty());
    }
}
