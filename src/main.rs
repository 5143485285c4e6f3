use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = orca::cli::Cli::parse();
    orca::cli::run(cli)
}
