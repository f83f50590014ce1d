//! Turning the global options into what the engine binds: the inventory, the
//! params (`--param`, `--params-file`) and `--limit`.

use super::Global;
use remedy_dsl::{Diagnostic, Diagnostics, Source};
use remedy_engine::{Inventory, Request};

pub fn inventory(g: &Global) -> Result<Inventory, Diagnostics> {
    let path = inventory_path(g)?;
    load_inventory(&path)
}

/// Read and parse an inventory file.
pub fn load_inventory(path: &std::path::Path) -> Result<Inventory, Diagnostics> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Diagnostic::new(format!("cannot read inventory {}: {e}", path.display()))
            .with_hint("check the path given with --inventory / REMEDY_INVENTORY")
    })?;
    Inventory::parse(Source::new(path.display().to_string(), text))
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
            return Err(Diagnostic::new("`--inventory lab`: no lab is up")
                .with_hint("start one with `remedy lab up`")
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
        match std::fs::read_to_string(path) {
            Err(e) => diags.push(Diagnostic::new(format!(
                "cannot read params file {}: {e}",
                path.display()
            ))),
            Ok(text) => {
                let src = Source::new(path.display().to_string(), text);
                match remedy_dsl::yaml::parse(&src) {
                    Err(errs) => errs.into_iter().for_each(|d| diags.push(d)),
                    Ok(root) => match root.to_json() {
                        serde_json::Value::Object(m) => req.params_file = m,
                        _ => diags.push(Diagnostic::at(
                            &src,
                            root.span,
                            "a params file must be a mapping of param name to value",
                        )),
                    },
                }
            }
        }
    }
    diags.into_result(req)
}
