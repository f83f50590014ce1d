//! What HAProxy's runtime API says about servers, parsed without I/O:
//! `show stat` (CSV) and `show servers state` (space-separated), joined into
//! one [`ServerState`] per server. Columns are found by their header names,
//! never by position, so a newer HAProxy adding columns changes nothing.

use std::fmt;
use std::str::FromStr;

/// A server's administrative state: what `set server … state` sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdminState {
    Ready,
    Drain,
    Maint,
}

/// `srv_admin_state` bits (HAProxy 2.6 management.txt, "show servers state").
mod admin_bits {
    pub const FMAINT: u32 = 0x01;
    pub const IMAINT: u32 = 0x02;
    pub const CMAINT: u32 = 0x04;
    pub const FDRAIN: u32 = 0x08;
    pub const IDRAIN: u32 = 0x10;
    pub const RMAINT: u32 = 0x20;
    // 0x40 (HMAINT in 2.6, FQDN_CHANGED later) only records that the FQDN
    // was set at runtime: despite its old name it is not a maintenance.
}

impl AdminState {
    /// From `srv_admin_state`: any maintenance bit wins over drain, as in
    /// HAProxy's own status ("MAINT" before "DRAIN").
    pub fn from_bits(bits: u32) -> AdminState {
        use admin_bits::*;
        if bits & (FMAINT | IMAINT | CMAINT | RMAINT) != 0 {
            AdminState::Maint
        } else if bits & (FDRAIN | IDRAIN) != 0 {
            AdminState::Drain
        } else {
            AdminState::Ready
        }
    }

    /// The word `set server <b>/<s> state` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            AdminState::Ready => "ready",
            AdminState::Drain => "drain",
            AdminState::Maint => "maint",
        }
    }
}

impl fmt::Display for AdminState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AdminState {
    type Err = String;
    fn from_str(s: &str) -> Result<AdminState, String> {
        match s {
            "ready" => Ok(AdminState::Ready),
            "drain" => Ok(AdminState::Drain),
            "maint" => Ok(AdminState::Maint),
            other => Err(format!(
                "unknown server state `{other}`: expected ready, drain or maint"
            )),
        }
    }
}

/// `srv_op_state`: what health checks made of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OpState {
    Stopped,
    Starting,
    Running,
    Stopping,
    /// A value this version of remedy does not know.
    Other(u32),
}

impl From<u32> for OpState {
    fn from(v: u32) -> OpState {
        match v {
            0 => OpState::Stopped,
            1 => OpState::Starting,
            2 => OpState::Running,
            3 => OpState::Stopping,
            other => OpState::Other(other),
        }
    }
}

/// One server of one backend, as HAProxy sees it now.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ServerState {
    pub backend: String,
    pub server: String,
    /// `ip:port` (from `show stat`).
    pub addr: String,
    /// HAProxy's status text, unparsed: `UP`, `UP 1/2` (going down),
    /// `DOWN 1/2` (coming up), `DOWN`, `DRAIN`, `MAINT`, `MAINT (via)`, `no check`…
    pub status: String,
    pub op_state: OpState,
    pub admin: AdminState,
    /// The raw `srv_admin_state` mask, for messages and rare cases.
    pub admin_bits: u32,
    /// The current user weight (`srv_uweight`): what `set server … weight` sets.
    pub weight: u32,
    /// The weight from the configuration (`srv_iweight`).
    pub initial_weight: u32,
    /// Current sessions (`scur`).
    pub scur: u64,
    /// The last finished health check's status (`L4OK`, `L4CON`…); `None`
    /// when there is none (no check configured, or checks paused by
    /// maintenance). HAProxy's `* ` prefix for "a check is running now" is
    /// dropped: it comes and goes every check interval.
    pub check_status: Option<String>,
}

impl ServerState {
    /// Fully up: `UP` exactly, not `UP 1/2` (a server failing its checks).
    pub fn is_up(&self) -> bool {
        self.status == "UP"
    }

    /// `UP` with a weight above zero: it takes new connections.
    pub fn takes_traffic(&self) -> bool {
        self.is_up() && self.weight > 0
    }

    /// `ready (UP, weight 1, 0 sessions)`: the server as plans show it.
    pub fn shown(&self) -> String {
        format!(
            "{} ({}, weight {}, {} session{})",
            self.admin,
            self.status,
            self.weight,
            self.scur,
            if self.scur == 1 { "" } else { "s" }
        )
    }
}

/// Output that does not look like what HAProxy 2.x prints.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{what}`{}: {message}", if *line == 0 { String::new() } else { format!(" line {line}") })]
pub struct ParseError {
    pub what: &'static str,
    /// 1-based; 0 when the whole output is at fault.
    pub line: usize,
    pub message: String,
}

/// A parsed table: header names and rows of fields.
struct Table {
    what: &'static str,
    header: Vec<String>,
    /// (line number, fields)
    rows: Vec<(usize, Vec<String>)>,
}

impl Table {
    fn column(&self, name: &str) -> Result<usize, ParseError> {
        self.header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| ParseError {
                what: self.what,
                line: 0,
                message: format!("no `{name}` column in the header"),
            })
    }
}

/// One row's fields, by column index, with errors that say where.
struct Row<'a> {
    what: &'static str,
    line: usize,
    fields: &'a [String],
}

impl Row<'_> {
    fn text(&self, col: usize) -> Result<&str, ParseError> {
        self.fields
            .get(col)
            .map(String::as_str)
            .ok_or_else(|| ParseError {
                what: self.what,
                line: self.line,
                message: format!(
                    "{} fields, expected at least {}",
                    self.fields.len(),
                    col + 1
                ),
            })
    }

    fn number<T: FromStr>(&self, col: usize, name: &str) -> Result<T, ParseError> {
        let text = self.text(col)?;
        text.parse().map_err(|_| ParseError {
            what: self.what,
            line: self.line,
            message: format!("`{name}` is `{text}`, not a number"),
        })
    }
}

/// Split one CSV line (RFC 4180 quoting: HAProxy quotes fields such as a
/// check description that contain commas or quotes).
fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => fields.push(std::mem::take(&mut field)),
            (_, c) => field.push(c),
        }
    }
    fields.push(field);
    fields
}

/// `show stat` CSV: a `# pxname,svname,…` header, then one row per proxy,
/// server, frontend or backend.
fn stat_table(text: &str) -> Result<Table, ParseError> {
    let what = "show stat";
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.is_empty());
    let header = match lines.next() {
        Some((_, h)) if h.starts_with("# ") => csv_fields(&h[2..]),
        first => {
            return Err(ParseError {
                what,
                line: first.map_or(0, |(i, _)| i + 1),
                message: format!(
                    "expected a `# pxname,svname,…` header, got `{}`",
                    first.map_or("", |(_, l)| l)
                ),
            })
        }
    };
    Ok(Table {
        what,
        header,
        rows: lines.map(|(i, l)| (i + 1, csv_fields(l))).collect(),
    })
}

/// `show servers state`: a version line (`1`), a `# be_id be_name …` header,
/// then one space-separated row per server.
fn servers_state_table(text: &str) -> Result<Table, ParseError> {
    let what = "show servers state";
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.is_empty());
    match lines.next() {
        Some((_, "1")) => {}
        other => {
            return Err(ParseError {
                what,
                line: other.map_or(0, |(i, _)| i + 1),
                message: format!(
                    "expected format version `1`, got `{}`",
                    other.map_or("", |(_, l)| l)
                ),
            })
        }
    }
    let header = match lines.next() {
        Some((_, h)) if h.starts_with("# ") => {
            h[2..].split_whitespace().map(String::from).collect()
        }
        other => {
            return Err(ParseError {
                what,
                line: other.map_or(0, |(i, _)| i + 1),
                message: "expected a `# be_id be_name …` header".into(),
            })
        }
    };
    Ok(Table {
        what,
        header,
        rows: lines
            .filter(|(_, l)| !l.starts_with('#'))
            .map(|(i, l)| (i + 1, l.split_whitespace().map(String::from).collect()))
            .collect(),
    })
}

/// `show stat`'s `type` of a server row (0 frontend, 1 backend, 3 listener).
const STAT_TYPE_SERVER: u32 = 2;

/// Join the two outputs into one state per server, in `show servers state`
/// order (the configuration's). Frontend, backend and listener rows of
/// `show stat` are ignored.
pub fn parse_servers(
    show_stat: &str,
    show_servers_state: &str,
) -> Result<Vec<ServerState>, ParseError> {
    let stat = stat_table(show_stat)?;
    let [px, sv, kind, scur, status, check, addr] = [
        "pxname",
        "svname",
        "type",
        "scur",
        "status",
        "check_status",
        "addr",
    ]
    .map(|name| stat.column(name));
    let (px, sv, kind, scur, status, check, addr) =
        (px?, sv?, kind?, scur?, status?, check?, addr?);
    let state = servers_state_table(show_servers_state)?;
    let [be, srv, op, admin, uweight, iweight, srv_addr, srv_port] = [
        "be_name",
        "srv_name",
        "srv_op_state",
        "srv_admin_state",
        "srv_uweight",
        "srv_iweight",
        "srv_addr",
        "srv_port",
    ]
    .map(|name| state.column(name));
    let (be, srv, op, admin, uweight, iweight, srv_addr, srv_port) = (
        be?, srv?, op?, admin?, uweight?, iweight?, srv_addr?, srv_port?,
    );

    let mut stats = Vec::new();
    for (line, fields) in &stat.rows {
        let row = Row {
            what: stat.what,
            line: *line,
            fields,
        };
        if row.number::<u32>(kind, "type")? == STAT_TYPE_SERVER {
            stats.push(row);
        }
    }
    let mut servers = Vec::new();
    for (line, fields) in &state.rows {
        let row = Row {
            what: state.what,
            line: *line,
            fields,
        };
        let (backend, server) = (row.text(be)?, row.text(srv)?);
        let mut found = None;
        for s in &stats {
            if s.text(px)? == backend && s.text(sv)? == server {
                found = Some(s);
            }
        }
        let Some(s) = found else {
            return Err(ParseError {
                what: state.what,
                line: *line,
                message: format!("{backend}/{server} is missing from `show stat`"),
            });
        };
        let admin_bits = row.number(admin, "srv_admin_state")?;
        let check_status = s.text(check)?;
        let check_status = check_status.strip_prefix("* ").unwrap_or(check_status);
        let stat_addr = s.text(addr)?;
        servers.push(ServerState {
            backend: backend.to_string(),
            server: server.to_string(),
            addr: if stat_addr.is_empty() {
                format!("{}:{}", row.text(srv_addr)?, row.text(srv_port)?)
            } else {
                stat_addr.to_string()
            },
            status: s.text(status)?.to_string(),
            op_state: OpState::from(row.number::<u32>(op, "srv_op_state")?),
            admin: AdminState::from_bits(admin_bits),
            admin_bits,
            weight: row.number(uweight, "srv_uweight")?,
            initial_weight: row.number(iweight, "srv_iweight")?,
            scur: s.number(scur, "scur")?,
            check_status: (!check_status.is_empty()).then(|| check_status.to_string()),
        });
    }
    Ok(servers)
}

/// `show backend`: a `# name` header, then one backend name a line.
pub fn parse_backends(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

#[cfg(test)]
mod tests {
    //! The inputs are captured from HAProxy 2.6.12 (see haproxy/tests/data):
    //! a backend `k8s` of m1, m2 (weight 50) and m3 (nothing listening).
    use super::*;

    macro_rules! capture {
        ($name:literal) => {
            include_str!(concat!("../tests/data/", $name))
        };
    }

    fn brief(s: &ServerState) -> (&str, &str, AdminState, u32, u32, u64, Option<&str>) {
        (
            s.server.as_str(),
            s.status.as_str(),
            s.admin,
            s.weight,
            s.initial_weight,
            s.scur,
            s.check_status.as_deref(),
        )
    }

    #[test]
    fn a_healthy_backend() {
        let servers =
            parse_servers(capture!("stat_healthy.csv"), capture!("state_healthy.txt")).unwrap();
        assert_eq!(
            servers.iter().map(brief).collect::<Vec<_>>(),
            [
                ("m1", "UP", AdminState::Ready, 1, 1, 0, Some("L4OK")),
                ("m2", "UP", AdminState::Ready, 50, 50, 0, Some("L4OK")),
                ("m3", "DOWN", AdminState::Ready, 1, 1, 0, Some("L4CON")),
            ]
        );
        assert_eq!(servers[0].backend, "k8s");
        assert_eq!(servers[0].addr, "127.0.120.251:7001");
        assert_eq!(servers[0].op_state, OpState::Running);
        assert_eq!(servers[2].op_state, OpState::Stopped);
        assert!(servers[0].is_up() && !servers[2].is_up());
    }

    #[test]
    fn maint_drain_an_open_session_and_weight_zero() {
        let servers = parse_servers(
            capture!("stat_drain_maint.csv"),
            capture!("state_drain_maint.txt"),
        )
        .unwrap();
        assert_eq!(
            servers.iter().map(brief).collect::<Vec<_>>(),
            [
                ("m1", "MAINT", AdminState::Maint, 1, 1, 0, None),
                ("m2", "DRAIN", AdminState::Drain, 50, 50, 1, Some("L4OK")),
                ("m3", "DOWN", AdminState::Ready, 0, 1, 0, Some("L4CON")),
            ]
        );
        assert_eq!((servers[0].admin_bits, servers[1].admin_bits), (0x01, 0x08));
    }

    #[test]
    fn up_one_of_two_is_not_up() {
        let servers = parse_servers(
            capture!("stat_transition.csv"),
            capture!("state_transition.txt"),
        )
        .unwrap();
        assert_eq!(servers[0].status, "UP 1/2");
        assert!(!servers[0].is_up());
        assert_eq!(servers[0].admin, AdminState::Ready);
    }

    #[test]
    fn a_check_in_progress_does_not_change_the_check_status() {
        let text = capture!("stat_check_running.csv");
        assert!(text.contains(",* L4OK,"));
        let servers = parse_servers(text, capture!("state_check_running.txt")).unwrap();
        assert_eq!(servers[0].check_status.as_deref(), Some("L4OK"));
    }

    #[test]
    fn frontend_and_backend_rows_of_a_full_show_stat_are_ignored() {
        let full = capture!("stat_full.csv");
        assert!(full.contains("FRONTEND") && full.contains("BACKEND"));
        let servers = parse_servers(full, capture!("state_transition.txt")).unwrap();
        assert_eq!(
            servers
                .iter()
                .map(|s| s.server.as_str())
                .collect::<Vec<_>>(),
            ["m1", "m2", "m3"]
        );
    }

    #[test]
    fn quoted_csv_fields_keep_their_commas_and_quotes() {
        let table = stat_table(capture!("stat_quoted.csv")).unwrap();
        let desc = table.column("last_chk").unwrap();
        assert_eq!(
            table.rows[0].1[desc],
            r#"TCPCHK did not match content 'x,y' at step 1 comment: needs "x,y", quoted"#
        );
        assert_eq!(table.rows[0].1.len(), table.header.len());
        let status = table.column("check_status").unwrap();
        assert_eq!(table.rows[0].1[status], "L7RSP");
    }

    #[test]
    fn admin_bits_follow_haproxy() {
        for (bits, state) in [
            (0x00, AdminState::Ready),
            (0x01, AdminState::Maint),
            (0x02, AdminState::Maint),
            (0x05, AdminState::Maint),
            (0x20, AdminState::Maint),
            (0x08, AdminState::Drain),
            (0x10, AdminState::Drain),
            (0x09, AdminState::Maint),
            (0x40, AdminState::Ready),
        ] {
            assert_eq!(AdminState::from_bits(bits), state, "{bits:#x}");
        }
        assert_eq!("drain".parse::<AdminState>(), Ok(AdminState::Drain));
        assert!("DRAIN".parse::<AdminState>().is_err());
    }

    #[test]
    fn errors_say_which_output_and_line() {
        let err = parse_servers("No such proxy.\n", capture!("state_healthy.txt")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`show stat` line 1: expected a `# pxname,svname,…` header, got `No such proxy.`"
        );
        let err = parse_servers(capture!("stat_healthy.csv"), "Can't find backend.\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "`show servers state` line 1: expected format version `1`, got `Can't find backend.`"
        );
        let stat = capture!("stat_healthy.csv").replace(",scur,", ",sessions_now,");
        let err = parse_servers(&stat, capture!("state_healthy.txt")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`show stat`: no `scur` column in the header"
        );
        let state = capture!("state_healthy.txt").replace(" 50 50 ", " 50 fifty ");
        let err = parse_servers(capture!("stat_healthy.csv"), &state).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`show servers state` line 4: `srv_iweight` is `fifty`, not a number"
        );
    }

    #[test]
    fn backends_list() {
        assert_eq!(parse_backends("# name\nk8s\nother\n\n"), ["k8s", "other"]);
    }
}
