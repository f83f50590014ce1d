//! UTC calendar time from Unix seconds, for the timestamps the lab writes
//! (RFC 3339 in logs and crictl output, `YYYYMMDDHHMMSSZ` for openssl) without
//! a date crate.

/// A UTC date and time of day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utc {
    pub year: i64,
    pub month: i64,
    pub day: i64,
    pub hour: i64,
    pub minute: i64,
    pub second: i64,
}

impl Utc {
    /// The civil date of `unix` seconds since 1970-01-01 (Howard Hinnant's
    /// days-from-civil inverse; any i64 day count within range).
    pub fn from_unix(unix: i64) -> Utc {
        let (days, rem) = (unix.div_euclid(86_400), unix.rem_euclid(86_400));
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        Utc {
            year: yoe + era * 400 + i64::from(month <= 2),
            month,
            day,
            hour: rem / 3600,
            minute: rem % 3600 / 60,
            second: rem % 60,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        let t = Utc::from_unix(951_782_400); // 2000-02-29, a leap day
        assert_eq!((t.year, t.month, t.day, t.hour), (2000, 2, 29, 0));
        let t = Utc::from_unix(-1);
        assert_eq!((t.year, t.month, t.day, t.second), (1969, 12, 31, 59));
    }
}
