//! Binding errors — params from the command line, targets, `--limit`, host
//! vars, the inventory itself — with the rendered message written out in full.

use remedy_dsl::{compile, Source};
use remedy_engine::{bind, Inventory, Request};

fn check(runbook: &str, inventory: &str, params: &[(&str, &str)], limit: Option<&str>) -> String {
    let rb = compile(Source::new("rb.yaml", runbook)).unwrap_or_else(|d| panic!("{d}"));
    let inv = match Inventory::parse(Source::new("inv.yaml", inventory)) {
        Ok(i) => i,
        Err(d) => return d.render(),
    };
    let req = Request {
        params: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        limit: limit.map(str::to_string),
        ..Request::default()
    };
    match bind(&rb, &inv, &req) {
        Ok(run) => format!(
            "ok: {}",
            run.hosts
                .iter()
                .map(|h| h.name.as_str())
                .collect::<Vec<_>>()
                .join(",")
        ),
        Err(d) => d.render(),
    }
}

#[track_caller]
fn assert_renders(actual: String, expected: &str) {
    if actual != expected {
        println!("ACTUAL-BEGIN\n{actual}ACTUAL-END");
    }
    assert_eq!(actual, expected);
}

const RUNBOOK: &str = r#"runbook: r
summary: s
targets: masters
params:
  threshold_days: { type: int, default: 30 }
  method: { type: string, default: auto, enum: [auto, kubeadm, native] }
  component: { type: string, doc: which static pod }
steps:
  - id: a
    action: shell
    with: { cmd: "ls ${host.vars.kube_dir} ${host.vars.etcd_dir}" }
"#;

const INVENTORY: &str = r#"vars: { etcd_dir: /var/lib/etcd }
hosts:
  master-1: { address: 10.0.0.11, groups: [masters, etcd] }
  master-2: { address: 10.0.0.12, groups: [masters, etcd] }
  lb-1: { address: 10.0.0.10, groups: [lbs] }
"#;

#[test]
fn param_of_the_wrong_type() {
    assert_renders(
        check(
            RUNBOOK,
            INVENTORY,
            &[("component", "etcd"), ("threshold_days", "thirty")],
            None,
        ),
        r#"error: --param threshold_days: `thirty` is not an int (expected e.g. 30)
  = hint: `threshold_days` is an int

1 error found; nothing was run.
"#,
    );
}

#[test]
fn missing_required_param() {
    assert_renders(
        check(RUNBOOK, INVENTORY, &[], None),
        r#"error: missing required param `component` (string)
  = hint: pass --param component=<string>  (which static pod)

1 error found; nothing was run.
"#,
    );
}

#[test]
fn unknown_param_suggests() {
    assert_renders(
        check(
            RUNBOOK,
            INVENTORY,
            &[("component", "etcd"), ("treshold_days", "5")],
            None,
        ),
        r#"error: --param treshold_days=5: unknown param `treshold_days`
  = hint: did you mean `threshold_days`?

1 error found; nothing was run.
"#,
    );
}

#[test]
fn param_not_in_enum() {
    assert_renders(
        check(
            RUNBOOK,
            INVENTORY,
            &[("component", "etcd"), ("method", "manual")],
            None,
        ),
        r#"error: param `method` = "manual" is not allowed
  = hint: one of: auto, kubeadm, native

1 error found; nothing was run.
"#,
    );
}

#[test]
fn unknown_target_group_suggests() {
    assert_renders(
        check(
            r#"runbook: r
summary: s
targets: mastrs
params:
  threshold_days: { type: int, default: 30 }
  method: { type: string, default: auto, enum: [auto, kubeadm, native] }
  component: { type: string, doc: which static pod }
steps:
  - id: a
    action: shell
    with: { cmd: "ls ${host.vars.kube_dir} ${host.vars.etcd_dir}" }
"#,
            INVENTORY,
            &[("component", "etcd")],
            None,
        ),
        r#"error: targets: no host or group `mastrs` in inventory inv.yaml; did you mean `masters`? (groups: masters, etcd, lbs; hosts: master-1, master-2, lb-1)
 --> rb.yaml:3:10
  |
3 | targets: mastrs
  |          ^^^^^^
  = hint: check the inventory passed with --inventory, or the pattern

1 error found; nothing was run.
"#,
    );
}

#[test]
fn unknown_limit_host() {
    assert_renders(
        check(
            RUNBOOK,
            INVENTORY,
            &[("component", "etcd")],
            Some("master-9"),
        ),
        r#"error: --limit: no host or group `master-9` in inventory inv.yaml; did you mean `master-2`? (groups: masters, etcd, lbs; hosts: master-1, master-2, lb-1)

1 error found; nothing was run.
"#,
    );
}

#[test]
fn limit_outside_targets() {
    assert_renders(
        check(RUNBOOK, INVENTORY, &[("component", "etcd")], Some("lb-1")),
        r#"error: --limit lb-1 leaves no host among the runbook's targets `masters`
  = hint: `masters` selects master-1, master-2; pick --limit from those

1 error found; nothing was run.
"#,
    );
}

#[test]
fn host_var_missing_on_some_hosts() {
    assert_renders(
        check(
            RUNBOOK,
            r#"hosts:
  master-1: { address: 10.0.0.11, groups: [masters, etcd], vars: { etcd_dir: /e } }
  master-2: { address: 10.0.0.12, groups: [masters, etcd] }
  lb-1: { address: 10.0.0.10, groups: [lbs] }
"#,
            &[("component", "etcd")],
            None,
        ),
        r#"error: host var `etcd_dir` is not set for master-2
  --> rb.yaml:11:56
   |
11 |     with: { cmd: "ls ${host.vars.kube_dir} ${host.vars.etcd_dir}" }
   |                                                        ^^^^^^^^
   = hint: set `etcd_dir` under `vars:` (all hosts), a group's `vars:`, or the host's `vars:` in the inventory

1 error found; nothing was run.
"#,
    );
}

#[test]
fn inventory_with_unknown_key_and_bad_port() {
    assert_renders(
        check(
            RUNBOOK,
            r#"hosts:
  master-1: { adress: 10.0.0.11, port: 99999, groups: [masters] }
"#,
            &[],
            None,
        ),
        r#"error: unknown key `adress` in host `master-1`
 --> inv.yaml:2:15
  |
2 |   master-1: { adress: 10.0.0.11, port: 99999, groups: [masters] }
  |               ^^^^^^
  = hint: did you mean `address`?

error: port of host `master-1` must be 1–65535, found `99999`
 --> inv.yaml:2:40
  |
2 |   master-1: { adress: 10.0.0.11, port: 99999, groups: [masters] }
  |                                        ^^^^^

2 errors found; nothing was run.
"#,
    );
}

#[test]
fn inventory_that_is_not_a_mapping() {
    assert_renders(
        check(
            RUNBOOK,
            r#"- master-1
- master-2
"#,
            &[],
            None,
        ),
        r#"error: an inventory must be a mapping, found a list
 --> inv.yaml:1:1
  |
1 | - master-1
  | ^
  = hint: see examples/ for the layout: `hosts:`, `groups:`, `vars:`

1 error found; nothing was run.
"#,
    );
}

#[test]
fn a_good_request_binds_the_targets_in_inventory_order() {
    assert_eq!(
        check(RUNBOOK, INVENTORY, &[("component", "etcd")], None),
        "ok: master-1,master-2"
    );
    assert_eq!(
        check(
            RUNBOOK,
            INVENTORY,
            &[("component", "etcd")],
            Some("master-2")
        ),
        "ok: master-2"
    );
}

#[test]
fn list_params_collect_every_value_and_keep_commas() {
    let rb = compile(Source::new("rb.yaml", "runbook: r\nsummary: s\ntargets: all\nparams:\n  set: { type: list, default: [--a=1] }\nsteps:\n  - id: a\n    action: shell\n    with: { cmd: \"true\" }\n")).unwrap();
    let inv = Inventory::parse(Source::new("inv.yaml", INVENTORY)).unwrap();
    let req = Request {
        params: vec![
            ("set".into(), "--admission-plugins=A,B".into()),
            ("set".into(), "--v=2".into()),
        ],
        ..Request::default()
    };
    let run = bind(&rb, &inv, &req).unwrap();
    assert_eq!(
        run.params["set"],
        serde_json::json!(["--admission-plugins=A,B", "--v=2"])
    );
}
