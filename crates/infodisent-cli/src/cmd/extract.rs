//! `infodisent extract`: backbone feature maps of a dataset into a resumable cache.

use super::Global;
use infodisent::cache::StoreDtype;
use infodisent::dataset::OpenOptions;
use infodisent::extract::{
    ExtractOptions, ExtractRequest, ExtractSummary, DEFAULT_BATCH, DEFAULT_SHARD_SIZE,
};
use std::path::PathBuf;

/// Options of `infodisent extract`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Backbone: a built-in name (efficientnet-lite0, -lite1, -lite2) or an .onnx file.
    #[arg(long, default_value = "efficientnet-lite0")]
    pub model: String,
    /// Graph node whose output is the feature map (default: detected).
    #[arg(long)]
    pub feature_node: Option<String>,
    /// Dataset: an ImageFolder tree, a folder of IDX files, the official layout of
    /// CUB-200-2011, Stanford Cars, Stanford Dogs or ImageNet, or `fashion-mnist`.
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
    #[command(flatten)]
    pub open: OpenOptions,
    /// Keep only the first N images of each class of each split.
    #[arg(long)]
    pub limit_per_class: Option<usize>,
    /// Keep at most N images per split (class-balanced, deterministic).
    #[arg(long)]
    pub limit: Option<usize>,
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
    pub engine: super::args::EngineArgs,
    #[command(flatten)]
    pub preprocess: super::args::PreprocessArgs,
}

/// Runs the command.
pub fn run(args: Args, global: &Global) -> anyhow::Result<()> {
    let request = ExtractRequest {
        data: args.data.clone(),
        open: args.open,
        limit_per_class: args.limit_per_class,
        limit: args.limit,
        part: args.part,
        parts: args.parts,
        options: ExtractOptions {
            splits: args.splits,
            batch: args.batch,
            shard_size: args.shard_size,
            dtype: args.dtype,
            overwrite: args.overwrite,
            decode_threads: args.decode_threads,
            max_shards: args.max_shards,
            staged_from: args.staged_from,
            ..ExtractOptions::default()
        },
    };
    if let Some(p) = request.part()? {
        eprintln!("extracting part {} ({})", p.part, p.source);
    }
    let dataset = request.dataset()?;
    let spec = args
        .preprocess
        .spec(&args.model, args.feature_node.as_deref(), global);
    let mut backbone = args.engine.apply(spec).load_for(&dataset)?;
    if let Some(h) = dataset.held_out {
        eprintln!(
            "{} has no test split: holding out {:.0} % of each class as `test` (seed {}; --test-fraction, --split-seed)",
            args.data,
            100.0 * h.fraction,
            h.seed
        );
    }
    let summary = request.run(&mut backbone, &dataset, &args.cache)?;
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
    println!("data     {} layout, {} classes", s.layout, s.classes.len());
    if s.annotated != [0, 0] {
        let [boxes, parts] = s.annotated;
        println!("marks    {boxes} images with boxes, {parts} with part locations");
    }
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
