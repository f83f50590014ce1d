//! Container flags (`--name=value` items of `command` or `args`): set one,
//! replacing its item or appending a line; remove every occurrence.

use crate::parse::{is_item_prefix, Node};
use crate::render::{
    check_value, delete_lines, double_quoted, insert_after, plain_unsafe, value_looks_like_yaml,
    Edit,
};
use crate::{internal, Ctx, EditError};

pub(crate) fn check_flag_name(name: &str) -> Result<(), EditError> {
    let bare = name.trim_start_matches('-');
    let ok = name.starts_with('-')
        && !bare.is_empty()
        && bare
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(EditError::BadFlagName(name.to_string()))
    }
}

pub(crate) fn flag_matches(item: &Node, name: &str) -> bool {
    item.str().is_some_and(|v| {
        v == name
            || v.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('='))
    })
}

pub(crate) fn set_flag(ctx: &Ctx, name: &str, value: &str) -> Result<Vec<Edit>, EditError> {
    check_flag_name(name)?;
    check_value(name, value)?;
    let item = format!("{name}={value}");
    let rendered = if value_looks_like_yaml(value) || plain_unsafe(&item) {
        double_quoted(&item)
    } else {
        item.clone()
    };
    let command = ctx.block_list("command")?;
    let args = ctx.block_list("args")?;
    let found: Vec<&Node> = command
        .into_iter()
        .chain(args)
        .flat_map(Node::items)
        .filter(|i| flag_matches(i, name))
        .collect();
    match found.as_slice() {
        [] => {
            let (list_key, list) = match (command, args) {
                (Some(c), _) => ("command", c),
                (None, Some(a)) => ("args", a),
                (None, None) => {
                    return Err(EditError::NoCommandList {
                        container: ctx.name.clone(),
                        flag: name.to_string(),
                    })
                }
            };
            let last = list
                .items()
                .last()
                .ok_or_else(|| internal("block list without items"))?;
            // Copy the existing items' `    - ` exactly. Taken from the last
            // item that has nothing else before its value (an anchor, a tag
            // or a block scalar's `|` would make its own line misleading).
            let prefix = list
                .items()
                .iter()
                .rev()
                .map(|i| ctx.text.prefix(i.start))
                .find(|p| is_item_prefix(p))
                .ok_or_else(|| EditError::Layout {
                    what: format!("the items of `{}`", ctx.path(list_key)),
                    line: ctx.line(last),
                })?;
            Ok(vec![insert_after(
                ctx.text,
                ctx.text.last_line(last),
                &[format!("{prefix}{rendered}")],
            )])
        }
        [existing] if existing.str() == Some(item.as_str()) => Ok(Vec::new()),
        [existing] => Ok(vec![Edit {
            start: existing.start,
            end: existing.end,
            text: rendered,
        }]),
        several => Err(EditError::DuplicateFlag {
            name: name.to_string(),
            container: ctx.name.clone(),
            lines: several.iter().map(|n| ctx.line(n)).collect(),
        }),
    }
}

pub(crate) fn remove_flag(ctx: &Ctx, name: &str) -> Result<Vec<Edit>, EditError> {
    check_flag_name(name)?;
    let mut edits = Vec::new();
    for key in ["command", "args"] {
        // A flow list without the flag needs no edit, so is no reason to fail.
        if let Some((_, v)) = ctx.container.get(key) {
            if v.flow && !v.items().iter().any(|i| flag_matches(i, name)) {
                continue;
            }
        }
        let Some(list) = ctx.block_list(key)? else {
            continue;
        };
        let doomed: Vec<&Node> = list
            .items()
            .iter()
            .filter(|i| flag_matches(i, name))
            .collect();
        if !doomed.is_empty() && doomed.len() == list.items().len() {
            // `args` holding only this flag: drop the whole `args:` entry. An
            // emptied `command` would make the container run its image's
            // entrypoint instead — not something to do as a side effect.
            if let Some((k, _)) = ctx.container.get(key) {
                if key == "args" && ctx.text.starts_line(k.start) {
                    edits.push(delete_lines(
                        ctx.text,
                        ctx.text.line_of(k.start),
                        ctx.text.last_line(list),
                    ));
                    continue;
                }
            }
            return Err(EditError::WouldEmptyList {
                flag: name.to_string(),
                list: key.to_string(),
                container: ctx.name.clone(),
            });
        }
        for item in doomed {
            if !is_item_prefix(ctx.text.prefix(item.start)) {
                return Err(EditError::Layout {
                    what: format!("the `{name}` item of `{}`", ctx.path(key)),
                    line: ctx.line(item),
                });
            }
            edits.push(delete_lines(
                ctx.text,
                ctx.text.line_of(item.start),
                ctx.text.last_line(item),
            ));
        }
    }
    Ok(edits)
}
