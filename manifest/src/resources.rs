//! `resources.limits` / `resources.requests` values: set one (creating the
//! sections as needed, with the file's own indentation step), remove one
//! (and sections it empties).

use crate::parse::{Kind, Node};
use crate::render::{
    check_value, delete_lines, double_quoted, indent, insert_after, insert_before, plain_unsafe,
    reserved_word, value_looks_like_yaml, Edit,
};
use crate::{internal, Ctx, EditError};

/// `limits.memory` → (`limits`, `memory`). The resource name may itself hold
/// dots (`limits.nvidia.com/gpu`).
pub(crate) fn parse_resource_key(key: &str) -> Result<(&str, &str), EditError> {
    let bad = || EditError::BadResourceKey(key.to_string());
    let (section, name) = key.split_once('.').ok_or_else(bad)?;
    let name_ok = name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if matches!(section, "limits" | "requests") && name_ok {
        Ok((section, name))
    } else {
        Err(bad())
    }
}

/// Check `value` as Kubernetes parses a resource quantity
/// (`k8s.io/apimachinery/pkg/api/resource.ParseQuantity`): a decimal number
/// (`1`, `1.5`, `.5`, `5.`), then a binary suffix (`Ki` … `Ei`), a decimal
/// one (`n u m k M G T P E`) or an exponent (`e3`, `E-2`). Resource values
/// may not be negative, as the API server's validation says.
pub(crate) fn check_quantity(value: &str) -> Result<(), &'static str> {
    if value.is_empty() {
        return Err("a resource quantity cannot be empty");
    }
    let unsigned = match value.as_bytes()[0] {
        b'-' => return Err("a resource quantity cannot be negative"),
        b'+' => &value[1..],
        _ => value,
    };
    let digits = unsigned
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(unsigned.len());
    let (number, suffix) = unsigned.split_at(digits);
    let whole_and_fraction: Vec<&str> = number.split('.').collect();
    let number_ok =
        whole_and_fraction.len() <= 2 && whole_and_fraction.iter().any(|part| !part.is_empty());
    if !number_ok {
        return Err("a resource quantity starts with a number, e.g. 512Mi, 1.5, 250m");
    }
    let exponent_ok = |e: &str| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && e.chars().all(|c| c.is_ascii_digit())
    };
    let suffix_ok = matches!(
        suffix,
        "" | "Ki"
            | "Mi"
            | "Gi"
            | "Ti"
            | "Pi"
            | "Ei"
            | "n"
            | "u"
            | "m"
            | "k"
            | "M"
            | "G"
            | "T"
            | "P"
            | "E"
    ) || suffix.strip_prefix(['e', 'E']).is_some_and(exponent_ok);
    if suffix_ok {
        Ok(())
    } else {
        Err("not a Kubernetes quantity: after the number comes nothing, Ki Mi Gi Ti Pi Ei, n u m k M G T P E, or an exponent such as e3")
    }
}

pub(crate) fn set_resource(ctx: &Ctx, key: &str, value: &str) -> Result<Vec<Edit>, EditError> {
    let (section, resource) = parse_resource_key(key)?;
    check_value(key, value)?;
    // A quantity the kubelet cannot parse makes it reject the pod, taking the
    // component down; refuse it here rather than write it.
    if let Err(reason) = check_quantity(value) {
        return Err(EditError::BadValue {
            key: key.to_string(),
            value: value.to_string(),
            reason,
        });
    }
    let rendered = if plain_unsafe(value) || value_looks_like_yaml(value) || reserved_word(value) {
        double_quoted(value)
    } else {
        value.to_string()
    };
    let text = ctx.text;
    let step = ctx.step();
    let section_path = format!("resources.{section}");

    let Some((rk, rv)) = ctx.container.get("resources") else {
        let col = text.col(ctx.container.entries().first().map_or(0, |(k, _)| k.start));
        let lines = [
            format!("{}resources:", indent(col)),
            format!("{}{section}:", indent(col + step)),
            format!("{}{resource}: {rendered}", indent(col + 2 * step)),
        ];
        return insert_entry(ctx, "resources", ctx.container, "resources", &lines);
    };
    if rv.is_vacant() {
        let col = text.col(rk.start);
        let lines = [
            format!("{}{section}:", indent(col + step)),
            format!("{}{resource}: {rendered}", indent(col + 2 * step)),
        ];
        return fill_under_key(ctx, "resources", rk, rv, &lines);
    }
    if rv.flow {
        return Err(ctx.flow_error("resources", rv));
    }
    if !matches!(rv.kind, Kind::Map(_)) {
        return Err(ctx.shape_error("resources", rv, "a mapping"));
    }

    let Some((sk, sv)) = rv.get(section) else {
        let col = text.col(rv.start);
        let lines = [
            format!("{}{section}:", indent(col)),
            format!("{}{resource}: {rendered}", indent(col + step)),
        ];
        return insert_entry(ctx, "resources", rv, section, &lines);
    };
    if sv.is_vacant() {
        let lines = [format!(
            "{}{resource}: {rendered}",
            indent(text.col(sk.start) + step)
        )];
        return fill_under_key(ctx, &section_path, sk, sv, &lines);
    }
    if sv.flow {
        return Err(ctx.flow_error(&section_path, sv));
    }
    if !matches!(sv.kind, Kind::Map(_)) {
        return Err(ctx.shape_error(&section_path, sv, "a mapping"));
    }

    let entry_path = format!("resources.{key}");
    let Some((ek, ev)) = sv.get(resource) else {
        let lines = [format!(
            "{}{resource}: {rendered}",
            indent(text.col(sv.start))
        )];
        return insert_entry(ctx, &section_path, sv, resource, &lines);
    };
    match &ev.kind {
        Kind::Scalar { value: old, .. } if !ev.is_null() && old == value => Ok(Vec::new()),
        // `memory:` with nothing after it: the empty value sits at the key,
        // so write after the colon instead.
        Kind::Scalar { .. } if ev.end == ev.start => {
            let at = text.after_colon(ek.end).ok_or_else(|| EditError::Layout {
                what: format!("`{}`", ctx.path(&entry_path)),
                line: ctx.line(ek),
            })?;
            Ok(vec![Edit {
                start: at,
                end: at,
                text: format!(" {rendered}"),
            }])
        }
        Kind::Scalar { .. } => Ok(vec![Edit {
            start: ev.start,
            end: ev.end,
            text: rendered,
        }]),
        _ => Err(ctx.shape_error(&entry_path, ev, "a single value")),
    }
}

/// Add a key to a block mapping, as whole lines. Where the existing keys are
/// in alphabetical order (kubeadm writes them so) the new one goes in its
/// place; otherwise after the last entry.
pub(crate) fn insert_entry(
    ctx: &Ctx,
    map_path: &str,
    map: &Node,
    new_key: &str,
    lines: &[String],
) -> Result<Vec<Edit>, EditError> {
    let text = ctx.text;
    let entries = map.entries();
    let (last_k, last_v) = entries
        .last()
        .ok_or_else(|| internal(format!("`{map_path}` has no entries")))?;
    let keys: Option<Vec<&str>> = entries.iter().map(|(k, _)| k.str()).collect();
    let sorted_at = keys
        .filter(|keys| keys.windows(2).all(|w| w[0] <= w[1]))
        .and_then(|keys| keys.iter().position(|k| *k > new_key));
    let edit = match sorted_at {
        Some(0) => match entries.first() {
            Some((first, _)) if text.starts_line(first.start) => {
                // Comments right above the old first key describe it: go above them.
                let mut line = text.line_of(first.start);
                while line > 0 && text.is_comment_line(line - 1) {
                    line -= 1;
                }
                insert_before(text, line, lines)
            }
            // The first key shares its line with `- `: only appending is clean.
            _ => insert_after(text, text.entry_last_line(last_k, last_v), lines),
        },
        Some(i) => match entries.get(i - 1) {
            Some((k, v)) => insert_after(text, text.entry_last_line(k, v), lines),
            None => return Err(internal("sorted position out of range")),
        },
        None => insert_after(text, text.entry_last_line(last_k, last_v), lines),
    };
    Ok(vec![edit])
}

/// Give a key whose value is empty (`limits:`, `resources: {}`, `x: ~`) a
/// block mapping: drop the `{}`/`~`, keep any comment, add lines below.
pub(crate) fn fill_under_key(
    ctx: &Ctx,
    path: &str,
    key: &Node,
    value: &Node,
    lines: &[String],
) -> Result<Vec<Edit>, EditError> {
    let text = ctx.text;
    let after_colon = text.after_colon(key.end).ok_or_else(|| EditError::Layout {
        what: format!("`{}`", ctx.path(path)),
        line: ctx.line(key),
    })?;
    let mut edits = Vec::new();
    if value.end > value.start {
        if value.start < after_colon {
            return Err(internal(format!("value of `{path}` before its colon")));
        }
        edits.push(Edit {
            start: after_colon,
            end: value.end,
            text: String::new(),
        });
    }
    edits.push(insert_after(text, text.entry_last_line(key, value), lines));
    Ok(edits)
}

pub(crate) fn remove_resource(ctx: &Ctx, key: &str) -> Result<Vec<Edit>, EditError> {
    let (section, resource) = parse_resource_key(key)?;
    let text = ctx.text;
    let section_path = format!("resources.{section}");

    let Some((rk, rv)) = ctx.container.get("resources") else {
        return Ok(Vec::new());
    };
    if rv.is_vacant() {
        return Ok(Vec::new());
    }
    let in_flow = |map: &Node| {
        map.get(section)
            .is_some_and(|(_, s)| s.get(resource).is_some())
    };
    if rv.flow {
        return if in_flow(rv) {
            Err(ctx.flow_error("resources", rv))
        } else {
            Ok(Vec::new())
        };
    }
    if !matches!(rv.kind, Kind::Map(_)) {
        return Err(ctx.shape_error("resources", rv, "a mapping"));
    }
    let Some((sk, sv)) = rv.get(section) else {
        return Ok(Vec::new());
    };
    if sv.is_vacant() {
        return Ok(Vec::new());
    }
    if sv.flow {
        return if sv.get(resource).is_some() {
            Err(ctx.flow_error(&section_path, sv))
        } else {
            Ok(Vec::new())
        };
    }
    if !matches!(sv.kind, Kind::Map(_)) {
        return Err(ctx.shape_error(&section_path, sv, "a mapping"));
    }
    let Some((ek, ev)) = sv.get(resource) else {
        return Ok(Vec::new());
    };

    let layout = |node: &Node, what: &str| EditError::Layout {
        what: format!("`{}`", ctx.path(what)),
        line: ctx.line(node),
    };
    if sv.entries().len() > 1 {
        if !text.starts_line(ek.start) {
            return Err(layout(ek, &format!("resources.{key}")));
        }
        return Ok(vec![delete_lines(
            text,
            text.line_of(ek.start),
            text.entry_last_line(ek, ev),
        )]);
    }
    if !text.starts_line(sk.start) {
        return Err(layout(sk, &section_path));
    }
    if rv.entries().len() > 1 {
        return Ok(vec![delete_lines(
            text,
            text.line_of(sk.start),
            text.entry_last_line(sk, sv),
        )]);
    }
    // Nothing left under `resources:`: write `resources: {}` as kubeadm does,
    // rather than leave a bare `resources:` (null).
    let at = text
        .after_colon(rk.end)
        .ok_or_else(|| layout(rk, "resources"))?;
    Ok(vec![
        Edit {
            start: at,
            end: at,
            text: " {}".to_string(),
        },
        delete_lines(
            text,
            text.line_of(rk.start) + 1,
            text.entry_last_line(rk, rv),
        ),
    ])
}
