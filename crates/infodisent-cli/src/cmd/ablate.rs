//! `infodisent ablate`: one table of training recipes measured the same way on one cache.

use super::Global;
use infodisent::ablate::{
    format_report, run as run_ablation, select, standard_grid, standard_probes, Variant,
};
use infodisent::cache::FeatureCache;
use infodisent::metrics::MetricsOptions;
use infodisent::synth::parts::PartsTruth;
use infodisent::train::TrainConfig;
use std::path::PathBuf;

/// Options of `infodisent ablate`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Feature cache to train and measure on.
    #[arg(long)]
    pub cache: PathBuf,
    /// Folder with one training folder per variant (finished ones are reused, so a killed
    /// ablation resumes); `ablation.json` is written here.
    #[arg(long)]
    pub out: PathBuf,
    /// The recipe every variant starts from (one change per row).
    #[command(flatten)]
    pub recipe: infodisent::train::TrainOverrides,
    /// Which rows of the grid to train.
    #[command(flatten)]
    pub rows: Rows,
    /// Split measured (default: test, else val, else the only one).
    #[arg(long = "measure-split")]
    pub measure_split: Option<String>,
    /// Images stacked for the RV coefficient (class-balanced).
    #[arg(long, default_value_t = 1024)]
    pub rv_images: usize,
}

/// The grid's rows a run trains (the three probes always train: they are the baselines).
#[derive(clap::Args, Debug)]
pub struct Rows {
    /// Train only these recipes of the grid, by their folder name (repeat or separate by
    /// commas), e.g. `--only keep-top-5-sigmoid` for the default recipe alone; an unknown name
    /// lists the grid's.
    #[arg(long, value_delimiter = ',', value_name = "RECIPE")]
    pub only: Vec<String>,
}

impl Rows {
    /// The selected rows of the standard grid on `base`, each checked.
    pub fn grid(&self, base: &TrainConfig) -> anyhow::Result<Vec<Variant>> {
        let grid = select(standard_grid(base), &self.only)?;
        for v in &grid {
            v.config.validate()?;
        }
        Ok(grid)
    }
}

/// Runs the command.
pub fn run(args: Args, global: &Global) -> anyhow::Result<()> {
    let base = args.recipe.config(None)?;
    base.validate()?;
    let cache = FeatureCache::open(&args.cache)?;
    let split = super::chosen_split(&cache, args.measure_split.as_deref())?;
    let opts = MetricsOptions {
        split,
        rv_images: args.rv_images,
        ..MetricsOptions::default()
    };
    let mut rows = standard_probes(&base);
    rows.extend(args.rows.grid(&base)?);
    // A parts-benchmark dataset carries its ground truth: purity and correctness come with it.
    let parts = match cache.data_root() {
        Some(root) => PartsTruth::find(root)?,
        None => None,
    };
    let report = run_ablation(&cache, &rows, &args.out, &opts, parts.as_ref())?;
    infodisent::fsutil::write_json_atomic(args.out.join("ablation.json"), &report)?;
    if global.json {
        return super::print_json(&report);
    }
    print!("{}", format_report(&report));
    Ok(())
}
