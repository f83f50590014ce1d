//! Checks for the static-pod manifest editor (remedy-manifest).
//!
//! An input is one line of operations, then the manifest text. The line is
//! `[@CONTAINER ]OP[;OP…]` with OP one of `+--flag=value` (set a flag),
//! `---flag` (remove it: `-` then the flag), `^limits.cpu=1` (set a
//! resource) and `_limits.cpu` (remove it); anything else is skipped. So
//! seeds are readable and the fuzzer mutates the operations and the text
//! together.
//!
//! Promises checked, beyond no panic: the editor never answers
//! `EditError::Internal` (its own read-back check failing means a splice went
//! wrong); applying the same operations to its output changes nothing; and a
//! flag set on the first container reads back with `flag_value` as set.
//!
//! Included by `manifest/tests/fuzz_regressions.rs`, so it may use only
//! `remedy_manifest` and std.

use remedy_manifest::{default_health_url, edit, flag_value, EditError, EditOp};

/// The operations line, parsed; tokens that are no operation are skipped.
fn ops(header: &str) -> (Option<String>, Vec<EditOp>) {
    let (container, rest) = match header.strip_prefix('@') {
        Some(r) => match r.split_once(' ') {
            Some((c, rest)) => (Some(c.to_string()), rest),
            None => (Some(r.to_string()), ""),
        },
        None => (None, header),
    };
    let ops = rest
        .split(';')
        .filter_map(|token| {
            let (kind, body) = token.split_at_checked(1)?;
            let pair = || {
                body.split_once('=')
                    .map(|(a, b)| (a.to_string(), b.to_string()))
            };
            Some(match kind {
                "+" => pair().map(|(name, value)| EditOp::SetFlag { name, value })?,
                "-" => EditOp::RemoveFlag {
                    name: body.to_string(),
                },
                "^" => pair().map(|(key, value)| EditOp::SetResource { key, value })?,
                "_" => EditOp::RemoveResource {
                    key: body.to_string(),
                },
                _ => return None,
            })
        })
        .collect();
    (container, ops)
}

/// Bytes as an operations line and a manifest, through the editor.
pub fn manifest(data: &[u8]) {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let (header, text) = input.split_once('\n').unwrap_or((input, ""));
    let (container, ops) = ops(header);
    for pod in [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "etcd",
    ] {
        let _ = default_health_url(pod, text);
    }
    let out = match edit(text, container.as_deref(), &ops) {
        Err(EditError::Internal(why)) => {
            panic!("the editor's read-back check failed: {why}\nops {ops:?}\nmanifest:\n{text}")
        }
        Err(_) => return,
        Ok(out) => out,
    };
    match edit(&out, container.as_deref(), &ops) {
        Ok(again) => assert_eq!(
            again, out,
            "applying {ops:?} a second time changed the text"
        ),
        Err(e) => panic!("applying {ops:?} to its own output failed: {e}\noutput:\n{out}"),
    }
    // flag_value reads `--name=` flags only (single-dash flags are legal to set).
    if let (None, [EditOp::SetFlag { name, value }]) = (&container, ops.as_slice()) {
        let Some(bare) = name.strip_prefix("--") else {
            return;
        };
        let read = flag_value(&out, bare);
        assert_eq!(
            read.as_deref(),
            Some(value.as_str()),
            "{name} after setting it\n{out}"
        );
    }
}
