//! `infodisent mi` (being written).

use super::Global;

/// Mutual-information subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum MiCommand {
    /// Train the mask and critic on cached features.
    Train,
    /// Draw total, decision-related and redundant maps for images.
    Explain,
}

/// Runs the command.
pub fn run(_cmd: MiCommand, _global: &Global) -> anyhow::Result<()> {
    anyhow::bail!("`mi` is not implemented yet")
}
