//! The expected result, as values: the op applied to the parsed tree. The
//! self-check in `apply_one` compares the re-parsed output against it, so a
//! splice that does anything else is refused instead of returned.

use crate::flags::flag_matches;
use crate::parse::{Kind, Node};
use crate::resources::parse_resource_key;
use crate::{internal, EditError, EditOp};

// The expected result, as values: the self-check compares the re-parsed
// output against this.

pub(crate) fn get_mut<'n>(node: &'n mut Node, key: &str) -> Option<&'n mut Node> {
    match &mut node.kind {
        Kind::Map(entries) => entries
            .iter_mut()
            .find(|(k, _)| k.str() == Some(key))
            .map(|(_, v)| v),
        _ => None,
    }
}

/// The mapping under `key`, created (or turned from null/`{}` into a mapping)
/// if needed.
pub(crate) fn child_map<'n>(node: &'n mut Node, key: &str) -> Result<&'n mut Node, EditError> {
    let Kind::Map(entries) = &mut node.kind else {
        return Err(internal(format!("`{key}`'s parent is not a mapping")));
    };
    let pos = match entries.iter().position(|(k, _)| k.str() == Some(key)) {
        Some(p) => p,
        None => {
            entries.push((Node::scalar(key), Node::synthetic(Kind::Map(Vec::new()))));
            entries.len() - 1
        }
    };
    let (_, value) = entries
        .get_mut(pos)
        .ok_or_else(|| internal("entry vanished"))?;
    if value.is_null() {
        *value = Node::synthetic(Kind::Map(Vec::new()));
    }
    Ok(value)
}

pub(crate) fn expect(root: &mut Node, index: usize, op: &EditOp) -> Result<(), EditError> {
    let container = get_mut(root, "spec")
        .and_then(|s| get_mut(s, "containers"))
        .and_then(|c| match &mut c.kind {
            Kind::Seq(items) => items.get_mut(index),
            _ => None,
        })
        .ok_or_else(|| internal("container not found in the expected-value model"))?;
    match op {
        EditOp::SetFlag { name, value } => {
            let item = format!("{name}={value}");
            let mut found = false;
            for key in ["command", "args"] {
                if let Some(Node {
                    kind: Kind::Seq(items),
                    ..
                }) = get_mut(container, key)
                {
                    for i in items.iter_mut().filter(|i| flag_matches(i, name)) {
                        *i = Node::scalar(&item);
                        found = true;
                    }
                }
            }
            if !found {
                let list = ["command", "args"]
                    .into_iter()
                    .find(|k| {
                        container
                            .get(k)
                            .is_some_and(|(_, v)| matches!(v.kind, Kind::Seq(_)))
                    })
                    .and_then(|k| get_mut(container, k));
                match list {
                    Some(Node {
                        kind: Kind::Seq(items),
                        ..
                    }) => items.push(Node::scalar(&item)),
                    _ => return Err(internal("no list to append the flag to")),
                }
            }
        }
        EditOp::RemoveFlag { name } => {
            for key in ["command", "args"] {
                if let Some(Node {
                    kind: Kind::Seq(items),
                    ..
                }) = get_mut(container, key)
                {
                    let before = items.len();
                    items.retain(|i| !flag_matches(i, name));
                    if key == "args" && before > 0 && items.is_empty() {
                        if let Kind::Map(entries) = &mut container.kind {
                            entries.retain(|(k, _)| k.str() != Some("args"));
                        }
                    }
                }
            }
        }
        EditOp::SetResource { key, value } => {
            let (section, resource) = parse_resource_key(key)?;
            let resources = child_map(container, "resources")?;
            let section = child_map(resources, section)?;
            let Kind::Map(entries) = &mut section.kind else {
                return Err(internal("section is not a mapping"));
            };
            match entries.iter_mut().find(|(k, _)| k.str() == Some(resource)) {
                Some((_, v)) => *v = Node::scalar(value),
                None => entries.push((Node::scalar(resource), Node::scalar(value))),
            }
        }
        EditOp::RemoveResource { key } => {
            let (section, resource) = parse_resource_key(key)?;
            let Some(Node {
                kind: Kind::Map(sections),
                ..
            }) = get_mut(container, "resources")
            else {
                return Ok(());
            };
            let mut emptied = false;
            if let Some((
                _,
                Node {
                    kind: Kind::Map(entries),
                    ..
                },
            )) = sections.iter_mut().find(|(k, _)| k.str() == Some(section))
            {
                let before = entries.len();
                entries.retain(|(k, _)| k.str() != Some(resource));
                emptied = entries.is_empty() && before > 0;
            }
            if emptied {
                sections.retain(|(k, _)| k.str() != Some(section));
            }
        }
    }
    Ok(())
}
