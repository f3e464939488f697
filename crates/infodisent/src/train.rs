//! Training a head on a feature cache: AdamW with a cosine schedule and optional warm-up,
//! deterministic streaming of shards, atomic per-epoch checkpoints that resume bit-for-bit, a
//! JSON-lines metrics log and optional early stopping on a held-out validation part of the split.
//!
//! Output folder: `config.json` (the [`TrainConfig`]), `checkpoint.safetensors` (parameters,
//! AdamW moments, best parameters; progress in the metadata), `metrics.jsonl` (one object per
//! epoch), `summary.json`, and the final head: `head.safetensors` ([`HeadParams`] format) for
//! InfoDisent or `linear.safetensors` ([`LinearClassifier`] format) for the linear probe.

use crate::cache::FeatureCache;
use crate::error::{Error, Result};
use crate::fsutil::{read_json, write_atomic, write_json_atomic};
use crate::head::{Batch, Head, HeadConfig, HeadKind, TrainMode, TrainedHead};
use crate::head_params::argmax;
use candle_core::{Device, Tensor};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use safetensors::tensor::{Dtype, TensorView};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Everything that defines a training run (TOML-loadable; unknown keys are rejected).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Head architecture and objective.
    pub head: HeadConfig,
    /// Cache split to train on.
    pub split: String,
    /// Passes over the training data.
    pub epochs: usize,
    /// Images per step.
    pub batch_size: usize,
    /// Peak learning rate of W and b (and of A unless `lr_rotation` is set).
    pub lr: f64,
    /// Peak learning rate of the rotation parameter A.
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
    /// every other weight held at zero. InfoDisent heads only.
    pub keep_top: Option<usize>,
    /// Epochs trained before pruning (default: half the epochs).
    pub prune_after: Option<usize>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            head: HeadConfig::default(),
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
            keep_top: None,
            prune_after: None,
        }
    }
}

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
    /// Reads a TOML config; missing keys take their defaults.
    pub fn from_toml_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let cfg: TrainConfig =
            toml::from_str(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        cfg.validate()?;
        Ok(cfg)
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
        if let Some(lr) = self.lr_rotation {
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
        f(batch_from(&maps, labels, dim, cells))
    })
}

fn batch_from(maps: &[&[f32]], labels: Vec<u32>, dim: usize, cells: usize) -> Batch {
    let mut flat = Vec::with_capacity(maps.len() * dim * cells);
    for m in maps {
        flat.extend_from_slice(m);
    }
    Batch::from_maps(&flat, labels, dim, cells)
}

/// AdamW state of one parameter.
struct Moments {
    m: Vec<f32>,
    v: Vec<f32>,
}

/// AdamW (decoupled weight decay) over the head's parameters; its state is plain vectors so it
/// checkpoints exactly.
struct AdamW {
    moments: Vec<Moments>,
    steps: u64,
}

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPS: f64 = 1e-8;

impl AdamW {
    fn new(head: &Head) -> Result<Self> {
        let moments = head
            .vars()
            .iter()
            .map(|(_, v)| {
                let n = v.as_tensor().elem_count();
                Moments {
                    m: vec![0.0; n],
                    v: vec![0.0; n],
                }
            })
            .collect();
        Ok(AdamW { moments, steps: 0 })
    }

    fn step(
        &mut self,
        head: &Head,
        grads: &candle_core::backprop::GradStore,
        lr: f64,
        lr_rotation: f64,
        weight_decay: f64,
    ) -> Result<()> {
        self.steps += 1;
        let t = self.steps as i32;
        let (c1, c2) = (1.0 - BETA1.powi(t), 1.0 - BETA2.powi(t));
        for ((name, var), mom) in head.vars().iter().zip(&mut self.moments) {
            let Some(g) = grads.get(var.as_tensor()) else {
                continue;
            };
            let g = g.flatten_all()?.to_vec1::<f32>()?;
            if g.iter().any(|x| !x.is_finite()) {
                return Err(Error::Numeric(format!(
                    "gradient of `{name}` is not finite at step {}: lower the learning rate",
                    self.steps
                )));
            }
            let lr_p = if name == "a" { lr_rotation } else { lr };
            let decay = if name == "bias" { 0.0 } else { weight_decay };
            let mut p = var.as_tensor().flatten_all()?.to_vec1::<f32>()?;
            for i in 0..p.len() {
                let gi = f64::from(g[i]);
                let m = BETA1 * f64::from(mom.m[i]) + (1.0 - BETA1) * gi;
                let v = BETA2 * f64::from(mom.v[i]) + (1.0 - BETA2) * gi * gi;
                mom.m[i] = m as f32;
                mom.v[i] = v as f32;
                let x = f64::from(p[i]);
                p[i] = (x - lr_p * decay * x - lr_p * (m / c1) / ((v / c2).sqrt() + EPS)) as f32;
            }
            var.set(&Tensor::from_vec(p, var.as_tensor().shape(), &Device::Cpu)?)?;
        }
        Ok(())
    }
}

/// Learning-rate multiplier at `step` of `total`: linear warm-up, then cosine decay to 0.
fn schedule(step: u64, total: u64, warmup: u64) -> f64 {
    if step < warmup {
        return (step + 1) as f64 / warmup as f64;
    }
    let span = (total - warmup).max(1) as f64;
    0.5 * (1.0 + (std::f64::consts::PI * (step - warmup) as f64 / span).cos())
}

fn checkpoint_path(out: &Path) -> PathBuf {
    out.join("checkpoint.safetensors")
}

fn tensor_bytes(v: &[f32]) -> &[u8] {
    bytemuck::cast_slice(v)
}

fn save_checkpoint(
    out: &Path,
    head: &Head,
    opt: &AdamW,
    best: Option<&Vec<Vec<f32>>>,
    progress: &Progress,
) -> Result<()> {
    let path = checkpoint_path(out);
    let mut owned: Vec<(String, Vec<f32>, Vec<usize>)> = Vec::new();
    for (i, (name, var)) in head.vars().iter().enumerate() {
        let shape = var.as_tensor().dims().to_vec();
        owned.push((
            format!("param.{name}"),
            var.as_tensor().flatten_all()?.to_vec1::<f32>()?,
            shape.clone(),
        ));
        owned.push((
            format!("adam_m.{name}"),
            opt.moments[i].m.clone(),
            shape.clone(),
        ));
        owned.push((
            format!("adam_v.{name}"),
            opt.moments[i].v.clone(),
            shape.clone(),
        ));
        if let Some(b) = best {
            owned.push((format!("best.{name}"), b[i].clone(), shape));
        }
    }
    let err = |e: safetensors::SafeTensorError| Error::cache(&path, e.to_string());
    let views = owned
        .iter()
        .map(|(n, v, s)| {
            Ok((
                n.clone(),
                TensorView::new(Dtype::F32, s.clone(), tensor_bytes(v)).map_err(err)?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    // A single metadata entry: safetensors writes a map's entries in hash order, which would
    // make otherwise identical checkpoints differ byte-wise.
    let progress = Progress {
        adam_steps: opt.steps,
        ..progress.clone()
    };
    let record = serde_json::to_string(&progress).map_err(|e| Error::Config(e.to_string()))?;
    let meta = HashMap::from([("progress".to_owned(), record)]);
    let bytes = safetensors::serialize(views, Some(meta)).map_err(err)?;
    write_atomic(&path, &bytes)
}

/// Restores parameters and optimiser state; returns the progress and the best parameters.
fn load_checkpoint(
    out: &Path,
    head: &Head,
    opt: &mut AdamW,
) -> Result<(Progress, Option<Vec<Vec<f32>>>)> {
    let path = checkpoint_path(out);
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    let corrupt = |msg: String| Error::cache(&path, format!("corrupt checkpoint: {msg}"));
    let (_, meta) =
        safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| corrupt(e.to_string()))?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| corrupt(e.to_string()))?;
    let meta = meta
        .metadata()
        .clone()
        .ok_or_else(|| corrupt("no metadata".into()))?;
    let progress: Progress = serde_json::from_str(
        meta.get("progress")
            .ok_or_else(|| corrupt("no progress record".into()))?,
    )
    .map_err(|e| corrupt(e.to_string()))?;
    opt.steps = progress.adam_steps;
    let read = |name: &str, want: &[usize]| -> Result<Vec<f32>> {
        let t = st
            .tensor(name)
            .map_err(|_| corrupt(format!("lacks `{name}`")))?;
        if t.dtype() != Dtype::F32 || t.shape() != want {
            return Err(corrupt(format!(
                "`{name}` has shape {:?}, the head needs {want:?}",
                t.shape()
            )));
        }
        Ok(bytemuck::pod_collect_to_vec(t.data()))
    };
    let mut best = Vec::new();
    let has_best = st.names().iter().any(|n| n.starts_with("best."));
    for (i, (name, var)) in head.vars().iter().enumerate() {
        let shape = var.as_tensor().dims().to_vec();
        var.set(&Tensor::from_vec(
            read(&format!("param.{name}"), &shape)?,
            shape.as_slice(),
            &Device::Cpu,
        )?)?;
        opt.moments[i].m = read(&format!("adam_m.{name}"), &shape)?;
        opt.moments[i].v = read(&format!("adam_v.{name}"), &shape)?;
        if has_best {
            best.push(read(&format!("best.{name}"), &shape)?);
        }
    }
    Ok((progress, has_best.then_some(best)))
}

fn snapshot(head: &Head) -> Result<Vec<Vec<f32>>> {
    head.vars()
        .iter()
        .map(|(_, v)| Ok(v.as_tensor().flatten_all()?.to_vec1::<f32>()?))
        .collect()
}

fn restore(head: &Head, values: &[Vec<f32>]) -> Result<()> {
    for ((_, var), v) in head.vars().iter().zip(values) {
        var.set(&Tensor::from_vec(
            v.clone(),
            var.as_tensor().shape(),
            &Device::Cpu,
        )?)?;
    }
    Ok(())
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
    let [dim, _, _] = cache.feature_shape();
    let classes = cache.num_classes();
    if classes < 2 {
        return Err(Error::cache(
            cache.dir(),
            format!("training needs at least 2 classes, the cache has {classes}"),
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
    let mut opt = AdamW::new(&head)?;
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
    let mut best: Option<Vec<Vec<f32>>> = None;
    let metrics_path = out_dir.join("metrics.jsonl");
    let mut metrics: Vec<EpochMetrics> = Vec::new();
    let ckpt = checkpoint_path(out_dir);
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
        if metrics_path.exists() {
            let text =
                std::fs::read_to_string(&metrics_path).map_err(|e| Error::io(&metrics_path, e))?;
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let m: EpochMetrics = serde_json::from_str(line)
                    .map_err(|e| Error::cache(&metrics_path, format!("invalid line: {e}")))?;
                if m.epoch <= progress.epochs_done {
                    metrics.push(m);
                }
            }
        }
    }
    write_json_atomic(out_dir.join("config.json"), cfg)?;

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
                let factor = schedule(step, total_steps, warmup);
                lr_now = cfg.lr * factor;
                let mode = TrainMode {
                    tau: tau.unwrap_or(1.0),
                    noise_seed: mix(cfg.seed ^ STREAM_NOISE, step),
                };
                let logits = head.logits(&batch, Some(mode))?;
                let loss = head.loss(&logits, &batch.labels)?;
                let loss_value = f64::from(loss.to_scalar::<f32>()?);
                if !loss_value.is_finite() {
                    return Err(Error::Numeric(format!(
                        "loss became {loss_value} at step {step}: lower the learning rate"
                    )));
                }
                let grads = loss.backward()?;
                opt.step(
                    &head,
                    &grads,
                    lr_now,
                    lr_rotation * factor,
                    cfg.weight_decay,
                )?;
                head.clamp_weights(keep_mask.as_ref())?;
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
                best = Some(snapshot(&head)?);
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
        let mut lines = String::new();
        for m in &metrics {
            lines.push_str(&serde_json::to_string(m).map_err(|e| Error::Config(e.to_string()))?);
            lines.push('\n');
        }
        write_atomic(&metrics_path, lines.as_bytes())?;
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
            restore(&head, b)?;
        }
    }
    let head_file = match head.export()? {
        TrainedHead::InfoDisent(p) => {
            let f = out_dir.join("head.safetensors");
            if finished {
                p.save(&f)?;
            }
            f
        }
        TrainedHead::Linear(l) => {
            let f = out_dir.join("linear.safetensors");
            if finished {
                l.save(&f)?;
            }
            f
        }
    };
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
        write_json_atomic(out_dir.join("summary.json"), &summary)?;
    }
    Ok(summary)
}

/// Reads the configuration a finished or running training folder was made with.
pub fn read_config(out_dir: &Path) -> Result<TrainConfig> {
    read_json(out_dir.join("config.json"))
}

/// The kind of head a training folder holds, judged by its final file.
pub fn head_kind_in(out_dir: &Path) -> Option<HeadKind> {
    if out_dir.join("head.safetensors").exists() {
        Some(HeadKind::InfoDisent)
    } else if out_dir.join("linear.safetensors").exists() {
        Some(HeadKind::LinearProbe)
    } else {
        None
    }
}
