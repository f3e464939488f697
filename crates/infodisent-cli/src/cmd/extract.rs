//! `infodisent extract`: backbone feature maps of a dataset into a resumable cache.

use super::Global;
use infodisent::cache::StoreDtype;
use infodisent::dataset::{Dataset, OpenOptions, DEFAULT_TEST_FRACTION};
use infodisent::engine::{Backbone, Engine, Precision};
use infodisent::extract::{
    extract, int8_backbone, load_backbone, ExtractOptions, ExtractSummary, DEFAULT_BATCH,
    DEFAULT_SHARD_SIZE,
};
use infodisent::preprocess::{Interpolation, Normalize, Preprocess, PreprocessChoice, Preset};
use std::path::PathBuf;

/// A preprocessing preset, or overrides of the model's default.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct PreprocessArgs {
    /// Preprocessing convention of where the model came from: torchvision (resize 256, crop
    /// 224, ImageNet mean/std, bilinear), timm (resize size/crop_pct, bicubic) or tflite
    /// (squash, (x-127)/128). Default: the model's own (tflite for the built-ins, torchvision
    /// for .onnx files).
    #[arg(long, value_enum)]
    pub preset: Option<Preset>,
    /// timm's crop_pct from the model's pretrained config (e.g. 0.9 for ViT/DeiT/Swin, 0.95 for
    /// ConvNeXt): resize = crop / crop_pct.
    #[arg(long)]
    pub crop_pct: Option<f64>,
    /// Resampling filter (timm's pretrained config says which).
    #[arg(long, value_enum)]
    pub interpolation: Option<Interpolation>,
    /// Resize the shorter side to this many pixels (default: the model's preset; equal to
    /// --crop squashes the whole image to a square).
    #[arg(long)]
    pub resize: Option<usize>,
    /// Side of the center crop fed to the network (default: the model's preset).
    #[arg(long)]
    pub crop: Option<usize>,
    /// Pixel normalisation (default: the model's preset).
    #[arg(long, value_enum)]
    pub normalize: Option<Normalize>,
    /// Per-channel mean of x/255 to normalise with, as timm's pretrained config gives it
    /// (e.g. 0.5,0.5,0.5 for many ViTs); needs --std.
    #[arg(long, value_name = "R,G,B", value_parser = rgb, requires = "std", conflicts_with = "normalize")]
    pub mean: Option<[f32; 3]>,
    /// Per-channel standard deviation of x/255 to normalise with; needs --mean.
    #[arg(long, value_name = "R,G,B", value_parser = rgb, requires = "mean")]
    pub std: Option<[f32; 3]>,
}

/// Three comma-separated numbers, one per colour channel.
fn rgb(s: &str) -> Result<[f32; 3], String> {
    let values = s
        .split(',')
        .map(|v| v.trim().parse::<f32>().map_err(|e| format!("`{v}`: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    <[f32; 3]>::try_from(values).map_err(|v| format!("{} values; give three: R,G,B", v.len()))
}

impl PreprocessArgs {
    /// The chosen preset (or the model's default) at the model's input side, with these
    /// overrides applied.
    pub fn resolve(&self, model_default: &Preprocess) -> infodisent::Result<Preprocess> {
        let normalize = match (self.mean, self.std) {
            (Some(mean), Some(std)) => Some(Normalize::MeanStd { mean, std }),
            _ => self.normalize,
        };
        PreprocessChoice {
            preset: self.preset,
            crop_pct: self.crop_pct,
            interpolation: self.interpolation,
            resize: self.resize,
            crop: self.crop,
            normalize,
        }
        .resolve(model_default)
    }
}

/// The inference engine and its arithmetic.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct EngineArgs {
    /// Inference engine: `ort` (ONNX Runtime), `openvino` (its CPU plugin, from
    /// scripts/fetch-assets.sh or $OPENVINO_LIB_PATH), or `auto`: OpenVINO for bf16, ONNX
    /// Runtime for f32 and int8. f32 features agree across engines to about 1e-6.
    #[arg(long, value_enum, default_value_t = Engine::Auto)]
    pub engine: Engine,
    /// Arithmetic of the backbone: f32 (exact), bf16 (OpenVINO on CPUs with AMX or
    /// AVX512-BF16: about 5× f32 for ResNet-50, at about 1e-2 relative error) or int8 (the
    /// same as --int8). Recorded in the cache and its fingerprint.
    #[arg(long, value_enum, default_value_t = Precision::F32)]
    pub precision: Precision,
    /// Run the backbone in int8 (CNNs only): its layers before the feature map are quantized,
    /// activation ranges calibrated on N images (default 64; `extract` spreads them over the
    /// training split, `bench extract` takes its first N and compares the rest with f32).
    /// Faster on CPUs, at a cost in feature accuracy that `bench extract --int8` measures.
    #[arg(long, value_name = "N", num_args = 0..=1, default_missing_value = "64")]
    pub int8: Option<usize>,
}

impl EngineArgs {
    /// Calibration images when int8 is asked for (by `--int8 N` or `--precision int8`).
    pub fn int8_images(&self) -> Option<usize> {
        match self.precision {
            Precision::Int8 => Some(self.int8.unwrap_or(64)),
            _ => self.int8,
        }
    }

    /// `backbone` on the chosen engine and precision (int8 is quantized by the caller, who has
    /// the calibration images).
    pub fn apply(&self, backbone: Backbone) -> infodisent::Result<Backbone> {
        if self.int8_images().is_some() {
            Engine::resolve(self.engine, Precision::Int8)?;
            return Ok(backbone);
        }
        backbone.on(self.engine, self.precision)
    }
}

/// Options of `infodisent extract`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Backbone: a built-in name (efficientnet-lite0, -lite1, -lite2) or an .onnx file.
    #[arg(long, default_value = "efficientnet-lite0")]
    pub model: String,
    /// Graph node whose output is the feature map (default: detected).
    #[arg(long)]
    pub feature_node: Option<String>,
    /// Dataset: an ImageFolder tree, a folder of IDX files, or `fashion-mnist`.
    #[arg(long)]
    pub data: String,
    /// Splits to extract, comma-separated (default: all of the dataset's splits).
    #[arg(long, value_delimiter = ',')]
    pub splits: Vec<String>,
    /// Cache folder to create or resume.
    #[arg(long)]
    pub cache: PathBuf,
    /// Images per engine call.
    #[arg(long, default_value_t = DEFAULT_BATCH)]
    pub batch: usize,
    /// Images per cache shard.
    #[arg(long, default_value_t = DEFAULT_SHARD_SIZE)]
    pub shard_size: usize,
    /// Stored feature precision.
    #[arg(long, value_enum, default_value_t = StoreDtype::F16)]
    pub dtype: StoreDtype,
    /// Share of each class held out as the `test` split when the folder has no `test/` or
    /// `val/` (`valid/`, `validation/`) folder, so nothing is measured on training images; 0
    /// keeps the folder as one split. Recorded in the cache and its fingerprint.
    #[arg(long, default_value_t = DEFAULT_TEST_FRACTION)]
    pub test_fraction: f64,
    /// Seed of that held-out draw.
    #[arg(long, default_value_t = 0)]
    pub split_seed: u64,
    /// Keep only the first N images of each class of each split.
    #[arg(long)]
    pub limit_per_class: Option<usize>,
    /// Keep at most N images per split (class-balanced, deterministic).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Skip unreadable images and empty class folders (counted in the manifest) instead of
    /// stopping at the first one.
    #[arg(long)]
    pub skip_bad: bool,
    /// Replace a cache made with another model, preprocessing or dataset.
    #[arg(long)]
    pub overwrite: bool,
    /// Threads decoding and preprocessing images (default: one per core).
    #[arg(long, default_value_t = 0)]
    pub decode_threads: usize,
    /// Stop after writing this many shards (run again to continue).
    #[arg(long)]
    pub max_shards: Option<usize>,
    /// Extract only part I of N (from 0) of every split, as one task of a cluster job: the
    /// parts are disjoint runs of whole shards, so N tasks may write into one --cache folder at
    /// once. `auto` reads I and N from a Slurm job array (SLURM_ARRAY_TASK_ID, _MIN, _COUNT)
    /// or a Kubernetes Indexed Job (JOB_COMPLETION_INDEX, with --parts). Without it, every
    /// part the cache was planned with is extracted here.
    #[arg(long, value_name = "I/N|auto")]
    pub part: Option<String>,
    /// Number of parts, for --part auto in a Kubernetes Indexed Job (its completions).
    #[arg(long, value_name = "N")]
    pub parts: Option<usize>,
    /// --data is a copy of this folder (e.g. on node-local scratch): the cache records DIR as
    /// the dataset's folder, so later commands find the images there once the copy is gone.
    #[arg(long, value_name = "DIR")]
    pub staged_from: Option<PathBuf>,
    #[command(flatten)]
    pub engine: EngineArgs,
    #[command(flatten)]
    pub preprocess: PreprocessArgs,
}

/// Runs the command.
pub fn run(args: Args, global: &Global) -> anyhow::Result<()> {
    let part = infodisent::cluster::resolve_part(args.part.as_deref(), args.parts)?;
    if let Some(p) = &part {
        eprintln!("extracting part {} ({})", p.part, p.source);
    }
    let mut dataset = Dataset::open_with(
        &args.data,
        &OpenOptions {
            skip_bad: args.skip_bad,
            test_fraction: args.test_fraction,
            split_seed: args.split_seed,
        },
    )?;
    dataset.limit(args.limit_per_class, args.limit);
    let mut backbone = load_backbone(
        &args.model,
        args.feature_node.as_deref(),
        global.threads(),
        |p| args.preprocess.resolve(p),
    )?;
    let preprocess = backbone.model().preprocess.clone();
    backbone = args.engine.apply(backbone)?;
    if let Some(n) = args.engine.int8_images() {
        backbone = int8_backbone(&backbone, &dataset, &preprocess, n)?;
    }
    let opts = ExtractOptions {
        splits: args.splits,
        batch: args.batch,
        shard_size: args.shard_size,
        dtype: args.dtype,
        preprocess,
        skip_bad: args.skip_bad,
        overwrite: args.overwrite,
        decode_threads: args.decode_threads,
        max_shards: args.max_shards,
        part: part.map(|p| p.part),
        staged_from: args.staged_from,
    };
    if let Some(h) = dataset.held_out {
        eprintln!(
            "{} has no test split: holding out {:.0} % of each class as `test` (seed {}; --test-fraction, --split-seed)",
            args.data,
            100.0 * h.fraction,
            h.seed
        );
    }
    let summary = extract(&mut backbone, &dataset, &opts, &args.cache)?;
    if global.json {
        super::print_json(&summary)
    } else {
        print_summary(&summary);
        Ok(())
    }
}

fn print_summary(s: &ExtractSummary) {
    let [d, h, w] = s.feature_shape;
    println!("cache    {}", s.cache.display());
    println!(
        "model    {} (features `{}`, [{d}, {h}, {w}], {:?})",
        s.model, s.feature_node, s.dtype
    );
    println!("input    {}", s.preprocess);
    println!("classes  {}", s.classes.len());
    if let Some(part) = s.part {
        println!("part     {part}");
    }
    for split in &s.splits {
        let missing: Vec<String> = split.missing_parts.iter().map(|p| p.to_string()).collect();
        let state = match (split.complete, s.part) {
            (true, _) => "complete".to_owned(),
            (false, Some(part)) if !split.missing_parts.contains(&part) => {
                format!("this part done; waiting for part(s) {}", missing.join(", "))
            }
            (false, _) => format!(
                "incomplete (part(s) {} missing): run again to resume",
                missing.join(", ")
            ),
        };
        println!(
            "split    {:<6} {} images, {} skipped, {} shards in {} part(s) ({} resumed, {} written) {state}",
            split.name,
            split.items,
            split.skipped,
            split.shards,
            split.parts,
            split.shards_resumed,
            split.shards_written,
        );
    }
    println!(
        "speed    {} images in {:.1} s ({:.1} images/s)",
        s.images, s.seconds, s.images_per_sec
    );
}
