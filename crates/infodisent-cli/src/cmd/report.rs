//! `infodisent report` (being written).

use super::Global;

/// Options of `infodisent report`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs the command.
pub fn run(_args: Args, _global: &Global) -> anyhow::Result<()> {
    anyhow::bail!("`report` is not implemented yet")
}
