//! The feature cache: a frozen backbone's feature maps, computed once and read many times.
//!
//! Layout of a cache folder:
//! ```text
//! manifest.json                  CacheManifest (fingerprint, shapes, classes, splits, skips)
//! classifier.safetensors         the original classifier: "weight" [C, D], "bias" [C] (optional)
//! <split>/items.json             Vec<Item>: every image of the split, in shard order
//! <split>/shard-00000.safetensors "features" [n, D, h, w] (f16 or f32), "labels" [n] (i64),
//!                                "logits" [n, C_orig] (f32, optional), "index" [n] (i64)
//! ```
//! Item `i` of a split lives in shard `i / shard_size`, so a resumed run knows exactly which shards
//! are missing. Every file is written atomically and the manifest last, so a killed run never
//! leaves a shard that looks finished but is not.

use crate::error::{Error, Result};
use crate::fsutil::{read_json, write_atomic, write_json_atomic};
use half::f16;
use safetensors::tensor::{Dtype, TensorView};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Format version; bumped whenever the layout changes so old caches are refused, not misread.
pub const CACHE_VERSION: u32 = 1;

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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// Where the image came from (a file path, or `idx-file#index` for IDX datasets).
    pub path: String,
    /// Class index into `CacheManifest::classes`.
    pub label: i64,
}

/// An image that was skipped with `--skip-bad`, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    /// The image that could not be used.
    pub path: String,
    /// What was wrong with it.
    pub reason: String,
}

/// Progress and contents of one split (e.g. `train`, `test`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SplitInfo {
    /// Number of items in the split (after skips).
    pub num_items: usize,
    /// Items per shard (the last may hold fewer).
    pub shard_size: usize,
    /// File names of the shards written so far, in order; complete when `len == num_shards()`.
    pub shards: Vec<String>,
    /// Images skipped because they were unreadable.
    pub skipped: Vec<Skipped>,
}

impl SplitInfo {
    /// How many shards the finished split has.
    pub fn num_shards(&self) -> usize {
        self.num_items.div_ceil(self.shard_size.max(1))
    }
    /// Whether every shard has been written.
    pub fn is_complete(&self) -> bool {
        self.shards.len() == self.num_shards()
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
    /// ([`crate::extract::cache_backbone`]); absent in caches made before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backbone: Option<crate::engine::BackboneSource>,
    /// Splits by name.
    pub splits: BTreeMap<String, SplitInfo>,
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
    /// Where the dataset is now, when the user says it moved (`--data-root`).
    data_root: Option<PathBuf>,
    /// Labels are the original classifier's predictions (see
    /// [`FeatureCache::with_original_labels`]).
    original_labels: bool,
}

fn manifest_path(dir: &Path) -> PathBuf {
    dir.join("manifest.json")
}

impl FeatureCache {
    /// Opens a cache, checking its version and that the split files it names exist.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let mpath = manifest_path(&dir);
        if !mpath.exists() {
            return Err(Error::cache(
                &dir,
                "no manifest.json: not a feature cache (run `infodisent extract`)",
            ));
        }
        let manifest: CacheManifest = read_json(&mpath)?;
        if manifest.version != CACHE_VERSION {
            return Err(Error::cache(
                &mpath,
                format!("cache format version {} but this build reads {CACHE_VERSION}: re-run `infodisent extract`", manifest.version),
            ));
        }
        Ok(FeatureCache {
            dir,
            manifest,
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
            return Err(Error::cache(
                &self.dir,
                format!("split `{name}` is incomplete ({} of {} shards): re-run `infodisent extract` to resume", info.shards.len(), info.num_shards()),
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
        self.manifest.classes = match crate::assets::imagenet_labels() {
            Ok(names) if names.len() == classes => names,
            _ => (0..classes).map(|c| format!("class {c}")).collect(),
        };
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
        self.split(split)?;
        let mut items: Vec<Item> = read_json(self.dir.join(split).join("items.json"))?;
        for item in &mut items {
            item.path = self.resolve(&item.path);
        }
        if self.original_labels {
            // Only the logits are read, a few kilobytes per shard.
            let info = self.split(split)?;
            let [d, h, w] = self.manifest.feature_shape;
            for (i, name) in info.shards.iter().enumerate() {
                let path = self.dir.join(split).join(name);
                let n = (info.num_items - i * info.shard_size).min(info.shard_size);
                let mut rows = ShardRows::open(&path, [n, d, h, w])?;
                let logits = rows.logits(0..n)?;
                let mut labels = vec![0; n];
                self.relabel(&mut labels, logits.as_deref(), || {
                    format!("shard {}", path.display())
                })?;
                for (item, label) in items[i * info.shard_size..].iter_mut().zip(labels) {
                    item.label = label;
                }
            }
        }
        Ok(items)
    }

    /// Reads shard `i` of `split`, checking every tensor's shape against the manifest.
    pub fn read_shard(&self, split: &str, i: usize) -> Result<Shard> {
        let info = self.split(split)?;
        let name = info
            .shards
            .get(i)
            .ok_or_else(|| Error::cache(&self.dir, format!("split `{split}` has no shard {i}")))?;
        let path = self.dir.join(split).join(name);
        let expected = (info.num_items - i * info.shard_size).min(info.shard_size);
        let mut shard = read_shard_file(
            &path,
            self.manifest.feature_shape,
            self.manifest.original_classes,
            expected,
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
        let n = self.split(split)?.shards.len();
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
            let shard = item / info.shard_size;
            if open.as_ref().map(|(s, _)| *s) != Some(shard) {
                let path = self.dir.join(split).join(&info.shards[shard]);
                let rows = (info.num_items - shard * info.shard_size).min(info.shard_size);
                open = Some((shard, ShardRows::open(&path, [rows, d, h, w])?));
            }
            let (_, rows) = open.as_mut().expect("opened above");
            let row = item % info.shard_size;
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

fn tensor_f32(path: &Path, t: &TensorView<'_>) -> Result<Vec<f32>> {
    decode_f32(path, t.dtype(), t.data())
}

/// Little-endian f16 or f32 feature bytes as f32.
fn decode_f32(path: &Path, dtype: Dtype, data: &[u8]) -> Result<Vec<f32>> {
    match dtype {
        Dtype::F32 => Ok(data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()),
        Dtype::F16 => Ok(data
            .chunks_exact(2)
            .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect()),
        other => Err(Error::cache(
            path,
            format!("expected f16/f32 tensor, found {other:?}"),
        )),
    }
}

fn tensor_i64(path: &Path, t: &TensorView<'_>) -> Result<Vec<i64>> {
    if t.dtype() != Dtype::I64 {
        return Err(Error::cache(
            path,
            format!("expected i64 tensor, found {:?}", t.dtype()),
        ));
    }
    Ok(t.data()
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
        .collect())
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

/// One shard file opened for reading single rows of its features and labels.
struct ShardRows {
    path: PathBuf,
    file: std::fs::File,
    data_start: u64,
    features_start: u64,
    /// How feature values are stored (f16 or f32; anything else is refused when read).
    dtype: Dtype,
    labels_start: u64,
    per_image: usize,
    /// Where the f32 logits `[rows, C]` start, and C, when the shard stores them.
    logits: Option<(u64, usize)>,
}

impl ShardRows {
    /// Opens a shard and checks that its features have `shape`.
    fn open(path: &Path, shape: [usize; 4]) -> Result<Self> {
        use std::io::Read;
        let corrupt = |msg: String| Error::cache(path, format!("corrupt shard: {msg}"));
        let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let mut n = [0u8; 8];
        file.read_exact(&mut n).map_err(|e| Error::io(path, e))?;
        let n = u64::from_le_bytes(n);
        if n > 100 << 20 {
            return Err(corrupt(format!("header of {n} bytes")));
        }
        let mut header = vec![0u8; n as usize];
        file.read_exact(&mut header)
            .map_err(|e| Error::io(path, e))?;
        // The header alone (safetensors' own reader insists on the whole file).
        #[derive(serde::Deserialize)]
        struct Info {
            dtype: Dtype,
            shape: Vec<usize>,
            data_offsets: (u64, u64),
        }
        let mut meta: std::collections::HashMap<String, serde_json::Value> =
            serde_json::from_slice(&header).map_err(|e| corrupt(e.to_string()))?;
        let has_logits = meta.contains_key("logits");
        let mut tensor = |name: &str| -> Result<Info> {
            let value = meta
                .remove(name)
                .ok_or_else(|| Error::cache(path, format!("shard lacks tensor `{name}`")))?;
            serde_json::from_value(value).map_err(|e| corrupt(format!("`{name}`: {e}")))
        };
        let feats = tensor("features")?;
        if feats.shape != shape {
            return Err(Error::cache(
                path,
                format!(
                    "features have shape {:?}, manifest says {shape:?}",
                    feats.shape
                ),
            ));
        }
        let per_image = shape[1] * shape[2] * shape[3];
        let labels = tensor("labels")?;
        let span = |(start, end): (u64, u64)| end.checked_sub(start);
        let sizes_ok = span(feats.data_offsets)
            == Some((shape[0] * per_image * feats.dtype.bitsize().div_ceil(8)) as u64)
            && span(labels.data_offsets) == Some((shape[0] * 8) as u64);
        if labels.shape != [shape[0]] || labels.dtype != Dtype::I64 || !sizes_ok {
            return Err(corrupt("tensor sizes do not match their shapes".to_owned()));
        }
        let logits = match has_logits {
            true => {
                let t = tensor("logits")?;
                let classes = t.shape.get(1).copied().unwrap_or(0);
                if t.dtype != Dtype::F32
                    || t.shape != [shape[0], classes]
                    || span(t.data_offsets) != Some((shape[0] * classes * 4) as u64)
                {
                    return Err(corrupt("`logits` size does not match its shape".to_owned()));
                }
                Some((t.data_offsets.0, classes))
            }
            false => None,
        };
        Ok(ShardRows {
            path: path.to_path_buf(),
            file,
            data_start: 8 + n,
            features_start: feats.data_offsets.0,
            dtype: feats.dtype,
            labels_start: labels.data_offsets.0,
            per_image,
            logits,
        })
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
        use std::os::unix::fs::FileExt;
        self.file
            .read_exact_at(buf, self.data_start + offset)
            .map_err(|e| Error::io(&self.path, e))
    }

    /// Row `row` of the features, as f32, into `out`.
    fn features(&mut self, row: usize, out: &mut [f32]) -> Result<()> {
        let width = self.dtype.bitsize().div_ceil(8);
        let mut bytes = vec![0u8; self.per_image * width];
        self.read_at(
            self.features_start + (row * self.per_image * width) as u64,
            &mut bytes,
        )?;
        out.copy_from_slice(&decode_f32(&self.path, self.dtype, &bytes)?);
        if out.iter().any(|v| !v.is_finite()) {
            return Err(Error::cache(
                &self.path,
                format!("features of row {row} contain NaN or infinity"),
            ));
        }
        Ok(())
    }

    /// Label of row `row`.
    fn label(&mut self, row: usize) -> Result<i64> {
        let mut b = [0u8; 8];
        self.read_at(self.labels_start + (row * 8) as u64, &mut b)?;
        Ok(i64::from_le_bytes(b))
    }

    /// Logits of `rows`, `[rows, C]`, when the shard stores them.
    fn logits(&mut self, rows: std::ops::Range<usize>) -> Result<Option<Vec<f32>>> {
        let Some((start, classes)) = self.logits else {
            return Ok(None);
        };
        let mut bytes = vec![0u8; rows.len() * classes * 4];
        self.read_at(start + (rows.start * classes * 4) as u64, &mut bytes)?;
        let values = decode_f32(&self.path, Dtype::F32, &bytes)?;
        if values.iter().any(|v| !v.is_finite()) {
            return Err(Error::cache(&self.path, "logits contain NaN or infinity"));
        }
        Ok(Some(values))
    }
}

fn read_shard_file(
    path: &Path,
    shape: [usize; 3],
    orig_classes: Option<usize>,
    expected: usize,
) -> Result<Shard> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| Error::cache(path, format!("corrupt shard: {e}")))?;
    let get = |name: &str| {
        st.tensor(name)
            .map_err(|_| Error::cache(path, format!("shard lacks tensor `{name}`")))
    };
    let feats = get("features")?;
    let want = [expected, shape[0], shape[1], shape[2]];
    if feats.shape() != want {
        return Err(Error::cache(
            path,
            format!(
                "features have shape {:?}, manifest says {:?}",
                feats.shape(),
                want
            ),
        ));
    }
    let features = tensor_f32(path, &feats)?;
    if features.iter().any(|v| !v.is_finite()) {
        return Err(Error::cache(path, "features contain NaN or infinity"));
    }
    let labels = tensor_i64(path, &get("labels")?)?;
    let index = tensor_i64(path, &get("index")?)?;
    if labels.len() != expected || index.len() != expected {
        return Err(Error::cache(
            path,
            "labels/index length does not match the features",
        ));
    }
    let logits = match (orig_classes, st.tensor("logits").ok()) {
        (Some(c), Some(t)) => {
            if t.shape() != [expected, c] {
                return Err(Error::cache(
                    path,
                    format!(
                        "logits have shape {:?}, expected [{expected}, {c}]",
                        t.shape()
                    ),
                ));
            }
            Some(tensor_f32(path, &t)?)
        }
        _ => None,
    };
    Ok(Shard {
        len: expected,
        features,
        labels,
        logits,
        index,
    })
}

/// Writes a cache shard by shard; resumes a partial cache with the same fingerprint.
pub struct CacheWriter {
    dir: PathBuf,
    manifest: CacheManifest,
}

impl CacheWriter {
    /// Starts a new cache, or resumes one made with the same fingerprint (recording where its
    /// model is now, which the fingerprint leaves out). A cache made with a different
    /// fingerprint is refused unless `overwrite` is set, in which case it is replaced.
    pub fn create_or_resume(
        dir: impl AsRef<Path>,
        fresh: CacheManifest,
        overwrite: bool,
    ) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let mpath = manifest_path(&dir);
        if mpath.exists() {
            let mut old: CacheManifest = read_json(&mpath)?;
            if old.version == fresh.version && old.fingerprint == fresh.fingerprint {
                let moved = old.backbone != fresh.backbone;
                old.backbone = fresh.backbone;
                let writer = CacheWriter { dir, manifest: old };
                if moved {
                    writer.save_manifest()?;
                }
                return Ok(writer);
            }
            if !overwrite {
                return Err(Error::cache(
                    &dir,
                    "holds a cache made with another model, preprocessing or dataset; pass --overwrite to replace it",
                ));
            }
            std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        }
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let w = CacheWriter {
            dir,
            manifest: fresh,
        };
        w.save_manifest()?;
        Ok(w)
    }

    /// The cache folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// The manifest as written so far.
    pub fn manifest(&self) -> &CacheManifest {
        &self.manifest
    }

    fn save_manifest(&self) -> Result<()> {
        write_json_atomic(manifest_path(&self.dir), &self.manifest)
    }

    /// Declares a split's items (idempotent on resume: the list must match the one recorded).
    pub fn begin_split(
        &mut self,
        name: &str,
        items: &[Item],
        skipped: Vec<Skipped>,
        shard_size: usize,
    ) -> Result<()> {
        let items_path = self.dir.join(name).join("items.json");
        if let Some(info) = self.manifest.splits.get(name) {
            let old: Vec<Item> = read_json(&items_path)?;
            if old == items && info.shard_size == shard_size {
                return Ok(());
            }
            return Err(Error::cache(
                &self.dir,
                format!(
                    "split `{name}` was started with other items or shard size; pass --overwrite"
                ),
            ));
        }
        write_json_atomic(&items_path, &items)?;
        self.manifest.splits.insert(
            name.to_owned(),
            SplitInfo {
                num_items: items.len(),
                shard_size: shard_size.max(1),
                shards: vec![],
                skipped,
            },
        );
        self.save_manifest()
    }

    /// How many shards of a split are already on disk (the next one to write).
    pub fn shards_done(&self, split: &str) -> usize {
        self.manifest
            .splits
            .get(split)
            .map_or(0, |s| s.shards.len())
    }

    /// Writes the next shard of `split`. Features are [n, D, h, w] f32 and are converted to the
    /// cache's dtype; the manifest is updated only after the shard file is in place.
    pub fn write_shard(
        &mut self,
        split: &str,
        features: &[f32],
        labels: &[i64],
        logits: Option<&[f32]>,
    ) -> Result<()> {
        let [d, h, w] = self.manifest.feature_shape;
        let info = self
            .manifest
            .splits
            .get(split)
            .ok_or_else(|| Error::Config(format!("split `{split}` not begun")))?;
        let i = info.shards.len();
        let start = i * info.shard_size;
        let n = (info.num_items - start).min(info.shard_size);
        if labels.len() != n || features.len() != n * d * h * w {
            return Err(Error::Shape(format!(
                "shard {i} of `{split}`: expected {n} images of [{d},{h},{w}]"
            )));
        }
        let feat_bytes: Vec<u8> = match self.manifest.dtype {
            StoreDtype::F32 => bytemuck::cast_slice(features).to_vec(),
            StoreDtype::F16 => features
                .iter()
                .flat_map(|v| f16::from_f32(*v).to_le_bytes())
                .collect(),
        };
        let feat_dtype = if self.manifest.dtype == StoreDtype::F32 {
            Dtype::F32
        } else {
            Dtype::F16
        };
        let index: Vec<i64> = (start as i64..(start + n) as i64).collect();
        let label_bytes: Vec<u8> = bytemuck::cast_slice(labels).to_vec();
        let index_bytes: Vec<u8> = bytemuck::cast_slice(&index).to_vec();
        let shape_err = |e: safetensors::SafeTensorError| Error::Shape(e.to_string());
        let mut tensors = vec![
            (
                "features".to_owned(),
                TensorView::new(feat_dtype, vec![n, d, h, w], &feat_bytes).map_err(shape_err)?,
            ),
            (
                "labels".to_owned(),
                TensorView::new(Dtype::I64, vec![n], &label_bytes).map_err(shape_err)?,
            ),
            (
                "index".to_owned(),
                TensorView::new(Dtype::I64, vec![n], &index_bytes).map_err(shape_err)?,
            ),
        ];
        let logit_bytes: Vec<u8>;
        if let (Some(l), Some(c)) = (logits, self.manifest.original_classes) {
            logit_bytes = bytemuck::cast_slice(l).to_vec();
            tensors.push((
                "logits".to_owned(),
                TensorView::new(Dtype::F32, vec![n, c], &logit_bytes).map_err(shape_err)?,
            ));
        }
        let name = format!("shard-{i:05}.safetensors");
        let path = self.dir.join(split).join(&name);
        let bytes = safetensors::serialize(tensors, None)
            .map_err(|e| Error::cache(&path, e.to_string()))?;
        write_atomic(&path, &bytes)?;
        self.manifest
            .splits
            .get_mut(split)
            .expect("checked above")
            .shards
            .push(name);
        self.save_manifest()
    }

    /// Stores the original classifier beside the features.
    pub fn write_classifier(&self, classifier: &crate::classifier::LinearClassifier) -> Result<()> {
        classifier.save(self.dir.join(crate::runs::CLASSIFIER_FILE))
    }
}
