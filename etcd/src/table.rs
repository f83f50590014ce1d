//! `status_table`: members' status as `etcdctl endpoint status -w table` shows it,
//! plus the size in use that etcdctl's table leaves out.

use crate::status::MemberStatus;

const HEADERS: [&str; 10] = [
    "ENDPOINT",
    "ID",
    "VERSION",
    "DB SIZE",
    "IN USE",
    "IS LEADER",
    "RAFT TERM",
    "RAFT INDEX",
    "REVISION",
    "ERRORS",
];

/// Columns whose values are numbers (right-aligned, as etcdctl does).
const NUMERIC: [bool; 10] = [
    false, false, false, true, true, false, true, true, true, false,
];

/// A bordered table, one row per member, sizes in SI units like etcdctl's.
pub fn status_table(statuses: &[MemberStatus]) -> String {
    let rows: Vec<[String; 10]> = statuses
        .iter()
        .map(|s| {
            [
                s.endpoint.clone(),
                format!("{:x}", s.id),
                s.version.clone(),
                human_bytes(s.db_size),
                human_bytes(s.db_size_in_use),
                s.is_leader.to_string(),
                s.raft_term.to_string(),
                s.raft_index.to_string(),
                s.revision.to_string(),
                s.errors.join(", "),
            ]
        })
        .collect();
    let mut widths = HEADERS.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let rule = {
        let mut line = String::from("+");
        for width in widths {
            line.push_str(&"-".repeat(width + 2));
            line.push('+');
        }
        line.push('\n');
        line
    };
    let mut out = rule.clone();
    out.push('|');
    for (header, width) in HEADERS.iter().zip(widths) {
        out.push_str(&format!(" {header:^width$} |"));
    }
    out.push('\n');
    out.push_str(&rule);
    for row in &rows {
        out.push('|');
        for ((cell, width), numeric) in row.iter().zip(widths).zip(NUMERIC) {
            if numeric {
                out.push_str(&format!(" {cell:>width$} |"));
            } else {
                out.push_str(&format!(" {cell:<width$} |"));
            }
        }
        out.push('\n');
    }
    out.push_str(&rule);
    out
}

/// Bytes in SI units, rounded like etcdctl's (go-humanize): `25 kB`, `108 MB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    if bytes < 10 {
        return format!("{bytes} B");
    }
    let exponent = ((bytes as f64).log10() / 3.0).floor() as usize;
    let exponent = exponent.min(UNITS.len() - 1);
    let value = bytes as f64 / 1000f64.powi(exponent as i32);
    // One decimal below 10 (`2.1 GB`), none above (`108 MB`).
    let rounded = (value * 10.0 + 0.5).floor() / 10.0;
    if rounded < 10.0 {
        format!("{rounded:.1} {}", UNITS[exponent])
    } else {
        format!("{rounded:.0} {}", UNITS[exponent])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::tests::status;

    #[test]
    fn sizes_read_like_etcdctl() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(24_576), "25 kB");
        assert_eq!(human_bytes(108_003_328), "108 MB");
        assert_eq!(human_bytes(2_147_483_648), "2.1 GB");
        assert_eq!(human_bytes(1_000), "1.0 kB");
    }

    #[test]
    fn table_has_one_row_per_member() {
        let mut leader = status("master-1", 0xab, 0xab, 108_003_328, 21_000_000);
        leader.endpoint = "https://10.0.0.11:2379".to_string();
        let mut follower = status("master-2", 0xbeef, 0xab, 20_480, 16_384);
        follower.endpoint = "https://10.0.0.12:2379".to_string();
        follower.errors = vec!["memberID:1 alarm:NOSPACE".to_string()];
        assert_eq!(
            status_table(&[leader, follower]),
            "\
+------------------------+------+---------+---------+--------+-----------+-----------+------------+----------+--------------------------+
|        ENDPOINT        |  ID  | VERSION | DB SIZE | IN USE | IS LEADER | RAFT TERM | RAFT INDEX | REVISION |          ERRORS          |
+------------------------+------+---------+---------+--------+-----------+-----------+------------+----------+--------------------------+
| https://10.0.0.11:2379 | ab   | 3.4.23  |  108 MB |  21 MB | true      |         2 |        100 |       50 |                          |
| https://10.0.0.12:2379 | beef | 3.4.23  |   20 kB |  16 kB | false     |         2 |        100 |       50 | memberID:1 alarm:NOSPACE |
+------------------------+------+---------+---------+--------+-----------+-----------+------------+----------+--------------------------+
"
        );
    }
}
