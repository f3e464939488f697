//! Training the mask and critic on cached feature maps, with per-epoch checkpoints, exact resume
//! and held-out estimates logged as JSON lines.
//!
//! Loss per batch: `CE(classifier(pool(λ ⊙ F)), y) − (MI_raw + MI_masked) + sparsity · mean(λ)`,
//! with MI the mean per-position bound. The backbone features are constants and the classifier is
//! frozen: only the mask and the critic move. Everything random (initialisation, the order of
//! items in an epoch, the reference images) is drawn from the seed, per epoch, so a resumed run
//! repeats exactly what an uninterrupted one does.

use super::bounds::Bound;
use super::model::{
    accuracy, forward, locals, pooled, read_tensors, sample_negatives, write_tensors,
    FrozenClassifier, MiNet, NetDims, MASK_PREFIX,
};
use super::standardize::{ChannelNorm, Moments};
use crate::cache::FeatureCache;
use crate::classifier::LinearClassifier;
use crate::error::{Error, Result};
use crate::fsutil::{write_atomic, write_json_atomic};
use candle_core::{DType, Device, Tensor, Var};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// How representations are paired with local features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Pairing {
    /// Each image's representation with its own local features: the real estimate.
    #[default]
    Joint,
    /// The control: representations from the other half of the batch, so every pair is
    /// independent and the true mutual information is zero.
    Shuffled,
}

/// What each position's score is compared with when the maps are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MapNegatives {
    /// The same local feature scored with other images' representations: `T(z_i, x_p) − log
    /// mean_j exp T(z_j, x_p)`. Any part of the critic that depends on `x` alone cancels, so a
    /// position scores high only for telling its own image apart, and a masked-out position
    /// (a constant input) scores about zero.
    #[default]
    Representations,
    /// Other images' local features scored with this image's representation, as in the
    /// training bound (METHOD.md §2): within one image the map is then `T(z_i, x_p)` shifted
    /// by a constant, including whatever the critic learned about `x` alone.
    Locals,
}

/// Settings of `infodisent mi train`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MiConfig {
    /// Which lower bound is maximised.
    pub bound: Bound,
    /// Passes over the training items.
    pub epochs: usize,
    /// Images per step; negatives are drawn from the other images of the batch.
    pub batch: usize,
    /// Negatives per anchor representation, drawn from the local features of other images.
    pub negatives: usize,
    /// Whether the masked MI term also trains the mask. Off by default: the bound is an
    /// estimator maximised over the critic; letting the mask maximise it as well pulls λ → 1
    /// everywhere, which makes decision-related equal total.
    pub mask_from_mi: bool,
    /// Adam learning rate of the critic.
    pub lr: f64,
    /// Adam learning rate of the mask, set apart from the critic's: the sparsity term moves
    /// every λ by about this much per step, so it sets how fast the mask leaves its starting 0.5.
    pub mask_lr: f64,
    /// Seed of everything random.
    pub seed: u64,
    /// Hidden channels of the mask's first convolution.
    pub mask_hidden: usize,
    /// Width the critic projects `z` and `x` to.
    pub proj_dim: usize,
    /// Hidden width of the critic's MLP.
    pub critic_hidden: usize,
    /// Weight of `mean(λ)` in the loss.
    pub sparsity: f64,
    /// True pairs, or the independent-pairs control.
    pub pairing: Pairing,
    /// Split trained on.
    pub train_split: String,
    /// Held-out split the estimates are reported on.
    pub eval_split: String,
    /// Use at most this many training items per epoch (shards in random order).
    pub max_train_items: Option<usize>,
    /// Held-out items evaluated after each epoch (the first ones of the split).
    pub eval_items: usize,
    /// Items loaded and shuffled together; bounds memory (a 1280×7×7 map is 250 KB).
    pub pool_items: usize,
    /// Training images whose local features and representations serve as negatives when one
    /// image is explained.
    pub reference_items: usize,
    /// What the maps compare each position's score with.
    pub map_negatives: MapNegatives,
}

impl Default for MiConfig {
    fn default() -> Self {
        MiConfig {
            bound: Bound::Dv,
            epochs: 10,
            batch: 32,
            negatives: 256,
            mask_from_mi: false,
            lr: 1e-3,
            mask_lr: 1e-3,
            seed: 0,
            mask_hidden: 64,
            proj_dim: 64,
            critic_hidden: 128,
            sparsity: 0.5,
            pairing: Pairing::Joint,
            train_split: "train".into(),
            eval_split: "test".into(),
            max_train_items: None,
            eval_items: 1024,
            pool_items: 4096,
            reference_items: 128,
            map_negatives: MapNegatives::Representations,
        }
    }
}

impl MiConfig {
    fn validate(&self) -> Result<()> {
        let min_batch = if self.pairing == Pairing::Shuffled {
            4
        } else {
            2
        };
        if self.batch < min_batch {
            return Err(Error::Config(format!("mi batch must be at least {min_batch} (negatives come from the other images of a batch)")));
        }
        if self.mask_hidden == 0
            || self.negatives == 0
            || self.proj_dim == 0
            || self.critic_hidden == 0
        {
            return Err(Error::Config("mi module widths must be positive".into()));
        }
        let positive = |v: f64| v > 0.0 && v.is_finite();
        let non_negative = |v: f64| v >= 0.0 && v.is_finite();
        if !positive(self.lr) || !positive(self.mask_lr) || !non_negative(self.sparsity) {
            return Err(Error::Config(
                "mi lr must be positive and sparsity non-negative".into(),
            ));
        }
        if self.reference_items < 1 || self.eval_items < 2 || self.pool_items < self.batch {
            return Err(Error::Config(
                "mi needs reference-items ≥ 1, eval-items ≥ 2 and pool-items ≥ batch".into(),
            ));
        }
        Ok(())
    }

    /// Whether two configurations describe the same run apart from its length.
    fn same_run(&self, other: &MiConfig) -> bool {
        MiConfig {
            epochs: 0,
            ..self.clone()
        } == MiConfig {
            epochs: 0,
            ..other.clone()
        }
    }
}

/// Which frozen classifier the mask is trained against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClassifierChoice {
    /// The model's own classifier stored in the cache (its classes must be the dataset's).
    Original,
    /// A linear probe: a `linear.safetensors` file or a folder holding one (`infodisent train`).
    Probe(PathBuf),
}

/// Loads the chosen classifier and checks it fits the cache.
pub fn resolve_classifier(
    cache: &FeatureCache,
    choice: &ClassifierChoice,
) -> Result<(LinearClassifier, String)> {
    let (c, source) = match choice {
        ClassifierChoice::Original => {
            let c = cache.classifier()?.ok_or_else(|| {
                Error::cache(cache.dir(), "has no original classifier; train a linear probe (`infodisent train --kind linear-probe`) and pass --classifier DIR")
            })?;
            if c.classes != cache.num_classes() {
                return Err(Error::Config(format!(
                    "the original classifier has {} classes but the dataset has {}; train a linear probe (`infodisent train --kind linear-probe`) and pass --classifier DIR",
                    c.classes,
                    cache.num_classes()
                )));
            }
            (c, "original".to_owned())
        }
        ClassifierChoice::Probe(p) => {
            let file = if p.is_dir() {
                p.join("linear.safetensors")
            } else {
                p.clone()
            };
            (LinearClassifier::load(&file)?, file.display().to_string())
        }
    };
    if c.dim != cache.feature_shape()[0] || c.classes != cache.num_classes() {
        return Err(Error::Shape(format!(
            "classifier {source} is [{}, {}] but the cache has {} classes of {}-channel features",
            c.classes,
            c.dim,
            cache.num_classes(),
            cache.feature_shape()[0]
        )));
    }
    Ok((c, source))
}

/// What a run was trained with: `config.json` of the output folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MiMeta {
    /// The settings.
    pub config: MiConfig,
    /// Fingerprint of the cache trained on.
    pub cache_fingerprint: String,
    /// Feature map shape [D, h, w].
    pub feature_shape: [usize; 3],
    /// Network input side, to map cells to pixels.
    pub input_size: usize,
    /// Class names.
    pub classes: Vec<String>,
    /// `original` or the probe file the classifier came from.
    pub classifier_source: String,
}

impl MiMeta {
    /// Module sizes of this run.
    pub fn dims(&self) -> NetDims {
        NetDims {
            dim: self.feature_shape[0],
            mask_hidden: self.config.mask_hidden,
            proj: self.config.proj_dim,
            critic_hidden: self.config.critic_hidden,
        }
    }
}

/// One line of `metrics.jsonl`. Epoch 0 is the untrained state (train fields zero).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// Epoch number (0 = before training).
    pub epoch: usize,
    /// Optimizer steps so far.
    pub steps: usize,
    /// Mean training loss over the epoch.
    pub train_loss: f32,
    /// Mean masked-path cross-entropy over the epoch.
    pub train_ce: f32,
    /// Mean raw bound value over the epoch (the trained bound).
    pub train_mi_raw: f32,
    /// Mean masked bound value over the epoch.
    pub train_mi_masked: f32,
    /// Held-out Donsker–Varadhan estimate of `I(Z; X_i)` in nats, with in-batch negatives.
    pub heldout_dv_raw: f32,
    /// Held-out Donsker–Varadhan estimate of `I(Z; λ_i X_i)` in nats.
    pub heldout_dv_masked: f32,
    /// Held-out accuracy of the frozen classifier on the masked path.
    pub heldout_masked_accuracy: f32,
    /// Held-out mean of λ.
    pub heldout_mean_lambda: f32,
    /// Wall time of the epoch in seconds.
    pub seconds: f32,
}

/// Result of [`train`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MiSummary {
    /// Output folder.
    pub out_dir: PathBuf,
    /// Epochs finished in total.
    pub epochs: usize,
    /// Epochs this call ran (fewer than `epochs` after a resume).
    pub epochs_run: usize,
    /// Every epoch's metrics, epoch 0 first.
    pub metrics: Vec<EpochMetrics>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CheckpointState {
    meta: MiMeta,
    epoch: usize,
    steps: usize,
    metrics: Vec<EpochMetrics>,
}

/// Adam with its moments kept as plain tensors so a checkpoint can store them: candle-nn's
/// optimizers keep theirs private, which would make a resumed run diverge from an unbroken one.
struct Adam {
    lrs: Vec<f64>,
    vars: Vec<(String, Var)>,
    first: Vec<Tensor>,
    second: Vec<Tensor>,
    step: usize,
}

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPS: f64 = 1e-8;

impl Adam {
    fn new(vars: Vec<(String, Var)>, lr: impl Fn(&str) -> f64) -> Result<Self> {
        let zeros = |v: &Var| v.zeros_like();
        let first = vars
            .iter()
            .map(|(_, v)| zeros(v))
            .collect::<candle_core::Result<_>>()?;
        let second = vars
            .iter()
            .map(|(_, v)| zeros(v))
            .collect::<candle_core::Result<_>>()?;
        Ok(Adam {
            lrs: vars.iter().map(|(name, _)| lr(name)).collect(),
            vars,
            first,
            second,
            step: 0,
        })
    }

    fn step(&mut self, loss: &Tensor) -> Result<()> {
        let grads = loss.backward()?;
        self.step += 1;
        let c1 = 1.0 - BETA1.powi(self.step as i32);
        let c2 = 1.0 - BETA2.powi(self.step as i32);
        for (i, (_, var)) in self.vars.iter().enumerate() {
            let Some(g) = grads.get(var) else { continue };
            self.first[i] = ((&self.first[i] * BETA1)? + (g * (1.0 - BETA1))?)?;
            self.second[i] = ((&self.second[i] * BETA2)? + (g.sqr()? * (1.0 - BETA2))?)?;
            let update = ((&self.first[i] / c1)? / ((&self.second[i] / c2)?.sqrt()? + EPS)?)?;
            var.set(&var.as_tensor().sub(&(update * self.lrs[i])?)?)?;
        }
        Ok(())
    }

    fn tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for (i, (name, var)) in self.vars.iter().enumerate() {
            out.push((format!("param/{name}"), var.as_tensor().clone()));
            out.push((format!("adam_m/{name}"), self.first[i].clone()));
            out.push((format!("adam_v/{name}"), self.second[i].clone()));
        }
        out
    }

    fn restore(
        &mut self,
        tensors: &HashMap<String, Tensor>,
        step: usize,
        path: &Path,
    ) -> Result<()> {
        for (i, (name, var)) in self.vars.iter().enumerate() {
            let get = |k: String| {
                tensors
                    .get(&k)
                    .cloned()
                    .ok_or_else(|| Error::cache(path, format!("lacks tensor `{k}`")))
            };
            let (p, m, v) = (
                get(format!("param/{name}"))?,
                get(format!("adam_m/{name}"))?,
                get(format!("adam_v/{name}"))?,
            );
            if p.dims() != var.dims() || m.dims() != var.dims() || v.dims() != var.dims() {
                return Err(Error::cache(
                    path,
                    format!("`{name}` has another shape than this configuration"),
                ));
            }
            var.set(&p)?;
            self.first[i] = m;
            self.second[i] = v;
        }
        self.step = step;
        Ok(())
    }
}

/// A batch of feature maps with labels, as tensors.
struct Batch {
    features: Tensor,
    labels: Tensor,
}

fn to_batch(features: Vec<f32>, labels: Vec<i64>, shape: [usize; 3]) -> Result<Batch> {
    let n = labels.len();
    Ok(Batch {
        features: Tensor::from_vec(features, (n, shape[0], shape[1], shape[2]), &Device::Cpu)?,
        labels: Tensor::from_vec(labels, n, &Device::Cpu)?,
    })
}

/// Calls `visit` with every training batch of one epoch: shards in random order, loaded
/// `pool_items` at a time and shuffled together, so a class-sorted folder still gives mixed
/// batches (and so the in-batch negatives cover several classes).
fn for_each_batch(
    cache: &FeatureCache,
    cfg: &MiConfig,
    rng: &mut StdRng,
    mut visit: impl FnMut(Batch) -> Result<()>,
) -> Result<()> {
    let shape = cache.feature_shape();
    let per_item = shape.iter().product::<usize>();
    let info = cache.split(&cfg.train_split)?;
    let mut order: Vec<usize> = (0..info.shards.len()).collect();
    order.shuffle(rng);
    let limit = cfg.max_train_items.unwrap_or(usize::MAX);
    let mut used = 0;
    let mut shards = order.into_iter().peekable();
    while shards.peek().is_some() && used < limit {
        let (mut feats, mut labels) = (Vec::new(), Vec::new());
        while labels.len() < cfg.pool_items && used + labels.len() < limit {
            let Some(i) = shards.next() else { break };
            let s = cache.read_shard(&cfg.train_split, i)?;
            let take = s.len.min(limit - used - labels.len());
            feats.extend_from_slice(&s.features[..take * per_item]);
            labels.extend_from_slice(&s.labels[..take]);
        }
        used += labels.len();
        let mut idx: Vec<usize> = (0..labels.len()).collect();
        idx.shuffle(rng);
        for chunk in idx.chunks(cfg.batch) {
            if chunk.len()
                < cfg
                    .batch
                    .min(labels.len())
                    .max(if cfg.pairing == Pairing::Shuffled {
                        4
                    } else {
                        2
                    })
            {
                continue;
            }
            let mut bf = Vec::with_capacity(chunk.len() * per_item);
            for &j in chunk {
                bf.extend_from_slice(&feats[j * per_item..(j + 1) * per_item]);
            }
            visit(to_batch(
                bf,
                chunk.iter().map(|&j| labels[j]).collect(),
                shape,
            )?)?;
        }
    }
    Ok(())
}

/// Splits a batch into the images whose local features are used and the images whose
/// representations are paired with them.
fn pair_up(batch: &Batch, pairing: Pairing) -> Result<(Tensor, Tensor, Tensor)> {
    match pairing {
        Pairing::Joint => Ok((
            batch.features.clone(),
            batch.features.clone(),
            batch.labels.clone(),
        )),
        Pairing::Shuffled => {
            let half = batch.labels.dim(0)? / 2;
            Ok((
                batch.features.narrow(0, 0, half)?,
                batch.features.narrow(0, half, half)?,
                batch.labels.narrow(0, 0, half)?,
            ))
        }
    }
}

fn negatives_for(rng: &mut StdRng, x: &Tensor, k: usize) -> Result<Tensor> {
    let (b, _, h, w) = x.dims4()?;
    sample_negatives(rng, b, h * w, k)
}

/// Held-out evaluation: DV estimates with in-batch negatives, masked-path accuracy, mean λ.
fn evaluate(
    net: &MiNet,
    classifier: &FrozenClassifier,
    cfg: &MiConfig,
    eval: &[Batch],
) -> Result<[f32; 4]> {
    let mut sums = [0f32; 4];
    let mut count = 0f32;
    let mut rng = StdRng::seed_from_u64(cfg.seed ^ 0x0e7a_10e9);
    for batch in eval {
        let (x, z, labels) = pair_up(batch, cfg.pairing)?;
        let negatives = negatives_for(&mut rng, &x, cfg.negatives)?;
        let out = forward(
            net,
            classifier,
            Bound::Dv,
            &x,
            &z,
            &negatives,
            cfg.mask_from_mi,
        )?;
        let w = labels.dim(0)? as f32;
        sums[0] += out.mi_raw.mean_all()?.to_scalar::<f32>()? * w;
        sums[1] += out.mi_masked.mean_all()?.to_scalar::<f32>()? * w;
        sums[2] += accuracy(&out.logits, &labels)? * w;
        sums[3] += out.lambda.mean_all()?.to_scalar::<f32>()? * w;
        count += w;
    }
    Ok(sums.map(|s| s / count.max(1.0)))
}

/// Reads the first `cfg.eval_items` held-out items once, in fixed batches.
fn eval_batches(cache: &FeatureCache, cfg: &MiConfig) -> Result<Vec<Batch>> {
    let shape = cache.feature_shape();
    let per_item = shape.iter().product::<usize>();
    let (mut feats, mut labels) = (Vec::new(), Vec::new());
    for shard in cache.shards(&cfg.eval_split)? {
        let s = shard?;
        let take = s.len.min(cfg.eval_items - labels.len());
        feats.extend_from_slice(&s.features[..take * per_item]);
        labels.extend_from_slice(&s.labels[..take]);
        if labels.len() >= cfg.eval_items {
            break;
        }
    }
    // Fixed shuffle so that a class-sorted split still gives mixed held-out batches.
    let mut idx: Vec<usize> = (0..labels.len()).collect();
    idx.shuffle(&mut StdRng::seed_from_u64(cfg.seed ^ 0xe7a1));
    let min = if cfg.pairing == Pairing::Shuffled {
        4
    } else {
        2
    };
    let mut out = Vec::new();
    for chunk in idx.chunks(cfg.batch).filter(|c| c.len() >= min) {
        let bf: Vec<f32> = chunk
            .iter()
            .flat_map(|&j| feats[j * per_item..(j + 1) * per_item].iter().copied())
            .collect();
        out.push(to_batch(
            bf,
            chunk.iter().map(|&j| labels[j]).collect(),
            shape,
        )?);
    }
    if out.is_empty() {
        return Err(Error::cache(
            cache.dir(),
            format!(
                "split `{}` has fewer than {min} items to evaluate on",
                cfg.eval_split
            ),
        ));
    }
    Ok(out)
}

/// Projected local features (raw and masked) and pooled representations of
/// `reference_items` random training images.
fn reference_bank(
    net: &MiNet,
    cache: &FeatureCache,
    cfg: &MiConfig,
) -> Result<Vec<(String, Tensor)>> {
    let mut feats = Vec::new();
    let n = for_sampled_items(
        cache,
        cfg,
        cfg.reference_items,
        cfg.seed ^ 0x05ee_d4ef,
        |f| feats.extend_from_slice(f),
    )?;
    let [d, h, w] = cache.feature_shape();
    let f = Tensor::from_vec(feats, (n, d, h, w), &Device::Cpu)?;
    let masked = f.broadcast_mul(&net.lambda(&f)?)?;
    Ok(vec![
        ("x_raw".to_owned(), net.project_x(&locals(&f)?)?),
        ("x_masked".to_owned(), net.project_x(&locals(&masked)?)?),
        ("z".to_owned(), pooled(&f)?),
    ])
}

/// Training items whose features fix the input standardisation.
const NORM_ITEMS: usize = 1024;

/// Standardisation of local features and of representations, from [`NORM_ITEMS`] sampled
/// training maps, one map in memory at a time.
fn fit_norms(cache: &FeatureCache, cfg: &MiConfig) -> Result<(ChannelNorm, ChannelNorm)> {
    let [d, h, w] = cache.feature_shape();
    let cells = h * w;
    let (mut x, mut z) = (Moments::new(d), Moments::new(d));
    for_sampled_items(cache, cfg, NORM_ITEMS, cfg.seed ^ 0x0a0b_0c0d, |f| {
        for (k, channel) in f.chunks_exact(cells).enumerate() {
            x.add(k, channel);
            z.add(k, &[channel.iter().sum::<f32>() / cells as f32]);
        }
    })?;
    Ok((ChannelNorm::fit(&x)?, ChannelNorm::fit(&z)?))
}

/// Calls `visit` with the feature map `[D, h, w]` of each of `n` training items drawn with
/// `seed` across the whole split (a class-sorted split read from the front would give one
/// class only), and returns how many it visited. Fixed by the seed, so a resumed run sees the
/// same items.
fn for_sampled_items(
    cache: &FeatureCache,
    cfg: &MiConfig,
    n: usize,
    seed: u64,
    mut visit: impl FnMut(&[f32]),
) -> Result<usize> {
    let info = cache.split(&cfg.train_split)?;
    if info.num_items == 0 {
        return Err(Error::cache(
            cache.dir(),
            format!("split `{}` has no items to train on", cfg.train_split),
        ));
    }
    let mut picks: Vec<usize> = (0..info.num_items).collect();
    picks.shuffle(&mut StdRng::seed_from_u64(seed));
    picks.truncate(n);
    picks.sort_unstable();
    let per_item = cache.feature_shape().iter().product::<usize>();
    cache.visit_batches(&cfg.train_split, &picks, 64, |rows| {
        rows.features.chunks_exact(per_item).for_each(&mut visit);
        Ok(())
    })?;
    Ok(picks.len())
}

/// Metadata key of the checkpoint's JSON state.
const STATE_KEY: &str = "infodisent.mi.state";

fn read_state(path: &Path) -> Result<CheckpointState> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| Error::cache(path, format!("corrupt: {e}")))?;
    let json = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(STATE_KEY))
        .ok_or_else(|| Error::cache(path, "not an mi checkpoint (no state)"))?;
    serde_json::from_str(json).map_err(|e| Error::cache(path, format!("unreadable state: {e}")))
}

fn write_metrics(out: &Path, metrics: &[EpochMetrics]) -> Result<()> {
    let mut text = String::new();
    for m in metrics {
        text.push_str(&serde_json::to_string(m).map_err(|e| Error::Config(e.to_string()))?);
        text.push('\n');
    }
    write_atomic(out.join("metrics.jsonl"), text.as_bytes())
}

fn checked(v: f32, what: &str, epoch: usize) -> Result<f32> {
    if v.is_finite() {
        Ok(v)
    } else {
        Err(Error::Numeric(format!(
            "{what} became {v} in epoch {epoch}; try a lower --lr or --bound js"
        )))
    }
}

/// Trains mask and critic on `cache` against the frozen `classifier`, writing the files listed
/// in the [module docs](super) to `out`. With `resume`, continues from `checkpoint.json` when it
/// belongs to the same run (same cache, same settings apart from `epochs`).
pub fn train(
    cache: &FeatureCache,
    classifier: &LinearClassifier,
    classifier_source: &str,
    cfg: &MiConfig,
    out: &Path,
    resume: bool,
) -> Result<MiSummary> {
    cfg.validate()?;
    let shape = cache.feature_shape();
    let frozen = FrozenClassifier::new(classifier, shape[0])?;
    if classifier.classes != cache.num_classes() {
        return Err(Error::Shape(format!(
            "classifier has {} classes, the cache {}",
            classifier.classes,
            cache.num_classes()
        )));
    }
    let meta = MiMeta {
        config: cfg.clone(),
        cache_fingerprint: cache.manifest().fingerprint.clone(),
        feature_shape: shape,
        input_size: cache.manifest().input_size,
        classes: cache.manifest().classes.clone(),
        classifier_source: classifier_source.to_owned(),
    };
    let mut net = MiNet::new(&meta.dims(), cfg.seed)?;
    let (x_norm, z_norm) = fit_norms(cache, cfg)?;
    net.set_norms(x_norm, z_norm);
    let mut adam = Adam::new(net.vars(), |name| {
        if name.starts_with(MASK_PREFIX) {
            cfg.mask_lr
        } else {
            cfg.lr
        }
    })?;
    let ckpt_path = out.join("checkpoint.safetensors");
    let mut state = CheckpointState {
        meta: meta.clone(),
        epoch: 0,
        steps: 0,
        metrics: vec![],
    };
    if resume && ckpt_path.exists() {
        let old = read_state(&ckpt_path)?;
        if old.meta.cache_fingerprint != meta.cache_fingerprint
            || old.meta.classifier_source != meta.classifier_source
            || !old.meta.config.same_run(cfg)
        {
            return Err(Error::cache(&ckpt_path, "belongs to a run with another cache, classifier or settings; use another --out or drop --resume"));
        }
        adam.restore(&read_tensors(&ckpt_path)?, old.steps, &ckpt_path)?;
        state = CheckpointState {
            meta: meta.clone(),
            ..old
        };
    } else if !resume && ckpt_path.exists() {
        return Err(Error::Config(format!(
            "{} already holds an mi run; pass --resume to continue it or choose another --out",
            out.display()
        )));
    }
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    write_json_atomic(out.join("config.json"), &meta)?;
    classifier.save(out.join("classifier.safetensors"))?;

    let eval = eval_batches(cache, cfg)?;
    if state.metrics.is_empty() {
        let [raw, masked, acc, lambda] = evaluate(&net, &frozen, cfg, &eval)?;
        state.metrics.push(EpochMetrics {
            epoch: 0,
            steps: 0,
            train_loss: 0.0,
            train_ce: 0.0,
            train_mi_raw: 0.0,
            train_mi_masked: 0.0,
            heldout_dv_raw: raw,
            heldout_dv_masked: masked,
            heldout_masked_accuracy: acc,
            heldout_mean_lambda: lambda,
            seconds: 0.0,
        });
    }
    let first_epoch = state.epoch + 1;
    let train_items = cache
        .split(&cfg.train_split)?
        .num_items
        .min(cfg.max_train_items.unwrap_or(usize::MAX));
    let steps_per_epoch = (train_items / cfg.batch).max(1);
    let bar = crate::progress::bar(
        (cfg.epochs.saturating_sub(state.epoch) * steps_per_epoch) as u64,
        "mi train",
        "steps",
    );
    for epoch in first_epoch..=cfg.epochs {
        let started = std::time::Instant::now();
        let mut rng =
            StdRng::seed_from_u64(cfg.seed.wrapping_mul(1_000_003).wrapping_add(epoch as u64));
        let mut negatives_rng =
            StdRng::seed_from_u64(cfg.seed.wrapping_mul(7_919).wrapping_add(epoch as u64) ^ 0x4e67);
        let mut sums = [0f32; 4];
        let mut n = 0usize;
        for_each_batch(cache, cfg, &mut rng, |batch| {
            let (x, z, labels) = pair_up(&batch, cfg.pairing)?;
            let negatives = negatives_for(&mut negatives_rng, &x, cfg.negatives)?;
            let out = forward(
                &net,
                &frozen,
                cfg.bound,
                &x,
                &z,
                &negatives,
                cfg.mask_from_mi,
            )?;
            let ce = candle_nn::loss::cross_entropy(&out.logits, &labels)?;
            let mi_raw = out.mi_raw.mean_all()?;
            let mi_masked = out.mi_masked.mean_all()?;
            let loss =
                ((&ce - (&mi_raw + &mi_masked)?)? + (out.lambda.mean_all()? * cfg.sparsity)?)?;
            adam.step(&loss)?;
            for (s, t) in sums.iter_mut().zip([&loss, &ce, &mi_raw, &mi_masked]) {
                *s += t.to_dtype(DType::F32)?.to_scalar::<f32>()?;
            }
            n += 1;
            bar.inc(1);
            bar.set_message(format!("epoch {epoch} loss {:.3}", sums[0] / n as f32));
            Ok(())
        })?;
        let [loss, ce, mi_raw, mi_masked] = sums.map(|s| s / n.max(1) as f32);
        checked(loss, "the training loss", epoch)?;
        let [raw, masked, acc, lambda] = evaluate(&net, &frozen, cfg, &eval)?;
        checked(raw, "the held-out estimate", epoch)?;
        state.epoch = epoch;
        state.steps = adam.step;
        state.metrics.push(EpochMetrics {
            epoch,
            steps: adam.step,
            train_loss: loss,
            train_ce: ce,
            train_mi_raw: mi_raw,
            train_mi_masked: mi_masked,
            heldout_dv_raw: raw,
            heldout_dv_masked: masked,
            heldout_masked_accuracy: acc,
            heldout_mean_lambda: lambda,
            seconds: started.elapsed().as_secs_f32(),
        });
        tracing::info!(
            epoch,
            loss,
            heldout_dv_raw = raw,
            heldout_dv_masked = masked,
            "mi epoch done"
        );
        // The state travels inside the tensor file's metadata: one atomic file, so a kill can
        // never pair the state of one epoch with the parameters of another.
        let state_json = serde_json::to_string(&state).map_err(|e| Error::Config(e.to_string()))?;
        write_tensors(
            &ckpt_path,
            &adam.tensors(),
            Some(HashMap::from([(STATE_KEY.to_owned(), state_json)])),
        )?;
        write_metrics(out, &state.metrics)?;
    }
    bar.finish_and_clear();
    write_tensors(&out.join("mi.safetensors"), &net.tensors(), None)?;
    write_tensors(
        &out.join("reference.safetensors"),
        &reference_bank(&net, cache, cfg)?,
        None,
    )?;
    write_metrics(out, &state.metrics)?;
    Ok(MiSummary {
        out_dir: out.to_path_buf(),
        epochs: state.epoch,
        epochs_run: (state.epoch + 1).saturating_sub(first_epoch),
        metrics: state.metrics,
    })
}
