//! `cargo run --release -p remedy-journal --example append_rate -- DIR [N]`:
//! how many events per second the journal appends, each one durable when
//! `append` returns (WAL, `synchronous=FULL`, the hash chain), into a new
//! journal in DIR — put DIR on the file system the real journal lives on.
//! Prints the rate and the median and 99th-percentile time of one append.
//! `bench/steps.sh` runs it.

use remedy_journal::{Journal, NewEvent, NewRun};
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args.next().expect("usage: append_rate DIR [N]");
    let n: usize = args.next().map_or(2000, |s| s.parse().expect("N: a count"));
    let path = std::path::Path::new(&dir).join("append-rate.db");
    let journal = Journal::open(&path).expect("open the journal");
    let run_id = "append-rate".to_string();
    journal
        .create_run(&NewRun {
            run_id: run_id.clone(),
            runbook: "append-rate".into(),
            runbook_ref: "bench".into(),
            runbook_sha256: String::new(),
            inventory: "bench".into(),
            limit: None,
            params: Vec::new(),
            hosts: vec!["h1".into()],
            dry_run: false,
            actor: "bench".into(),
            os_user: "bench".into(),
            jump_host: "bench".into(),
            pid: std::process::id(),
            pid_start: None,
            started_ms: 0,
        })
        .expect("create the run");
    // A payload the size of a step's `step_applied` (a small result).
    let payload = serde_json::json!({ "result": { "changed": true, "stdout": "step-1", "stderr": "", "rc": 0 } });
    let mut took = Vec::with_capacity(n);
    let start = Instant::now();
    for i in 0..n {
        let t = Instant::now();
        journal
            .append(&NewEvent {
                run_id: run_id.clone(),
                time_ms: i as i64,
                actor: "bench".into(),
                host: Some("h1".into()),
                step: Some(format!("s{i}")),
                kind: "step_applied".into(),
                payload: payload.clone(),
            })
            .expect("append");
        took.push(t.elapsed());
    }
    let total = start.elapsed();
    took.sort();
    println!(
        "{n} events in {:.3} s: {:.0} events/s; one append: median {:.2} ms, p99 {:.2} ms",
        total.as_secs_f64(),
        n as f64 / total.as_secs_f64(),
        took[n / 2].as_secs_f64() * 1e3,
        took[n * 99 / 100].as_secs_f64() * 1e3
    );
}
