//! Where and how to reach a host, as OpenSSH's client configuration
//! (`~/.ssh/config`, `Include`s, `Match`, `/etc/ssh/ssh_config`) says, with
//! the inventory winning wherever it says something.
//!
//! The answer comes from OpenSSH itself where `ssh` is installed:
//! `ssh -G [-F FILE] [-o HostName=ADDR] [-p PORT] [-l USER] NAME` prints the
//! fully resolved configuration ([`openssh`]). Where it is not, the
//! `ssh2-config` crate reads the file ([`parser`]); what that reader cannot
//! evaluate (`Match`) makes resolution fail rather than guess.
//!
//! From either answer, [`Resolved`] keeps what remedy honours — host name,
//! port, user, identity files (with `~`, `${VAR}` and `%` tokens expanded as
//! OpenSSH does, [`tokens`]), `IdentitiesOnly`, `ProxyJump`, `ProxyCommand` —
//! and lists in [`Resolved::unhonoured`] every other setting that changes
//! where or how OpenSSH would connect, so the caller reports it instead of
//! silently connecting differently.

mod alike;
mod jump;
mod openssh;
mod parser;
pub mod tokens;

pub use jump::{parse_proxy_jump, Jump};
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokens::{Local, Values};

/// Which client configuration remedy reads (the inventory's `ssh.config`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ConfigFile {
    /// What `ssh` reads without `-F`: `~/.ssh/config`, then `/etc/ssh/ssh_config`.
    #[default]
    Default,
    /// This file only (`ssh -F FILE`).
    Path(PathBuf),
    /// No configuration at all (`ssh -F none`).
    None,
}

impl ConfigFile {
    /// The inventory's `ssh.config` value: a path, or `none`.
    pub fn from_setting(setting: Option<&str>) -> ConfigFile {
        match setting {
            None => ConfigFile::Default,
            Some(s) if s.eq_ignore_ascii_case("none") => ConfigFile::None,
            Some(path) => ConfigFile::Path(PathBuf::from(path)),
        }
    }

    /// For messages.
    pub fn describe(&self) -> String {
        match self {
            ConfigFile::Default => "~/.ssh/config".into(),
            ConfigFile::Path(p) => p.display().to_string(),
            ConfigFile::None => "no SSH client configuration (`ssh.config: none`)".into(),
        }
    }
}

/// What the inventory says about a host. Each `Some` wins over the
/// configuration, as `ssh -o HostName=… -p … -l …` would.
#[derive(Debug, Clone, Default)]
pub struct Ask {
    /// The name `Host` patterns are matched against (inventory name, or a jump hop).
    pub name: String,
    pub hostname: Option<String>,
    pub port: Option<u16>,
    pub user: Option<String>,
}

/// How the connection reaches the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proxy {
    Direct,
    /// `ProxyJump`: hops, `[user@]host[:port]`, comma-separated.
    Jump(String),
    /// `ProxyCommand`, tokens expanded: run through the shell, the SSH
    /// session speaks over its stdin/stdout.
    Command(String),
}

/// A setting that changes where or how OpenSSH would connect and that remedy
/// does not honour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unhonoured {
    pub keyword: String,
    pub value: String,
    /// What remedy does instead.
    pub why: &'static str,
}

/// Which reader gave the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    /// OpenSSH's own `ssh -G`.
    OpenSsh,
    /// The `ssh2-config` crate (no `ssh` installed).
    Parser,
}

/// One host's settings, after the inventory and the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub hostname: String,
    pub port: u16,
    pub user: String,
    /// `IdentityFile`s, expanded, in order; empty when the configuration
    /// names none (OpenSSH would then try its default keys).
    pub identity_files: Vec<String>,
    /// `IdentitiesOnly yes`: no keys from ssh-agent.
    pub identities_only: bool,
    pub proxy: Proxy,
    pub unhonoured: Vec<Unhonoured>,
    pub reader: Reader,
}

/// A reader's answer in `ssh -G`'s vocabulary: lowercase keywords, values as
/// written (tokens not expanded), repeated keywords (`identityfile`) in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Answer(Vec<(String, String)>);

impl Answer {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// This answer (for `probe`) holds for any name: its `host` and
    /// `hostname` are what `ssh -G` makes of the probe's name and address
    /// alone, nothing else mentions either, and no canonicalisation can
    /// change a host name later.
    fn holds_for_any_name(&self, probe: &Ask) -> bool {
        let Some(hostname) = plain_hostname(probe) else {
            return false;
        };
        let name = probe.name.to_ascii_lowercase();
        self.get("host") == Some(probe.name.as_str())
            && self.get("hostname") == Some(hostname.as_str())
            && self.get("canonicalizehostname") == Some("false")
            && self.0.iter().all(|(k, v)| {
                let v = v.to_ascii_lowercase();
                k == "host" || k == "hostname" || !(v.contains(&name) || v.contains(&hostname))
            })
    }

    /// This answer with `ask`'s name and host name in place of the probe's.
    fn with_name(&self, ask: &Ask, hostname: &str) -> Answer {
        Answer(
            self.0
                .iter()
                .map(|(k, v)| match k.as_str() {
                    "host" => (k.clone(), ask.name.clone()),
                    "hostname" => (k.clone(), hostname.to_string()),
                    _ => (k.clone(), v.clone()),
                })
                .collect(),
        )
    }
}

/// What `ssh -G` prints as `hostname` for `ask` when no configuration line
/// sets one: the inventory's address, else the name; a name lowercased, an
/// address as given. `None` when OpenSSH could make something else of it
/// (`%` tokens, characters it may refuse in a host name).
fn plain_hostname(ask: &Ask) -> Option<String> {
    let plain = |s: &str| {
        !s.is_empty()
            && !s.starts_with('-')
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'))
    };
    if !plain(&ask.name) {
        return None;
    }
    let given = ask.hostname.as_deref().unwrap_or(&ask.name);
    if !plain(given) {
        return None;
    }
    Some(if given.parse::<IpAddr>().is_ok() {
        given.to_string()
    } else {
        given.to_ascii_lowercase()
    })
}

/// The two made-up names (and addresses) `ssh -G` is asked about when the
/// configuration treats all hosts alike (`.invalid`: never a real host, RFC
/// 2606). Two, so that a value derived from the name in a way that does not
/// spell it out (`%C`, a hash of host, port and user) differs between them.
const PROBES: [(&str, &str); 2] = [
    ("remedy-probe.invalid", "remedy-probe-address.invalid"),
    ("other-probe.invalid", "other-probe-address.invalid"),
];

/// The inventory settings that change `ssh -G`'s answer beyond the name:
/// whether an address is given, the port, the user.
type ProbeKey = (bool, Option<u16>, Option<String>);

/// Settings remedy does not honour that change where or how OpenSSH would
/// connect, and what remedy does instead. Reported when the configuration
/// gives them a value other than OpenSSH's default.
const UNHONOURED: &[(&str, &str)] = &[
    ("hostkeyalias", "remedy looks the host key up under the host name and port it connects to"),
    ("userknownhostsfile", "remedy checks host keys in the inventory's `ssh.known_hosts` (default ~/.ssh/known_hosts) only"),
    ("globalknownhostsfile", "remedy checks host keys in the inventory's `ssh.known_hosts` (default ~/.ssh/known_hosts) only"),
    ("knownhostscommand", "remedy checks host keys in the inventory's `ssh.known_hosts` only"),
    ("revokedhostkeys", "remedy does not read revoked-key lists"),
    ("stricthostkeychecking", "remedy refuses an unknown host key unless --accept-new-host-keys is given, and a changed one always"),
    ("nohostauthenticationforlocalhost", "remedy checks the host key of localhost too"),
    ("certificatefile", "remedy authenticates with plain keys, never certificates"),
    ("identityagent", "remedy asks the agent at $SSH_AUTH_SOCK"),
    ("pkcs11provider", "remedy uses key files and ssh-agent only"),
    ("securitykeyprovider", "remedy uses key files and ssh-agent only"),
    ("pubkeyauthentication", "remedy authenticates with public keys only"),
    ("preferredauthentications", "remedy authenticates with public keys only"),
    ("kexalgorithms", "remedy negotiates its own key-exchange list"),
    ("ciphers", "remedy negotiates its own cipher list"),
    ("macs", "remedy negotiates its own MAC list"),
    ("hostkeyalgorithms", "remedy accepts its own list of host key algorithms"),
    ("pubkeyacceptedalgorithms", "remedy signs with its own choice of algorithms"),
    ("casignaturealgorithms", "remedy does not use certificates"),
    ("bindaddress", "remedy connects from the system's default source address"),
    ("bindinterface", "remedy connects from the system's default source address"),
    ("addressfamily", "remedy uses whatever address family the host name resolves to"),
    ("connecttimeout", "remedy uses the inventory's `ssh.connect_timeout`"),
    ("remotecommand", "remedy runs its own commands"),
    ("setenv", "remedy sets no environment variables on the host"),
];

/// Worth a report: a value that makes OpenSSH do something remedy would not.
fn worth_reporting(keyword: &str, value: &str) -> bool {
    match keyword {
        // yes/ask are at least as strict as remedy.
        "stricthostkeychecking" => !matches!(value, "yes" | "true" | "ask"),
        "pubkeyauthentication" => value == "no",
        "nohostauthenticationforlocalhost" => value == "yes",
        _ => true,
    }
}

/// Answers [`Ask`]s from one configuration, with OpenSSH when it is installed.
#[derive(Debug)]
pub struct Resolver {
    file: ConfigFile,
    /// `ssh`, when installed; `None`: the `ssh2-config` reader.
    program: Option<PathBuf>,
    local: Local,
    /// OpenSSH's answer with no configuration at all: its defaults, which
    /// tell a configured value from a default one.
    defaults: tokio::sync::OnceCell<Answer>,
    /// Whether the configuration's files treat every host name alike
    /// ([`alike`]), read once.
    alike: tokio::sync::OnceCell<bool>,
    /// `ssh -G`'s answer for the made-up names, per [`ProbeKey`], when it
    /// holds for any name (`None`: ask about each host).
    probes: Mutex<HashMap<ProbeKey, Arc<tokio::sync::OnceCell<Option<Answer>>>>>,
    /// The system-wide file `ssh` reads without `-F`.
    system_config: PathBuf,
}

impl Resolver {
    /// Reads `file` with `ssh` from `PATH` if there is one.
    pub fn new(file: ConfigFile) -> Resolver {
        Resolver {
            file,
            program: find_program("ssh"),
            local: Local::current(),
            defaults: tokio::sync::OnceCell::new(),
            alike: tokio::sync::OnceCell::new(),
            probes: Mutex::new(HashMap::new()),
            system_config: PathBuf::from(alike::SYSTEM_CONFIG),
        }
    }

    /// Use this `ssh` (`None`: read the file without OpenSSH).
    pub fn with_program(mut self, program: Option<PathBuf>) -> Resolver {
        self.program = program;
        self
    }

    pub fn file(&self) -> &ConfigFile {
        &self.file
    }

    pub fn reader(&self) -> Reader {
        match self.program {
            Some(_) => Reader::OpenSsh,
            None => Reader::Parser,
        }
    }

    /// How the configuration is read, for `--verbose`.
    pub fn describe(&self) -> String {
        match (&self.program, &self.file) {
            (_, ConfigFile::None) => "ssh: no client configuration is read (`ssh.config: none`)".into(),
            (Some(p), f) => format!(
                "ssh: {} is read by OpenSSH itself (`{} -G`): Include, Match, tokens and defaults as ssh applies them",
                f.describe(),
                p.display()
            ),
            (None, f) => format!(
                "ssh: `ssh` is not installed, so {} is read by the ssh2-config crate, which cannot honour: `Match` blocks (a host they could apply to is refused), {}CanonicalizeHostname, and `IgnoreUnknown`d keywords' effects; install openssh-client for OpenSSH's own answer",
                f.describe(),
                if *f == ConfigFile::Default { "/etc/ssh/ssh_config, " } else { "" },
            ),
        }
    }

    /// OpenSSH's settings for `ask`, or why there are none (a bad
    /// configuration, something remedy cannot do such as `ProxyUseFdpass`).
    pub async fn resolve(&self, ask: &Ask) -> Result<Resolved, String> {
        let (answer, defaults) = match &self.program {
            Some(program) => {
                // Both at once: each is an `ssh -G` process.
                let (answer, defaults) = tokio::join!(
                    async {
                        match self.answer_for_any_name(program, ask).await {
                            Some(answer) => Ok(answer),
                            None => openssh::answer(program, &self.file, ask).await,
                        }
                    },
                    self.defaults.get_or_try_init(|| openssh::defaults(program)),
                );
                (answer?, Some(defaults?))
            }
            None => (parser::answer(&self.file, ask, &self.local)?, None),
        };
        resolve_answer(&answer, defaults, ask, &self.local, self.reader())
    }

    /// `ssh -G`'s answer for `ask` without running it for `ask`: when the
    /// configuration treats all host names alike ([`alike`]), OpenSSH's
    /// answer for a made-up name, with `ask`'s name put in, is its answer
    /// for `ask` — two `ssh -G` at once per run (per port and user the
    /// inventory gives; two made-up names, whose answers must be the same
    /// but for the name) instead of one process per host. `None`: ask about
    /// `ask` itself, as when the answer for the made-up names depends on the
    /// name (`HostName %h.example`, a `ControlPath` with `%h` or `%C`), or
    /// was an error (asking about `ask` gives the error with its name).
    async fn answer_for_any_name(&self, program: &Path, ask: &Ask) -> Option<Answer> {
        let hostname = plain_hostname(ask)?;
        let alike = *self
            .alike
            .get_or_init(|| async {
                alike::treats_hosts_alike(&self.file, &self.local, &self.system_config)
            })
            .await;
        if !alike {
            return None;
        }
        let key: ProbeKey = (ask.hostname.is_some(), ask.port, ask.user.clone());
        let cell = self
            .probes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(key)
            .or_default()
            .clone();
        let [a, b] = PROBES.map(|(name, address)| Ask {
            name: name.into(),
            hostname: ask.hostname.as_ref().map(|_| address.into()),
            port: ask.port,
            user: ask.user.clone(),
        });
        let answer = cell
            .get_or_init(|| async {
                let (answer_a, answer_b) = tokio::join!(
                    openssh::answer(program, &self.file, &a),
                    openssh::answer(program, &self.file, &b),
                );
                let (answer_a, answer_b) = (answer_a.ok()?, answer_b.ok()?);
                // Apart from the name, the same answer for both.
                (answer_a.holds_for_any_name(&a)
                    && answer_b.holds_for_any_name(&b)
                    && answer_a.with_name(ask, &hostname) == answer_b.with_name(ask, &hostname))
                .then_some(answer_a)
            })
            .await;
        answer.as_ref().map(|a| a.with_name(ask, &hostname))
    }
}

/// The first executable `name` on `PATH`.
fn find_program(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Turn a reader's answer into what remedy honours and what it reports.
fn resolve_answer(
    answer: &Answer,
    defaults: Option<&Answer>,
    ask: &Ask,
    local: &Local,
    reader: Reader,
) -> Result<Resolved, String> {
    let hostname = answer.get("hostname").unwrap_or(&ask.name).to_string();
    let port = match answer.get("port") {
        None => 22,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("`Port {p}` is not a port (1–65535)"))?,
    };
    let user = answer
        .get("user")
        .map(str::to_string)
        .unwrap_or_else(|| local.user.clone());
    let host_key_alias = answer.get("hostkeyalias");
    let values = Values {
        host: &hostname,
        original: &ask.name,
        port,
        user: &user,
        host_key_alias,
        local,
    };
    let configured = answer.all("identityfile");
    let identity_files = if defaults.is_some_and(|d| d.all("identityfile") == configured) {
        Vec::new()
    } else {
        configured
            .iter()
            .filter(|f| !f.eq_ignore_ascii_case("none"))
            .map(|f| tokens::path("IdentityFile", f, &values))
            .collect::<Result<_, _>>()?
    };
    let proxy = match (answer.get("proxycommand"), answer.get("proxyjump")) {
        (Some(cmd), _) if !cmd.eq_ignore_ascii_case("none") => {
            if answer.get("proxyusefdpass") == Some("yes") {
                return Err(format!(
                    "`ProxyUseFdpass yes` with `ProxyCommand {cmd}`: remedy cannot take a connection passed back by the command, and will not connect directly instead; remove ProxyUseFdpass for this host, or give the host a `proxy_jump` in the inventory"
                ));
            }
            Proxy::Command(tokens::percent(
                "ProxyCommand",
                cmd,
                tokens::PROXY_COMMAND,
                &values,
            )?)
        }
        (_, Some(jump)) if !jump.eq_ignore_ascii_case("none") => Proxy::Jump(jump.to_string()),
        _ => Proxy::Direct,
    };
    let unhonoured = UNHONOURED
        .iter()
        .filter_map(|(keyword, why)| {
            let value = answer.all(keyword).join(" ");
            let default = defaults
                .map(|d| d.all(keyword).join(" "))
                .unwrap_or_default();
            (value != default && !value.is_empty() && worth_reporting(keyword, &value)).then(|| {
                Unhonoured {
                    keyword: keyword.to_string(),
                    value,
                    why,
                }
            })
        })
        .collect();
    Ok(Resolved {
        hostname,
        port,
        user,
        identity_files,
        identities_only: answer.get("identitiesonly") == Some("yes"),
        proxy,
        unhonoured,
        reader,
    })
}

/// `path` as OpenSSH's `-F` takes it: `~/` expanded against the local account.
fn config_path(path: &Path, local: &Local) -> PathBuf {
    PathBuf::from(tokens::tilde(&path.display().to_string(), local))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> Local {
        Local {
            user: "alice".into(),
            home: "/home/alice".into(),
            uid: 1000,
            hostname: "jump".into(),
        }
    }

    fn answer(pairs: &[(&str, &str)]) -> Answer {
        Answer(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    fn ask(name: &str) -> Ask {
        Ask {
            name: name.into(),
            ..Ask::default()
        }
    }

    #[test]
    fn default_identity_files_are_not_configured_ones() {
        let defaults = answer(&[
            ("identityfile", "~/.ssh/id_rsa"),
            ("identityfile", "~/.ssh/id_ed25519"),
        ]);
        let r = resolve_answer(
            &defaults,
            Some(&defaults),
            &ask("m"),
            &local(),
            Reader::OpenSsh,
        )
        .unwrap();
        assert!(r.identity_files.is_empty());
        let mine = answer(&[("identityfile", "~/.ssh/%n"), ("identityfile", "none")]);
        let r =
            resolve_answer(&mine, Some(&defaults), &ask("m"), &local(), Reader::OpenSsh).unwrap();
        assert_eq!(r.identity_files, ["/home/alice/.ssh/m"]);
    }

    #[test]
    fn proxy_command_tokens_expand_and_fdpass_is_refused() {
        let a = answer(&[
            ("hostname", "10.0.0.5"),
            ("port", "2222"),
            ("user", "root"),
            ("proxycommand", "ssh -W %h:%p -l %r bastion"),
        ]);
        let r = resolve_answer(&a, None, &ask("m"), &local(), Reader::Parser).unwrap();
        assert_eq!(
            r.proxy,
            Proxy::Command("ssh -W 10.0.0.5:2222 -l root bastion".into())
        );
        let mut fd = a.clone();
        fd.0.push(("proxyusefdpass".into(), "yes".into()));
        let err = resolve_answer(&fd, None, &ask("m"), &local(), Reader::Parser).unwrap_err();
        assert!(err.contains("will not connect directly"), "{err}");
    }

    #[test]
    fn only_values_other_than_the_defaults_are_reported() {
        let defaults = answer(&[("stricthostkeychecking", "ask"), ("kexalgorithms", "a,b")]);
        let a = answer(&[
            ("stricthostkeychecking", "ask"),
            ("kexalgorithms", "b"),
            ("hostkeyalias", "m1"),
        ]);
        let r = resolve_answer(&a, Some(&defaults), &ask("m"), &local(), Reader::OpenSsh).unwrap();
        let reported: Vec<_> = r.unhonoured.iter().map(|u| u.keyword.as_str()).collect();
        assert_eq!(reported, ["hostkeyalias", "kexalgorithms"]);
        let lax = answer(&[("stricthostkeychecking", "accept-new")]);
        let r =
            resolve_answer(&lax, Some(&defaults), &ask("m"), &local(), Reader::OpenSsh).unwrap();
        assert_eq!(r.unhonoured[0].keyword, "stricthostkeychecking");
    }

    #[test]
    fn a_bad_port_is_an_error() {
        let a = answer(&[("port", "0")]);
        assert!(resolve_answer(&a, None, &ask("m"), &local(), Reader::Parser).is_err());
    }
}
