//! The `remedy` binary: parse the command line, run the subcommand, exit with
//! the documented code. Everything else lives in `cli/` and the crates.

mod cli;

fn main() {
    std::process::exit(cli::main());
}
