//! `remedy show NAME`: what a runbook does — summary, targets, strategy,
//! params with types, defaults and docs, steps — or an action's arguments and
//! results.

use super::{library, Exit, Global, Output};
use remedy_dsl::action::COMMON_RESULTS;
use remedy_dsl::{ActionKind, Approval, Batch, Runbook};
use serde_json::json;
use std::path::PathBuf;

pub fn show(g: &Global, dirs: &[PathBuf], name: &str) -> Exit {
    if let Some(kind) = ActionKind::from_name(name) {
        return show_action(g, kind);
    }
    let rb = match library::load(name, dirs).map(remedy_dsl::compile) {
        Err(msg) => {
            eprintln!("error: {msg}");
            return Exit::Invalid;
        }
        Ok(Err(d)) => {
            eprint!("{}", d.render());
            return Exit::Invalid;
        }
        Ok(Ok(rb)) => rb,
    };
    if g.output == Output::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&runbook_json(&rb)).unwrap_or_default()
        );
        return Exit::Ok;
    }
    println!("{} — {}", rb.name, rb.summary);
    if let Some(d) = &rb.description {
        println!("\n{}", d.trim_end());
    }
    let batch = match rb.strategy.batch {
        Batch::Count(n) => format!("serial {n}"),
        Batch::Percent(p) => format!("serial {p}%"),
        Batch::Parallel => "parallel".into(),
    };
    println!("\ntargets:    {}", rb.targets);
    println!("strategy:   {batch}, max_failed {}", rb.strategy.max_failed);
    println!("on_failure: {}", rb.on_failure.name());
    match &rb.approval {
        Approval::None => println!("approval:   none"),
        Approval::Required(p) => println!(
            "approval:   quorum {} of {} (ttl {})",
            p.quorum,
            p.approvers.join(", "),
            remedy_dsl::param::format_duration(p.ttl_secs)
        ),
    }
    if !rb.params.is_empty() {
        println!("\nparams (--param NAME=VALUE):");
        for p in &rb.params {
            let default = match &p.default {
                Some(v) => format!("default {}", p.ty.display(v)),
                None if p.required => "required".into(),
                None => "optional".into(),
            };
            let choices = p
                .choices
                .as_ref()
                .map(|c| {
                    format!(
                        ", one of {}",
                        c.iter()
                            .map(|v| v
                                .as_str()
                                .map(str::to_string)
                                .unwrap_or_else(|| v.to_string()))
                            .collect::<Vec<_>>()
                            .join("|")
                    )
                })
                .unwrap_or_default();
            println!("  {:16} {:8} {default}{choices}", p.name, p.ty.name());
            if !p.doc.is_empty() {
                println!("  {:16} {}", "", p.doc);
            }
        }
    }
    println!("\nsteps:");
    for s in &rb.steps {
        let when = s
            .when
            .as_ref()
            .map(|w| format!("  when {}", w.text.trim()))
            .unwrap_or_default();
        println!(
            "  {:14} {:12} {}{when}",
            s.id,
            s.action.name(),
            s.name.clone().unwrap_or_default()
        );
    }
    Exit::Ok
}

fn runbook_json(rb: &Runbook) -> serde_json::Value {
    json!({
        "runbook": rb.name,
        "summary": rb.summary,
        "description": rb.description,
        "targets": rb.targets,
        "on_failure": rb.on_failure.name(),
        "params": rb.params.iter().map(|p| json!({ "name": p.name, "type": p.ty, "default": p.default, "enum": p.choices, "required": p.required, "doc": p.doc })).collect::<Vec<_>>(),
        "steps": rb.steps.iter().map(|s| json!({ "id": s.id, "action": s.action.name(), "name": s.name, "when": s.when.as_ref().map(|w| w.text.clone()) })).collect::<Vec<_>>(),
    })
}

fn show_action(g: &Global, kind: ActionKind) -> Exit {
    let results: Vec<_> = kind
        .results()
        .unwrap_or(&[])
        .iter()
        .chain(COMMON_RESULTS)
        .collect();
    if g.output == Output::Json {
        let v = json!({
            "action": kind.name(),
            "summary": kind.summary(),
            "read_only": kind.read_only(),
            "args": kind.args().iter().map(|a| json!({ "name": a.name, "type": a.kind.describe(), "required": a.required, "doc": a.doc })).collect::<Vec<_>>(),
            "results": results.iter().map(|r| json!({ "name": r.name, "doc": r.doc })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Exit::Ok;
    }
    println!("{} — {}", kind.name(), kind.summary());
    println!("\narguments (under `with:`):");
    for a in kind.args() {
        println!(
            "  {:16} {}{}",
            a.name,
            if a.required { "required, " } else { "" },
            a.kind.describe()
        );
        println!("  {:16} {}", "", a.doc);
    }
    println!("\nresults (as steps.<id>.<name>):");
    if kind.results().is_none() {
        println!("  whatever the script returns (a map), plus the common results below");
    }
    for r in results {
        println!("  {:16} {}", r.name, r.doc);
    }
    Exit::Ok
}
