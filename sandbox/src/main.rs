use std::process::ExitCode;

use clap::Parser;

/// The product's allocator (see `mimalloc` in the workspace's
/// Cargo.toml), so that `bench probe` measures the engine as `orca` runs it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    orca_sandbox::cli::run(orca_sandbox::cli::Cli::parse())
}
