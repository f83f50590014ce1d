//! Runbook parameters: their declared types, and how a value written on the
//! command line or in YAML becomes a typed value.
//!
//! Durations and byte sizes are exposed to Rhai as plain integers (seconds and
//! bytes), so decisions compare numbers, not strings.

use serde::Serialize;
use serde_json::Value;

/// The declared type of a param.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    Int,
    String,
    Bool,
    /// Written `30m`, `1h30m`, `7d`; seen by Rhai as seconds.
    Duration,
    /// Written `32MiB`, `2G`, `512`; seen by Rhai as bytes.
    Bytes,
    /// A list of strings (on the command line: one item per `--param`).
    List,
    /// A string that is never printed or journaled.
    Secret,
}

impl ParamType {
    pub const NAMES: [&'static str; 7] = [
        "int", "string", "bool", "duration", "bytes", "list", "secret",
    ];

    pub fn from_name(name: &str) -> Option<ParamType> {
        Some(match name {
            "int" => ParamType::Int,
            "string" => ParamType::String,
            "bool" => ParamType::Bool,
            "duration" => ParamType::Duration,
            "bytes" => ParamType::Bytes,
            "list" => ParamType::List,
            "secret" => ParamType::Secret,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            ParamType::Int => "int",
            ParamType::String => "string",
            ParamType::Bool => "bool",
            ParamType::Duration => "duration",
            ParamType::Bytes => "bytes",
            ParamType::List => "list",
            ParamType::Secret => "secret",
        }
    }

    /// "a" or "an", for messages.
    pub fn article(self) -> &'static str {
        if matches!(self, ParamType::Int) {
            "an"
        } else {
            "a"
        }
    }

    /// A value as a user would write it (durations as `2m`, not seconds).
    pub fn display(self, v: &Value) -> String {
        match (self, v) {
            (ParamType::Duration, Value::Number(n)) => n
                .as_i64()
                .map(format_duration)
                .unwrap_or_else(|| n.to_string()),
            (ParamType::Secret, _) => "(secret)".into(),
            (_, Value::String(s)) => format!("\"{s}\""),
            (_, other) => other.to_string(),
        }
    }

    /// An example of a valid value, for hints.
    pub fn example(self) -> &'static str {
        match self {
            ParamType::Int => "30",
            ParamType::String | ParamType::Secret => "some-text",
            ParamType::Bool => "true",
            ParamType::Duration => "90s, 30m, 1h30m or 7d",
            ParamType::Bytes => "512, 64KiB, 32MiB or 2G",
            ParamType::List => "item (repeat --param for more)",
        }
    }

    /// Parse a value written as text (the command line, a params file value).
    pub fn parse_text(self, text: &str) -> Result<Value, String> {
        let bad = || {
            format!(
                "`{text}` is not {} {} (expected e.g. {})",
                self.article(),
                self.name(),
                self.example()
            )
        };
        match self {
            ParamType::Int => text
                .trim()
                .parse::<i64>()
                .map(Value::from)
                .map_err(|_| bad()),
            ParamType::String | ParamType::Secret => Ok(Value::String(text.to_string())),
            ParamType::Bool => match text.trim() {
                "true" | "yes" | "on" | "1" => Ok(Value::Bool(true)),
                "false" | "no" | "off" | "0" => Ok(Value::Bool(false)),
                _ => Err(bad()),
            },
            ParamType::Duration => parse_duration(text).map(Value::from).ok_or_else(bad),
            ParamType::Bytes => parse_bytes(text).map(Value::from).ok_or_else(bad),
            // One item per `--param`: values such as `--enable-admission-plugins=A,B`
            // contain commas, so nothing is split.
            ParamType::List => Ok(Value::Array(vec![Value::String(text.to_string())])),
        }
    }

    /// Check (and normalise) a value that came from YAML, already as JSON.
    pub fn check_json(self, value: &Value) -> Result<Value, String> {
        match (self, value) {
            (ParamType::Int, Value::Number(n)) if n.is_i64() => Ok(value.clone()),
            (ParamType::String | ParamType::Secret, Value::String(_)) => Ok(value.clone()),
            (ParamType::Bool, Value::Bool(_)) => Ok(value.clone()),
            (ParamType::Duration | ParamType::Bytes, Value::Number(n)) if n.is_i64() => {
                Ok(value.clone())
            }
            (ParamType::Duration | ParamType::Bytes, Value::String(s)) => self.parse_text(s),
            (ParamType::List, Value::Array(items)) if items.iter().all(Value::is_string) => {
                Ok(value.clone())
            }
            _ => Err(format!(
                "expected {} {} (e.g. {}), found {}",
                self.article(),
                self.name(),
                self.example(),
                json_type_name(value)
            )),
        }
    }
}

pub fn json_type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing (null)",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// `90`, `90s`, `30m`, `1h30m`, `7d`, `500ms` (rounded up to whole seconds) → seconds.
pub fn parse_duration(text: &str) -> Option<i64> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if let Ok(secs) = text.parse::<i64>() {
        return (secs >= 0).then_some(secs);
    }
    let mut total_ms: i64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let n: i64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let per_ms: i64 = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            _ => return None,
        };
        total_ms = total_ms.checked_add(n.checked_mul(per_ms)?)?;
        rest = &rest[unit_len..];
    }
    Some((total_ms + 999) / 1000)
}

/// `512`, `64KiB`, `32MiB`, `2G`, `1.5GB` → bytes (SI units are powers of 1000).
pub fn parse_bytes(text: &str) -> Option<i64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    let num: f64 = num.parse().ok()?;
    let mult: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "K" | "KB" | "k" | "kB" => 1e3,
        "M" | "MB" => 1e6,
        "G" | "GB" => 1e9,
        "T" | "TB" => 1e12,
        "Ki" | "KiB" => 1024.0,
        "Mi" | "MiB" => 1024.0 * 1024.0,
        "Gi" | "GiB" => 1024.0 * 1024.0 * 1024.0,
        "Ti" | "TiB" => 1024.0f64.powi(4),
        _ => return None,
    };
    let bytes = num * mult;
    (bytes.is_finite() && bytes >= 0.0 && bytes < i64::MAX as f64).then_some(bytes.round() as i64)
}

/// Render seconds back the way people write them (`1h30m`, `45s`).
pub fn format_duration(secs: i64) -> String {
    if secs == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let mut rest = secs;
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if rest >= size {
            out.push_str(&format!("{}{unit}", rest / size));
            rest %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Some(90));
        assert_eq!(parse_duration("30m"), Some(1800));
        assert_eq!(parse_duration("1h30m"), Some(5400));
        assert_eq!(parse_duration("7d"), Some(604_800));
        assert_eq!(parse_duration("1500ms"), Some(2));
        assert_eq!(parse_duration("3x"), None);
        assert_eq!(parse_duration("m"), None);
        assert_eq!(format_duration(5400), "1h30m");
    }

    #[test]
    fn bytes() {
        assert_eq!(parse_bytes("512"), Some(512));
        assert_eq!(parse_bytes("32MiB"), Some(33_554_432));
        assert_eq!(parse_bytes("2G"), Some(2_000_000_000));
        assert_eq!(parse_bytes("lots"), None);
    }
}
