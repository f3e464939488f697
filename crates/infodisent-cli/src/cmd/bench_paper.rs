//! `infodisent bench paper`: the paper's table on the user's own copy of CUB-200-2011,
//! Stanford Cars, Stanford Dogs or ImageNet, one row per backbone.

use super::super::Global;
use infodisent::ablate::format_report;
use infodisent::dataset::OpenOptions;
use infodisent_bench::paper::{format_markdown, run as run_paper, PaperRequest};
use std::path::PathBuf;

/// Options of `infodisent bench paper`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The dataset folder as its authors ship it (layout detected; see --layout).
    #[arg(long)]
    pub data: String,
    /// Backbones, one row each: built-in names or .onnx files (repeat the flag).
    #[arg(long = "model", required = true)]
    pub models: Vec<String>,
    /// Folder for each model's cache and heads and for `paper.json` and `paper.md`; every
    /// stage resumes, so a killed run continues where it stopped.
    #[arg(long)]
    pub out: PathBuf,
    /// Extract only the first N images of each class of each split (a quick look; the table
    /// then says how many test images it measured). `--limit-per-class` limits training only.
    #[arg(long, value_name = "N")]
    pub images_per_class: Option<usize>,
    #[command(flatten)]
    pub open: OpenOptions,
    /// The recipe the heads start from.
    #[command(flatten)]
    pub recipe: infodisent::train::TrainOverrides,
    #[command(flatten)]
    pub preprocess: super::super::args::PreprocessArgs,
}

/// Runs the command.
pub fn run(args: Args, global: &Global) -> anyhow::Result<()> {
    let base = args.recipe.config(None)?;
    base.validate()?;
    let models = args
        .models
        .iter()
        .map(|m| args.preprocess.spec(m, None, global))
        .collect();
    let request = PaperRequest {
        data: args.data,
        open: args.open,
        models,
        out: args.out.clone(),
        base,
        limit_per_class: args.images_per_class,
    };
    let rows = run_paper(&request)?;
    let markdown = format_markdown(&rows);
    infodisent::fsutil::write_json_atomic(args.out.join("paper.json"), &rows)?;
    infodisent::fsutil::write_atomic(args.out.join("paper.md"), markdown.as_bytes())?;
    if global.json {
        return super::super::print_json(&rows);
    }
    println!("cpu: {}", infodisent::cpu::Cpu::get().describe());
    for row in &rows {
        let report = infodisent::ablate::AblationReport {
            split: String::new(),
            images: row.test_images,
            rows: row.heads.clone(),
        };
        println!("{} on {} ({} classes)", row.model, row.layout, row.classes);
        print!("{}", format_report(&report));
    }
    print!("\n{markdown}");
    Ok(())
}
