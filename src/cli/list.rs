//! `remedy list`: the runbooks remedy knows (built-in and `--dir`), or with
//! `--actions` every action a step can use.

use super::{input, library, Exit, Global, Output};
use remedy_dsl::{ActionKind, Source};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;

pub fn list(g: &Global, dirs: &[PathBuf], actions: bool) -> Exit {
    if actions {
        let rows: Vec<(String, String)> = ActionKind::ALL
            .iter()
            .map(|a| (a.name().to_string(), a.summary().to_string()))
            .collect();
        return print(g, &rows, "action");
    }
    let mut rows = Vec::new();
    let mut sources: Vec<Arc<Source>> = library::BUILTIN
        .iter()
        .map(|(n, t)| Source::new(format!("builtin:{n}"), *t))
        .collect();
    for dir in dirs {
        for (_, path) in library::runbooks_in(dir) {
            match input::read(&path, "runbook") {
                Ok(source) => sources.push(source),
                Err(_) => rows.push((
                    path.display().to_string(),
                    "(unreadable: run `remedy validate` on it)".into(),
                )),
            }
        }
    }
    for source in sources {
        let origin = source.name.clone();
        match remedy_dsl::compile(source) {
            Ok(rb) => rows.push((rb.name, rb.summary)),
            Err(_) => rows.push((origin, "(invalid: run `remedy validate` on it)".into())),
        }
    }
    print(g, &rows, "runbook")
}

fn print(g: &Global, rows: &[(String, String)], what: &str) -> Exit {
    if g.output == Output::Json {
        let v: Vec<_> = rows
            .iter()
            .map(|(n, s)| json!({ what: n, "summary": s }))
            .collect();
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Exit::Ok;
    }
    let w = rows.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    for (n, s) in rows {
        println!("{n:w$}  {s}");
    }
    Exit::Ok
}
