//! `infodisent inspect` (being written).

use super::Global;

/// Options of `infodisent inspect`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs the command.
pub fn run(_args: Args, _global: &Global) -> anyhow::Result<()> {
    anyhow::bail!("`inspect` is not implemented yet")
}
