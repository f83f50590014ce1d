//! The API server's `/metrics` (Prometheus text format), parsed into
//! samples that can be summed by name and labels — e.g. how many requests
//! API Priority and Fairness rejected
//! (`apiserver_flowcontrol_rejected_requests_total`) or how many calls to a
//! webhook failed (`apiserver_admission_webhook_rejection_count`).

use crate::client::Kube;
use crate::error::KubeError;
use std::collections::BTreeMap;

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Every sample of a scrape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    pub samples: Vec<Sample>,
}

impl Metrics {
    /// Parse Prometheus text; comment and malformed lines are skipped.
    pub fn parse(text: &str) -> Metrics {
        Metrics {
            samples: text.lines().filter_map(parse_line).collect(),
        }
    }

    /// The sum of `name`'s samples whose labels include every `(key, value)`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).map(|s| s.value).sum()
    }

    /// `name`'s samples whose labels include every `(key, value)`.
    pub fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }
}

fn parse_line(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (name, rest) = match line.find('{') {
        Some(i) => (&line[..i], &line[i..]),
        None => line.split_once(' ')?,
    };
    let (labels, value_part) = if let Some(body) = rest.strip_prefix('{') {
        let end = closing_brace(body)?;
        (parse_labels(&body[..end])?, &body[end + 1..])
    } else {
        (BTreeMap::new(), rest)
    };
    let value = value_part.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name: name.trim().to_string(),
        labels,
        value,
    })
}

/// The index of the `}` closing a label set (quotes may hold braces).
fn closing_brace(body: &str) -> Option<usize> {
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => in_quotes = !in_quotes,
            '}' if !in_quotes => return Some(i),
            _ => {}
        }
    }
    None
}

fn parse_labels(body: &str) -> Option<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut rest = body.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let after = after.trim_start().strip_prefix('"')?;
        let mut value = String::new();
        let mut escaped = false;
        let mut end = None;
        for (i, c) in after.char_indices() {
            match c {
                _ if escaped => {
                    value.push(match c {
                        'n' => '\n',
                        other => other,
                    });
                    escaped = false;
                }
                '\\' => escaped = true,
                '"' => {
                    end = Some(i);
                    break;
                }
                c => value.push(c),
            }
        }
        let end = end?;
        out.insert(key.trim().trim_start_matches(',').trim().to_string(), value);
        rest = after[end + 1..]
            .trim_start()
            .trim_start_matches(',')
            .trim_start();
    }
    Some(out)
}

/// Requests API Priority and Fairness rejected since the API server
/// started, per (priority level, flow schema, reason), largest first — for
/// `remedy check` when the API answers: any at all means clients see 429s.
pub fn apf_rejections(m: &Metrics) -> Vec<(String, String, String, f64)> {
    let mut by: BTreeMap<(String, String, String), f64> = BTreeMap::new();
    for s in m.matching("apiserver_flowcontrol_rejected_requests_total", &[]) {
        let l = |k: &str| s.labels.get(k).cloned().unwrap_or_default();
        *by.entry((l("priority_level"), l("flow_schema"), l("reason")))
            .or_default() += s.value;
    }
    let mut out: Vec<_> = by
        .into_iter()
        .filter(|(_, v)| *v > 0.0)
        .map(|((p, f, r), v)| (p, f, r, v))
        .collect();
    out.sort_by(|a, b| b.3.total_cmp(&a.3));
    out
}

/// Scrape the API server's `/metrics`.
pub async fn scrape(kube: &Kube) -> Result<Metrics, KubeError> {
    Ok(Metrics::parse(&kube.get_text("/metrics").await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_summed_by_labels() {
        let text = r#"# HELP apiserver_flowcontrol_rejected_requests_total [BETA] Number of requests rejected by API Priority and Fairness subsystem
# TYPE apiserver_flowcontrol_rejected_requests_total counter
apiserver_flowcontrol_rejected_requests_total{flow_schema="service-accounts",priority_level="workload-low",reason="queue-full"} 12
apiserver_flowcontrol_rejected_requests_total{flow_schema="service-accounts",priority_level="workload-low",reason="time-out"} 3
apiserver_flowcontrol_rejected_requests_total{flow_schema="global-default",priority_level="global-default",reason="time-out"} 1
weird{a="x}y",b="q\"uote"} 2.5
plain 7
"#;
        let m = Metrics::parse(text);
        assert_eq!(m.samples.len(), 5);
        assert_eq!(
            apf_rejections(&m),
            vec![
                (
                    "workload-low".into(),
                    "service-accounts".into(),
                    "queue-full".into(),
                    12.0
                ),
                (
                    "workload-low".into(),
                    "service-accounts".into(),
                    "time-out".into(),
                    3.0
                ),
                (
                    "global-default".into(),
                    "global-default".into(),
                    "time-out".into(),
                    1.0
                ),
            ]
        );
        assert_eq!(
            m.sum(
                "apiserver_flowcontrol_rejected_requests_total",
                &[("priority_level", "workload-low")]
            ),
            15.0
        );
        assert_eq!(
            m.sum("apiserver_flowcontrol_rejected_requests_total", &[]),
            16.0
        );
        assert_eq!(m.sum("weird", &[("a", "x}y"), ("b", "q\"uote")]), 2.5);
        assert_eq!(m.sum("plain", &[]), 7.0);
    }
}
