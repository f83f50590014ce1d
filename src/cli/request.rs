//! Turning the global options into what the engine binds: the inventory, the
//! params (`--param`, `--params-file`) and `--limit`.

use super::{input, Global};
use remedy_dsl::{Diagnostic, Diagnostics};
use remedy_engine::{Inventory, Request};

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

/// The inventory file `--inventory` names (`lab`: the default lab's).
pub fn inventory_path(g: &Global) -> Result<std::path::PathBuf, Diagnostics> {
    let Some(path) = &g.inventory else {
        return Err(Diagnostic::new("no inventory given").with_hint("pass --inventory PATH (or set REMEDY_INVENTORY); examples/ has inventories to start from").into());
    };
    // `--inventory lab`: the default lab's inventory (unless a file `lab` exists here).
    let lab_inventory;
    let path = if path.as_os_str() == "lab" && !path.is_file() {
        lab_inventory = remedy_lab::layout::default_dir().join("inventory.yaml");
        if !lab_inventory.exists() {
            return Err(Diagnostic::new(format!(
                "`--inventory lab`: no lab is up in the default directory {}",
                remedy_lab::layout::default_dir().display()
            ))
            .with_hint("a lab started with `remedy lab up --dir DIR` is used with `--inventory DIR/inventory.yaml`; or start one here with `remedy lab up`")
            .into());
        }
        &lab_inventory
    } else {
        path
    };
    Ok(path.clone())
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
