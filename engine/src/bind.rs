//! Binding: a checked runbook + an inventory + the user's params become a
//! [`BoundRun`] — the concrete hosts and typed param values — or a list of
//! everything wrong with them, before any host is touched.

use crate::inventory::{Host, Inventory};
use remedy_dsl::diagnostic::did_you_mean;
use remedy_dsl::{Diagnostic, Diagnostics, Runbook};
use serde_json::{Map, Value};

/// What the user asked for on the command line.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// `--param k=v`, in order (later wins).
    pub params: Vec<(String, String)>,
    /// Values from `--params-file`, already parsed YAML → JSON.
    pub params_file: Map<String, Value>,
    /// `--limit PATTERN`: narrows the runbook's targets.
    pub limit: Option<String>,
    /// Overrides the runbook's `targets` (e.g. `remedy exec`).
    pub targets: Option<String>,
}

/// A runbook ready to execute: which hosts, with which params.
#[derive(Debug, Clone)]
pub struct BoundRun {
    pub hosts: Vec<Host>,
    pub params: Map<String, Value>,
    /// Names of params whose values must never be shown.
    pub secrets: Vec<String>,
    /// The inventory's load balancers (group `lbs`), which `haproxy.*`
    /// steps act on from whichever master they run for.
    pub lbs: Vec<Host>,
    /// The hosts of the etcd members (group `etcd`), reached by `etcd.*`.
    pub etcd: Vec<Host>,
    /// Values Rhai computed from secrets so far (shared with every redactor).
    pub derived: crate::redact::Derived,
}

/// The inventory group whose hosts are the load balancers.
pub const LB_GROUP: &str = "lbs";
/// The group whose hosts run the cluster's etcd members (`etcd.*` actions).
pub const ETCD_GROUP: &str = "etcd";

pub fn bind(
    runbook: &Runbook,
    inventory: &Inventory,
    req: &Request,
) -> Result<BoundRun, Diagnostics> {
    let mut diags = Diagnostics::default();
    let params = bind_params(runbook, req, &mut diags);
    let pattern = req.targets.as_deref().unwrap_or(&runbook.targets);
    let mut hosts: Vec<Host> = match inventory.select(pattern) {
        Ok(h) => h.into_iter().cloned().collect(),
        Err(msg) => {
            let d = if req.targets.is_none() {
                Diagnostic::at(
                    &runbook.source,
                    runbook.targets_span,
                    format!("targets: {msg}"),
                )
            } else {
                Diagnostic::new(msg)
            };
            diags.push(d.with_hint("check the inventory passed with --inventory, or the pattern"));
            Vec::new()
        }
    };
    if let Some(limit) = &req.limit {
        match inventory.select(limit) {
            Ok(allowed) => {
                let names: Vec<&str> = allowed.iter().map(|h| h.name.as_str()).collect();
                hosts.retain(|h| names.contains(&h.name.as_str()));
                if hosts.is_empty() && diags.is_empty() {
                    let targets: Vec<String> = inventory
                        .select(pattern)
                        .map(|h| h.iter().map(|h| h.name.clone()).collect())
                        .unwrap_or_default();
                    diags.push(
                        Diagnostic::new(format!("--limit {limit} leaves no host among the runbook's targets `{pattern}`"))
                            .with_hint(format!("`{pattern}` selects {}; pick --limit from those", targets.join(", "))),
                    );
                }
            }
            Err(msg) => diags.push(Diagnostic::new(format!("--limit: {msg}"))),
        }
    }
    check_host_vars(runbook, &hosts, &mut diags);
    let secrets = runbook
        .params
        .iter()
        .filter(|p| p.ty == remedy_dsl::ParamType::Secret)
        .map(|p| p.name.clone())
        .collect();
    let lbs = inventory
        .hosts
        .iter()
        .filter(|h| h.groups.iter().any(|g| g == LB_GROUP))
        .cloned()
        .collect();
    let etcd = inventory
        .hosts
        .iter()
        .filter(|h| h.groups.iter().any(|g| g == ETCD_GROUP))
        .cloned()
        .collect();
    diags.into_result(BoundRun {
        hosts,
        params,
        secrets,
        lbs,
        etcd,
        derived: Default::default(),
    })
}

/// A `secret` param is given by reference — `env:NAME` or `file:PATH` — so
/// its value never sits in shell history, process lists or the journal
/// (which records the reference; `remedy resume` resolves it again).
fn resolve_secret(name: &str, reference: &str) -> Result<String, Diagnostic> {
    let hint = format!(
        "pass --param {name}=env:VARIABLE (read from the environment) or --param {name}=file:/path/to/file (first line ends the value; keep the file mode 0600)"
    );
    if let Some(var) = reference.strip_prefix("env:") {
        return match std::env::var(var) {
            Ok(v) if !v.is_empty() => Ok(v),
            Ok(_) => Err(Diagnostic::new(format!(
                "secret param `{name}`: environment variable {var} is empty"
            ))
            .with_hint(hint)),
            Err(_) => Err(Diagnostic::new(format!(
                "secret param `{name}`: environment variable {var} is not set"
            ))
            .with_hint(format!("export {var} in this shell, or {hint}"))),
        };
    }
    if let Some(path) = reference.strip_prefix("file:") {
        return match std::fs::read_to_string(path) {
            Ok(text) => {
                let value = text.lines().next().unwrap_or("").to_string();
                if value.is_empty() {
                    Err(
                        Diagnostic::new(format!("secret param `{name}`: {path} is empty"))
                            .with_hint(hint),
                    )
                } else {
                    Ok(value)
                }
            }
            Err(e) => Err(Diagnostic::new(format!(
                "secret param `{name}`: cannot read {path}: {e}"
            ))
            .with_hint(hint)),
        };
    }
    Err(Diagnostic::new(format!(
        "secret param `{name}` was given as a literal value; remedy takes secrets only by reference"
    ))
    .with_hint(hint))
}

fn bind_params(runbook: &Runbook, req: &Request, diags: &mut Diagnostics) -> Map<String, Value> {
    let names: Vec<&str> = runbook.params.iter().map(|p| p.name.as_str()).collect();
    let unknown = |name: &str, origin: &str| {
        let hint = did_you_mean(name, names.iter().copied()).unwrap_or_else(|| {
            if names.is_empty() {
                format!("runbook `{}` takes no params", runbook.name)
            } else {
                format!("runbook `{}` takes: {}", runbook.name, names.join(", "))
            }
        });
        Diagnostic::new(format!("{origin}: unknown param `{name}`")).with_hint(hint)
    };
    let mut out = Map::new();
    for p in &runbook.params {
        match &p.default {
            Some(d) => out.insert(p.name.clone(), d.clone()),
            // Optional without a default: present as `()` so `params.x == ()` works.
            None if !p.required => out.insert(p.name.clone(), Value::Null),
            None => None,
        };
    }
    for (name, value) in &req.params_file {
        match runbook.param(name) {
            None => diags.push(unknown(name, "--params-file")),
            Some(spec) => match spec.ty.check_json(value) {
                Ok(v) => {
                    out.insert(name.clone(), v);
                }
                Err(e) => diags.push(Diagnostic::new(format!(
                    "--params-file: param `{name}`: {e}"
                ))),
            },
        }
    }
    let mut repeated = std::collections::HashSet::new();
    for (name, text) in &req.params {
        match runbook.param(name) {
            None => diags.push(unknown(name, &format!("--param {name}={text}"))),
            Some(spec) => match spec.ty.parse_text(text) {
                // A list param collects every `--param name=…` given after the
                // first; the default is replaced, not extended.
                Ok(Value::Array(items)) if repeated.contains(name) => {
                    if let Some(Value::Array(existing)) = out.get_mut(name) {
                        existing.extend(items);
                    }
                }
                Ok(v) => {
                    repeated.insert(name.clone());
                    out.insert(name.clone(), v);
                }
                Err(e) => diags.push(Diagnostic::new(format!("--param {name}: {e}")).with_hint(
                    format!(
                        "`{name}` is {} {}{}",
                        spec.ty.article(),
                        spec.ty.name(),
                        if spec.doc.is_empty() {
                            String::new()
                        } else {
                            format!(": {}", spec.doc)
                        }
                    ),
                )),
            },
        }
    }
    for p in &runbook.params {
        match out.get(&p.name) {
            None | Some(Value::Null) if p.required => diags.push(
                Diagnostic::new(format!(
                    "missing required param `{}` ({})",
                    p.name,
                    p.ty.name()
                ))
                .with_hint(format!(
                    "pass --param {}={}{}",
                    p.name,
                    p.choices
                        .as_ref()
                        .and_then(|c| c.first())
                        .map(|c| c
                            .as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| c.to_string()))
                        .unwrap_or_else(|| format!("<{}>", p.ty.name())),
                    if p.doc.is_empty() {
                        String::new()
                    } else {
                        format!("  ({})", p.doc)
                    }
                )),
            ),
            Some(Value::String(reference)) if p.ty == remedy_dsl::ParamType::Secret => {
                match resolve_secret(&p.name, reference) {
                    Ok(value) => {
                        out.insert(p.name.clone(), Value::String(value));
                    }
                    Err(d) => diags.push(d),
                }
            }
            Some(v) => {
                if let Some(choices) = &p.choices {
                    if !choices.contains(v) {
                        let allowed: Vec<String> = choices
                            .iter()
                            .map(|c| {
                                c.as_str()
                                    .map(str::to_string)
                                    .unwrap_or_else(|| c.to_string())
                            })
                            .collect();
                        diags.push(
                            Diagnostic::new(format!("param `{}` = {} is not allowed", p.name, v))
                                .with_hint(format!("one of: {}", allowed.join(", "))),
                        );
                    }
                }
            }
            None => {}
        }
    }
    out
}

/// Every `host.vars.X` the runbook reads must exist on every target host:
/// found now, not half-way through a rollout.
fn check_host_vars(runbook: &Runbook, hosts: &[Host], diags: &mut Diagnostics) {
    let mut seen = std::collections::BTreeSet::new();
    for step in &runbook.steps {
        let exprs = step
            .with
            .iter()
            .flat_map(|(_, v)| v.exprs())
            .chain(step.when.iter())
            .chain(step.until.iter())
            .chain(step.assert.iter());
        for e in exprs {
            for r in &e.references {
                if r.path.len() < 3 || r.path[0] != "host" || r.path[1] != "vars" {
                    continue;
                }
                let var = &r.path[2];
                let missing: Vec<&str> = hosts
                    .iter()
                    .filter(|h| !h.vars.contains_key(var))
                    .map(|h| h.name.as_str())
                    .collect();
                if missing.is_empty() || !seen.insert(var.clone()) {
                    continue;
                }
                let (l, c, len) = r.positions[2];
                let span = if l == 0 {
                    remedy_dsl::Span::new(e.span.line, e.span.col + c, len)
                } else {
                    e.span
                };
                diags.push(
                    Diagnostic::at(&runbook.source, span, format!("host var `{var}` is not set for {}", missing.join(", ")))
                        .with_hint(format!("set `{var}` under `vars:` (all hosts), a group's `vars:`, or the host's `vars:` in the inventory")),
                );
            }
        }
    }
}
