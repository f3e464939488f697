//! `infodisent extract` (being written).

use super::Global;

/// Options of `infodisent extract`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs the command.
pub fn run(_args: Args, _global: &Global) -> anyhow::Result<()> {
    anyhow::bail!("`extract` is not implemented yet")
}
