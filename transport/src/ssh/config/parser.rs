//! Reading the client configuration without OpenSSH (no `ssh` installed),
//! with the `ssh2-config` crate: `Host` blocks (patterns matched against the
//! name as given, case-sensitively, first value wins), `Include`, quoting,
//! trailing comments. It cannot evaluate `Match`: a configuration with one is
//! refused, since the block could hold a `ProxyCommand` or `HostName` that
//! would otherwise be silently skipped. `/etc/ssh/ssh_config` is not read.

use super::{config_path, tokens::Local, Answer, Ask, ConfigFile};
use ssh2_config::{DefaultAlgorithms, HostParams, ParseRule, SshConfig, SshParserError};
use std::io::BufReader;
use std::net::IpAddr;

/// The configuration's settings for `ask`, in `ssh -G`'s vocabulary.
pub(crate) fn answer(file: &ConfigFile, ask: &Ask, local: &Local) -> Result<Answer, String> {
    let config = match file {
        ConfigFile::None => None,
        ConfigFile::Default => {
            let path = std::path::Path::new(&local.home).join(".ssh/config");
            path.exists().then(|| read(&path, local)).transpose()?
        }
        ConfigFile::Path(p) => Some(read(&config_path(p, local), local)?),
    };
    let Some(config) = config else {
        return Ok(to_answer(
            &HostParams::new(&DefaultAlgorithms::default()),
            ask,
            local,
            None,
        ));
    };
    let proxy = first_proxy(&config, &ask.name)?;
    Ok(to_answer(&config.query(&ask.name), ask, local, proxy))
}

/// OpenSSH keeps `ProxyCommand` and `ProxyJump` in one slot: whichever the
/// first matching block sets wins, `none` included. ssh2-config keeps them
/// apart, so the blocks are walked here. One block with both is refused:
/// which line came first is lost.
fn first_proxy(config: &SshConfig, name: &str) -> Result<Option<&'static str>, String> {
    for host in config.intersecting_hosts(name) {
        let command = host
            .params
            .unsupported_fields
            .keys()
            .any(|k| k.eq_ignore_ascii_case("proxycommand"));
        match (command, host.params.proxy_jump.is_some()) {
            (true, true) => {
                return Err(format!(
                    "the block `Host {}` sets both ProxyCommand and ProxyJump, and without OpenSSH remedy cannot tell which line comes first; install openssh-client, or keep one of them",
                    host.pattern
                        .iter()
                        .map(|p| p.to_string())
                        .collect::<Vec<_>>()
                        .join(" ")
                ))
            }
            (true, false) => return Ok(Some("proxycommand")),
            (false, true) => return Ok(Some("proxyjump")),
            (false, false) => {}
        }
    }
    Ok(None)
}

fn read(path: &std::path::Path, local: &Local) -> Result<SshConfig, String> {
    let file = std::fs::File::open(path).map_err(|e| {
        format!(
            "cannot read SSH client configuration {}: {e}",
            path.display()
        )
    })?;
    SshConfig::default()
        .home_dir(&local.home)
        .parse(
            &mut BufReader::new(file),
            ParseRule::ALLOW_UNSUPPORTED_FIELDS,
        )
        .map_err(|e| match e {
            SshParserError::UnknownField(field, _) if field.eq_ignore_ascii_case("match") => format!(
                "{}: `Match` blocks can only be evaluated by OpenSSH's `ssh -G`, and `ssh` is not installed here; install openssh-client, or set `ssh.config: none` in the inventory to connect without this file",
                path.display()
            ),
            other => format!("cannot read SSH client configuration {}: {other}", path.display()),
        })
}

/// `HostParams` → `ssh -G`-style lines, the inventory's settings first.
fn to_answer(params: &HostParams, ask: &Ask, local: &Local, proxy: Option<&str>) -> Answer {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut push = |k: &str, v: String| out.push((k.to_string(), v));
    // As ssh does: %h in HostName is the name given; names (not addresses)
    // are lowercased.
    let hostname = ask
        .hostname
        .clone()
        .or_else(|| {
            params
                .host_name
                .as_ref()
                .map(|h| h.replace("%h", &ask.name))
        })
        .unwrap_or_else(|| ask.name.clone());
    push(
        "hostname",
        if hostname.parse::<IpAddr>().is_ok() {
            hostname
        } else {
            hostname.to_lowercase()
        },
    );
    push("port", ask.port.or(params.port).unwrap_or(22).to_string());
    push(
        "user",
        ask.user
            .clone()
            .or_else(|| params.user.clone())
            .unwrap_or_else(|| local.user.clone()),
    );
    for f in params.identity_file.iter().flatten() {
        push("identityfile", f.display().to_string());
    }
    if let (Some(hops), Some("proxyjump")) = (&params.proxy_jump, proxy) {
        push("proxyjump", hops.join(","));
    }
    if let Some(c) = &params.certificate_file {
        push("certificatefile", c.display().to_string());
    }
    for (k, v) in [
        ("bindaddress", &params.bind_address),
        ("bindinterface", &params.bind_interface),
    ] {
        if let Some(v) = v {
            push(k, v.clone());
        }
    }
    if let Some(t) = params.connect_timeout {
        push("connecttimeout", t.as_secs().to_string());
    }
    if params.pubkey_authentication == Some(false) {
        push("pubkeyauthentication", "no".into());
    }
    let defaults = HostParams::new(&DefaultAlgorithms::default());
    for (k, mine, default) in [
        (
            "kexalgorithms",
            &params.kex_algorithms,
            &defaults.kex_algorithms,
        ),
        ("ciphers", &params.ciphers, &defaults.ciphers),
        ("macs", &params.mac, &defaults.mac),
        (
            "hostkeyalgorithms",
            &params.host_key_algorithms,
            &defaults.host_key_algorithms,
        ),
        (
            "pubkeyacceptedalgorithms",
            &params.pubkey_accepted_algorithms,
            &defaults.pubkey_accepted_algorithms,
        ),
        (
            "casignaturealgorithms",
            &params.ca_signature_algorithms,
            &defaults.ca_signature_algorithms,
        ),
    ] {
        if mine != default {
            push(k, mine.to_string());
        }
    }
    // What ssh2-config parses but does not model (ProxyCommand among them),
    // with values as written.
    let mut unsupported: Vec<_> = params.unsupported_fields.iter().collect();
    unsupported.sort();
    for (k, args) in unsupported {
        let k = k.to_ascii_lowercase();
        if k == "proxycommand" && proxy != Some("proxycommand") {
            continue;
        }
        push(&k, args.join(" "));
    }
    Answer(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> Local {
        Local {
            user: "alice".into(),
            home: "/nonexistent-home".into(),
            uid: 1000,
            hostname: "jump".into(),
        }
    }

    fn answer_for(text: &str, name: &str) -> Result<Answer, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::write(&path, text).unwrap();
        let ask = Ask {
            name: name.into(),
            ..Ask::default()
        };
        answer(&ConfigFile::Path(path), &ask, &local())
    }

    #[test]
    fn a_match_block_is_refused_not_skipped() {
        let err = answer_for(
            "Host a\n  User x\nMatch host b\n  ProxyCommand nc %h %p\n",
            "a",
        )
        .unwrap_err();
        assert!(
            err.contains("`Match` blocks") && err.contains("openssh-client"),
            "{err}"
        );
    }

    #[test]
    fn proxy_command_and_trailing_comments() {
        let a = answer_for(
            "Host m-*\n  User root # ops\n  ProxyCommand ssh -W %h:%p bastion\n",
            "m-1",
        )
        .unwrap();
        assert_eq!(a.get("user"), Some("root"));
        assert_eq!(a.get("proxycommand"), Some("ssh -W %h:%p bastion"));
        assert_eq!(a.get("hostname"), Some("m-1"));
    }
}
