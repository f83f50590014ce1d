//! Turning the options into what the engine binds: the inventory (given, or
//! found in the default places), the params (`--param`, `--params-file`)
//! and `--limit`.

use super::{input, Global};
use remedy_dsl::{Diagnostic, Diagnostics};
use remedy_engine::{Inventory, Request};
use std::path::PathBuf;

pub fn inventory(g: &Global) -> Result<Inventory, Diagnostics> {
    let path = inventory_path(g)?;
    load_inventory(&path)
}

/// Read and parse an inventory file.
pub fn load_inventory(path: &std::path::Path) -> Result<Inventory, Diagnostics> {
    let source = input::read(path, "inventory").map_err(|d| match d.source {
        // Not read at all: the path is what to check.
        None => d.with_hint("check the path given with --inventory / REMEDY_INVENTORY"),
        Some(_) => d,
    })?;
    Inventory::parse(source)
}

/// The inventory file to use, saying on stderr which one when it was not
/// given with `--inventory` (see [`find_inventory`]).
pub fn inventory_path(g: &Global) -> Result<PathBuf, Diagnostics> {
    let (path, how) = find_inventory(g)?;
    if let Some(how) = how {
        eprintln!(
            "remedy: inventory {} ({how}; -i PATH to use another)",
            path.display()
        );
    }
    Ok(path)
}

/// Where an inventory is looked for without `--inventory`, after
/// `REMEDY_INVENTORY`: the first of these that exists.
pub fn default_inventory_places() -> Vec<(PathBuf, &'static str)> {
    let mut places = vec![(
        PathBuf::from("./inventory.yaml"),
        "in the current directory",
    )];
    let config_home = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".config"))
        });
    if let Some(dir) = config_home {
        places.push((dir.join("remedy/inventory.yaml"), "your default"));
    }
    places.push((
        PathBuf::from("/etc/remedy/inventory.yaml"),
        "this jump host's default",
    ));
    places
}

/// The inventory file: `--inventory` (`lab`: the default lab's), else
/// `REMEDY_INVENTORY`, else the first of [`default_inventory_places`] that
/// exists. The second value says how it was found when it was not given
/// with `--inventory`.
pub fn find_inventory(g: &Global) -> Result<(PathBuf, Option<String>), Diagnostics> {
    let (path, how) = match &g.inventory {
        Some(p) => (p.clone(), None),
        None => match std::env::var_os("REMEDY_INVENTORY").filter(|v| !v.is_empty()) {
            Some(p) => (PathBuf::from(p), Some("from REMEDY_INVENTORY".to_string())),
            None => {
                let places = default_inventory_places();
                match places.iter().find(|(p, _)| p.is_file()) {
                    Some((p, how)) => return Ok((p.clone(), Some(how.to_string()))),
                    None => {
                        let searched: Vec<String> = places
                            .iter()
                            .map(|(p, _)| p.display().to_string())
                            .collect();
                        return Err(Diagnostic::new("no inventory given")
                            .with_hint(format!(
                                "pass --inventory PATH (or set REMEDY_INVENTORY); none was found in {}; examples/ has inventories to start from",
                                searched.join(", ")
                            ))
                            .into());
                    }
                }
            }
        },
    };
    // `--inventory lab`: the default lab's inventory (unless a file `lab` exists here).
    if path.as_os_str() == "lab" && !path.is_file() {
        let lab_inventory = remedy_lab::layout::default_dir().join("inventory.yaml");
        if !lab_inventory.exists() {
            return Err(Diagnostic::new(format!(
                "`--inventory lab`: no lab is up in the default directory {}",
                remedy_lab::layout::default_dir().display()
            ))
            .with_hint("a lab started with `remedy lab up --dir DIR` is used with `--inventory DIR/inventory.yaml`; or start one here with `remedy lab up`")
            .into());
        }
        return Ok((lab_inventory, how));
    }
    Ok((path, how))
}

/// Whether an inventory was named (`--inventory` or `REMEDY_INVENTORY`),
/// for commands that check one only when asked to.
pub fn inventory_named(g: &Global) -> bool {
    g.inventory.is_some() || std::env::var_os("REMEDY_INVENTORY").is_some_and(|v| !v.is_empty())
}

pub fn request(g: &Global) -> Result<Request, Diagnostics> {
    let mut diags = Diagnostics::default();
    let mut req = Request {
        limit: g.limit.clone(),
        ..Request::default()
    };
    for p in &g.params {
        match p.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                req.params.push((k.trim().to_string(), v.to_string()))
            }
            _ => diags.push(
                Diagnostic::new(format!("--param {p}: expected NAME=VALUE"))
                    .with_hint("e.g. --param threshold_days=30"),
            ),
        }
    }
    if let Some(path) = &g.params_file {
        match input::read(path, "params file") {
            Err(d) => diags.push(d),
            Ok(src) => match remedy_dsl::yaml::parse(&src) {
                Err(errs) => errs.into_iter().for_each(|d| diags.push(d)),
                Ok(root) => match root.to_json() {
                    serde_json::Value::Object(m) => req.params_file = m,
                    _ => diags.push(Diagnostic::at(
                        &src,
                        root.span,
                        "a params file must be a mapping of param name to value",
                    )),
                },
            },
        }
    }
    diags.into_result(req)
}
