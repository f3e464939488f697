//! `infodisent bench train`: seconds and GFLOP/s of a training step, static and dynamic
//! rotation, against a GEMM peak and (with `--torch-python`) PyTorch in the same run.

use super::Global;
use infodisent_bench::train::{format_report, run as run_bench, BenchTrainConfig};

/// Options of `infodisent bench train`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Channel counts D to measure.
    #[arg(long, value_delimiter = ',', default_values_t = [1280usize, 2048])]
    pub dims: Vec<usize>,
    /// Images per step.
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    /// Classes of the synthetic task.
    #[arg(long, default_value_t = 200)]
    pub classes: usize,
    /// Timed steps per implementation.
    #[arg(long, default_value_t = 3)]
    pub steps: usize,
    /// Untimed steps before the timed ones, on both sides (a run's first steps are atypical:
    /// Adam's first updates make the dynamic rotation's first rebases costlier).
    #[arg(long, default_value_t = 8)]
    pub warmup: usize,
    /// Images per epoch for the s/epoch figure.
    #[arg(long, default_value_t = 60_000)]
    pub epoch_images: usize,
    /// Standard deviation of the entries of A (a trained head's scale).
    #[arg(long, default_value_t = 0.01)]
    pub a_scale: f64,
    /// A Python with PyTorch (e.g. `.assets/python/bin/python` after `scripts/setup-python.sh`):
    /// times the straightforward PyTorch step at the same shapes for the ratio.
    #[arg(long, value_name = "PYTHON")]
    pub torch_python: Option<std::path::PathBuf>,
}

/// Runs the command.
pub fn run(args: Args, global: &Global) -> anyhow::Result<()> {
    if args.dims.is_empty()
        || args.dims.contains(&0)
        || args.batch == 0
        || args.classes < 2
        || args.steps == 0
    {
        anyhow::bail!(infodisent::Error::Config(
            "--dims must be positive, --batch and --steps ≥ 1, --classes ≥ 2".into()
        ));
    }
    let cfg = BenchTrainConfig {
        dims: args.dims,
        batch: args.batch,
        classes: args.classes,
        steps: args.steps,
        warmup: args.warmup,
        epoch_images: args.epoch_images,
        a_scale: args.a_scale,
        torch_python: args.torch_python,
        ..BenchTrainConfig::default()
    };
    let report = run_bench(&cfg)?;
    if global.json {
        return crate::cmd::print_json(&report);
    }
    print!("{}", format_report(&report));
    Ok(())
}
