//! `remedy validate [FILES…]`: check runbooks without running anything;
//! exit 2 when any has an error. With an inventory, also check it.

use super::{input, library, request, Exit, Global, Output};
use remedy_dsl::{Diagnostic, Diagnostics, Source};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;

pub fn validate(g: &Global, dirs: &[PathBuf], files: &[PathBuf]) -> Exit {
    let mut inputs: Vec<(String, Result<Arc<Source>, Diagnostic>)> = Vec::new();
    if files.is_empty() {
        for (name, text) in library::BUILTIN {
            let name = format!("builtin:{name}");
            inputs.push((name.clone(), Ok(Source::new(name, *text))));
        }
        for dir in dirs {
            for (_, path) in library::runbooks_in(dir) {
                inputs.push((path.display().to_string(), input::read(&path, "runbook")));
            }
        }
    } else {
        for f in files {
            inputs.push((f.display().to_string(), input::read(f, "runbook")));
        }
    }
    let mut failed = 0;
    let mut results = Vec::new();
    for (name, source) in inputs {
        let outcome = match source
            .map_err(Diagnostics::from)
            .and_then(remedy_dsl::compile)
        {
            Ok(rb) => Ok(rb),
            Err(d) => {
                if g.output == Output::Text {
                    eprint!("{}", d.render());
                }
                Err(d
                    .iter()
                    .map(|d| json!({ "message": d.message, "location": d.location().unwrap_or_else(|| name.clone()), "hint": d.hint }))
                    .collect::<Vec<_>>())
            }
        };
        match outcome {
            Ok(rb) => {
                if g.output == Output::Text {
                    for w in &rb.warnings {
                        eprint!("{}", w.render_warning());
                    }
                    println!(
                        "ok      {name} ({}: {} step{})",
                        rb.name,
                        rb.steps.len(),
                        if rb.steps.len() == 1 { "" } else { "s" }
                    );
                }
                let warnings: Vec<_> = rb.warnings.iter().map(|d| json!({ "message": d.message, "location": d.location(), "hint": d.hint })).collect();
                results.push(json!({ "file": name, "ok": true, "runbook": rb.name, "errors": [], "warnings": warnings }));
            }
            Err(errors) => {
                failed += 1;
                if g.output == Output::Text {
                    println!(
                        "invalid {name} ({} error{})",
                        errors.len(),
                        if errors.len() == 1 { "" } else { "s" }
                    );
                }
                results.push(json!({ "file": name, "ok": false, "errors": errors }));
            }
        }
    }
    if request::inventory_named(g) {
        match request::inventory(g) {
            Ok(inv) => {
                if g.output == Output::Text {
                    println!(
                        "ok      {} (inventory: {} hosts)",
                        inv.source.name,
                        inv.hosts.len()
                    );
                }
            }
            Err(d) => {
                failed += 1;
                if g.output == Output::Text {
                    eprint!("{}", d.render());
                }
                results.push(json!({ "file": g.inventory.as_ref().map(|p| p.display().to_string()).or_else(|| std::env::var("REMEDY_INVENTORY").ok()), "ok": false, "errors": d.iter().map(|d| json!({ "message": d.message, "location": d.location(), "hint": d.hint })).collect::<Vec<_>>() }));
            }
        }
    }
    if g.output == Output::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&results).unwrap_or_default()
        );
    }
    if failed > 0 {
        Exit::Invalid
    } else {
        Exit::Ok
    }
}
