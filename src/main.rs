//! The `tributary` binary: wires the runtime, the connectors and the CLI together.

mod cli;
mod client;
mod plugins;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::main()
}
