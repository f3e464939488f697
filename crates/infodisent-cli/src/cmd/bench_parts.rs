//! `infodisent bench parts`: prototype purity and explanation correctness of every recipe on
//! generated images whose classes are made of known parts.

use super::super::Global;
use infodisent::ablate::format_report;
use infodisent::synth::parts::PartsConfig;
use infodisent_bench::parts::bench_parts;
use std::path::PathBuf;

/// Options of `infodisent bench parts`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Folder for the generated images (`data/`), their features (`cache/`) and one training
    /// folder per recipe (`ablation/`); every stage resumes, `ablation.json` is written here.
    #[arg(long)]
    pub out: PathBuf,
    /// Backbone: a built-in name or an .onnx file.
    #[arg(long, default_value = "efficientnet-lite0")]
    pub model: String,
    /// Classes, each made of two of the six parts (2 to 6).
    #[arg(long, default_value_t = 4)]
    pub classes: usize,
    /// Training images per class.
    #[arg(long, default_value_t = 100)]
    pub train_per_class: usize,
    /// Test images per class.
    #[arg(long, default_value_t = 25)]
    pub test_per_class: usize,
    /// Side of each part in pixels (images are 224 px; at most 74 so three fit apart).
    #[arg(long, default_value_t = 72)]
    pub part_size: u32,
    /// Seed of the generated images (the recipe's --seed seeds training).
    #[arg(long, default_value_t = 0)]
    pub data_seed: u64,
    /// The recipe every variant starts from (one change per row).
    #[command(flatten)]
    pub recipe: infodisent::train::TrainOverrides,
    /// Which rows of the grid to train.
    #[command(flatten)]
    pub rows: super::super::ablate::Rows,
}

/// Runs the command.
pub fn run(args: Args, global: &Global) -> anyhow::Result<()> {
    let base = args.recipe.config(None)?;
    base.validate()?;
    let grid = args.rows.grid(&base)?;
    let data = PartsConfig {
        classes: args.classes,
        train_per_class: args.train_per_class,
        test_per_class: args.test_per_class,
        part_size: args.part_size,
        seed: args.data_seed,
        ..PartsConfig::default()
    };
    let report = bench_parts(
        &args.out,
        &data,
        &args.model,
        global.threads(),
        &base,
        &grid,
    )?;
    infodisent::fsutil::write_json_atomic(args.out.join("ablation.json"), &report)?;
    if global.json {
        return super::super::print_json(&report);
    }
    println!("cpu: {}", infodisent::cpu::Cpu::get().describe());
    print!("{}", format_report(&report));
    Ok(())
}
