//! `infodisent bench extract`: pipeline vs engine-only throughput, GFLOP/s vs a GEMM peak.

use super::super::extract::PreprocessArgs;
use super::super::Global;
use infodisent::bench::extract::{bench_extract, ExtractBenchOptions};
use infodisent::dataset::Dataset;
use infodisent::extract::load_backbone;

/// Options of `infodisent bench extract`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Backbone: a built-in name or an .onnx file.
    #[arg(long, default_value = "efficientnet-lite0")]
    pub model: String,
    /// Dataset the images come from.
    #[arg(long, default_value = "fashion-mnist")]
    pub data: String,
    /// Split the images come from.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Number of images per pass (class-balanced).
    #[arg(long, default_value_t = 320)]
    pub images: usize,
    /// Images per engine call.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Decode/preprocess threads of the pipeline (default: one per core).
    #[arg(long, default_value_t = 0)]
    pub decode_threads: usize,
    /// Timed passes per mode (the best is reported).
    #[arg(long, default_value_t = 2)]
    pub repeats: usize,
    #[command(flatten)]
    pub preprocess: PreprocessArgs,
}

/// Runs the command.
pub fn run(args: Args, global: &Global) -> anyhow::Result<()> {
    let mut dataset = Dataset::open(&args.data)?;
    dataset.limit(None, Some(args.images));
    let samples = dataset.split(&args.split)?.samples.clone();
    let mut backbone = load_backbone(&args.model, None, global.threads(), |p| {
        args.preprocess.resolve(p)
    })?;
    let preprocess = backbone.model().preprocess.clone();
    let opts = ExtractBenchOptions {
        batch: args.batch,
        decode_threads: args.decode_threads,
        repeats: args.repeats,
        ..Default::default()
    };
    let r = bench_extract(&mut backbone, &samples, &preprocess, &opts)?;
    if global.json {
        return super::super::print_json(&r);
    }
    println!(
        "model        {} at {}×{}, batch {}, {} images of {} ({})",
        r.model, r.input_size, r.input_size, r.batch, r.images, args.data, args.split
    );
    println!(
        "threads      engine {}, decode {}",
        global.threads(),
        r.decode_threads
    );
    println!(
        "end-to-end   {:8.1} images/s (decode + preprocess + engine)",
        r.end_to_end_images_per_sec
    );
    println!(
        "engine only  {:8.1} images/s (preprocessed batches)",
        r.engine_images_per_sec
    );
    println!("ratio        {:8.3}", r.ratio);
    println!("compute      {:8.2} GFLOP/image, {:.1} GFLOP/s = {:.0}% of the f32 GEMM peak {:.1} GFLOP/s", r.gflop_per_image, r.engine_gflop_per_sec, 100.0 * r.fraction_of_gemm_peak, r.gemm_gflop_per_sec);
    if let Some(b) = r.peak_rss_bytes {
        println!("peak memory  {:.0} MiB", b as f64 / (1024.0 * 1024.0));
    }
    Ok(())
}
