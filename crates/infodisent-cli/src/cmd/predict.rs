//! `infodisent predict` (being written).

use super::Global;

/// Options of `infodisent predict`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs the command.
pub fn run(_args: Args, _global: &Global) -> anyhow::Result<()> {
    anyhow::bail!("`predict` is not implemented yet")
}
