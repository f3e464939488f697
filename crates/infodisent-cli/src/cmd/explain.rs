//! `infodisent explain` (being written).

use super::Global;

/// Options of `infodisent explain`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs the command.
pub fn run(_args: Args, _global: &Global) -> anyhow::Result<()> {
    anyhow::bail!("`explain` is not implemented yet")
}
