//! The `tributary` binary: wires the runtime, the connectors and the CLI together.

mod cli;
mod client;
mod plugins;

use std::process::ExitCode;

/// mimalloc rather than glibc malloc: the pipeline allocates a record on one thread (a
/// source's reader task) and frees it on another (after encoding), which glibc serves with a
/// contended arena lock (see docs/decisions.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    cli::main()
}
