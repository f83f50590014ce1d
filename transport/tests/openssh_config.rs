//! remedy's reading of OpenSSH client configurations against OpenSSH's own:
//! for each snippet of the table, the host name, port, user, identity files
//! and jump chain (or ProxyCommand) remedy resolves equal what `ssh -G` prints
//! for the same file and the same inventory settings. Both of remedy's
//! readers are held to it: OpenSSH's `ssh -G` as remedy runs it (inventory
//! precedence, defaults, token expansion) and the ssh2-config reader used
//! where `ssh` is not installed — which must refuse, not guess, what it
//! cannot evaluate (`Match`).
//!
//! The oracle expands only `~`, `%h %n %p %r %%` itself (the table uses no
//! other tokens); the rest of the expansion rules are unit-tested in
//! `ssh::config::tokens`, and a real login with tokens in `IdentityFile` is
//! in the binary's `tests/ssh_config.rs`.

use remedy_transport::ssh::config::{Ask, ConfigFile, Proxy, Resolved, Resolver};
use std::path::Path;
use std::process::Command;

/// What the ssh2-config reader must do with a snippet.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Parser {
    /// The same answer as OpenSSH.
    Same,
    /// Refuse, with this in the message.
    Refuses(&'static str),
}

struct Case {
    what: &'static str,
    /// `{dir}` is the directory the files are written in.
    config: &'static str,
    /// Other files, `(name, text)`, for `Include`.
    includes: &'static [(&'static str, &'static str)],
    name: &'static str,
    /// The inventory's address, port and user for the host.
    address: Option<&'static str>,
    port: Option<u16>,
    user: Option<&'static str>,
    parser: Parser,
}

const fn case(what: &'static str, config: &'static str, name: &'static str) -> Case {
    Case {
        what,
        config,
        includes: &[],
        name,
        address: None,
        port: None,
        user: None,
        parser: Parser::Same,
    }
}

const TABLE: &[Case] = &[
    case(
        "a Host block sets name, port, user, key",
        "Host master-1\n  HostName 10.0.0.11\n  Port 2222\n  User ops\n  IdentityFile /keys/masters\n",
        "master-1",
    ),
    case(
        "the first value obtained wins, across blocks",
        "Host master-*\n  User first\n  Port 2200\nHost *\n  User second\n  Port 2300\n  HostName 10.9.9.9\n",
        "master-3",
    ),
    case(
        "settings before any Host line apply to every host and win",
        "User early\nHost master-*\n  User late\n",
        "master-1",
    ),
    case(
        "IdentityFile accumulates in order",
        "Host master-*\n  IdentityFile /keys/a\nHost *\n  IdentityFile /keys/b\n  IdentityFile /keys/c\n",
        "master-1",
    ),
    case(
        "a negated pattern excludes a host",
        "Host master-* !master-9\n  User ops\n  ProxyJump bastion\n",
        "master-9",
    ),
    case(
        "`?` matches one character",
        "Host m?ster-1\n  HostName 10.0.0.1\n",
        "master-1",
    ),
    case(
        "Host patterns are case-sensitive, keywords are not",
        "Host MASTER-*\n  User upper\nHost master-*\n  HOSTNAME 10.0.0.2\n  user lower\n",
        "master-1",
    ),
    case(
        "trailing comments are not part of values",
        "Host master-1 # the first master\n  User root # ops\n  Port 2222 # not 22\n",
        "master-1",
    ),
    case(
        "`=` and quotes",
        "Host master-1\n  HostName=\"10.0.0.7\"\n  Port = 2200\n  User \"ops\"\n",
        "master-1",
    ),
    case(
        "%h in HostName, tokens and ~ in IdentityFile",
        "Host master-*\n  HostName %h.dc1.example\n  User root\n  Port 2222\n  IdentityFile ~/.ssh/%r@%h:%p\n  IdentityFile /keys/%n-%%\n",
        "master-2",
    ),
    Case {
        includes: &[(
            "masters.conf",
            "Host master-*\n  ProxyCommand ssh -W %h:%p bastion\n  User root\n",
        )],
        ..case(
            "Include brings in a ProxyCommand, tokens expanded",
            "Include {dir}/masters.conf\nHost *\n  User nobody\n",
            "master-1",
        )
    },
    case(
        "a ProxyJump chain",
        "Host master-*\n  ProxyJump bastion,root@inner:2222\n",
        "master-1",
    ),
    case(
        "ProxyCommand none switches a later ProxyJump off",
        "Host master-1\n  ProxyCommand none\nHost *\n  ProxyJump bastion\n",
        "master-1",
    ),
    Case {
        address: Some("192.0.2.10"),
        port: Some(2201),
        user: Some("admin"),
        ..case(
            "the inventory's address, port and user win over the file",
            "Host master-*\n  HostName 10.0.0.1\n  Port 22\n  User root\n  ProxyCommand nc %h %p\n",
            "master-1",
        )
    },
    Case {
        parser: Parser::Refuses("`Match` blocks"),
        ..case(
            "Match host applies to the host name after HostName",
            "Host master-1\n  HostName 10.0.0.5\nMatch host 10.0.0.*\n  ProxyCommand ssh -W %h:%p bastion\n  User matched\n",
            "master-1",
        )
    },
    Case {
        parser: Parser::Refuses("`Match` blocks"),
        user: Some("root"),
        ..case(
            "Match user sees the inventory's user",
            "Match user root\n  Port 2022\nMatch user ops\n  Port 3033\n",
            "master-1",
        )
    },
    Case {
        parser: Parser::Refuses("`Match` blocks"),
        ..case(
            "Match host matches names case-insensitively",
            "Match host MASTER-*\n  User matched\n",
            "master-1",
        )
    },
];

/// `ssh -G`'s answer, with the few tokens the table uses expanded here.
struct Oracle {
    hostname: String,
    port: u16,
    user: String,
    identity_files: Vec<String>,
    proxy: Proxy,
}

fn ssh_g(args: &[String]) -> Result<Vec<(String, String)>, String> {
    let out = Command::new("ssh").arg("-G").args(args).output().unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

fn oracle(file: &Path, c: &Case) -> Result<Oracle, String> {
    let mut args = vec!["-F".to_string(), file.display().to_string()];
    if let Some(a) = c.address {
        args.extend(["-o".into(), format!("HostName={a}")]);
    }
    if let Some(p) = c.port {
        args.extend(["-p".into(), p.to_string()]);
    }
    if let Some(u) = c.user {
        args.extend(["-l".into(), u.to_string()]);
    }
    args.extend(["--".into(), c.name.into()]);
    let lines = ssh_g(&args)?;
    let get = |k: &str| {
        lines
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    let all = |lines: &[(String, String)], k: &str| -> Vec<String> {
        lines
            .iter()
            .filter(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .collect()
    };
    let defaults = ssh_g(&["-F".into(), "none".into(), "x".into()])?;
    let hostname = get("hostname").unwrap();
    let port: u16 = get("port").unwrap().parse().unwrap();
    let user = get("user").unwrap();
    let expand = |s: &str| {
        let home = std::env::var("HOME").unwrap();
        s.replacen('~', &home, usize::from(s.starts_with('~')))
            .replace("%h", &hostname)
            .replace("%n", c.name)
            .replace("%p", &port.to_string())
            .replace("%r", &user)
            .replace("%%", "%")
    };
    let files = all(&lines, "identityfile");
    let identity_files = if files == all(&defaults, "identityfile") {
        Vec::new()
    } else {
        files.iter().map(|f| expand(f)).collect()
    };
    let proxy = match (get("proxycommand"), get("proxyjump")) {
        (Some(cmd), _) => Proxy::Command(expand(&cmd)),
        (None, Some(jump)) => Proxy::Jump(jump),
        (None, None) => Proxy::Direct,
    };
    Ok(Oracle {
        hostname: hostname.clone(),
        port,
        user: user.clone(),
        identity_files,
        proxy,
    })
}

fn same(r: &Resolved, o: &Oracle) -> bool {
    r.hostname == o.hostname
        && r.port == o.port
        && r.user == o.user
        && r.identity_files == o.identity_files
        && r.proxy == o.proxy
}

fn show(r: &Resolved) -> String {
    format!(
        "{}@{}:{} keys {:?} {:?}",
        r.user, r.hostname, r.port, r.identity_files, r.proxy
    )
}

#[tokio::test]
async fn remedy_resolves_every_snippet_as_ssh_g_does() {
    assert!(TABLE.len() >= 12);
    let mut failures = Vec::new();
    for (i, c) in TABLE.iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        for (name, text) in c.includes {
            std::fs::write(dir.path().join(name), text.replace("{dir}", &d)).unwrap();
        }
        let file = dir.path().join("config");
        std::fs::write(&file, c.config.replace("{dir}", &d)).unwrap();
        let expected = oracle(&file, c).unwrap_or_else(|e| panic!("{}: ssh -G: {e}", c.what));
        let ask = Ask {
            name: c.name.into(),
            hostname: c.address.map(str::to_string),
            port: c.port,
            user: c.user.map(str::to_string),
        };
        let with_openssh = Resolver::new(ConfigFile::Path(file.clone()))
            .resolve(&ask)
            .await;
        match &with_openssh {
            Ok(r) if same(r, &expected) => {}
            other => failures.push(format!(
                "#{i} {} (ssh -G): remedy {:?}, ssh -G {}@{}:{} keys {:?} {:?}",
                c.what,
                other.as_ref().map(show),
                expected.user,
                expected.hostname,
                expected.port,
                expected.identity_files,
                expected.proxy
            )),
        }
        let without = Resolver::new(ConfigFile::Path(file.clone()))
            .with_program(None)
            .resolve(&ask)
            .await;
        match (c.parser, &without) {
            (Parser::Same, Ok(r)) if same(r, &expected) => {}
            (Parser::Refuses(why), Err(e)) if e.contains(why) => {}
            (want, got) => failures.push(format!(
                "#{i} {} (ssh2-config): wanted {want:?}, got {:?}; ssh -G says {}@{}:{} keys {:?} {:?}",
                c.what,
                got.as_ref().map(show),
                expected.user,
                expected.hostname,
                expected.port,
                expected.identity_files,
                expected.proxy
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn a_bad_port_is_refused_with_its_line_by_both_readers() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config");
    std::fs::write(&file, "Host master-1\n  Port 22x\n").unwrap();
    let ask = Ask {
        name: "master-1".into(),
        ..Ask::default()
    };
    let err = Resolver::new(ConfigFile::Path(file.clone()))
        .resolve(&ask)
        .await
        .unwrap_err();
    assert!(
        err.contains("line 2: Bad port '22x'"),
        "OpenSSH names the line: {err}"
    );
    let err = Resolver::new(ConfigFile::Path(file.clone()))
        .with_program(None)
        .resolve(&ask)
        .await
        .unwrap_err();
    assert!(
        err.contains(&file.display().to_string()) && err.contains("port"),
        "{err}"
    );
}

/// A configuration that cannot tell hosts apart is asked about once per
/// run, not once per host (a process per host: 100 for 100 masters), and
/// every host still resolves exactly as `ssh -G` says for it; one that can,
/// or whose answer depends on the name, is asked about per host as before.
#[tokio::test]
async fn ssh_g_runs_once_per_run_when_the_configuration_treats_hosts_alike() {
    // How often `ssh -G` must run for the 9 hosts below: always once for
    // OpenSSH's defaults (`ssh -G -F none`), then twice (two made-up names)
    // for each of the 3 kinds of inventory settings (address given or not,
    // port, user) when the files treat names alike, then once per host whose
    // kind's answer for the made-up names turned out to depend on the name.
    let configs: &[(&str, usize)] = &[
        ("", 1 + 6),
        (
            "# every host\nUser ops\nHost *\n  Port 2200\n  IdentityFile ~/.ssh/%n-%r\n  ProxyCommand nc %h %p\n",
            1 + 6,
        ),
        ("Host *\n  ProxyJump bastion\n", 1 + 6),
        // Depends on the name only where the inventory gives no address.
        ("Host *\n  HostName %h.example\n", 1 + 6 + 6),
        ("Host *\n  ControlPath /tmp/cm-%h\n", 1 + 6 + 9),
        // %C: a hash of the host name, port and user; the name is not in it.
        ("Host *\n  ControlPath /tmp/cm-%C\n", 1 + 6 + 9),
        ("Host *\n  CanonicalizeHostname yes\n", 1 + 6 + 9),
        ("Host master-*\n  User masters\n", 1 + 9),
        ("Match all\n  User ops\n", 1 + 9),
    ];
    // Three kinds of inventory settings: nothing; address, port and user;
    // a port only.
    let hosts: &[Case] = &[
        case("", "", "master-1"),
        case("", "", "Master-2"),
        case("", "", "10.0.0.3"),
        Case {
            address: Some("192.0.2.8"),
            port: Some(2222),
            user: Some("root"),
            ..case("", "", "db-4")
        },
        Case {
            address: Some("192.0.2.7"),
            port: Some(2222),
            user: Some("root"),
            ..case("", "", "db-1")
        },
        Case {
            address: Some("DB-2.Example"),
            port: Some(2222),
            user: Some("root"),
            ..case("", "", "db-2")
        },
        Case {
            port: Some(22),
            ..case("", "", "db-3")
        },
        Case {
            port: Some(22),
            ..case("", "", "web-1")
        },
        Case {
            port: Some(22),
            ..case("", "", "WEB-2")
        },
    ];
    let mut failures = Vec::new();
    for (config, want) in configs {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config");
        std::fs::write(&file, config).unwrap();
        let count = dir.path().join("count");
        let wrapper = dir.path().join("ssh");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\necho \"$*\" >>'{}'\nexec ssh \"$@\"\n",
                count.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(
            &wrapper,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let resolver = Resolver::new(ConfigFile::Path(file.clone())).with_program(Some(wrapper));
        for c in hosts {
            let expected = oracle(&file, c).unwrap();
            let ask = Ask {
                name: c.name.into(),
                hostname: c.address.map(str::to_string),
                port: c.port,
                user: c.user.map(str::to_string),
            };
            match resolver.resolve(&ask).await {
                Ok(r) if same(&r, &expected) => {}
                other => failures.push(format!(
                    "{config:?}, {}: remedy {:?}, ssh -G {}@{}:{} keys {:?} {:?}",
                    c.name,
                    other.as_ref().map(show),
                    expected.user,
                    expected.hostname,
                    expected.port,
                    expected.identity_files,
                    expected.proxy
                )),
            }
        }
        let ran = std::fs::read_to_string(&count).unwrap_or_default();
        if ran.lines().count() != *want {
            failures.push(format!(
                "{config:?}: ssh -G ran {} times, not {want}:\n{ran}",
                ran.lines().count()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
