//! `infodisent bench extract`: pipeline vs engine-only throughput, GFLOP/s vs a GEMM peak.

use super::super::args::{EngineArgs, PreprocessArgs};
use super::super::Global;
use infodisent::dataset::{Dataset, OpenOptions};
use infodisent::engine::Precision;
use infodisent_bench::extract::{
    bench_extract, write_photo_jpegs, ExtractBenchOptions, TorchReference,
};
use std::path::PathBuf;

/// Options of `infodisent bench extract`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Backbone: a built-in name or an .onnx file.
    #[arg(long, default_value = "efficientnet-lite0")]
    pub model: String,
    /// Dataset the images come from.
    #[arg(long, default_value = "fashion-mnist", conflicts_with = "jpegs")]
    pub data: String,
    /// Use --images JPEG photos (500 × 375, crops of the fetched asset photos) written into
    /// this folder (reused when already there) instead of --data.
    #[arg(long, value_name = "DIR")]
    pub jpegs: Option<PathBuf>,
    /// A Python with PyTorch, torchvision and timm (`.assets/python/bin/python` after
    /// `scripts/setup-python.sh`): time PyTorch eager on the same files in the same run
    /// (needs --jpegs or a folder dataset).
    #[arg(long, value_name = "PYTHON")]
    pub torch_python: Option<PathBuf>,
    /// The PyTorch model matching --model: `timm:<name>` or `torchvision:<name>` (default for
    /// the built-in Lite0: timm:tf_efficientnet_lite0).
    #[arg(long, value_name = "SOURCE:NAME")]
    pub torch_model: Option<String>,
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
    /// Also time every available engine at every precision (ONNX Runtime f32, OpenVINO f32
    /// and bf16), engine only and end to end, with each one's error against ONNX Runtime f32
    /// (and, with --torch-python, PyTorch under bf16 autocast).
    #[arg(long)]
    pub engines: bool,
    #[command(flatten)]
    pub preprocess: PreprocessArgs,
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// Runs the command.
pub fn run(args: Args, global: &Global) -> anyhow::Result<()> {
    let (data, split) = match &args.jpegs {
        Some(dir) => {
            write_photo_jpegs(dir, args.images, 0)?;
            (dir.display().to_string(), "all".to_owned())
        }
        None => (args.data.clone(), args.split.clone()),
    };
    // A benchmark times the folder as it is: no test split is held out of it.
    let whole = OpenOptions {
        test_fraction: 0.0,
        ..OpenOptions::default()
    };
    let mut dataset = Dataset::open_with(&data, &whole)?;
    dataset.limit(None, Some(args.images));
    let samples = dataset.split(&split)?.samples.clone();
    let torch = match &args.torch_python {
        Some(python) => {
            let model = match (&args.torch_model, args.model.as_str()) {
                (Some(m), _) => m.clone(),
                (None, "efficientnet-lite0") => "timm:tf_efficientnet_lite0".to_owned(),
                (None, other) => anyhow::bail!(
                    "--torch-model is needed to time PyTorch on `{other}` (timm:<name> or torchvision:<name>)"
                ),
            };
            Some(TorchReference {
                python: python.clone(),
                model,
            })
        }
        None => None,
    };
    // int8 is timed against the backbone as loaded, which is therefore the float one.
    let spec = args
        .engine
        .apply(args.preprocess.spec(&args.model, None, global));
    let int8 = spec.int8_images();
    let precision = match spec.precision {
        Precision::Int8 => Precision::F32,
        p => p,
    };
    let mut backbone = infodisent::backbone::BackboneSpec {
        int8: None,
        precision,
        ..spec
    }
    .load()?;
    let preprocess = backbone.model().preprocess.clone();
    let opts = ExtractBenchOptions {
        batch: args.batch,
        decode_threads: args.decode_threads,
        repeats: args.repeats,
        torch,
        int8_calibration: int8,
        engines: args.engines,
        ..Default::default()
    };
    let r = bench_extract(&mut backbone, &samples, &preprocess, &opts)?;
    if global.json {
        return super::super::print_json(&r);
    }
    println!(
        "model        {} at {}×{}, batch {}, {} images of {} ({})",
        r.model, r.input_size, r.input_size, r.batch, r.images, data, split
    );
    println!("cpu          {}", r.cpu.describe());
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
    let kernels = if r.int8.is_some() {
        " (integer kernels, which the f32 peak does not bound)"
    } else {
        ""
    };
    println!("compute      {:8.2} GFLOP/image, {:.1} GFLOP/s = {:.0}% of the f32 GEMM peak {:.1} GFLOP/s{kernels}", r.gflop_per_image, r.engine_gflop_per_sec, 100.0 * r.fraction_of_gemm_peak, r.gemm_gflop_per_sec);
    if let Some(b) = r.peak_rss_bytes {
        println!("peak memory  {:.0} MiB", b as f64 / (1024.0 * 1024.0));
    }
    if let Some(q) = &r.int8 {
        println!(
            "int8         {} layers on integer kernels, calibrated on {} images; f32 engine {:.1} images/s, int8 {:.2}× that",
            q.int8_layers,
            q.calibration_images,
            q.f32_engine_images_per_sec,
            r.engine_images_per_sec / q.f32_engine_images_per_sec
        );
        println!(
            "             error against f32 on {} other images: feature maps {:.2e}, pooled features {:.2e} (relative L2){}",
            q.compared_images,
            q.feature_relative_error,
            q.pooled_relative_error,
            q.top1_agreement
                .map(|a| format!(", original top-1 unchanged for {:.1} %", 100.0 * a))
                .unwrap_or_default()
        );
    }
    if !r.engines.is_empty() {
        println!("engines      engine-only   end-to-end   error vs ORT f32: features   logits");
    }
    for e in &r.engines {
        let name = format!("{:?} {:?}", e.engine, e.precision).to_lowercase();
        match &e.unavailable {
            Some(why) => println!("  {name:<16} unavailable: {why}"),
            None => println!(
                "  {name:<16} {:8.1} img/s {:8.1} img/s        {:.1e}          {}",
                e.engine_images_per_sec,
                e.end_to_end_images_per_sec,
                e.feature_relative_error,
                e.logits_relative_error
                    .map_or("-".to_owned(), |x| format!("{x:.1e}"))
            ),
        }
    }
    if let Some(t) = &r.torch {
        println!(
            "PyTorch      {:8.1} images/s decoding in process, {:.1} with DataLoader workers: end-to-end {:.2}× the better one",
            t.images_per_sec_in_process, t.images_per_sec_workers, t.speedup
        );
        if let Some(bf16) = t.images_per_sec_bf16_autocast {
            println!("             bf16 autocast {bf16:.1} images/s");
        }
        println!("             {}", t.detail);
    }
    Ok(())
}
