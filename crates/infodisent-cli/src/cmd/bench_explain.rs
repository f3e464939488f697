//! `infodisent bench explain` (being written).

use super::Global;

/// Options of `infodisent bench explain`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs the command.
pub fn run(_args: Args, _global: &Global) -> anyhow::Result<()> {
    anyhow::bail!("`bench explain` is not implemented yet")
}
