use std::process::ExitCode;

use clap::Parser;
use orca::cli::plugin::{self, Invocation};

/// See `mimalloc` in Cargo.toml.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // `kubectl-orca` (and `orca kubectl ...`) is the kubectl plugin;
    // `kubectl_complete-orca` its completer.
    let (invocation, args) = plugin::invocation(&std::env::args_os().collect::<Vec<_>>());
    match invocation {
        Invocation::Plugin | Invocation::Complete => plugin::main(args),
        Invocation::Orca => orca::cli::run(orca::cli::Cli::parse_from(args)),
    }
}
