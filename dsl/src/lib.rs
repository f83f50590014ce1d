//! remedy-dsl: the runbook language. Text in, checked [`Runbook`] out.
//!
//! No I/O and no async here: the CLI reads files, this crate only checks them.
//! Everything the engine runs has passed [`compile`], which reports every
//! problem in a file at once with `file:line:col` and a caret.

pub mod action;
pub mod compile;
pub mod diagnostic;
pub mod expr;
pub mod param;
pub mod runbook;
pub mod schema;
pub mod source;
pub mod template;
pub mod yaml;

pub use action::{ActionKind, ArgKind};
pub use compile::compile;
pub use diagnostic::{Diagnostic, Diagnostics};
pub use expr::{Context, Expr};
pub use param::ParamType;
pub use runbook::*;
pub use source::{Source, Span};
pub use template::Template;
