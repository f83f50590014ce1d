//! `ProxyJump` values (`[user@]host[:port]`, comma-separated, or
//! `ssh://[user@]host[:port]`), from the inventory or OpenSSH's configuration.

/// One hop of a `ProxyJump` value: `[user@]host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jump {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

/// `a,b@c:2222` → hops in order (the first is connected to first).
pub fn parse_proxy_jump(value: &str) -> Result<Vec<Jump>, String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|hop| {
            let hop = hop.strip_prefix("ssh://").unwrap_or(hop);
            let (user, rest) = match hop.rsplit_once('@') {
                Some((u, r)) => (Some(u.to_string()), r),
                None => (None, hop),
            };
            let (host, port) = match rest.rsplit_once(':') {
                Some((h, p)) if !h.contains(':') || h.starts_with('[') => {
                    let port = p
                        .parse::<u16>()
                        .map_err(|_| format!("ProxyJump `{value}`: `{p}` is not a port"))?;
                    (
                        h.trim_start_matches('[').trim_end_matches(']').to_string(),
                        Some(port),
                    )
                }
                _ => (rest.to_string(), None),
            };
            if host.is_empty() {
                return Err(format!("ProxyJump `{value}` has an empty host"));
            }
            Ok(Jump { user, host, port })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_jump_chains() {
        assert_eq!(
            parse_proxy_jump("a, root@b:2222").unwrap(),
            vec![
                Jump {
                    user: None,
                    host: "a".into(),
                    port: None
                },
                Jump {
                    user: Some("root".into()),
                    host: "b".into(),
                    port: Some(2222)
                }
            ]
        );
        assert!(parse_proxy_jump("a:notaport").is_err());
    }
}
