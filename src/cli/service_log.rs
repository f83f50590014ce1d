//! The log of the long-running commands (`remedy daemon`, `remedy serve`):
//! `tracing` events on stderr, filtered by `RUST_LOG` (default `info`), as
//! text or one JSON object per line (`--log-format json`).
//!
//! `RUST_LOG` takes a level and per-target levels (`debug`,
//! `remedy=debug,warn`) — `tracing_subscriber`'s `Targets`, not its
//! `EnvFilter`: span and field matching is not worth its size in the binary
//! (issue 17) for two processes with a handful of log lines.
//!
//! Text is journald-friendly by default: no colours unless stderr is a
//! terminal, and no timestamps when systemd runs the process (it sets
//! `JOURNAL_STREAM`) — the journal stamps every line itself.

use clap::{Args, ValueEnum};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// The log flags of `remedy daemon` and `remedy serve`.
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Log lines as text or as JSON objects (for a log shipper). The level
    /// and targets come from RUST_LOG (e.g. `debug`, `remedy=info,warn`).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "REMEDY_LOG_FORMAT")]
    pub log_format: LogFormat,
}

/// Install the process's log subscriber. A RUST_LOG that does not parse is
/// reported and `info` is used.
pub fn init(args: &LogArgs) {
    use std::io::IsTerminal;
    let info = || Targets::new().with_default(tracing::Level::INFO);
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => spec.parse::<Targets>().unwrap_or_else(|e| {
            eprintln!("warning: RUST_LOG=`{spec}` is not a log filter ({e}); logging at info\n  = hint: a level, or TARGET=LEVEL pairs: RUST_LOG=debug, RUST_LOG=remedy=debug,warn");
            info()
        }),
        _ => info(),
    };
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false);
    let registry = tracing_subscriber::registry().with(filter);
    let result = match args.log_format {
        LogFormat::Json => registry.with(fmt.json().flatten_event(true)).try_init(),
        LogFormat::Text => {
            let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            let fmt = fmt.with_ansi(colour);
            if std::env::var_os("JOURNAL_STREAM").is_some() {
                registry.with(fmt.without_time()).try_init()
            } else {
                registry.with(fmt).try_init()
            }
        }
    };
    // Only a second init in one process fails; the first one stays.
    let _ = result;
}
