//! `infodisent demo` (being written).

use super::Global;

/// Options of `infodisent demo`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs the command.
pub fn run(_args: Args, _global: &Global) -> anyhow::Result<()> {
    anyhow::bail!("`demo` is not implemented yet")
}
