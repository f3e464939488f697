//! `infodisent train` (being written).

use super::Global;

/// Options of `infodisent train`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs the command.
pub fn run(_args: Args, _global: &Global) -> anyhow::Result<()> {
    anyhow::bail!("`train` is not implemented yet")
}
