//! Training a head on a feature cache: AdamW with a cosine schedule and optional warm-up,
//! deterministic streaming of shards, atomic per-epoch checkpoints that resume bit-for-bit, a
//! JSON-lines metrics log and optional early stopping on a held-out validation part of the split.
//!
//! Output folder: `config.json` (the [`TrainConfig`]), `checkpoint.safetensors` (parameters,
//! AdamW moments, best parameters; progress in the metadata), `metrics.jsonl` (one object per
//! epoch), `summary.json`, and the final head: `head.safetensors` ([`HeadParams`](crate::head::params::HeadParams) format) for
//! InfoDisent or `linear.safetensors` ([`LinearClassifier`](crate::classifier::LinearClassifier) format) for the linear probe.

use crate::cache::FeatureCache;
use crate::checkpoint::{self, Checkpoint, NamedTensor};
use crate::error::{Error, Result};
use crate::fsutil::{read_json, write_json_atomic};
use crate::head::params::argmax;
use crate::head::{Batch, Head, HeadConfig, HeadKind, Loss, TrainMode, TrainedHead};
use crate::optim::{warmup_cosine, AdamW, Hyper};
use crate::runs;
use candle_core::{Device, Tensor};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What the head learns to predict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Target {
    /// The dataset's labels.
    #[default]
    Labels,
    /// The original classifier's softmax over its own classes, from the logits in the cache
    /// (fidelity: the head then explains what the original model decides, and any folder of
    /// images, labelled or not, can be explained).
    Original,
}

/// Everything that defines a training run (TOML-loadable; unknown keys are rejected).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Head architecture and objective.
    pub head: HeadConfig,
    /// The dataset's labels, or the original classifier's predictions.
    pub target: Target,
    /// Cache split to train on.
    pub split: String,
    /// Passes over the training data.
    pub epochs: usize,
    /// Images per step.
    pub batch_size: usize,
    /// Peak learning rate of W and b (and of A unless `lr_rotation` is set).
    pub lr: f64,
    /// Peak learning rate of the rotation parameter A (0 freezes U = I: the ablation that
    /// shows what the rotation adds).
    pub lr_rotation: Option<f64>,
    /// Decoupled AdamW weight decay on A and W (never on biases).
    pub weight_decay: f64,
    /// Epochs of linear warm-up before the cosine decay.
    pub warmup_epochs: f64,
    /// Seed of initialisation, shuffling, the validation split and Gumbel noise.
    pub seed: u64,
    /// Fraction of the split held out for validation (0 disables validation).
    pub val_fraction: f64,
    /// Stop after this many epochs without a better validation accuracy (needs validation).
    pub patience: Option<usize>,
    /// Compact explanations (METHOD.md §1.7): after `prune_after` epochs keep only the
    /// `keep_top` largest weights of each class row, and fine-tune the rest of the run with
    /// every other weight held at zero. InfoDisent heads only; `None` trains a dense head
    /// ([`TrainConfig::paper`] is the paper's). The default, [`DEFAULT_KEEP_TOP`], was chosen
    /// by the ablation (user guide, `docs/book/src/training.md`).
    pub keep_top: Option<usize>,
    /// Epochs trained before pruning (default: half the epochs).
    pub prune_after: Option<usize>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            // Pruning with the one-vs-rest loss: the ablation's best row on both datasets.
            head: HeadConfig {
                loss: Loss::Sigmoid,
                ..HeadConfig::default()
            },
            target: Target::Labels,
            split: "train".into(),
            epochs: 10,
            batch_size: 128,
            lr: 1e-3,
            lr_rotation: None,
            weight_decay: 0.0,
            warmup_epochs: 0.0,
            seed: 0,
            val_fraction: 0.0,
            patience: None,
            keep_top: Some(DEFAULT_KEEP_TOP),
            prune_after: None,
        }
    }
}

/// Weights kept per class by default. With the sigmoid loss (also the default) this was the
/// ablation's best recipe on the demo cache and the parts benchmark: within a point of the
/// probe's accuracy or above it, explanations of at most five channels, and on the parts
/// benchmark 85 % prototype purity (user guide, `docs/book/src/training.md`).
pub const DEFAULT_KEEP_TOP: usize = 5;

fn positive_finite(name: &str, x: f64) -> Result<()> {
    if x.is_finite() && x > 0.0 {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "{name} must be a finite number > 0, got {x}"
        )))
    }
}

impl TrainConfig {
    /// Reads a TOML config; missing keys take their defaults, except that a linear probe
    /// has no pruning and the cross-entropy loss unless the file asks otherwise, and
    /// `keep_top = 0` means a dense head.
    pub fn from_toml_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let bad = |e: toml::de::Error| Error::Config(format!("{}: {e}", path.display()));
        let table: toml::Table = toml::from_str(&text).map_err(bad)?;
        let names_keep_top = table.contains_key("keep_top");
        let names_loss = table
            .get("head")
            .and_then(|h| h.as_table())
            .is_some_and(|h| h.contains_key("loss"));
        let mut cfg: TrainConfig = table.try_into().map_err(bad)?;
        let probe = cfg.head.kind == HeadKind::LinearProbe;
        if cfg.keep_top == Some(0) || (!names_keep_top && probe) {
            cfg.keep_top = None;
        }
        if probe && !names_loss {
            cfg.head.loss = Loss::CrossEntropy;
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// The same recipe for another kind of head. A linear probe is the standard baseline: it
    /// has no nonnegative weights to prune and trains with cross-entropy, so switching to it
    /// makes the recipe [`TrainConfig::paper`]'s, and drops the settings of InfoDisent's
    /// rotation and pooling (Gumbel, rebasing), which a probe does not have.
    pub fn with_kind(mut self, kind: HeadKind) -> Self {
        self.head.kind = kind;
        if kind == HeadKind::LinearProbe {
            self = self.paper();
            self.head.gumbel = false;
            self.head.rebase_every = 0;
        }
        self
    }

    /// The paper's recipe: this one without pruning, with softmax cross-entropy.
    pub fn paper(mut self) -> Self {
        self.keep_top = None;
        self.prune_after = None;
        self.head.loss = Loss::CrossEntropy;
        self
    }

    /// Rejects values that cannot train, naming the key and the accepted range.
    pub fn validate(&self) -> Result<()> {
        self.head.validate()?;
        if self.epochs == 0 {
            return Err(Error::Config("epochs must be at least 1".into()));
        }
        if self.batch_size == 0 {
            return Err(Error::Config("batch_size must be at least 1".into()));
        }
        positive_finite("lr", self.lr)?;
        if let Some(lr) = self.lr_rotation.filter(|&lr| lr != 0.0) {
            positive_finite("lr_rotation", lr)?;
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(Error::Config(format!(
                "weight_decay must be a finite number ≥ 0, got {}",
                self.weight_decay
            )));
        }
        if !(self.warmup_epochs.is_finite()
            && self.warmup_epochs >= 0.0
            && self.warmup_epochs < self.epochs as f64)
        {
            return Err(Error::Config(format!(
                "warmup_epochs must be in [0, epochs = {}), got {}",
                self.epochs, self.warmup_epochs
            )));
        }
        if !(0.0..1.0).contains(&self.val_fraction) {
            return Err(Error::Config(format!(
                "val_fraction must be in [0, 1), got {}",
                self.val_fraction
            )));
        }
        if let Some(p) = self.patience {
            if p == 0 {
                return Err(Error::Config("patience must be at least 1 epoch".into()));
            }
            if self.val_fraction == 0.0 {
                return Err(Error::Config(
                    "patience (early stopping) needs a validation split: set val_fraction > 0"
                        .into(),
                ));
            }
        }
        if self.split.is_empty() {
            return Err(Error::Config("split must name a cache split".into()));
        }
        if let Some(k) = self.keep_top {
            if k == 0 {
                return Err(Error::Config("keep_top must be at least 1".into()));
            }
            if self.head.kind != HeadKind::InfoDisent {
                return Err(Error::Config(
                    "keep_top prunes an InfoDisent head's nonnegative weights; the linear probe has none to prune"
                        .into(),
                ));
            }
            if self.prune_after.is_none() && self.epochs < 2 {
                return Err(Error::Config(format!(
                    "keep_top = {k} prunes after half the epochs, and 1 epoch leaves none to train before it: train at least 2 epochs, set prune_after = 0 to prune the initial weights, or keep_top = 0 (--keep-top 0) for the dense head"
                )));
            }
            if self.pruning_epoch() >= self.epochs {
                return Err(Error::Config(format!(
                    "prune_after must leave epochs to fine-tune: it is {} of {} epochs",
                    self.pruning_epoch(),
                    self.epochs
                )));
            }
        } else if self.prune_after.is_some() {
            return Err(Error::Config("prune_after needs keep_top".into()));
        }
        Ok(())
    }

    /// The epoch (0-based) at whose start W is pruned.
    fn pruning_epoch(&self) -> usize {
        self.prune_after.unwrap_or(self.epochs / 2)
    }
}

/// What a finished run reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSummary {
    /// Epochs completed (less than configured after early stopping).
    pub epochs: usize,
    /// Optimiser steps taken.
    pub steps: u64,
    /// Mean training loss of the last epoch.
    pub train_loss: f64,
    /// Training accuracy of the last epoch.
    pub train_acc: f64,
    /// Best validation accuracy, when validating.
    pub best_val_acc: Option<f64>,
    /// Epoch of the best validation accuracy (its parameters are the ones saved).
    pub best_epoch: Option<usize>,
    /// Whether early stopping ended the run.
    pub stopped_early: bool,
    /// Training images per epoch.
    pub train_items: usize,
    /// Validation images.
    pub val_items: usize,
    /// The final head file.
    pub head_file: PathBuf,
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 1-based epoch.
    pub epoch: usize,
    /// Learning rate (of W) at the end of the epoch.
    pub lr: f64,
    /// Mean training loss over the epoch.
    pub train_loss: f64,
    /// Training accuracy over the epoch (with the training-time pooling).
    pub train_acc: f64,
    /// Validation accuracy, when validating.
    pub val_acc: Option<f64>,
    /// Gumbel temperature used, when relaxing the max.
    pub tau: Option<f64>,
    /// Wall time of the epoch in seconds.
    pub seconds: f64,
}

/// Progress stored in the checkpoint's metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Progress {
    epochs_done: usize,
    adam_steps: u64,
    steps: u64,
    best_val_acc: Option<f64>,
    best_epoch: Option<usize>,
    epochs_since_best: usize,
    stopped_early: bool,
    cache_fingerprint: String,
    config: TrainConfig,
    /// Per class, the weight indices kept by pruning, once it has happened. Stored because
    /// a kept weight can also sit at zero, so the pattern is not readable from W.
    #[serde(default)]
    kept: Option<Vec<Vec<u32>>>,
}

/// Mixes a seed with a stream number (SplitMix64 finaliser) so per-epoch and per-step random
/// streams are independent and need no stored RNG state to resume.
fn mix(seed: u64, stream: u64) -> u64 {
    let mut z = seed
        ^ stream
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

const STREAM_SHUFFLE: u64 = 1 << 40;
const STREAM_NOISE: u64 = 2 << 40;
const STREAM_VAL: u64 = 3 << 40;

/// Whether item `index` of the split is held out for validation.
fn is_val(cfg: &TrainConfig, index: i64) -> bool {
    cfg.val_fraction > 0.0
        && (mix(cfg.seed ^ STREAM_VAL, index as u64) as f64 / u64::MAX as f64) < cfg.val_fraction
}

/// Feeds the images of `split` that pass `keep` to `f` in batches. With `rng`, each pass draws a
/// permutation of the whole split, so batches mix classes whatever order the cache was written in
/// (ImageFolder caches are written class by class); only one batch is in memory.
fn for_each_batch(
    cache: &FeatureCache,
    split: &str,
    batch_size: usize,
    rng: Option<&mut rand::rngs::StdRng>,
    keep: impl Fn(i64) -> bool,
    mut f: impl FnMut(Batch) -> Result<()>,
) -> Result<()> {
    let [dim, h, w] = cache.feature_shape();
    let cells = h * w;
    let per_image = dim * cells;
    let mut order: Vec<usize> = (0..cache.split(split)?.num_items)
        .filter(|&i| keep(i as i64))
        .collect();
    if let Some(r) = rng {
        order.shuffle(r);
    }
    let classes = cache.num_classes() as i64;
    let soft = cache.labels_are_original();
    cache.visit_batches(split, &order, batch_size, |shard| {
        let mut labels = Vec::with_capacity(shard.len);
        for (&label, &index) in shard.labels.iter().zip(&shard.index) {
            if !(0..classes).contains(&label) {
                return Err(Error::cache(
                    cache.dir(),
                    format!("split `{split}` item {index} has label {label}, outside 0..{classes}"),
                ));
            }
            labels.push(label as u32);
        }
        let maps: Vec<&[f32]> = shard.features.chunks_exact(per_image).collect();
        let mut batch = batch_from(&maps, labels, dim, cells);
        if soft {
            // The cache's original view only hands out shards that carry logits.
            let logits = shard.logits.as_deref().unwrap_or_default();
            batch.soft = Some(
                logits
                    .chunks_exact(classes as usize)
                    .flat_map(crate::classifier::softmax)
                    .collect(),
            );
        }
        f(batch)
    })
}

fn batch_from(maps: &[&[f32]], labels: Vec<u32>, dim: usize, cells: usize) -> Batch {
    let mut flat = Vec::with_capacity(maps.len() * dim * cells);
    for m in maps {
        flat.extend_from_slice(m);
    }
    Batch::from_maps(&flat, labels, dim, cells)
}

/// Checkpoint name of the dynamic trivialization's base `U₀` (U = rotation(A) · U₀).
const BASE: &str = "dynamic_base";
/// What earlier versions called it, when U was U₀ · rotation(A): such a checkpoint cannot be
/// resumed exactly, so it is refused.
const EARLIER_BASE: &str = "rotation_base";

/// A copy of everything that defines the head's function: its variables and `U₀`.
struct Snapshot {
    values: Vec<Vec<f32>>,
    base: Option<Vec<f32>>,
}

impl Snapshot {
    fn of(head: &Head) -> Result<Self> {
        Ok(Snapshot {
            values: head
                .vars()
                .iter()
                .map(|(_, v)| Ok(v.as_tensor().flatten_all()?.to_vec1::<f32>()?))
                .collect::<Result<_>>()?,
            base: head.rotation_base(),
        })
    }

    fn restore(&self, head: &Head) -> Result<()> {
        for ((_, var), v) in head.vars().iter().zip(&self.values) {
            let shape = var.as_tensor().shape().clone();
            var.set(&Tensor::from_vec(v.clone(), shape, &Device::Cpu)?)?;
        }
        head.set_rotation_base(self.base.clone())
    }

    /// As checkpoint tensors named `<prefix><variable>` and `<prefix>dynamic_base`.
    fn tensors(&self, head: &Head, prefix: &str) -> Vec<NamedTensor> {
        let mut out: Vec<NamedTensor> = head
            .vars()
            .iter()
            .zip(&self.values)
            .map(|((name, var), v)| {
                NamedTensor::new(
                    format!("{prefix}{name}"),
                    var.as_tensor().dims().to_vec(),
                    v.clone(),
                )
            })
            .collect();
        if let Some(b) = &self.base {
            out.push(NamedTensor::new(
                format!("{prefix}{BASE}"),
                vec![head.dim, head.dim],
                b.clone(),
            ));
        }
        out
    }

    fn read<S>(head: &Head, saved: &Checkpoint<S>, prefix: &str) -> Result<Self> {
        let base_name = format!("{prefix}{BASE}");
        Ok(Snapshot {
            values: head
                .vars()
                .iter()
                .map(|(name, var)| saved.tensor(&format!("{prefix}{name}"), var.as_tensor().dims()))
                .collect::<Result<_>>()?,
            base: if saved.has_prefix(&base_name) {
                Some(saved.tensor(&base_name, &[head.dim, head.dim])?)
            } else {
                None
            },
        })
    }
}

fn save_checkpoint(
    out: &Path,
    head: &Head,
    opt: &AdamW,
    best: Option<&Snapshot>,
    progress: &Progress,
) -> Result<()> {
    let mut tensors = opt.state()?;
    if let Some(b) = head.rotation_base() {
        tensors.push(NamedTensor::new(
            BASE.to_owned(),
            vec![head.dim, head.dim],
            b,
        ));
    }
    if let Some(best) = best {
        tensors.extend(best.tensors(head, "best."));
    }
    let progress = Progress {
        adam_steps: opt.steps(),
        ..progress.clone()
    };
    checkpoint::save(&out.join(runs::CHECKPOINT_FILE), &progress, &tensors)
}

/// Restores parameters, `U₀` and optimiser state; returns the progress and the best snapshot.
fn load_checkpoint(
    out: &Path,
    head: &Head,
    opt: &mut AdamW,
) -> Result<(Progress, Option<Snapshot>)> {
    let path = out.join(runs::CHECKPOINT_FILE);
    let saved: Checkpoint<Progress> = checkpoint::load(&path)?;
    if saved.has_prefix(EARLIER_BASE) {
        return Err(Error::cache(
            &path,
            "a dynamic-rotation checkpoint of an earlier version, which composed its base on the \
             other side; start the run again (--overwrite) or finish it with that version",
        ));
    }
    opt.restore(&saved, saved.state.adam_steps)?;
    head.set_rotation_base(if saved.has_prefix(BASE) {
        Some(saved.tensor(BASE, &[head.dim, head.dim])?)
    } else {
        None
    })?;
    let best = if saved.has_prefix("best.") {
        Some(Snapshot::read(head, &saved, "best.")?)
    } else {
        None
    };
    Ok((saved.state, best))
}

/// Accuracy of the head (inference pooling) on the validation items of the split.
fn validate(cache: &FeatureCache, cfg: &TrainConfig, head: &Head) -> Result<f64> {
    let (mut correct, mut total) = (0usize, 0usize);
    for_each_batch(
        cache,
        &cfg.split,
        cfg.batch_size,
        None,
        |i| is_val(cfg, i),
        |batch| {
            let logits = head.logits(&batch, None)?.to_vec2::<f32>()?;
            correct += logits
                .iter()
                .zip(&batch.labels)
                .filter(|(l, &y)| argmax(l) == y as usize)
                .count();
            total += batch.n;
            Ok(())
        },
    )?;
    Ok(correct as f64 / total.max(1) as f64)
}

/// Trains a head on `cfg.split` of the cache into `out_dir` (see the module docs for the files).
/// With `resume`, continues from the checkpoint there; without, refuses a folder that already
/// holds a run.
pub fn train(
    cache: &FeatureCache,
    cfg: &TrainConfig,
    out_dir: &Path,
    resume: bool,
) -> Result<TrainSummary> {
    train_partial(cache, cfg, out_dir, resume, None)
}

/// [`train`], returning after at most `stop_after` epochs of this run (as if killed right after
/// that epoch's checkpoint); the summary then reflects the epochs done so far.
pub fn train_partial(
    cache: &FeatureCache,
    cfg: &TrainConfig,
    out_dir: &Path,
    resume: bool,
    stop_after: Option<usize>,
) -> Result<TrainSummary> {
    cfg.validate()?;
    let original;
    let cache = match cfg.target {
        Target::Labels => cache,
        Target::Original => {
            original = cache.clone().with_original_labels()?;
            &original
        }
    };
    let [dim, _, _] = cache.feature_shape();
    let classes = cache.num_classes();
    if classes < 2 {
        return Err(Error::cache(
            cache.dir(),
            format!("training needs at least 2 classes, the cache has {classes} (to explain an unlabelled folder, fit the original classifier: --target original)"),
        ));
    }
    let info = cache.split(&cfg.split)?;
    let items = cache.items(&cfg.split)?;
    if items.len() != info.num_items {
        return Err(Error::cache(
            cache.dir(),
            format!(
                "split `{}` lists {} items but the manifest says {}",
                cfg.split,
                items.len(),
                info.num_items
            ),
        ));
    }
    let val_items = (0..items.len() as i64).filter(|&i| is_val(cfg, i)).count();
    let train_items = items.len() - val_items;
    if train_items == 0 {
        return Err(Error::Config(format!(
            "split `{}` has no training images left after the validation hold-out",
            cfg.split
        )));
    }
    if cfg.val_fraction > 0.0 && val_items == 0 {
        return Err(Error::Config(format!(
            "val_fraction {} selects no image of the {} in `{}`",
            cfg.val_fraction,
            items.len(),
            cfg.split
        )));
    }
    let steps_per_epoch = train_items.div_ceil(cfg.batch_size) as u64;
    let total_steps = steps_per_epoch * cfg.epochs as u64;
    let warmup = (cfg.warmup_epochs * steps_per_epoch as f64).round() as u64;
    let lr_rotation = cfg.lr_rotation.unwrap_or(cfg.lr);

    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    let head = Head::new(cfg.head.clone(), dim, classes, cfg.seed)?;
    let mut opt = AdamW::new(head.vars());
    let fingerprint = cache.manifest().fingerprint.clone();
    let mut progress = Progress {
        epochs_done: 0,
        adam_steps: 0,
        steps: 0,
        best_val_acc: None,
        best_epoch: None,
        epochs_since_best: 0,
        stopped_early: false,
        cache_fingerprint: fingerprint.clone(),
        config: cfg.clone(),
        kept: None,
    };
    let mut best: Option<Snapshot> = None;
    let metrics_path = out_dir.join(runs::METRICS_LOG);
    let mut metrics: Vec<EpochMetrics> = Vec::new();
    let ckpt = out_dir.join(runs::CHECKPOINT_FILE);
    if ckpt.exists() {
        if !resume {
            return Err(Error::Config(format!("{} already holds a training run: pass --resume to continue it, or choose another output folder", out_dir.display())));
        }
        let (p, b) = load_checkpoint(out_dir, &head, &mut opt)?;
        if p.cache_fingerprint != fingerprint {
            return Err(Error::cache(
                &ckpt,
                "stale checkpoint: it was trained on another feature cache",
            ));
        }
        if p.config != *cfg {
            return Err(Error::cache(&ckpt, "stale checkpoint: it was made with another training configuration (see config.json there)"));
        }
        progress = p;
        best = b;
        metrics = checkpoint::read_log::<EpochMetrics>(&metrics_path)?
            .into_iter()
            .filter(|m| m.epoch <= progress.epochs_done)
            .collect();
    }
    write_json_atomic(out_dir.join(runs::CONFIG_FILE), cfg)?;
    runs::record_cache(out_dir, cache.dir(), &cache.manifest().fingerprint)?;

    let mut epochs_this_run = 0usize;
    while progress.epochs_done < cfg.epochs
        && !progress.stopped_early
        && stop_after.is_none_or(|s| epochs_this_run < s)
    {
        let epoch = progress.epochs_done;
        let started = std::time::Instant::now();
        if let Some(k) = cfg.keep_top {
            if progress.kept.is_none() && epoch >= cfg.pruning_epoch() {
                progress.kept = Some(head.top_weights(k)?);
                // Dense weights from before pruning must not be what the run ends with.
                best = None;
                progress.best_val_acc = None;
                progress.best_epoch = None;
                progress.epochs_since_best = 0;
            }
        }
        let keep_mask = match &progress.kept {
            Some(kept) => Some(head.weight_mask(kept)?),
            None => None,
        };
        if keep_mask.is_some() {
            head.clamp_weights(keep_mask.as_ref())?;
        }
        let tau = cfg
            .head
            .gumbel
            .then(|| cfg.head.tau(epoch as f64 / (cfg.epochs.max(2) - 1) as f64));
        let bar = crate::progress::bar(
            steps_per_epoch,
            &format!("epoch {}/{}", epoch + 1, cfg.epochs),
            "steps",
        );
        let mut rng =
            rand::rngs::StdRng::seed_from_u64(mix(cfg.seed ^ STREAM_SHUFFLE, epoch as u64));
        let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
        let mut lr_now = cfg.lr;
        for_each_batch(
            cache,
            &cfg.split,
            cfg.batch_size,
            Some(&mut rng),
            |i| !is_val(cfg, i),
            |batch| {
                let step = progress.steps;
                let factor = warmup_cosine(step, total_steps, warmup);
                lr_now = cfg.lr * factor;
                let mode = TrainMode {
                    tau: tau.unwrap_or(1.0),
                    noise_seed: mix(cfg.seed ^ STREAM_NOISE, step),
                };
                let logits = head.logits(&batch, Some(mode))?;
                let loss = head.loss(&logits, &batch.labels, batch.soft.as_deref())?;
                let loss_value = f64::from(loss.to_scalar::<f32>()?);
                if !loss_value.is_finite() {
                    return Err(Error::Numeric(format!(
                        "loss became {loss_value} at step {step}: lower the learning rate"
                    )));
                }
                let grads = loss.backward()?;
                opt.step(&grads, |name| Hyper {
                    lr: if name == "a" {
                        lr_rotation * factor
                    } else {
                        lr_now
                    },
                    weight_decay: if name == "bias" {
                        0.0
                    } else {
                        cfg.weight_decay
                    },
                })?;
                head.clamp_weights(keep_mask.as_ref())?;
                let rebase = cfg.head.rebase_every;
                if rebase > 0 && (progress.steps + 1) % rebase as u64 == 0 {
                    head.rebase()?;
                }
                let rows = logits.to_vec2::<f32>()?;
                correct += rows
                    .iter()
                    .zip(&batch.labels)
                    .filter(|(l, &y)| argmax(l) == y as usize)
                    .count();
                loss_sum += loss_value * batch.n as f64;
                seen += batch.n;
                progress.steps += 1;
                bar.inc(1);
                bar.set_message(format!(
                    "loss {:.4} acc {:.3}",
                    loss_sum / seen as f64,
                    correct as f64 / seen as f64
                ));
                Ok(())
            },
        )?;
        bar.finish_and_clear();
        let val_acc = if cfg.val_fraction > 0.0 {
            Some(validate(cache, cfg, &head)?)
        } else {
            None
        };
        progress.epochs_done += 1;
        epochs_this_run += 1;
        if let Some(acc) = val_acc {
            if progress.best_val_acc.is_none_or(|b| acc > b) {
                progress.best_val_acc = Some(acc);
                progress.best_epoch = Some(progress.epochs_done);
                progress.epochs_since_best = 0;
                best = Some(Snapshot::of(&head)?);
            } else {
                progress.epochs_since_best += 1;
                if cfg
                    .patience
                    .is_some_and(|p| progress.epochs_since_best >= p)
                {
                    progress.stopped_early = true;
                }
            }
        }
        metrics.push(EpochMetrics {
            epoch: progress.epochs_done,
            lr: lr_now,
            train_loss: loss_sum / seen.max(1) as f64,
            train_acc: correct as f64 / seen.max(1) as f64,
            val_acc,
            tau,
            seconds: started.elapsed().as_secs_f64(),
        });
        save_checkpoint(out_dir, &head, &opt, best.as_ref(), &progress)?;
        checkpoint::write_log(&metrics_path, &metrics)?;
        tracing::info!(
            epoch = progress.epochs_done,
            train_loss = metrics.last().map(|m| m.train_loss),
            ?val_acc,
            "epoch done"
        );
    }

    let finished = progress.epochs_done >= cfg.epochs || progress.stopped_early;
    if finished {
        if let Some(b) = &best {
            b.restore(&head)?;
        }
    }
    let head_file = runs::head_file(out_dir, cfg.head.kind);
    if finished {
        match head.export()? {
            TrainedHead::InfoDisent(p) => p.save(&head_file)?,
            TrainedHead::Linear(l) => l.save(&head_file)?,
        }
    }
    let last = metrics.last();
    let summary = TrainSummary {
        epochs: progress.epochs_done,
        steps: progress.steps,
        train_loss: last.map_or(f64::NAN, |m| m.train_loss),
        train_acc: last.map_or(0.0, |m| m.train_acc),
        best_val_acc: progress.best_val_acc,
        best_epoch: progress.best_epoch,
        stopped_early: progress.stopped_early,
        train_items,
        val_items,
        head_file,
    };
    if finished {
        write_json_atomic(out_dir.join(runs::SUMMARY_FILE), &summary)?;
    }
    Ok(summary)
}

/// Reads the configuration a finished or running training folder was made with.
pub fn read_config(out_dir: &Path) -> Result<TrainConfig> {
    read_json(out_dir.join(runs::CONFIG_FILE))
}

/// Trains `config` into `dir` unless a finished head made with the same settings is there
/// (an interrupted run resumes); a head made with other settings is refused, never reused.
pub fn train_or_reuse(cache: &FeatureCache, config: &TrainConfig, dir: &Path) -> Result<()> {
    if runs::head_file(dir, config.head.kind).exists() {
        if read_config(dir)? != *config {
            return Err(Error::Config(format!(
                "{} holds a head trained with other settings (see its {}); choose another output folder or remove it",
                dir.display(),
                runs::CONFIG_FILE
            )));
        }
        return Ok(());
    }
    train(cache, config, dir, dir.join(runs::CHECKPOINT_FILE).exists()).map(|_| ())
}

/// `cache` as the head at `head` (a training folder or its file) was trained on it: labelled by
/// the original classifier when the head was fitted to it (`--target original`), so accuracy,
/// metrics, class names and explanations refer to the original model's classes.
pub fn cache_for_head(cache: FeatureCache, head: &Path) -> Result<FeatureCache> {
    let folder = runs::folder_of(head);
    if folder.join(runs::CONFIG_FILE).is_file() && read_config(&folder)?.target == Target::Original
    {
        cache.with_original_labels()
    } else {
        Ok(cache)
    }
}
