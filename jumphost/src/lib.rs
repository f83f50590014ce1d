//! remedy-jumphost: facts about the machine remedy itself runs on — a jump
//! host, a laptop, the daemon's server, the lab's machine — as opposed to the
//! hosts it repairs (those are reached through `remedy-transport`).
//!
//! - [`process`]: whether a recorded process still runs and is still the same
//!   one (pid + kernel start time from `/proc/<pid>/stat`), for the journal's
//!   run records and locks and the lab's pid files.
//! - [`home`]: `~/` in paths the user writes (SSH settings, secret files).
//!
//! It must not depend on any other remedy crate: the journal, the transports,
//! chatops and the lab all build on it.

pub mod home;
pub mod process;

pub use home::expand_home;
pub use process::{process_alive, process_start, running_start};
