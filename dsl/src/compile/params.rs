//! `params:`: each parameter's type, default, `enum` and `required`, checked
//! against each other.

use super::*;

impl Checker {
    pub(super) fn params(&mut self, node: &Node) -> Vec<ParamSpec> {
        let Some(entries) = node.as_map() else {
            self.error(
                node.span,
                format!(
                    "`params` must be a mapping of name to spec, found {}",
                    node.type_name()
                ),
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for (key, spec) in entries {
            let Some(name) = key.as_str() else {
                self.error(key.span, "param names must be strings");
                continue;
            };
            if !is_identifier(name) {
                self.error_hint(
                    key.span,
                    format!("param name `{name}` cannot be used in Rhai as `params.{name}`"),
                    Some("use letters, digits and `_`, e.g. `threshold_days`".into()),
                );
            }
            // Shorthand: `name: int`.
            if let Some(ty_name) = spec.as_str() {
                if let Some(ty) = self.param_type(ty_name, spec.span) {
                    out.push(ParamSpec {
                        name: name.into(),
                        ty,
                        default: None,
                        choices: None,
                        required: true,
                        doc: String::new(),
                        span: key.span,
                    });
                }
                continue;
            }
            let what = format!("param `{name}`");
            let Some(fields) = self.mapping(spec, &what, PARAM_KEYS) else {
                continue;
            };
            let get = |k: &str| {
                fields
                    .iter()
                    .find(|(key, _)| key.as_str() == Some(k))
                    .map(|(_, v)| v)
            };
            let Some(ty_node) = get("type") else {
                self.error_hint(
                    key.span,
                    format!("{what} has no `type`"),
                    Some(format!("one of: {}", ParamType::NAMES.join(", "))),
                );
                continue;
            };
            let Some(ty) = self
                .string(ty_node, "`type`")
                .and_then(|t| self.param_type(&t, ty_node.span))
            else {
                continue;
            };
            let choices = get("enum").and_then(|n| {
                let Some(items) = n.as_seq() else {
                    self.error(
                        n.span,
                        format!("`enum` must be a list, found {}", n.type_name()),
                    );
                    return None;
                };
                let mut vals = Vec::new();
                for item in items {
                    match ty.check_json(&item.to_json()) {
                        Ok(v) => vals.push(v),
                        Err(e) => self.error(item.span, format!("enum value of {what}: {e}")),
                    }
                }
                Some(vals)
            });
            let default = get("default").and_then(|n| match ty.check_json(&n.to_json()) {
                Ok(v) => {
                    if let Some(ch) = &choices {
                        if !ch.contains(&v) {
                            self.error_hint(
                                n.span,
                                format!("default of {what} is not one of its `enum` values"),
                                Some(format!("allowed: {}", render_values(ch))),
                            );
                        }
                    }
                    Some(v)
                }
                Err(e) => {
                    self.error(n.span, format!("default of {what} has the wrong type: {e}"));
                    None
                }
            });
            let required = match get("required") {
                Some(n) => match n.kind {
                    NodeKind::Bool(b) => {
                        if b && get("default").is_some() {
                            self.error_hint(
                                n.span,
                                format!("{what} is `required` but has a default"),
                                Some("drop one: a param with a default is never missing".into()),
                            );
                        }
                        b
                    }
                    _ => {
                        self.error(
                            n.span,
                            format!("`required` must be true or false, found {}", n.type_name()),
                        );
                        false
                    }
                },
                None => get("default").is_none(),
            };
            let doc = get("doc").and_then(|n| n.scalar_text()).unwrap_or_default();
            out.push(ParamSpec {
                name: name.into(),
                ty,
                default,
                choices,
                required,
                doc,
                span: key.span,
            });
        }
        out
    }

    pub(super) fn param_type(&mut self, name: &str, span: Span) -> Option<ParamType> {
        let ty = ParamType::from_name(name);
        if ty.is_none() {
            let hint = did_you_mean(name, ParamType::NAMES)
                .unwrap_or_else(|| format!("one of: {}", ParamType::NAMES.join(", ")));
            self.error_hint(span, format!("unknown param type `{name}`"), Some(hint));
        }
        ty
    }
}
