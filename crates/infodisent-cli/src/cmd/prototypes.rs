//! `infodisent prototypes` (being written).

use super::Global;

/// Options of `infodisent prototypes`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs the command.
pub fn run(_args: Args, _global: &Global) -> anyhow::Result<()> {
    anyhow::bail!("`prototypes` is not implemented yet")
}
