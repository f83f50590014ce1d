//! How a runbook rolls out and who must agree: `strategy:`, `approval:`
//! and `on_failure:`.

use super::*;

impl Checker {
    pub(super) fn strategy(&mut self, node: &Node) -> Strategy {
        let mut s = Strategy::default();
        if let Some(word) = node.as_str() {
            match word {
                "parallel" => s.batch = Batch::Parallel,
                "serial" => {}
                _ => self.error_hint(
                    node.span,
                    format!("unknown strategy `{word}`"),
                    Some(
                        "write `parallel`, or a mapping such as `{ serial: 1, max_failed: 0 }`"
                            .into(),
                    ),
                ),
            }
            return s;
        }
        let Some(entries) = self.mapping(node, "`strategy`", STRATEGY_KEYS) else {
            return s;
        };
        let get = |k: &str| {
            entries
                .iter()
                .find(|(key, _)| key.as_str() == Some(k))
                .map(|(_, v)| v)
        };
        if let (Some(_), Some(p)) = (get("serial"), get("parallel")) {
            self.error_hint(
                p.span,
                "`serial` and `parallel` together",
                Some("choose one: `serial: N` (or `N%`) or `parallel: true`".into()),
            );
        }
        if let Some(n) = get("serial") {
            let serial_hint = Some(
                "write a host count (`serial: 1`) or a share of the targets (`serial: \"30%\"`)"
                    .to_string(),
            );
            match &n.kind {
                NodeKind::Int(i) if *i >= 1 && *i <= u32::MAX as i64 => {
                    s.batch = Batch::Count(*i as u32)
                }
                NodeKind::Str(text) if text.ends_with('%') => {
                    match text.trim_end_matches('%').trim().parse::<u32>() {
                        Ok(p) if (1..=100).contains(&p) => s.batch = Batch::Percent(p),
                        _ => self.error_hint(
                            n.span,
                            format!("`serial: {text}` must be a percentage from 1% to 100%"),
                            serial_hint,
                        ),
                    }
                }
                _ => self.error_hint(
                    n.span,
                    format!(
                        "`serial: {}` is not a batch size",
                        n.scalar_text().unwrap_or_else(|| n.type_name().into())
                    ),
                    serial_hint,
                ),
            }
        }
        if let Some(p) = get("parallel") {
            match p.kind {
                NodeKind::Bool(true) => s.batch = Batch::Parallel,
                NodeKind::Bool(false) => {}
                _ => self.error(
                    p.span,
                    format!("`parallel` must be true or false, found {}", p.type_name()),
                ),
            }
        }
        if let Some(m) = get("max_failed") {
            if let Some(v) = self.uint(m, "`max_failed`") {
                s.max_failed = v;
            }
        }
        s
    }

    pub(super) fn approval(&mut self, node: &Node) -> Approval {
        if node.as_str() == Some("none") {
            return Approval::None;
        }
        let Some(entries) = self.mapping(node, "`approval`", APPROVAL_KEYS) else {
            return Approval::None;
        };
        let get = |k: &str| {
            entries
                .iter()
                .find(|(key, _)| key.as_str() == Some(k))
                .map(|(_, v)| v)
        };
        let quorum = get("quorum")
            .and_then(|n| self.uint(n, "`quorum`"))
            .unwrap_or(1);
        if quorum == 0 {
            if let Some(n) = get("quorum") {
                self.error_hint(
                    n.span,
                    "`quorum: 0` approves nothing",
                    Some("write `approval: none` to run without approval".into()),
                );
            }
        }
        let mut approvers = Vec::new();
        match get("approvers") {
            Some(n) => match n.as_seq() {
                Some(items) if !items.is_empty() => {
                    for item in items {
                        if let Some(s) = self.string(item, "an approver") {
                            approvers.push(s);
                        }
                    }
                }
                _ => self.error_hint(
                    n.span,
                    "`approvers` must be a non-empty list",
                    Some("users (`alice`) or groups (`group:sre`)".into()),
                ),
            },
            None => self.error_hint(
                node.span,
                "`approval` without `approvers`",
                Some("list who may approve: users (`alice`) or groups (`group:sre`)".into()),
            ),
        }
        let users_only =
            !approvers.is_empty() && approvers.iter().all(|a| !a.starts_with("group:"));
        if users_only && quorum as usize > approvers.len() {
            if let Some(n) = get("quorum") {
                self.error(
                    n.span,
                    format!(
                        "`quorum: {quorum}` can never be met by {} listed approver(s)",
                        approvers.len()
                    ),
                );
            }
        }
        let forbid_requester = match get("forbid_requester").map(|n| (&n.kind, n)) {
            Some((NodeKind::Bool(b), _)) => *b,
            Some((_, n)) => {
                self.error(n.span, "`forbid_requester` must be true or false");
                true
            }
            None => true,
        };
        let ttl_secs = get("ttl")
            .and_then(|n| self.duration(n, "`ttl`"))
            .unwrap_or(1800);
        let scope = match get("scope") {
            None => ApprovalScope::Run,
            Some(n) => match n.as_str() {
                Some("run") => ApprovalScope::Run,
                Some("host") => ApprovalScope::Host,
                Some("step") => ApprovalScope::Step,
                _ => {
                    self.error_hint(
                        n.span,
                        format!(
                            "unknown approval scope `{}`",
                            n.scalar_text().unwrap_or_default()
                        ),
                        Some(format!("one of: {}", APPROVAL_SCOPES.join(", "))),
                    );
                    ApprovalScope::Run
                }
            },
        };
        let auto_approve = get("auto_approve").and_then(|n| {
            let text = self.string(n, "`auto_approve`")?;
            match crate::expr::compile(&text, crate::expr::Context::Plan, false) {
                Ok(_) => Some(text),
                Err(e) => {
                    self.error_hint(
                        n.span,
                        format!(
                            "`auto_approve` is not a valid Rhai expression: {}",
                            e.message
                        ),
                        Some(
                            "an expression over `plan`, e.g. `plan.max_changing_per_batch <= 1`"
                                .into(),
                        ),
                    );
                    None
                }
            }
        });
        Approval::Required(ApprovalPolicy {
            quorum,
            approvers,
            forbid_requester,
            ttl_secs,
            scope,
            auto_approve,
        })
    }

    pub(super) fn on_failure(&mut self, node: &Node) -> Option<OnFailure> {
        match node.as_str() {
            Some("rollback") => Some(OnFailure::Rollback),
            Some("stop") => Some(OnFailure::Stop),
            Some("continue") => Some(OnFailure::Continue),
            Some("handled") => Some(OnFailure::Handled),
            other => {
                let word = other
                    .map(str::to_string)
                    .unwrap_or_else(|| node.type_name().into());
                let hint = other
                    .and_then(|w| did_you_mean(w, OnFailure::NAMES))
                    .unwrap_or_else(|| format!("one of: {}", OnFailure::NAMES.join(", ")));
                self.error_hint(
                    node.span,
                    format!("unknown `on_failure: {word}`"),
                    Some(hint),
                );
                None
            }
        }
    }
}
