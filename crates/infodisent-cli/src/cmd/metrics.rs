//! `infodisent metrics` (being written).

use super::Global;

/// Options of `infodisent metrics`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs the command.
pub fn run(_args: Args, _global: &Global) -> anyhow::Result<()> {
    anyhow::bail!("`metrics` is not implemented yet")
}
