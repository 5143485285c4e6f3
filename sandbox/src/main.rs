use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    orca_sandbox::cli::run(orca_sandbox::cli::Cli::parse())
}
