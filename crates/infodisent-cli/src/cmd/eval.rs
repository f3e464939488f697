//! `infodisent eval` (being written).

use super::Global;

/// Options of `infodisent eval`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs the command.
pub fn run(_args: Args, _global: &Global) -> anyhow::Result<()> {
    anyhow::bail!("`eval` is not implemented yet")
}
