//! Feature extraction: images stream through a parallel decode/preprocess stage into the
//! backbone and land in a resumable feature cache.
//!
//! Decoding of batch i+1 overlaps the engine on batch i (a producer thread with its own decode
//! pool feeds a bounded channel). A split's shards are written in order, each atomically, so a
//! killed run resumes at the first missing shard; the fingerprint over model, feature node,
//! preprocessing, dtype and dataset listing makes a cache built with other settings refused
//! instead of silently mixed.

use crate::cache::{
    CacheManifest, CacheWriter, FeatureCache, Item, Skipped, StoreDtype, CACHE_VERSION,
};
use crate::dataset::{Dataset, Sample};
use crate::engine::{Backbone, BackboneOutput};
use crate::error::{Error, Result};
use crate::preprocess::Preprocess;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
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
    /// Images per shard for new splits (a resumed split keeps its recorded size).
    pub shard_size: usize,
    /// Stored precision of the features.
    pub dtype: StoreDtype,
    /// Preprocessing applied to every image.
    pub preprocess: Preprocess,
    /// Skip unreadable images (recorded in the manifest) instead of failing on the first one.
    pub skip_bad: bool,
    /// Replace a cache made with other settings instead of refusing it.
    pub overwrite: bool,
    /// Threads decoding and preprocessing images (0: one per core).
    pub decode_threads: usize,
    /// Stop after writing this many shards in this run (the cache stays resumable).
    pub max_shards: Option<usize>,
}

impl ExtractOptions {
    /// Defaults for a preprocessing: all splits, batch 32, 256-image f16 shards, strict.
    pub fn new(preprocess: Preprocess) -> Self {
        ExtractOptions {
            splits: vec![],
            batch: DEFAULT_BATCH,
            shard_size: DEFAULT_SHARD_SIZE,
            dtype: StoreDtype::F16,
            preprocess,
            skip_bad: false,
            overwrite: false,
            decode_threads: 0,
            max_shards: None,
        }
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
    /// Shards already on disk before this run (resumed).
    pub shards_resumed: usize,
    /// Shards written by this run.
    pub shards_written: usize,
    /// Whether every shard is on disk.
    pub complete: bool,
}

/// The outcome of an extraction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExtractSummary {
    /// Preprocessing applied to every image.
    pub preprocess: Preprocess,
    /// Cache folder.
    pub cache: PathBuf,
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

/// The cache fingerprint: SHA-256 over the model fingerprint, feature node, preprocessing,
/// dtype, skip policy and the dataset listing (every split, after limits).
pub fn fingerprint(backbone: &Backbone, dataset: &Dataset, opts: &ExtractOptions) -> String {
    let model = backbone.model();
    let key = serde_json::json!({
        "cache_version": CACHE_VERSION,
        "model": model.fingerprint,
        "feature_node": model.feature_node,
        "preprocess": opts.preprocess.to_json(),
        "dtype": opts.dtype,
        "skip_bad": opts.skip_bad,
        "dataset": dataset.fingerprint(),
    });
    crate::fsutil::sha256_bytes(key.to_string().as_bytes())
}

/// Loads a backbone whose preprocessing is `adjust(preset)`. A different crop size re-probes
/// the feature shape at that size (graphs with a fixed input size then fail with ONNX
/// Runtime's message).
pub fn load_backbone(
    spec: &str,
    feature_node: Option<&str>,
    threads: usize,
    adjust: impl FnOnce(&Preprocess) -> Result<Preprocess>,
) -> Result<Backbone> {
    let backbone = Backbone::load(spec, feature_node, threads)?;
    let preset = &backbone.model().preprocess;
    let wanted = adjust(preset)?;
    if wanted == *preset {
        return Ok(backbone);
    }
    let mut model = backbone.model().clone();
    if wanted.crop != preset.crop {
        model.feature_shape = [0; 3];
    }
    model.preprocess = wanted;
    let source = backbone.source().cloned();
    drop(backbone);
    Ok(Backbone::from_prepared(model, threads)?.with_source(source))
}

/// Rebuilds the backbone that made `cache` through [`load_backbone`], as `extract` built it:
/// the recorded model (a built-in, or the file, found relative to the cache folder), feature
/// node and preprocessing, quantized again on the recorded calibration images for an int8
/// cache. `model` re-points a model that moved; a file that is another model is refused,
/// naming both.
pub fn cache_backbone(
    cache: &FeatureCache,
    model: Option<&str>,
    threads: usize,
) -> Result<Backbone> {
    let manifest = cache.manifest();
    let preprocess = |_: &Preprocess| Ok(manifest.preprocess.clone());
    let node = Some(manifest.feature_node.as_str());
    let Some(recorded) = &manifest.backbone else {
        // Caches made before the source was recorded name built-ins and file stems only.
        return load_backbone(model.unwrap_or(&manifest.model), node, threads, preprocess);
    };
    let spec = match model {
        Some(spec) => spec.to_owned(),
        None if recorded.built_in => recorded.model.clone(),
        None => {
            let path = cache.dir().join(&recorded.model);
            if !path.exists() {
                return Err(Error::model(
                    &path,
                    format!(
                        "the model that made cache {} is no longer there: pass --model with its new location",
                        cache.dir().display()
                    ),
                ));
            }
            path.display().to_string()
        }
    };
    let refuse = |why: String| {
        Error::model(
            &spec,
            format!(
                "is not the model that made cache {} ({why}; the cache records {} from {})",
                cache.dir().display(),
                short(&recorded.fingerprint),
                recorded.model
            ),
        )
    };
    let backbone = load_backbone(&spec, node, threads, preprocess).map_err(|e| match model {
        // A model the user named that cannot even be prepared as the recorded one was is
        // another model; a recorded one that fails says why itself.
        Some(_) => refuse(e.to_string()),
        None => e,
    })?;
    let found = backbone.source().map(|s| s.fingerprint.as_str());
    if found != Some(recorded.fingerprint.as_str()) {
        return Err(refuse(format!(
            "fingerprint {}",
            short(found.unwrap_or("unknown"))
        )));
    }
    match &recorded.int8 {
        None => Ok(backbone),
        Some(int8) => requantize(cache, &backbone, int8),
    }
}

/// The first 12 hex digits of a fingerprint, enough to tell two apart in a message.
fn short(fingerprint: &str) -> &str {
    &fingerprint[..fingerprint.len().min(12)]
}

/// `backbone` quantized on the recorded calibration images of an int8 cache, checked to be the
/// quantized model that made it.
fn requantize(
    cache: &FeatureCache,
    backbone: &Backbone,
    int8: &crate::engine::Int8Calibration,
) -> Result<Backbone> {
    let preprocess = &cache.manifest().preprocess;
    let store = crate::dataset::ImageStore::default();
    let len = preprocess.input_len();
    let mut images = vec![0.0f32; int8.images.len() * len];
    images
        .par_chunks_mut(len)
        .zip(&int8.images)
        .try_for_each(|(out, key)| preprocess.apply_into(&*store.get(&cache.resolve(key))?, out))?;
    let quantized = backbone.to_int8(&images, int8.images.len())?;
    let found = quantized.model().fingerprint.clone();
    if found != int8.fingerprint {
        return Err(Error::cache(
            cache.dir(),
            format!(
                "its int8 calibration images changed since extraction (quantized fingerprint {} instead of {}): re-extract it",
                short(&found),
                short(&int8.fingerprint)
            ),
        ));
    }
    let source = backbone
        .source()
        .cloned()
        .map(|s| crate::engine::BackboneSource {
            int8: Some(int8.clone()),
            ..s
        });
    Ok(quantized.with_source(source))
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

/// `backbone` quantized to int8 ([`Backbone::to_int8`]), calibrated on `n` images spread
/// evenly over the dataset's `train` split (its first split if it has none), so every
/// extraction of the same dataset and model calibrates alike and a cache resumes.
pub fn int8_backbone(
    backbone: &Backbone,
    dataset: &Dataset,
    preprocess: &Preprocess,
    n: usize,
) -> Result<Backbone> {
    let split = dataset
        .splits
        .iter()
        .find(|s| s.name == "train")
        .or_else(|| dataset.splits.first())
        .filter(|s| !s.samples.is_empty())
        .ok_or_else(|| {
            Error::Config("int8 calibration needs images, the dataset has none".into())
        })?;
    let total = split.samples.len();
    let n = n.clamp(1, total);
    let len = preprocess.input_len();
    let mut images = vec![0.0f32; n * len];
    images
        .par_chunks_mut(len)
        .enumerate()
        .try_for_each(|(i, out)| prepare(&split.samples[i * total / n], preprocess, out))?;
    let quantized = backbone.to_int8(&images, n)?;
    let keys = (0..n)
        .map(|i| dataset.key(&split.samples[i * total / n]))
        .collect();
    let source = quantized.source().cloned().map(|mut s| {
        if let Some(int8) = &mut s.int8 {
            int8.images = keys;
        }
        s
    });
    Ok(quantized.with_source(source))
}

/// Decodes and preprocesses one sample into `out`, naming the image in any error.
fn prepare(sample: &Sample, preprocess: &Preprocess, out: &mut [f32]) -> Result<()> {
    let img = sample.load()?;
    preprocess.apply_into(&img, out).map_err(|e| match e {
        Error::Io { .. } | Error::Input { .. } => e,
        other => Error::input(&sample.path, other.to_string()),
    })
}

/// A preprocessed batch: the sample range it covers and its [n, 3, S, S] input.
struct Prepared {
    range: Range<usize>,
    inputs: Vec<f32>,
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

/// Runs `samples[r]` for every range `r` through decode + preprocess (on `decode_threads`
/// threads, 0 = one per core) and the backbone, handing each output to `sink` in order. The
/// next batch is decoded while the backbone runs the current one.
pub fn run_batches(
    backbone: &mut Backbone,
    samples: &[Sample],
    ranges: &[Range<usize>],
    preprocess: &Preprocess,
    decode_threads: usize,
    mut sink: impl FnMut(Range<usize>, BackboneOutput) -> Result<()>,
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
    let len = preprocess.input_len();
    std::thread::scope(|scope| {
        let (tx, rx) = crossbeam_channel::bounded::<Result<Prepared>>(2);
        scope.spawn(move || {
            for range in ranges {
                let mut inputs = vec![0.0f32; range.len() * len];
                let done = pool.install(|| {
                    inputs
                        .par_chunks_mut(len)
                        .zip(&samples[range.clone()])
                        .try_for_each(|(out, s)| prepare(s, preprocess, out))
                });
                let failed = done.is_err();
                // A closed channel means the consumer stopped on an error of its own.
                if tx
                    .send(done.map(|()| Prepared {
                        range: range.clone(),
                        inputs,
                    }))
                    .is_err()
                    || failed
                {
                    return;
                }
            }
        });
        for prepared in rx {
            let Prepared { range, inputs } = prepared?;
            let out = backbone.run(&inputs, range.len())?;
            sink(range, out)?;
        }
        Ok(())
    })
}

/// Decodes every sample once and splits them into usable ones and skips (for `--skip-bad`,
/// which must know the final item list before the first shard is written).
fn screen(samples: &[Sample], split: &str, threads: usize) -> Result<(Vec<Sample>, Vec<Skipped>)> {
    let pool = decode_pool(threads)?;
    let bar = crate::progress::bar(samples.len() as u64, &format!("check {split}"), "images");
    let verdicts: Vec<Option<String>> = pool.install(|| {
        samples
            .par_iter()
            .map(|s| {
                let verdict = s.load().err().map(|e| e.to_string());
                bar.inc(1);
                verdict
            })
            .collect()
    });
    bar.finish_and_clear();
    let mut good = Vec::with_capacity(samples.len());
    let mut skipped = Vec::new();
    for (sample, verdict) in samples.iter().zip(verdicts) {
        match verdict {
            None => good.push(sample.clone()),
            Some(reason) => {
                tracing::warn!("skipping {reason}");
                skipped.push(Skipped {
                    path: sample.path.clone(),
                    reason,
                });
            }
        }
    }
    Ok((good, skipped))
}

/// The samples of a split this cache records: the recorded item list when the split was
/// begun before (resume), else the dataset's samples, screened under `skip_bad`.
fn split_plan(
    writer: &mut CacheWriter,
    dataset: &Dataset,
    split: &crate::dataset::Split,
    opts: &ExtractOptions,
) -> Result<Vec<Sample>> {
    if writer.manifest().splits.contains_key(&split.name) {
        let items_path = writer.dir().join(&split.name).join("items.json");
        let items: Vec<Item> = crate::fsutil::read_json(&items_path)?;
        let keys: Vec<String> = split.samples.iter().map(|s| dataset.key(s)).collect();
        let by_path: HashMap<&str, &Sample> = keys
            .iter()
            .map(String::as_str)
            .zip(&split.samples)
            .collect();
        return items
            .iter()
            .map(|item| {
                by_path
                    .get(item.path.as_str())
                    .map(|s| (*s).clone())
                    .ok_or_else(|| {
                        Error::cache(
                            &items_path,
                            format!(
                                "records `{}`, which the dataset no longer lists; pass --overwrite",
                                item.path
                            ),
                        )
                    })
            })
            .collect();
    }
    let (samples, mut skipped) = if opts.skip_bad {
        screen(&split.samples, &split.name, opts.decode_threads)?
    } else {
        (split.samples.clone(), vec![])
    };
    skipped.splice(0..0, split.skipped.iter().cloned());
    let items: Vec<Item> = samples
        .iter()
        .map(|s| Item {
            path: dataset.key(s),
            label: s.label as i64,
        })
        .collect();
    writer.begin_split(&split.name, &items, skipped, opts.shard_size)?;
    Ok(samples)
}

/// Batch ranges of shards `first..last` of a split of `n` items: batches never cross a shard.
fn shard_batches(
    n: usize,
    shard_size: usize,
    batch: usize,
    shards: Range<usize>,
) -> Vec<Range<usize>> {
    let mut ranges = Vec::new();
    for s in shards {
        let end = ((s + 1) * shard_size).min(n);
        let mut start = s * shard_size;
        while start < end {
            ranges.push(start..(start + batch).min(end));
            start += batch;
        }
    }
    ranges
}

/// Extracts `dataset` through `backbone` into the cache at `cache_dir`, resuming a partial
/// cache with the same fingerprint and refusing (or, with `overwrite`, replacing) another.
pub fn extract(
    backbone: &mut Backbone,
    dataset: &Dataset,
    opts: &ExtractOptions,
    cache_dir: &Path,
) -> Result<ExtractSummary> {
    let started = Instant::now();
    if opts.batch == 0 || opts.shard_size == 0 {
        return Err(Error::Config(format!(
            "batch ({}) and shard size ({}) must be positive",
            opts.batch, opts.shard_size
        )));
    }
    opts.preprocess.validate()?;
    if opts.preprocess.crop != backbone.input_size() {
        return Err(Error::Config(format!(
            "preprocessing crops to {} pixels but {} takes {}-pixel inputs (load it with load_backbone to change its size)",
            opts.preprocess.crop,
            backbone.model().name,
            backbone.input_size()
        )));
    }
    let split_names: Vec<String> = if opts.splits.is_empty() {
        dataset.splits.iter().map(|s| s.name.clone()).collect()
    } else {
        opts.splits.clone()
    };
    let splits = split_names
        .iter()
        .map(|n| dataset.split(n))
        .collect::<Result<Vec<_>>>()?;

    let model = backbone.model().clone();
    let feature_shape = model.feature_shape;
    let original_classes = model.original_classes;
    let fresh = CacheManifest {
        version: CACHE_VERSION,
        fingerprint: fingerprint(backbone, dataset, opts),
        model: model.name.clone(),
        feature_node: model.feature_node.clone(),
        feature_shape,
        dtype: opts.dtype,
        input_size: opts.preprocess.input_size(),
        preprocess: opts.preprocess.clone(),
        classes: dataset.classes.clone(),
        original_classes,
        original_head: Some(model.head.clone()),
        data_root: dataset.root.clone(),
        held_out: dataset.held_out,
        backbone: recorded_source(backbone, cache_dir)?,
        splits: BTreeMap::new(),
    };
    let mut writer = CacheWriter::create_or_resume(cache_dir, fresh, opts.overwrite)?;
    if let Some(classifier) = &model.classifier {
        if !writer.dir().join(crate::runs::CLASSIFIER_FILE).exists() {
            writer.write_classifier(classifier)?;
        }
    }

    let plans = splits
        .iter()
        .map(|s| Ok((s.name.clone(), split_plan(&mut writer, dataset, s, opts)?)))
        .collect::<Result<Vec<_>>>()?;
    let mut shard_budget = opts.max_shards.unwrap_or(usize::MAX);
    let mut work = Vec::new();
    for (name, samples) in plans {
        let info = writer.manifest().splits[&name].clone();
        let done = info.shards.len();
        let todo = (info.num_shards() - done).min(shard_budget);
        shard_budget -= todo;
        work.push((name, samples, info.shard_size, done, todo));
    }

    let total: usize = work
        .iter()
        .map(|(_, samples, size, done, todo)| {
            (samples.len().min((done + todo) * size)).saturating_sub(done * size)
        })
        .sum();
    let bar = crate::progress::bar(total as u64, "extract", "images");
    let image_len: usize = feature_shape.iter().product();
    let mut images = 0;
    let mut summaries = Vec::new();
    for (name, samples, shard_size, done, todo) in work {
        let ranges = shard_batches(samples.len(), shard_size, opts.batch, done..done + todo);
        let mut features: Vec<f32> = Vec::new();
        let mut labels: Vec<i64> = Vec::new();
        let mut logits: Vec<f32> = Vec::new();
        let mut written = 0;
        run_batches(
            backbone,
            &samples,
            &ranges,
            &opts.preprocess,
            opts.decode_threads,
            |range, out| {
                let n = range.len();
                if out.features.len() != n * image_len {
                    return Err(Error::Shape(format!(
                        "backbone returned {} feature values for {n} images of {feature_shape:?}",
                        out.features.len()
                    )));
                }
                features.extend_from_slice(&out.features);
                labels.extend(samples[range.clone()].iter().map(|s| s.label as i64));
                if let Some(c) = original_classes {
                    let l = out.logits.ok_or_else(|| {
                        Error::model(&model.name, "the backbone returned no logits")
                    })?;
                    if l.len() != n * c {
                        return Err(Error::Shape(format!(
                            "backbone returned {} logits for {n} images of {c} classes",
                            l.len()
                        )));
                    }
                    logits.extend_from_slice(&l);
                }
                images += n;
                bar.inc(n as u64);
                if range.end == samples.len() || range.end % shard_size == 0 {
                    let l = original_classes.map(|_| logits.as_slice());
                    writer.write_shard(&name, &features, &labels, l)?;
                    written += 1;
                    features.clear();
                    labels.clear();
                    logits.clear();
                }
                // After the shard write, so a stop keeps every finished shard.
                bar.check()
            },
        )?;
        let info = &writer.manifest().splits[&name];
        summaries.push(SplitSummary {
            name,
            items: info.num_items,
            skipped: info.skipped.len(),
            shards: info.num_shards(),
            shards_resumed: done,
            shards_written: written,
            complete: info.is_complete(),
        });
    }
    bar.finish_and_clear();

    let seconds = started.elapsed().as_secs_f64();
    Ok(ExtractSummary {
        preprocess: opts.preprocess.clone(),
        cache: writer.dir().to_path_buf(),
        fingerprint: writer.manifest().fingerprint.clone(),
        model: model.name.clone(),
        feature_node: model.feature_node.clone(),
        feature_shape,
        dtype: opts.dtype,
        classes: dataset.classes.clone(),
        complete: summaries.iter().all(|s| s.complete),
        splits: summaries,
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
        let r = shard_batches(10, 4, 3, 0..3);
        assert_eq!(r, vec![0..3, 3..4, 4..7, 7..8, 8..10]);
        assert_eq!(shard_batches(10, 4, 3, 1..2), vec![4..7, 7..8]);
        assert!(shard_batches(10, 4, 3, 3..3).is_empty());
    }
}
