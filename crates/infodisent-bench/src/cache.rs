//! The cache at ImageNet's size without ImageNet: 1.28 M items with tiny feature maps, to time
//! and weigh what grows with the item count (the plan, opening, one shuffled epoch) apart from
//! what grows with the features.

use infodisent::cache::{
    CacheManifest, CacheWriter, FeatureCache, Item, Part, ShardData, StoreDtype,
};
use infodisent::error::Result;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;

/// How big a cache to time.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CacheBenchOptions {
    /// Items in the one split.
    pub items: usize,
    /// Classes (items are spread evenly, class folders as ImageNet's).
    pub classes: usize,
    /// Items per shard.
    pub shard_size: usize,
    /// Parts the shards are written by (one writer here, one progress file per part).
    pub parts: usize,
    /// Feature map [D, h, w] of every item.
    pub feature_shape: [usize; 3],
    /// Items per batch of the epoch.
    pub batch: usize,
}

/// Time and peak memory of one phase.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Phase {
    /// Wall time in seconds.
    pub seconds: f64,
    /// Peak resident memory during the phase in bytes (`VmHWM` reset before it), when known.
    pub peak_rss_bytes: Option<u64>,
}

/// What `bench cache` prints.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CacheBench {
    /// The CPU, in words.
    pub cpu: String,
    /// The options timed.
    pub options: CacheBenchOptions,
    /// Planning the split: the item list, `items.json` and `plan.json`.
    pub plan: Phase,
    /// Writing every shard and progress file (not a cost users see apart from extraction).
    pub write: Phase,
    /// Opening the finished cache and reading its item list, as `train` does first.
    pub open: Phase,
    /// One pass over every item in a shuffled order, in batches, as a training epoch reads.
    pub epoch: Phase,
    /// Items per second over the epoch.
    pub epoch_items_per_sec: f64,
    /// Bytes on disk of `items.json`, the progress files and the shards.
    pub disk_bytes: u64,
}

/// Runs `f` as one phase: peak memory reset before, read after.
fn phase<T>(f: impl FnOnce() -> Result<T>) -> Result<(T, Phase)> {
    super::reset_peak_rss();
    let started = Instant::now();
    let value = f()?;
    Ok((
        value,
        Phase {
            seconds: started.elapsed().as_secs_f64(),
            peak_rss_bytes: super::peak_rss_bytes(),
        },
    ))
}

/// Builds, opens and streams a synthetic cache of `opts.items` items in `dir` (which should be
/// empty; it is filled).
pub fn bench_cache(opts: &CacheBenchOptions, dir: &Path) -> Result<CacheBench> {
    let [d, h, w] = opts.feature_shape;
    let per_item = d * h * w;
    let manifest = CacheManifest {
        version: infodisent::cache::CACHE_VERSION,
        fingerprint: format!("bench-cache-{}", opts.items),
        inputs: Default::default(),
        model: "synthetic".into(),
        feature_node: "synthetic".into(),
        feature_shape: opts.feature_shape,
        dtype: StoreDtype::F16,
        input_size: 224,
        preprocess: infodisent::preprocess::Preprocess::torchvision(224),
        classes: (0..opts.classes).map(|c| format!("n{c:08}")).collect(),
        original_classes: None,
        original_head: None,
        data_root: None,
        held_out: None,
        layout: Default::default(),
        part_names: vec![],
        backbone: None,
        splits: Default::default(),
    };
    let label = |i: usize| (i * opts.classes / opts.items.max(1)) as i64;
    let (mut writer, plan) = phase(|| {
        let items: Vec<Item> = (0..opts.items)
            .map(|i| Item {
                path: format!("train/n{:08}/n{:08}_{i}.JPEG", label(i), label(i)),
                label: label(i),
                annotation: None,
            })
            .collect();
        let mut writer = CacheWriter::create_or_resume(dir, manifest, false)?;
        writer.plan_split("train", &items, vec![], opts.shard_size, Some(opts.parts))?;
        Ok(writer)
    })?;
    let ((), write) = phase(|| {
        for part in Part::all(opts.parts) {
            for shard in writer.shards_todo("train", part)? {
                let start = shard * opts.shard_size;
                let n = opts.shard_size.min(opts.items - start);
                let listed: Vec<i64> = (start..start + n).map(|i| i as i64).collect();
                let labels: Vec<i64> = (start..start + n).map(label).collect();
                let features: Vec<f32> = (0..n * per_item).map(|k| (k % 7) as f32).collect();
                let data = ShardData {
                    features: &features,
                    labels: &labels,
                    logits: None,
                    listed: &listed,
                };
                writer.write_shard_rows("train", shard, &data, vec![])?;
            }
        }
        Ok(())
    })?;
    let (cache, open) = phase(|| {
        let cache = FeatureCache::open(dir)?;
        let items = cache.items("train")?;
        debug_assert_eq!(items.len(), opts.items);
        Ok(cache)
    })?;
    let (seen, epoch) = phase(|| {
        use rand::seq::SliceRandom;
        use rand::SeedableRng;
        let mut order: Vec<usize> = (0..opts.items).collect();
        order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(0));
        let mut seen = 0;
        cache.visit_batches("train", &order, opts.batch, |batch| {
            seen += batch.len;
            Ok(())
        })?;
        Ok(seen)
    })?;
    debug_assert_eq!(seen, opts.items);
    Ok(CacheBench {
        cpu: infodisent::cpu::Cpu::get().describe(),
        options: opts.clone(),
        epoch_items_per_sec: seen as f64 / epoch.seconds.max(1e-9),
        plan,
        write,
        open,
        epoch,
        disk_bytes: folder_bytes(dir),
    })
}

fn folder_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => folder_bytes(&e.path()),
            _ => e.metadata().map_or(0, |m| m.len()),
        })
        .sum()
}
