//! Why a control-plane component is not running, from the last lines of its
//! log: the known patterns an on-call engineer greps for, with the line that
//! matched (quoted in the finding, so the diagnosis can be checked by eye).

use regex::Regex;
use std::sync::OnceLock;

/// A known cause, with what identifies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// `Error: unknown flag: --NAME`: the flag (with its dashes).
    UnknownFlag(String),
    /// A certificate expired or not yet valid.
    CertificateTime,
    /// A file the component needs is missing: the path when the line names one.
    FileNotFound(Option<String>),
    /// etcd cannot be reached, or its TLS handshake fails.
    EtcdUnreachable,
    /// The listen address is taken.
    AddressInUse,
    OutOfMemory,
    /// etcd's data directory cannot be used (destroyed, corrupt).
    EtcdDataUnusable,
}

impl Cause {
    pub fn describe(&self) -> String {
        match self {
            Cause::UnknownFlag(f) => format!("a flag it rejects: {f}"),
            Cause::CertificateTime => "a certificate expired or not yet valid".into(),
            Cause::FileNotFound(Some(p)) => format!("a file it needs is missing: {p}"),
            Cause::FileNotFound(None) => "a file it needs is missing".into(),
            Cause::EtcdUnreachable => "etcd unreachable (or its TLS handshake fails)".into(),
            Cause::AddressInUse => "its address is already in use".into(),
            Cause::OutOfMemory => "out of memory".into(),
            Cause::EtcdDataUnusable => "its data directory cannot be used".into(),
        }
    }
}

struct Pattern {
    re: Regex,
    cause: fn(&regex::Captures) -> Cause,
}

fn patterns() -> &'static [Pattern] {
    static P: OnceLock<Vec<Pattern>> = OnceLock::new();
    P.get_or_init(|| {
        let p = |re: &str, cause: fn(&regex::Captures) -> Cause| Pattern {
            re: Regex::new(re).expect("a valid pattern"),
            cause,
        };
        // Most specific first: a missing certificate file is "file not
        // found", not a certificate-time problem; a TLS error talking to
        // etcd is etcd's.
        vec![
            p(r"unknown flag: (--?[A-Za-z0-9][A-Za-z0-9._-]*)", |c| {
                Cause::UnknownFlag(c[1].to_string())
            }),
            // Go's flag package (etcd): one dash, whatever was typed.
            p(r"flag provided but not defined: -+([A-Za-z0-9][A-Za-z0-9._-]*)", |c| {
                Cause::UnknownFlag(format!("--{}", &c[1]))
            }),
            p(r"open (/[^\s:]+): no such file or directory", |c| {
                Cause::FileNotFound(Some(c[1].to_string()))
            }),
            p(r"(?i)no such file or directory", |_| Cause::FileNotFound(None)),
            p(r"(?i)(data.?dir|member).*not a directory|not a directory.*(data.?dir|member)|(?i)failed to (open|recover).*(backend|wal|snapshot)|(?i)wal: crc mismatch|(?i)database file.*(corrupt|invalid)", |_| {
                Cause::EtcdDataUnusable
            }),
            p(r"(?i)(x509: certificate has expired or is not yet valid|certificate has expired|certificate is not yet valid|tls: expired certificate)", |_| {
                Cause::CertificateTime
            }),
            p(r"(?i)(connection to etcd|etcd.*(connection refused|context deadline exceeded|transport: authentication handshake failed|tls: )|2379.*(connection refused|i/o timeout)|Error while dialing.*2379)", |_| {
                Cause::EtcdUnreachable
            }),
            p(r"(?i)address already in use", |_| Cause::AddressInUse),
            p(r"(?i)(out of memory|oom-?kill|cannot allocate memory|runtime: out of memory)", |_| {
                Cause::OutOfMemory
            }),
        ]
    })
}

/// The first known cause in `log` (its last lines, oldest first), searched
/// from the newest line back, with the line that matched.
pub fn classify(log: &str) -> Option<(Cause, String)> {
    for line in log.lines().rev() {
        for p in patterns() {
            if let Some(c) = p.re.captures(line) {
                return Some(((p.cause)(&c), line.trim().to_string()));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lab_faults_real_log_lines_are_classified() {
        let cases = [
            ("Error: unknown flag: --lab-bogus-flag\nUsage:\n  kube-apiserver [flags]", Cause::UnknownFlag("--lab-bogus-flag".into())),
            (r#"{"level":"fatal","msg":"failed to start etcd","error":"unknown flag: --lab-fault"}"#, Cause::UnknownFlag("--lab-fault".into())),
            ("E1205 unable to load server certificate: open /etc/kubernetes/pki/lab-missing/apiserver.crt: no such file or directory", Cause::FileNotFound(Some("/etc/kubernetes/pki/lab-missing/apiserver.crt".into()))),
            ("W1205 grpc: addrConn.createTransport failed to connect to {Addr: \"127.0.0.1:2379\"}. Err: connection error: desc = \"transport: Error while dialing: dial tcp 127.0.0.1:2379: connect: connection refused\"", Cause::EtcdUnreachable),
            ("E1205 x509: certificate has expired or is not yet valid: current time 2026-12-05T14:00:00Z is after 2026-12-05T13:00:00Z", Cause::CertificateTime),
            ("failed to listen on 127.0.0.1:10259: listen tcp 127.0.0.1:10259: bind: address already in use", Cause::AddressInUse),
            ("flag provided but not defined: -lab-fault\nUsage:\n\n  etcd [flags]", Cause::UnknownFlag("--lab-fault".into())),
            ("fatal error: runtime: out of memory", Cause::OutOfMemory),
            (r#"{"level":"fatal","msg":"failed to start etcd","error":"mkdir /var/lib/etcd/member/snap: not a directory"}"#, Cause::EtcdDataUnusable),
        ];
        for (log, want) in cases {
            let (got, line) = classify(log).unwrap_or_else(|| panic!("nothing in {log}"));
            assert_eq!(got, want, "{log}");
            assert!(log.contains(&line), "{line}");
        }
        assert_eq!(classify("I1205 serving on 127.0.0.1:6443\nall good"), None);
    }

    #[test]
    fn the_newest_matching_line_wins() {
        let log = "E old: address already in use\nError: unknown flag: --x";
        assert_eq!(classify(log).unwrap().0, Cause::UnknownFlag("--x".into()));
    }
}
