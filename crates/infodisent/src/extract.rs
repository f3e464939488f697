//! Feature extraction: images stream through a parallel decode/preprocess stage into the
//! backbone and land in a resumable feature cache.
//!
//! Decoding of batch i+1 overlaps the engine on batch i (a producer thread with its own decode
//! pool feeds a bounded channel). A split's shards are written in order, each atomically, so a
//! killed run resumes at the first missing shard; the fingerprint over model, feature node,
//! preprocessing, dtype and dataset listing makes a cache built with other settings refused
//! instead of silently mixed.

use crate::cache::plan::{SkippedItem, SplitPlan};
use crate::cache::{
    CacheManifest, CacheWriter, FeatureCache, Item, Part, StoreDtype, CACHE_VERSION,
};
use crate::dataset::{Dataset, OpenOptions, Sample};
use crate::engine::{Backbone, BackboneOutput};
use crate::error::{Error, Result};
use crate::preprocess::Preprocess;
use crate::scheduler::PartFromEnv;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Default images per engine call.
pub const DEFAULT_BATCH: usize = 32;
/// Default images per cache shard (about 31 MB of f16 features for Lite0 at 224).
pub const DEFAULT_SHARD_SIZE: usize = 256;

/// How to extract.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExtractOptions {
    /// Splits to extract, in order; empty means every split of the dataset.
    pub splits: Vec<String>,
    /// Images per engine call.
    pub batch: usize,
    /// Images per shard; a split planned with another size is refused, naming both.
    pub shard_size: usize,
    /// Stored precision of the features.
    pub dtype: StoreDtype,
    /// Skip unreadable images (recorded in the manifest) instead of failing on the first one.
    pub skip_bad: bool,
    /// Replace a cache made with other settings instead of refusing it.
    pub overwrite: bool,
    /// Threads decoding and preprocessing images (0: one per core).
    pub decode_threads: usize,
    /// Stop after writing this many shards in this run (the cache stays resumable).
    pub max_shards: Option<usize>,
    /// Extract only this part of every split (a task of a cluster job); `None` extracts every
    /// part there is: one for a new cache, those recorded for one begun by parts.
    #[serde(default)]
    pub part: Option<Part>,
    /// The folder the dataset was copied from (e.g. to node-local scratch): recorded as the
    /// dataset's home, so later commands find the images there, not in the copy.
    #[serde(default)]
    pub staged_from: Option<PathBuf>,
}

impl Default for ExtractOptions {
    /// All splits, batch 32, 256-image f16 shards, strict.
    fn default() -> Self {
        ExtractOptions {
            splits: vec![],
            batch: DEFAULT_BATCH,
            shard_size: DEFAULT_SHARD_SIZE,
            dtype: StoreDtype::F16,
            skip_bad: false,
            overwrite: false,
            decode_threads: 0,
            max_shards: None,
            part: None,
            staged_from: None,
        }
    }
}

/// An extraction as a user asks for it: the CLI's `extract` flags, Python's `Backbone.extract`
/// keywords. [`ExtractRequest::dataset`] opens the images, [`ExtractRequest::run`] caches them.
#[derive(Debug, Clone)]
pub struct ExtractRequest {
    /// An ImageFolder tree, a folder of IDX files, or `fashion-mnist`.
    pub data: String,
    /// How the dataset is read and, without a test split, held out.
    pub open: OpenOptions,
    /// Keep only the first N images of each class of each split.
    pub limit_per_class: Option<usize>,
    /// Keep at most N images per split (class-balanced, deterministic).
    pub limit: Option<usize>,
    /// `I/N`, or `auto` from a Slurm array or Kubernetes Indexed Job: one part of a cluster job.
    pub part: Option<String>,
    /// Number of parts, for `auto` in a Kubernetes Indexed Job.
    pub parts: Option<usize>,
    /// How the cache is written (its `part` and `skip_bad` come from the fields above).
    pub options: ExtractOptions,
}

impl ExtractRequest {
    /// The part this request extracts, resolved from `part` and `parts` (and the environment).
    pub fn part(&self) -> Result<Option<PartFromEnv>> {
        crate::scheduler::resolve_part(self.part.as_deref(), self.parts)
    }

    /// The dataset, opened and limited.
    pub fn dataset(&self) -> Result<Dataset> {
        let mut dataset = Dataset::open_with(&self.data, &self.open)?;
        dataset.limit(self.limit_per_class, self.limit);
        Ok(dataset)
    }

    /// Extracts `dataset` (from [`ExtractRequest::dataset`]) through `backbone` into `cache`.
    pub fn run(
        &self,
        backbone: &mut Backbone,
        dataset: &Dataset,
        cache: &Path,
    ) -> Result<ExtractSummary> {
        let opts = ExtractOptions {
            part: self.part()?.map(|p| p.part),
            skip_bad: self.open.skip_bad,
            ..self.options.clone()
        };
        extract(backbone, dataset, &opts, cache)
    }
}

/// What happened to one split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitSummary {
    /// Split name.
    pub name: String,
    /// Images in the cached split (after skips).
    pub items: usize,
    /// Images or folders skipped as unreadable.
    pub skipped: usize,
    /// Shards the finished split has.
    pub shards: usize,
    /// Parts its shards are divided into.
    pub parts: usize,
    /// Shards of this run's parts already on disk before it (resumed).
    pub shards_resumed: usize,
    /// Shards written by this run.
    pub shards_written: usize,
    /// Parts with shards still missing (other tasks' parts, or this run's when it stopped).
    pub missing_parts: Vec<Part>,
    /// Whether every shard of every part is on disk.
    pub complete: bool,
}

/// The outcome of an extraction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExtractSummary {
    /// Preprocessing applied to every image.
    pub preprocess: Preprocess,
    /// Cache folder.
    pub cache: PathBuf,
    /// The part this run extracted (`None`: every part).
    pub part: Option<Part>,
    /// Cache fingerprint.
    pub fingerprint: String,
    /// Model name.
    pub model: String,
    /// Feature node.
    pub feature_node: String,
    /// Feature map shape [D, h, w].
    pub feature_shape: [usize; 3],
    /// Stored precision.
    pub dtype: StoreDtype,
    /// Dataset class names.
    pub classes: Vec<String>,
    /// The layout the dataset was read in.
    pub layout: crate::dataset::Layout,
    /// Images of the extracted splits with boxes, and with part locations.
    pub annotated: [usize; 2],
    /// Per-split outcome.
    pub splits: Vec<SplitSummary>,
    /// Images run through the backbone in this run.
    pub images: usize,
    /// Wall time of this run in seconds.
    pub seconds: f64,
    /// Images per second over this run.
    pub images_per_sec: f64,
    /// Whether every requested split is complete.
    pub complete: bool,
}

/// What a cache fingerprint covers, each hashed on its own: the model fingerprint, feature
/// node, preprocessing, stored precision, skip policy, the dataset listing (every split,
/// after limits; paths relative to the root, with sizes), the backbone's arithmetic and, unless
/// that is f32, its engine.
pub fn fingerprint_inputs(
    backbone: &Backbone,
    dataset: &Dataset,
    opts: &ExtractOptions,
) -> BTreeMap<String, String> {
    let model = backbone.model();
    let hash = |v: serde_json::Value| crate::fsutil::sha256_bytes(v.to_string().as_bytes());
    let (engine, precision) = backbone.engine();
    let mut inputs = BTreeMap::from([
        ("cache_version".to_owned(), CACHE_VERSION.to_string()),
        ("model".to_owned(), model.fingerprint.clone()),
        (
            "feature_node".to_owned(),
            hash(model.feature_node.clone().into()),
        ),
        ("preprocess".to_owned(), hash(model.preprocess.to_json())),
        ("dtype".to_owned(), hash(serde_json::json!(opts.dtype))),
        ("skip_bad".to_owned(), opts.skip_bad.to_string()),
        ("dataset".to_owned(), dataset.fingerprint()),
        ("precision".to_owned(), hash(serde_json::json!(precision))),
    ]);
    // f32 features agree across engines to about 1e-6, so an f32 cache stays valid whichever
    // engine resumes it; other precisions differ by engine.
    if !precision.is_f32() {
        inputs.insert("engine".to_owned(), hash(serde_json::json!(engine)));
    }
    inputs
}

/// The cache fingerprint: SHA-256 over [`fingerprint_inputs`].
pub fn fingerprint(backbone: &Backbone, dataset: &Dataset, opts: &ExtractOptions) -> String {
    fingerprint_of(&fingerprint_inputs(backbone, dataset, opts))
}

/// The fingerprint of inputs already gathered (the dataset listing is stat-ed only once).
fn fingerprint_of(inputs: &BTreeMap<String, String>) -> String {
    crate::fsutil::sha256_bytes(serde_json::json!(inputs).to_string().as_bytes())
}

/// What a cache in `cache_dir` records of `backbone`'s source: a model file relative to the
/// cache folder when that is the shorter way to write it, so a cache moved with its model still
/// finds it.
fn recorded_source(
    backbone: &Backbone,
    cache_dir: &Path,
) -> Result<Option<crate::engine::BackboneSource>> {
    let Some(source) = backbone.source() else {
        return Ok(None);
    };
    if source.built_in {
        return Ok(Some(source.clone()));
    }
    std::fs::create_dir_all(cache_dir).map_err(|e| Error::io(cache_dir, e))?;
    let model = crate::fsutil::path_from(cache_dir, Path::new(&source.model))?;
    Ok(Some(crate::engine::BackboneSource {
        model,
        ..source.clone()
    }))
}

/// A preprocessed batch: the sample range it covers, its `[n, 3, S, S]` input, and the samples
/// it left out.
struct Prepared {
    range: Range<usize>,
    inputs: Vec<f32>,
    skipped: Vec<(usize, String)>,
}

/// The decode thread count `threads` stands for: itself, or one per core when 0.
pub fn decode_threads(threads: usize) -> usize {
    if threads > 0 {
        threads
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

fn decode_pool(threads: usize) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(decode_threads(threads))
        .thread_name(|i| format!("decode-{i}"))
        .build()
        .map_err(|e| Error::Runtime(format!("cannot start decode threads: {e}")))
}

/// A batch the backbone ran.
#[derive(Debug, Clone)]
pub struct RanBatch {
    /// The samples it covers.
    pub range: Range<usize>,
    /// Samples of `range` that could not be read, with why (only when skipping bad images);
    /// the backbone's rows are the others, in order.
    pub skipped: Vec<(usize, String)>,
}

/// Decodes and preprocesses `samples[range]`; with `skip_bad`, unreadable ones are left out
/// and listed, else the first one is the error.
fn prepare_batch(
    pool: &rayon::ThreadPool,
    samples: &[Sample],
    range: Range<usize>,
    preprocess: &Preprocess,
    skip_bad: bool,
) -> Result<Prepared> {
    let len = preprocess.input_len();
    let mut inputs = vec![0.0f32; range.len() * len];
    let results: Vec<Result<()>> = pool.install(|| {
        inputs
            .par_chunks_mut(len)
            .zip(&samples[range.clone()])
            .map(|(out, s)| s.preprocess_into(preprocess, out))
            .collect()
    });
    let mut skipped = Vec::new();
    for (i, result) in range.clone().zip(results) {
        match result {
            Ok(()) => {}
            Err(e) if skip_bad => skipped.push((i, e.to_string())),
            Err(e) => return Err(e),
        }
    }
    if !skipped.is_empty() {
        let bad: Vec<usize> = skipped.iter().map(|(i, _)| i - range.start).collect();
        inputs = inputs
            .chunks_exact(len)
            .enumerate()
            .filter(|(k, _)| !bad.contains(k))
            .flat_map(|(_, row)| row.iter().copied())
            .collect();
    }
    Ok(Prepared {
        range,
        inputs,
        skipped,
    })
}

/// Runs `samples[r]` for every range `r` through decode + preprocess (on `decode_threads`
/// threads, 0 = one per core) and the backbone, handing each output to `sink` in order. The
/// next batch is decoded while the backbone runs the current one. With `skip_bad`, unreadable
/// images are left out of their batch (and named in it) instead of ending the run.
pub fn run_batches(
    backbone: &mut Backbone,
    samples: &[Sample],
    ranges: &[Range<usize>],
    preprocess: &Preprocess,
    decode_threads: usize,
    skip_bad: bool,
    mut sink: impl FnMut(RanBatch, BackboneOutput) -> Result<()>,
) -> Result<()> {
    preprocess.validate()?;
    if let Some(bad) = ranges
        .iter()
        .find(|r| r.end > samples.len() || r.is_empty())
    {
        return Err(Error::Shape(format!(
            "batch {bad:?} outside the {} samples",
            samples.len()
        )));
    }
    let pool = decode_pool(decode_threads)?;
    std::thread::scope(|scope| {
        let (tx, rx) = crossbeam_channel::bounded::<Result<Prepared>>(2);
        scope.spawn(move || {
            for range in ranges {
                let prepared = prepare_batch(&pool, samples, range.clone(), preprocess, skip_bad);
                let failed = prepared.is_err();
                // A closed channel means the consumer stopped on an error of its own.
                if tx.send(prepared).is_err() || failed {
                    return;
                }
            }
        });
        for prepared in rx {
            let Prepared {
                range,
                inputs,
                skipped,
            } = prepared?;
            let n = range.len() - skipped.len();
            let out = match n {
                0 => BackboneOutput {
                    features: vec![],
                    logits: None,
                },
                _ => backbone.run(&inputs, n)?,
            };
            sink(RanBatch { range, skipped }, out)?;
        }
        Ok(())
    })
}

/// Batches of at most `batch` over each of `items` in turn: batches never cross a shard.
fn shard_batches(
    shards: impl IntoIterator<Item = Range<usize>>,
    batch: usize,
) -> Vec<Range<usize>> {
    let mut ranges = Vec::new();
    for shard in shards {
        let mut start = shard.start;
        while start < shard.end {
            ranges.push(start..(start + batch).min(shard.end));
            start += batch;
        }
    }
    ranges
}

/// What each backbone run must return: the model's feature map and its logits' width (copied
/// out, since the backbone is borrowed while it runs).
struct Outputs {
    name: String,
    feature_shape: [usize; 3],
    classes: Option<usize>,
}

impl Outputs {
    fn of(backbone: &Backbone) -> Self {
        let model = backbone.model();
        Outputs {
            name: model.name.clone(),
            feature_shape: model.feature_shape,
            classes: model.original_classes,
        }
    }
}

/// The rows of one shard as its batches come back from the backbone.
#[derive(Default)]
struct ShardBuffer {
    features: Vec<f32>,
    labels: Vec<i64>,
    logits: Vec<f32>,
    listed: Vec<i64>,
    skipped: Vec<SkippedItem>,
}

impl ShardBuffer {
    /// Adds a batch's rows, checking the backbone gave one row per kept image.
    fn push(
        &mut self,
        batch: &RanBatch,
        out: BackboneOutput,
        samples: &[Sample],
        items: &[Item],
        model: &Outputs,
    ) -> Result<usize> {
        let kept: Vec<usize> = batch
            .range
            .clone()
            .filter(|i| !batch.skipped.iter().any(|(s, _)| s == i))
            .collect();
        let n = kept.len();
        let shape = model.feature_shape;
        if out.features.len() != n * shape.iter().product::<usize>() {
            return Err(Error::Shape(format!(
                "backbone returned {} feature values for {n} images of {shape:?}",
                out.features.len()
            )));
        }
        if let Some(c) = model.classes {
            let logits = match out.logits {
                Some(l) => l,
                None if n == 0 => vec![],
                None => return Err(Error::model(&model.name, "the backbone returned no logits")),
            };
            if logits.len() != n * c {
                return Err(Error::Shape(format!(
                    "backbone returned {} logits for {n} images of {c} classes",
                    logits.len()
                )));
            }
            self.logits.extend_from_slice(&logits);
        }
        self.features.extend_from_slice(&out.features);
        self.labels
            .extend(kept.iter().map(|&i| samples[i].label as i64));
        self.listed.extend(kept.iter().map(|&i| i as i64));
        for (i, reason) in &batch.skipped {
            tracing::warn!("skipping {reason}");
            self.skipped.push(SkippedItem {
                item: *i,
                path: items[*i].path.clone(),
                reason: reason.clone(),
            });
        }
        Ok(n)
    }

    /// Writes the shard and empties the buffer for the next.
    fn write(
        &mut self,
        writer: &mut CacheWriter,
        split: &str,
        shard: usize,
        logits: bool,
    ) -> Result<()> {
        let data = crate::cache::ShardData {
            features: &self.features,
            labels: &self.labels,
            logits: logits.then_some(self.logits.as_slice()),
            listed: &self.listed,
        };
        writer.write_shard_rows(split, shard, &data, std::mem::take(&mut self.skipped))?;
        *self = ShardBuffer::default();
        Ok(())
    }
}

/// One split's work in this run.
struct SplitWork<'d> {
    name: String,
    samples: &'d [Sample],
    items: Vec<Item>,
    plan: SplitPlan,
    /// Shards of this run's parts on disk before it.
    resumed: usize,
    /// Shards to write, in order.
    todo: Vec<usize>,
}

/// Plans every split (or checks the plan other tasks wrote) and lists the shards this run
/// writes: those of its parts not on disk yet, at most `max_shards` in all.
fn plan_work<'d>(
    writer: &mut CacheWriter,
    dataset: &'d Dataset,
    splits: &[&'d crate::dataset::Split],
    opts: &ExtractOptions,
) -> Result<Vec<SplitWork<'d>>> {
    let mut budget = opts.max_shards.unwrap_or(usize::MAX);
    let mut work = Vec::new();
    for split in splits {
        let items: Vec<Item> = split
            .samples
            .iter()
            .map(|s| Item {
                path: dataset.key(s),
                label: s.label as i64,
                annotation: s.annotation.as_deref().cloned(),
            })
            .collect();
        let plan = writer.plan_split(
            &split.name,
            &items,
            split.skipped.clone(),
            opts.shard_size,
            opts.part.map(|p| p.count),
        )?;
        let parts: Vec<Part> = match opts.part {
            Some(p) => vec![p],
            None => Part::all(plan.parts).collect(),
        };
        let mut todo = Vec::new();
        let mut owned = 0;
        for part in parts {
            owned += part.shards(plan.num_shards()).len();
            todo.extend(writer.shards_todo(&split.name, part)?);
        }
        let resumed = owned - todo.len();
        todo.truncate(budget);
        budget -= todo.len();
        work.push(SplitWork {
            name: split.name.clone(),
            samples: &split.samples,
            items,
            plan,
            resumed,
            todo,
        });
    }
    Ok(work)
}

/// Extracts one split's shards of this run; returns the images the backbone ran.
fn extract_split(
    backbone: &mut Backbone,
    writer: &mut CacheWriter,
    work: &SplitWork<'_>,
    opts: &ExtractOptions,
    bar: &crate::progress::Progress,
) -> Result<usize> {
    let model = Outputs::of(backbone);
    let preprocess = backbone.model().preprocess.clone();
    let ranges = shard_batches(
        work.todo.iter().map(|&s| work.plan.shard_items(s)),
        opts.batch,
    );
    let mut buffer = ShardBuffer::default();
    let mut images = 0;
    run_batches(
        backbone,
        work.samples,
        &ranges,
        &preprocess,
        opts.decode_threads,
        opts.skip_bad,
        |batch, out| {
            images += buffer.push(&batch, out, work.samples, &work.items, &model)?;
            bar.inc(batch.range.len() as u64);
            let shard = batch.range.start / work.plan.shard_size;
            if batch.range.end == work.plan.shard_items(shard).end {
                buffer.write(writer, &work.name, shard, model.classes.is_some())?;
            }
            // After the shard write, so a stop keeps every finished shard.
            bar.check()
        },
    )?;
    Ok(images)
}

/// The manifest a new cache of `dataset` through `backbone` starts with.
fn manifest_for(
    backbone: &Backbone,
    dataset: &Dataset,
    opts: &ExtractOptions,
    cache_dir: &Path,
) -> Result<CacheManifest> {
    let model = backbone.model();
    let model_classes = match (&model.class_names, model.original_classes) {
        (Some(names), _) => Some(names.clone()),
        (None, Some(classes)) => crate::assets::imagenet_labels_for(classes),
        (None, None) => None,
    };
    if let Some(warning) = model_classes
        .and_then(|names| crate::dataset::class_order::order_warning(&dataset.classes, &names))
    {
        tracing::warn!("{warning}");
    }
    let inputs = fingerprint_inputs(backbone, dataset, opts);
    Ok(CacheManifest {
        version: CACHE_VERSION,
        fingerprint: fingerprint_of(&inputs),
        inputs,
        model: model.name.clone(),
        feature_node: model.feature_node.clone(),
        feature_shape: model.feature_shape,
        dtype: opts.dtype,
        input_size: model.preprocess.input_size(),
        preprocess: model.preprocess.clone(),
        classes: dataset.classes.clone(),
        original_classes: model.original_classes,
        original_head: Some(model.head.clone()),
        data_root: match &opts.staged_from {
            Some(home) => Some(home.canonicalize().map_err(|e| Error::io(home, e))?),
            None => dataset.root.clone(),
        },
        held_out: dataset.held_out,
        layout: dataset.layout,
        part_names: dataset.part_names.clone(),
        backbone: recorded_source(backbone, cache_dir)?,
        splits: BTreeMap::new(),
    })
}

/// Images of the splits `work` extracts with boxes, and with part locations.
fn annotated_counts(work: &[SplitWork]) -> [usize; 2] {
    let marks = work
        .iter()
        .flat_map(|w| w.samples)
        .filter_map(|s| s.annotation.as_deref());
    marks.fold([0, 0], |[b, p], a| {
        [
            b + usize::from(!a.boxes.is_empty()),
            p + usize::from(!a.parts.is_empty()),
        ]
    })
}

/// Refuses options no extraction can honour.
fn check_options(backbone: &Backbone, opts: &ExtractOptions) -> Result<()> {
    if opts.batch == 0 || opts.shard_size == 0 {
        return Err(Error::Config(format!(
            "batch ({}) and shard size ({}) must be positive",
            opts.batch, opts.shard_size
        )));
    }
    if opts.overwrite && opts.part.is_some() {
        return Err(Error::Config(
            "--overwrite with --part: tasks running at once cannot each replace the cache; delete it before submitting the job".into(),
        ));
    }
    backbone.model().preprocess.validate()
}

/// Extracts `dataset` through `backbone` into the cache at `cache_dir`, resuming a partial
/// cache with the same fingerprint and refusing (or, with `overwrite`, replacing) another.
/// With [`ExtractOptions::part`], only that part's shards are written, so that the tasks of a
/// cluster job can fill one cache at once.
pub fn extract(
    backbone: &mut Backbone,
    dataset: &Dataset,
    opts: &ExtractOptions,
    cache_dir: &Path,
) -> Result<ExtractSummary> {
    let started = Instant::now();
    check_options(backbone, opts)?;
    let split_names: Vec<String> = if opts.splits.is_empty() {
        dataset.splits.iter().map(|s| s.name.clone()).collect()
    } else {
        opts.splits.clone()
    };
    let splits = split_names
        .iter()
        .map(|n| dataset.split(n))
        .collect::<Result<Vec<_>>>()?;
    let fresh = manifest_for(backbone, dataset, opts, cache_dir)?;
    let mut writer = CacheWriter::create_or_resume(cache_dir, fresh, opts.overwrite)?;
    if let Some(classifier) = &backbone.model().classifier {
        if !writer.dir().join(crate::runs::CLASSIFIER_FILE).exists() {
            writer.write_classifier(classifier)?;
        }
    }
    let work = plan_work(&mut writer, dataset, &splits, opts)?;
    let total: usize = work
        .iter()
        .flat_map(|w| w.todo.iter().map(|&s| w.plan.shard_items(s).len()))
        .sum();
    let bar = crate::progress::bar(total as u64, "extract", "images");
    let mut images = 0;
    for w in &work {
        images += extract_split(backbone, &mut writer, w, opts, &bar)?;
    }
    bar.finish_and_clear();
    let cache = FeatureCache::open(writer.dir())?;
    let splits: Vec<SplitSummary> = work
        .iter()
        .map(|w| {
            let info = &cache.manifest().splits[&w.name];
            SplitSummary {
                name: w.name.clone(),
                items: info.num_items,
                skipped: info.skipped.len(),
                shards: info.num_shards(),
                parts: info.parts,
                shards_resumed: w.resumed,
                shards_written: w.todo.len(),
                missing_parts: info.missing_parts(),
                complete: info.is_complete(),
            }
        })
        .collect();
    let seconds = started.elapsed().as_secs_f64();
    let model = backbone.model();
    Ok(ExtractSummary {
        preprocess: model.preprocess.clone(),
        cache: writer.dir().to_path_buf(),
        part: opts.part,
        fingerprint: writer.manifest().fingerprint.clone(),
        model: model.name.clone(),
        feature_node: model.feature_node.clone(),
        feature_shape: model.feature_shape,
        dtype: opts.dtype,
        classes: dataset.classes.clone(),
        layout: dataset.layout,
        annotated: annotated_counts(&work),
        complete: splits.iter().all(|s| s.complete),
        splits,
        images,
        seconds,
        images_per_sec: if seconds > 0.0 {
            images as f64 / seconds
        } else {
            0.0
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_stay_inside_shards() {
        let r = shard_batches([0..4, 4..8, 8..10], 3);
        assert_eq!(r, vec![0..3, 3..4, 4..7, 7..8, 8..10]);
        assert_eq!(shard_batches(std::iter::once(4..8), 3), vec![4..7, 7..8]);
        assert!(shard_batches([], 3).is_empty());
    }
}
