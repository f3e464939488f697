//! `infodisent predict`: the original model's top classes for images.

use super::args::{EngineArgs, PreprocessArgs};
use super::Global;
use infodisent::predict::predict_files;
use std::path::PathBuf;

/// Options of `infodisent predict`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Image files to classify.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// Backbone: a built-in name (efficientnet-lite0, -lite1, -lite2) or an .onnx file.
    #[arg(long, default_value = "efficientnet-lite0")]
    pub model: String,
    /// Number of classes to show per image.
    #[arg(long, default_value_t = 5)]
    pub top: usize,
    /// Skip unreadable images with a warning instead of failing.
    #[arg(long)]
    pub skip_bad: bool,
    #[command(flatten)]
    pub preprocess: PreprocessArgs,
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// Runs the command.
pub fn run(args: Args, global: &Global) -> anyhow::Result<()> {
    let spec = args.preprocess.spec(&args.model, None, global);
    let mut backbone = args.engine.apply(spec).load()?;
    let preprocess = backbone.model().preprocess.clone();
    let (predictions, _skipped) = predict_files(
        &mut backbone,
        &args.images,
        &preprocess,
        args.top,
        args.skip_bad,
    )?;
    if global.json {
        return super::print_json(&predictions);
    }
    for p in &predictions {
        println!("{}", p.path);
        for t in &p.top {
            println!("  {:6.2}%  {:>5}  {}", 100.0 * t.prob, t.class, t.label);
        }
    }
    Ok(())
}
