//! `infodisent report`: a static HTML report that opens from disk.

use super::Global;
use infodisent::report::{build, ReportOptions, ReportSources};
use std::path::PathBuf;

/// Options of `infodisent report`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    trained: super::args::HeadArgs,
    #[command(flatten)]
    baseline: super::args::ProbeArg,
    /// Mutual-information folder (output of `infodisent mi train`).
    #[arg(long)]
    mi: Option<PathBuf>,
    /// `metrics.json` written by `infodisent metrics` (computed from the cache when absent).
    #[arg(long)]
    metrics: Option<PathBuf>,
    /// Report folder; open `index.html` in it.
    #[arg(long, short)]
    out: PathBuf,
    /// Split summarised and sampled (default: test, else val, else the only one).
    #[arg(long)]
    split: Option<String>,
    /// Images with a full explanation.
    #[arg(long, default_value_t = 24)]
    sample: usize,
}

/// Runs the command.
pub fn run(args: Args, global: &Global) -> anyhow::Result<()> {
    let cache = args.trained.open_cache()?;
    let metrics = args
        .metrics
        .as_ref()
        .map(infodisent::fsutil::read_json)
        .transpose()?;
    let split = super::chosen_split(&cache, args.split.as_deref())?;
    let sources = ReportSources {
        cache: &cache,
        head_dir: &args.trained.head,
        probe_dir: args.baseline.probe.as_deref(),
        mi_dir: args.mi.as_deref(),
        metrics,
    };
    let opts = ReportOptions {
        split,
        sample_images: args.sample,
        ..ReportOptions::default()
    };
    let summary = build(&sources, &opts, &args.out)?;
    if global.json {
        return super::print_json(&summary);
    }
    println!(
        "report with {} pages over {} images: {}",
        summary.pages,
        summary.images,
        summary.index.display()
    );
    Ok(())
}
