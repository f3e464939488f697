//! `infodisent demo`: the whole pipeline on the default model and data.

use super::Global;
use infodisent::pipeline::{self, PipelineConfig};
use std::path::PathBuf;

/// Options of `infodisent demo`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Output folder: cache, heads, metrics, report (an interrupted run resumes from it).
    #[arg(long, default_value = "runs/demo")]
    out: PathBuf,
    /// Backbone: a built-in name (efficientnet-lite0/1/2) or an .onnx file.
    #[arg(long, default_value = "efficientnet-lite0")]
    model: String,
    /// Dataset: an ImageFolder path or `fashion-mnist`.
    #[arg(long, default_value = "fashion-mnist")]
    data: String,
    /// Training images per class (0: all).
    #[arg(long, default_value_t = 100)]
    train_per_class: usize,
    /// Test images per class (0: all).
    #[arg(long, default_value_t = 50)]
    test_per_class: usize,
    /// Training epochs of both heads (default: chosen by steps, as `train` chooses them).
    #[arg(long)]
    epochs: Option<usize>,
    /// Skip the mutual-information stage.
    #[arg(long)]
    no_mi: bool,
}

/// Runs the command.
pub fn run(args: Args, global: &Global) -> anyhow::Result<()> {
    let mut cfg = PipelineConfig::demo(&args.out, global.threads());
    cfg.model = args.model;
    cfg.data = args.data;
    cfg.train_per_class = (args.train_per_class > 0).then_some(args.train_per_class);
    cfg.test_per_class = (args.test_per_class > 0).then_some(args.test_per_class);
    cfg.train.epochs = args.epochs;
    if args.no_mi {
        cfg.mi = None;
    }
    let summary = pipeline::run(&cfg)?;
    if global.json {
        return super::print_json(&summary);
    }
    println!("top-1 on the test split:");
    for (name, acc) in &summary.accuracy {
        match acc {
            Some(a) => println!("  {name:<22} {:6.2}%", 100.0 * a),
            None => println!("  {name:<22}      -   (not applicable)"),
        }
    }
    println!("stages:");
    for (stage, s) in &summary.seconds {
        println!("  {stage:<22} {s:7.1} s");
    }
    println!("report: {}", summary.report.display());
    Ok(())
}
