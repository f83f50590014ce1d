//! The `remedy` binary: parse the command line, run the subcommand, exit with
//! the documented code. Everything else lives in `cli/` and the crates.

mod cli;

fn main() {
    // Both ring and aws-lc-rs are in the tree: without a process default,
    // a rustls user that asks for one (kube-rs) panics.
    remedy_k8s::install_crypto_provider();
    std::process::exit(cli::main());
}
