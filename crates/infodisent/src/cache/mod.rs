//! The feature cache: a frozen backbone's feature maps, computed once and read many times.
//!
//! Layout of a cache folder:
//! ```text
//! manifest.json                   CacheManifest (fingerprint and its inputs, shapes, classes)
//! classifier.safetensors          the original classifier: "weight" [C, D], "bias" [C] (optional)
//! <split>/items.json              Vec<Item>: every image listed for the split, in shard order
//! <split>/plan.json               SplitPlan: item count and digest, shard size, number of parts
//! <split>/part-00000-of-00004.json PartProgress: the shards part 0 of 4 has finished
//! <split>/shard-00000.safetensors "features" [n, D, h, w] (f16 or f32), "labels" [n] (i64),
//!                                 "logits" [n, C_orig] (f32, optional), "index" [n] (i64)
//! ```
//! Shard `s` holds the listed items `s * shard_size ..`, less any found unreadable (its "index"
//! names the listed items it holds). Each part writes only its own shards and progress file,
//! every file atomically and the progress file after the shard, so any number of tasks can
//! extract into one folder at once and a killed one never leaves a shard that looks finished
//! but is not (see [`plan`]).

mod info;
pub mod plan;
mod shard;
mod writer;

pub use info::{CacheInfo, PartInfo, SplitReport};
pub use plan::Part;
pub use shard::ShardData;
pub use writer::CacheWriter;

use crate::error::{Error, Result};
use crate::fsutil::read_json;
use serde::{Deserialize, Serialize};
use shard::{read_shard_file, ShardRows};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Format version; bumped whenever the layout changes so old caches are refused, not misread.
/// Version 1 caches (one writer, progress in the manifest) still open.
pub const CACHE_VERSION: u32 = 2;

/// How feature values are stored on disk.
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum StoreDtype {
    /// Half precision: half the disk and I/O, ample precision for post-ReLU features.
    #[default]
    F16,
    /// Full precision.
    F32,
}

/// One input image of a split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// Where the image came from (a file path, or `idx-file#index` for IDX datasets).
    pub path: String,
    /// Class index into `CacheManifest::classes`.
    pub label: i64,
    /// Its boxes and part locations, where the dataset's layout records them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotation: Option<crate::annotation::Annotation>,
}

/// An image that was skipped with `--skip-bad`, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    /// The image that could not be used.
    pub path: String,
    /// What was wrong with it.
    pub reason: String,
}

/// Contents and progress of one split (e.g. `train`, `test`), as readers see it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SplitInfo {
    /// Images in the split: those listed less those skipped (final once complete).
    pub num_items: usize,
    /// Images planned per shard; a shard holds fewer where some were skipped.
    pub shard_size: usize,
    /// Parts its shards are divided into (the tasks of a cluster job; 1 for one process).
    pub parts: usize,
    /// Images each shard holds, `None` for shards not written yet.
    pub shard_rows: Vec<Option<usize>>,
    /// Images skipped because they were unreadable.
    pub skipped: Vec<Skipped>,
    /// Planned item indices that parts skipped, ascending (`items.json` lists planned items).
    #[serde(skip)]
    skipped_items: Vec<usize>,
    /// First item of each shard, then the total: where item `i` lives.
    #[serde(skip)]
    starts: Vec<usize>,
}

impl SplitInfo {
    /// A split from its shards' row counts.
    fn new(
        num_items: usize,
        shard_size: usize,
        parts: usize,
        shard_rows: Vec<Option<usize>>,
        skipped: Vec<Skipped>,
        mut skipped_items: Vec<usize>,
    ) -> Self {
        skipped_items.sort_unstable();
        let mut starts = Vec::with_capacity(shard_rows.len() + 1);
        let mut at = 0;
        for rows in &shard_rows {
            starts.push(at);
            at += rows.unwrap_or(0);
        }
        starts.push(at);
        SplitInfo {
            num_items,
            shard_size,
            parts,
            shard_rows,
            skipped,
            skipped_items,
            starts,
        }
    }

    /// How many shards the finished split has.
    pub fn num_shards(&self) -> usize {
        self.shard_rows.len()
    }
    /// Shards written so far.
    pub fn shards_done(&self) -> usize {
        self.shard_rows.iter().filter(|r| r.is_some()).count()
    }
    /// Whether every shard has been written.
    pub fn is_complete(&self) -> bool {
        self.shards_done() == self.num_shards()
    }
    /// Parts with shards still missing.
    pub fn missing_parts(&self) -> Vec<Part> {
        Part::all(self.parts)
            .filter(|p| {
                p.shards(self.num_shards())
                    .any(|s| self.shard_rows[s].is_none())
            })
            .collect()
    }
    /// Images shard `s` holds (0 while it is missing).
    pub fn shard_len(&self, s: usize) -> usize {
        self.shard_rows.get(s).copied().flatten().unwrap_or(0)
    }
    /// The items shard `s` holds, in a complete split.
    pub fn shard_range(&self, s: usize) -> std::ops::Range<usize> {
        self.starts[s]..self.starts[s] + self.shard_len(s)
    }
    /// The shard and row of item `i`, in a complete split.
    pub fn locate(&self, i: usize) -> (usize, usize) {
        // The last shard starting at or before `i`: an empty shard (every image skipped) shares
        // its start with the next, which the search passes over.
        let s = self.starts.partition_point(|&start| start <= i) - 1;
        (s, i - self.starts[s])
    }
}

/// How a test split was drawn from a folder that had none: recorded in the cache manifest and
/// its fingerprint, so a cache says which images it never trained on.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HoldOut {
    /// Share of each class that went to `test`.
    pub fraction: f64,
    /// Seed of the per-class shuffles.
    pub seed: u64,
}

/// Everything needed to read a cache and to decide whether it is stale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheManifest {
    /// Layout version, see [`CACHE_VERSION`].
    pub version: u32,
    /// Hash of model bytes, feature node, preprocessing and dataset listing.
    pub fingerprint: String,
    /// What the fingerprint covers, each part hashed on its own, so a cache made with other
    /// settings is refused naming what differs (absent in version 1 caches).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<String, String>,
    /// Human-readable model name or path.
    pub model: String,
    /// Graph node whose output is the feature map.
    pub feature_node: String,
    /// Feature map shape per image: [D, h, w].
    pub feature_shape: [usize; 3],
    /// Stored precision of features.
    pub dtype: StoreDtype,
    /// Side length of the (square) network input, to map feature cells back to pixels.
    pub input_size: usize,
    /// Preprocessing, as its own JSON, so it can be shown and compared.
    pub preprocess: crate::preprocess::Preprocess,
    /// Class names of the dataset, indexed by label.
    pub classes: Vec<String>,
    /// Number of outputs of the original classifier, if the model has one.
    pub original_classes: Option<usize>,
    /// What the model does with its pooled map, so later commands can say why CAM or the
    /// original-head baseline is missing (absent in caches made before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_head: Option<crate::onnx::model::OriginalHead>,
    /// The dataset's folder when the cache was made; item paths are relative to it (older
    /// caches record no root and paths as given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_root: Option<PathBuf>,
    /// How `test` was drawn from a folder that had no test split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_out: Option<HoldOut>,
    /// The backbone that made the cache, as later commands rebuild it
    /// ([`crate::backbone::from_cache`]); absent in caches made before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backbone: Option<crate::engine::BackboneSource>,
    /// The layout the dataset was read in.
    #[serde(default, skip_serializing_if = "is_default_layout")]
    pub layout: crate::layout::Layout,
    /// Names of the parts the items' annotations locate (CUB's 15; empty elsewhere).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub part_names: Vec<String>,
    /// Splits by name: read from the split folders (a version 1 manifest lists them itself).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub splits: BTreeMap<String, SplitInfo>,
}

fn is_default_layout(layout: &crate::layout::Layout) -> bool {
    *layout == crate::layout::Layout::default()
}

impl CacheManifest {
    /// What differs between the inputs of this cache and of `other`, in words (empty when the
    /// fingerprints agree).
    pub fn difference(&self, other: &CacheManifest) -> String {
        if self.fingerprint == other.fingerprint {
            return String::new();
        }
        let what = |key: &str| match key {
            "model" => "another model",
            "feature_node" => "another feature node",
            "preprocess" => "other preprocessing",
            "dtype" => "another stored precision (--dtype)",
            "skip_bad" => "another --skip-bad",
            "dataset" => "another dataset (other images, sizes, labels or split)",
            "precision" => "another backbone arithmetic (--precision)",
            "engine" => "another engine (--engine) at a precision other than f32",
            _ => "another cache format",
        };
        let keys: std::collections::BTreeSet<&String> =
            self.inputs.keys().chain(other.inputs.keys()).collect();
        let differs: Vec<&str> = keys
            .into_iter()
            .filter(|k| self.inputs.get(*k) != other.inputs.get(*k))
            .map(|k| what(k))
            .collect();
        match differs.is_empty() {
            true => "another model, preprocessing or dataset".to_owned(),
            false => differs.join(", "),
        }
    }
}

/// One shard read into memory, features converted to f32.
#[derive(Debug, Clone)]
pub struct Shard {
    /// Number of images.
    pub len: usize,
    /// Features, [len, D, h, w] row-major.
    pub features: Vec<f32>,
    /// Labels, `[len]`.
    pub labels: Vec<i64>,
    /// Original classifier logits, [len, C_orig], when the model has a classifier.
    pub logits: Option<Vec<f32>>,
    /// Item index of each image within its split.
    pub index: Vec<i64>,
}

/// A finished, validated cache opened for reading.
#[derive(Debug, Clone)]
pub struct FeatureCache {
    dir: PathBuf,
    manifest: CacheManifest,
    /// Each split's plan and finished shards as its folder recorded them when opened (none
    /// for a version 1 cache); `manifest.splits` is their reader's view.
    states: BTreeMap<String, plan::SplitState>,
    /// Where the dataset is now, when the user says it moved (`--data-root`).
    data_root: Option<PathBuf>,
    /// Labels are the original classifier's predictions (see
    /// [`FeatureCache::with_original_labels`]).
    original_labels: bool,
}

fn manifest_path(dir: &Path) -> PathBuf {
    dir.join("manifest.json")
}

/// A split as a version 1 manifest records it: one writer, shards written in order, every
/// shard full but the last, and `items.json` listing only the images kept.
#[derive(Deserialize)]
struct SplitInfoV1 {
    num_items: usize,
    shard_size: usize,
    shards: Vec<String>,
    skipped: Vec<Skipped>,
}

/// Reads a manifest of either version; a version 1 manifest's splits become [`SplitInfo`]s.
fn read_manifest(path: &Path) -> Result<CacheManifest> {
    let mut value: serde_json::Value = read_json(path)?;
    let invalid = |e: serde_json::Error| Error::cache(path, format!("invalid manifest: {e}"));
    let v1_splits = match value.get("version").and_then(|v| v.as_u64()) {
        Some(1) => value.as_object_mut().and_then(|m| m.remove("splits")),
        _ => None,
    };
    let mut manifest: CacheManifest = serde_json::from_value(value).map_err(invalid)?;
    if let Some(splits) = v1_splits {
        let splits: BTreeMap<String, SplitInfoV1> =
            serde_json::from_value(splits).map_err(invalid)?;
        manifest.splits = splits
            .into_iter()
            .map(|(name, s)| {
                let size = s.shard_size.max(1);
                let rows = (0..s.num_items.div_ceil(size))
                    .map(|i| (i < s.shards.len()).then(|| (s.num_items - i * size).min(size)))
                    .collect();
                let info = SplitInfo::new(s.num_items, size, 1, rows, s.skipped, vec![]);
                (name, info)
            })
            .collect();
    }
    Ok(manifest)
}

/// Every split folder of a version 2 cache (those holding a `plan.json`), by name.
fn read_splits(dir: &Path) -> Result<BTreeMap<String, plan::SplitState>> {
    let mut splits = BTreeMap::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        if path.join("plan.json").is_file() {
            let name = entry.file_name().to_string_lossy().into_owned();
            splits.insert(name, plan::SplitState::read(&path)?);
        }
    }
    Ok(splits)
}

impl FeatureCache {
    /// Opens a cache, checking its version, and reads every split's plan and progress (an
    /// unfinished cache opens, so it can be inspected; [`FeatureCache::split`] refuses it).
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let mpath = manifest_path(&dir);
        if !mpath.exists() {
            return Err(Error::cache(
                &dir,
                "no manifest.json: not a feature cache (run `infodisent extract`)",
            ));
        }
        let mut manifest = read_manifest(&mpath)?;
        let mut states = BTreeMap::new();
        match manifest.version {
            1 => {}
            CACHE_VERSION => {
                states = read_splits(&dir)?;
                manifest.splits = states.iter().map(|(n, s)| (n.clone(), s.info())).collect();
            }
            v => {
                return Err(Error::cache(
                    &mpath,
                    format!("cache format version {v} but this build reads 1 and {CACHE_VERSION}: re-run `infodisent extract`"),
                ))
            }
        }
        Ok(FeatureCache {
            dir,
            manifest,
            states,
            data_root: None,
            original_labels: false,
        })
    }

    /// Opens a cache and refuses it unless it was made with exactly this fingerprint.
    pub fn open_expecting(dir: impl AsRef<Path>, fingerprint: &str) -> Result<Self> {
        let cache = Self::open(dir)?;
        if cache.manifest.fingerprint != fingerprint {
            return Err(Error::cache(
                &cache.dir,
                "stale cache: it was made with another model, preprocessing or dataset; delete it or choose another --cache folder",
            ));
        }
        Ok(cache)
    }

    /// The cache folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// The manifest.
    pub fn manifest(&self) -> &CacheManifest {
        &self.manifest
    }
    /// Feature map shape [D, h, w].
    pub fn feature_shape(&self) -> [usize; 3] {
        self.manifest.feature_shape
    }
    /// Number of dataset classes.
    pub fn num_classes(&self) -> usize {
        self.manifest.classes.len()
    }

    /// A split's info; errors if missing or unfinished.
    pub fn split(&self, name: &str) -> Result<&SplitInfo> {
        let info = self.manifest.splits.get(name).ok_or_else(|| {
            let have: Vec<_> = self.manifest.splits.keys().cloned().collect();
            Error::cache(
                &self.dir,
                format!("no split `{name}` (have: {})", have.join(", ")),
            )
        })?;
        if !info.is_complete() {
            let missing: Vec<String> = info.missing_parts().iter().map(|p| p.to_string()).collect();
            let (s, verb) = if missing.len() == 1 {
                ("", "is")
            } else {
                ("s", "are")
            };
            let fix = match info.parts {
                1 => "run `infodisent extract` again with the options that made it".to_owned(),
                _ => format!(
                    "run `infodisent extract --part {}` (with the options that made it)",
                    missing.join(", --part ")
                ),
            };
            return Err(Error::cache(
                &self.dir,
                format!(
                    "split `{name}` is incomplete ({} of {} shards): part{s} {} {verb} missing; {fix} to finish it",
                    info.shards_done(),
                    info.num_shards(),
                    missing.join(", "),
                ),
            ));
        }
        Ok(info)
    }

    /// `asked`, else the [evaluation split](Self::evaluation_split).
    pub fn split_or_default(&self, asked: Option<String>) -> Result<String> {
        asked.map_or_else(|| self.evaluation_split(), Ok)
    }

    /// The split explanations, metrics and reports default to: `test`, else `val`, else the only
    /// split there is.
    pub fn evaluation_split(&self) -> Result<String> {
        let splits = &self.manifest.splits;
        for name in ["test", "val"] {
            if splits.contains_key(name) {
                return Ok(name.to_owned());
            }
        }
        match splits.keys().collect::<Vec<_>>()[..] {
            [only] => Ok(only.clone()),
            ref names => Err(Error::Config(format!(
                "the cache has no `test` or `val` split; choose one of {names:?} with --split"
            ))),
        }
    }

    /// The same cache reading its images from `root`: the dataset moved since extraction.
    pub fn with_data_root(mut self, root: &Path) -> Result<Self> {
        if self.manifest.data_root.is_none() {
            return Err(Error::cache(
                &self.dir,
                "records no dataset root (made by an older infodisent): re-extract it to move its dataset",
            ));
        }
        let root = root.canonicalize().map_err(|e| Error::io(root, e))?;
        self.data_root = Some(root);
        Ok(self)
    }

    /// The same cache labelled by the original classifier: every image's label is the class
    /// its stored logits rank first, and the classes are the classifier's (ImageNet's names for
    /// a 1000-class model). What a head fitted to the original model (`--target original`) is
    /// trained, measured and explained against, whatever labels the dataset has, if any.
    pub fn with_original_labels(mut self) -> Result<Self> {
        let classes = self.manifest.original_classes.ok_or_else(|| {
            Error::cache(
                &self.dir,
                "holds no logits of an original classifier (the model has none): it can only be used with its dataset's labels",
            )
        })?;
        self.manifest.classes = crate::assets::imagenet_labels_for(classes)
            .unwrap_or_else(|| (0..classes).map(|c| format!("class {c}")).collect());
        self.original_labels = true;
        Ok(self)
    }

    /// Whether labels are the original classifier's predictions.
    pub fn labels_are_original(&self) -> bool {
        self.original_labels
    }

    /// Replaces `labels` by the class each row of `logits` ranks first, in the original view.
    /// `what` names the source in the error; it is only formatted when one is raised, since
    /// every training batch passes through here.
    fn relabel(
        &self,
        labels: &mut [i64],
        logits: Option<&[f32]>,
        what: impl FnOnce() -> String,
    ) -> Result<()> {
        if !self.original_labels {
            return Ok(());
        }
        let classes = self.manifest.classes.len();
        let logits = logits
            .filter(|l| l.len() == labels.len() * classes)
            .ok_or_else(|| {
                Error::cache(
                    &self.dir,
                    format!("{} lacks the original classifier's logits", what()),
                )
            })?;
        for (label, row) in labels.iter_mut().zip(logits.chunks_exact(classes)) {
            *label = crate::head::params::argmax(row) as i64;
        }
        Ok(())
    }

    /// The dataset's folder: the one given by [`FeatureCache::with_data_root`], else the one
    /// recorded at extraction (`None` for caches made before roots were recorded).
    pub fn data_root(&self) -> Option<&Path> {
        self.data_root
            .as_deref()
            .or(self.manifest.data_root.as_deref())
    }

    /// Where an image the cache records by `key` (relative to the dataset root) is now.
    pub fn resolve(&self, key: &str) -> String {
        match self.data_root() {
            Some(root) if Path::new(key).is_relative() => root.join(key).display().to_string(),
            _ => key.to_owned(),
        }
    }

    /// The items of a split in shard order, their paths resolved against the dataset root
    /// (or the one given by [`FeatureCache::with_data_root`]).
    pub fn items(&self, split: &str) -> Result<Vec<Item>> {
        let info = self.split(split)?;
        let listed: Vec<Item> = read_json(self.dir.join(split).join("items.json"))?;
        let mut skipped = info.skipped_items.iter().peekable();
        let mut items = Vec::with_capacity(info.num_items);
        for (i, mut item) in listed.into_iter().enumerate() {
            if skipped.next_if(|&&s| s == i).is_some() {
                continue;
            }
            item.path = self.resolve(&item.path);
            items.push(item);
        }
        if items.len() != info.num_items {
            return Err(Error::cache(
                self.dir.join(split),
                format!(
                    "items.json lists {} usable images, the shards hold {}",
                    items.len(),
                    info.num_items
                ),
            ));
        }
        if self.original_labels {
            // Only the logits are read, a few kilobytes per shard.
            let [d, h, w] = self.manifest.feature_shape;
            for s in 0..info.num_shards() {
                let path = self.dir.join(split).join(plan::shard_file(s));
                let range = info.shard_range(s);
                let mut rows = ShardRows::open(&path, [range.len(), d, h, w])?;
                let logits = rows.logits(0..range.len())?;
                let mut labels = vec![0; range.len()];
                self.relabel(&mut labels, logits.as_deref(), || {
                    format!("shard {}", path.display())
                })?;
                for (item, label) in items[range].iter_mut().zip(labels) {
                    item.label = label;
                }
            }
        }
        Ok(items)
    }

    /// Reads shard `i` of `split`, checking every tensor's shape against the manifest.
    pub fn read_shard(&self, split: &str, i: usize) -> Result<Shard> {
        let info = self.split(split)?;
        if i >= info.num_shards() {
            return Err(Error::cache(
                &self.dir,
                format!("split `{split}` has no shard {i}"),
            ));
        }
        let path = self.dir.join(split).join(plan::shard_file(i));
        let range = info.shard_range(i);
        let mut shard = read_shard_file(
            &path,
            self.manifest.feature_shape,
            self.manifest.original_classes,
            range.clone(),
        )?;
        self.relabel(&mut shard.labels, shard.logits.as_deref(), || {
            format!("shard {}", path.display())
        })?;
        Ok(shard)
    }

    /// Streams a split shard by shard, so a cache larger than memory can be used.
    pub fn shards<'a>(
        &'a self,
        split: &'a str,
    ) -> Result<impl Iterator<Item = Result<Shard>> + 'a> {
        let n = self.split(split)?.num_shards();
        Ok((0..n).map(move |i| self.read_shard(split, i)))
    }

    /// Reads the items `indices` of `split` (in that order) into one shard, reading only their
    /// rows from the shard files: what a shuffled pass over a split larger than memory needs.
    pub fn read_items(&self, split: &str, indices: &[usize]) -> Result<Shard> {
        let info = self.split(split)?;
        let [d, h, w] = self.manifest.feature_shape;
        let per_image = d * h * w;
        let mut out = Shard {
            len: indices.len(),
            features: vec![0.0; indices.len() * per_image],
            labels: vec![0; indices.len()],
            logits: None,
            index: indices.iter().map(|&i| i as i64).collect(),
        };
        let classes = self.manifest.original_classes.unwrap_or(0);
        let mut logits = vec![0.0f32; indices.len() * classes];
        let mut all_logits = classes > 0;
        // Items of one shard are read through one open file, in file order.
        let mut order: Vec<usize> = (0..indices.len()).collect();
        order.sort_by_key(|&k| indices[k]);
        let mut open: Option<(usize, ShardRows)> = None;
        for k in order {
            let item = indices[k];
            if item >= info.num_items {
                return Err(Error::cache(
                    &self.dir,
                    format!(
                        "split `{split}` has {} items, not {}",
                        info.num_items,
                        item + 1
                    ),
                ));
            }
            let (shard, row) = info.locate(item);
            if open.as_ref().map(|(s, _)| *s) != Some(shard) {
                let path = self.dir.join(split).join(plan::shard_file(shard));
                let rows = info.shard_len(shard);
                open = Some((shard, ShardRows::open(&path, [rows, d, h, w])?));
            }
            let (_, rows) = open.as_mut().expect("opened above");
            rows.features(row, &mut out.features[k * per_image..(k + 1) * per_image])?;
            out.labels[k] = rows.label(row)?;
            if all_logits {
                match rows.logits(row..row + 1)? {
                    Some(l) if l.len() == classes => {
                        logits[k * classes..(k + 1) * classes].copy_from_slice(&l)
                    }
                    _ => all_logits = false,
                }
            }
        }
        out.logits = all_logits.then_some(logits);
        self.relabel(&mut out.labels, out.logits.as_deref(), || {
            format!("split `{split}`")
        })?;
        Ok(out)
    }

    /// Calls `f` with the items `order` of `split`, `batch` at a time, in that order, each batch
    /// read on its own (see [`FeatureCache::read_items`]): a pass in any order. The next batch
    /// is read and decoded on another thread while `f` works on the current one, so at most
    /// three batches are in memory; an error from either side ends the pass.
    pub fn visit_batches(
        &self,
        split: &str,
        order: &[usize],
        batch: usize,
        mut f: impl FnMut(Shard) -> Result<()>,
    ) -> Result<()> {
        let chunks: Vec<&[usize]> = order.chunks(batch.max(1)).collect();
        if chunks.len() < 2 {
            return chunks
                .into_iter()
                .try_for_each(|c| f(self.read_items(split, c)?));
        }
        std::thread::scope(|scope| {
            let (ready, next) = std::sync::mpsc::sync_channel::<Result<Shard>>(1);
            scope.spawn(move || {
                for chunk in chunks {
                    let rows = self.read_items(split, chunk);
                    let failed = rows.is_err();
                    // A closed channel means the consumer stopped early: stop reading too.
                    if ready.send(rows).is_err() || failed {
                        break;
                    }
                }
            });
            next.into_iter().try_for_each(|rows| f(rows?))
        })
    }

    /// Reads a whole split into one shard (for data that fits in memory).
    pub fn read_split(&self, split: &str) -> Result<Shard> {
        let mut all = Shard {
            len: 0,
            features: vec![],
            labels: vec![],
            logits: None,
            index: vec![],
        };
        for shard in self.shards(split)? {
            let s = shard?;
            all.len += s.len;
            all.features.extend_from_slice(&s.features);
            all.labels.extend_from_slice(&s.labels);
            all.index.extend_from_slice(&s.index);
            if let Some(l) = s.logits {
                all.logits
                    .get_or_insert_with(Vec::new)
                    .extend_from_slice(&l);
            }
        }
        Ok(all)
    }

    /// The original classifier stored beside the features, if the model has one.
    pub fn classifier(&self) -> Result<Option<crate::classifier::LinearClassifier>> {
        let path = self.dir.join(crate::runs::CLASSIFIER_FILE);
        if !path.exists() {
            return Ok(None);
        }
        crate::classifier::LinearClassifier::load(&path).map(Some)
    }
}

/// Up to `n` item indices of a split, spread over its classes as evenly as they allow and drawn
/// at random within each class (seeded), in ascending order: a sample that does not depend on
/// the order the cache was written in.
pub fn balanced_sample(items: &[Item], n: usize, seed: u64) -> Vec<usize> {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    let mut by_class: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        by_class.entry(item.label).or_default().push(i);
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    for members in by_class.values_mut() {
        members.shuffle(&mut rng);
    }
    let mut chosen = Vec::with_capacity(n.min(items.len()));
    let mut round = 0;
    while chosen.len() < n.min(items.len()) {
        for members in by_class.values() {
            if let Some(&i) = members.get(round) {
                if chosen.len() < n {
                    chosen.push(i);
                }
            }
        }
        round += 1;
    }
    chosen.sort_unstable();
    chosen
}
