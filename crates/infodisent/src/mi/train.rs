//! Training the mask and critic on cached feature maps, in the [run skeleton](crate::training_run)
//! both trainers share (checkpoints, exact resume, held-out estimates logged as JSON lines).
//!
//! Loss per batch: `CE(classifier(pool(λ ⊙ F)), y) − (MI_raw + MI_masked) + sparsity · mean(λ)`,
//! with MI the mean per-position bound. The backbone features are constants and the classifier is
//! frozen: only the mask and the critic move. Everything random (initialisation, the order of
//! items in an epoch, the reference images) is drawn from the seed, per epoch, so a resumed run
//! repeats exactly what an uninterrupted one does.

use super::bounds::Bound;
use super::config::{ClassifierChoice, MiConfig, MiMeta, Pairing};
use super::model::{
    accuracy, forward, locals, pooled, sample_negatives, write_tensors, FrozenClassifier, MiNet,
    MASK_PREFIX,
};
use super::standardize::{ChannelNorm, Moments};
use crate::cache::FeatureCache;
use crate::checkpoint::{self, Checkpoint};
use crate::classifier::LinearClassifier;
use crate::error::{Error, Result};
use crate::optim::{AdamW, Hyper};
use crate::runs;
use crate::training_run::{self, Trainer, TrainingRun};
use candle_core::{DType, Device, Tensor};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The chosen classifier, by the baseline rule ([`crate::baseline::choose`]), with where it
/// came from; the decomposition needs an average-pooled one.
pub fn resolve_classifier(
    cache: &FeatureCache,
    choice: &ClassifierChoice,
) -> Result<(LinearClassifier, String)> {
    let probe = match choice {
        ClassifierChoice::Original => None,
        ClassifierChoice::Probe(p) => Some(p.as_path()),
    };
    let baseline = crate::baseline::choose(cache, probe)?.map_err(|why| {
        Error::cache(
            cache.dir(),
            format!("{why}; train a linear probe (`infodisent train --kind linear-probe`) and pass --classifier DIR"),
        )
    })?;
    let (c, source) = (baseline.classifier, baseline.source);
    if c.pooling != crate::classifier::Pooling::Average {
        return Err(Error::Config(format!(
            "classifier {source} pools by {:?}; the decomposition masks cells of an average-pooled representation: train the probe with the default pooling",
            c.pooling
        )));
    }
    Ok((c, source))
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

/// Progress stored in the checkpoint's metadata (the log is `metrics.jsonl`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CheckpointState {
    meta: MiMeta,
    epoch: usize,
    steps: usize,
}

/// Random streams of a run, each drawn afresh per epoch from the seed
/// ([`training_run::rng`]).
const STREAM_ORDER: u64 = 1 << 40;
const STREAM_NEGATIVES: u64 = 2 << 40;

impl training_run::EpochLine for EpochMetrics {
    fn epoch(&self) -> usize {
        self.epoch
    }
}

/// A batch of feature maps with labels, as tensors.
struct TensorBatch {
    features: Tensor,
    labels: Tensor,
}

fn to_batch(features: Vec<f32>, labels: Vec<i64>, shape: [usize; 3]) -> Result<TensorBatch> {
    let n = labels.len();
    Ok(TensorBatch {
        features: Tensor::from_vec(features, (n, shape[0], shape[1], shape[2]), &Device::Cpu)?,
        labels: Tensor::from_vec(labels, n, &Device::Cpu)?,
    })
}

/// Calls `visit` with every training batch of one epoch, drawn from a permutation of the whole
/// split (at most `max_train_items` of it), so a class-sorted folder still gives mixed batches
/// and the in-batch negatives cover several classes; one batch in memory.
fn for_each_batch(
    cache: &FeatureCache,
    cfg: &MiConfig,
    rng: &mut StdRng,
    mut visit: impl FnMut(TensorBatch) -> Result<()>,
) -> Result<()> {
    let shape = cache.feature_shape();
    let mut order: Vec<usize> = (0..cache.split(&cfg.train_split)?.num_items).collect();
    order.shuffle(rng);
    order.truncate(cfg.max_train_items.unwrap_or(usize::MAX));
    // A short last batch is dropped: the shuffled pairing needs at least 4 images to derange.
    let least = if cfg.pairing == Pairing::Shuffled {
        4
    } else {
        2
    };
    let full = cfg.batch.min(order.len()).max(least);
    cache.visit_batches(&cfg.train_split, &order, cfg.batch, |rows| {
        if rows.len < full {
            return Ok(());
        }
        visit(to_batch(rows.features, rows.labels, shape)?)
    })
}

/// Splits a batch into the images whose local features are used and the images whose
/// representations are paired with them.
fn pair_up(batch: &TensorBatch, pairing: Pairing) -> Result<(Tensor, Tensor, Tensor)> {
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
    eval: &[TensorBatch],
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
fn eval_batches(cache: &FeatureCache, cfg: &MiConfig) -> Result<Vec<TensorBatch>> {
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
/// in the [module docs](super) to `out`. With `resume`, continues from the checkpoint there when
/// it belongs to the same run (same cache, classifier and settings apart from `epochs`).
pub fn train(
    cache: &FeatureCache,
    classifier: &LinearClassifier,
    classifier_source: &str,
    cfg: &MiConfig,
    out: &Path,
    resume: bool,
) -> Result<MiSummary> {
    cfg.validate()?;
    let trainer = MiRun::start(cache, classifier, classifier_source, cfg, out, resume)?;
    let meta = trainer.state.meta.clone();
    let first_epoch = trainer.state.epoch + 1;
    let mut run = TrainingRun::begin(out, &meta, cache, trainer)?;
    classifier.save(out.join(runs::CLASSIFIER_FILE))?;
    run.drive(None)?;
    let (trainer, metrics) = run.into_parts();
    trainer.bar.finish_and_clear();
    write_tensors(&out.join(runs::MI_FILE), &trainer.net.tensors(), None)?;
    write_tensors(
        &out.join(runs::REFERENCE_FILE),
        &reference_bank(&trainer.net, cache, cfg)?,
        None,
    )?;
    Ok(MiSummary {
        out_dir: out.to_path_buf(),
        epochs: trainer.state.epoch,
        epochs_run: (trainer.state.epoch + 1).saturating_sub(first_epoch),
        metrics,
    })
}

/// An MI run in progress: mask and critic, their optimizer, the frozen classifier and the
/// held-out batches.
struct MiRun<'a> {
    cache: &'a FeatureCache,
    cfg: &'a MiConfig,
    net: MiNet,
    frozen: FrozenClassifier,
    adam: AdamW,
    eval: Vec<TensorBatch>,
    state: CheckpointState,
    bar: crate::progress::Progress,
}

impl<'a> MiRun<'a> {
    /// A new run, or the one checkpointed in `out` when resuming (refused if it was made from
    /// another cache, classifier or settings).
    fn start(
        cache: &'a FeatureCache,
        classifier: &LinearClassifier,
        classifier_source: &str,
        cfg: &'a MiConfig,
        out: &Path,
        resume: bool,
    ) -> Result<Self> {
        let shape = cache.feature_shape();
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
        let mut adam = AdamW::new(&net.vars());
        let mut state = CheckpointState {
            meta: meta.clone(),
            epoch: 0,
            steps: 0,
        };
        if let Some(ckpt) = training_run::resumable_checkpoint(out, resume, "an MI run")? {
            let old: CheckpointState = checkpoint::read_state(&ckpt)?;
            if old.meta.cache_fingerprint != meta.cache_fingerprint
                || old.meta.classifier_source != meta.classifier_source
                || !old.meta.config.same_run(cfg)
            {
                return Err(Error::cache(&ckpt, "belongs to a run with another cache, classifier or settings; use another --out or drop --resume"));
            }
            let saved: Checkpoint<CheckpointState> = checkpoint::load(&ckpt)?;
            adam.restore(&saved, saved.state.steps as u64)?;
            state = CheckpointState {
                meta,
                ..saved.state
            };
        }
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
        Ok(MiRun {
            cache,
            cfg,
            frozen: FrozenClassifier::new(classifier, shape[0])?,
            net,
            adam,
            eval: eval_batches(cache, cfg)?,
            state,
            bar,
        })
    }

    /// One optimizer step on `batch`; returns loss, cross-entropy and the two bounds.
    fn step(&mut self, batch: &TensorBatch, negatives_rng: &mut StdRng) -> Result<[f32; 4]> {
        let cfg = self.cfg;
        let (x, z, labels) = pair_up(batch, cfg.pairing)?;
        let negatives = negatives_for(negatives_rng, &x, cfg.negatives)?;
        let out = forward(
            &self.net,
            &self.frozen,
            cfg.bound,
            &x,
            &z,
            &negatives,
            cfg.mask_from_mi,
        )?;
        let ce = candle_nn::loss::cross_entropy(&out.logits, &labels)?;
        let mi_raw = out.mi_raw.mean_all()?;
        let mi_masked = out.mi_masked.mean_all()?;
        let loss = ((&ce - (&mi_raw + &mi_masked)?)? + (out.lambda.mean_all()? * cfg.sparsity)?)?;
        self.adam.step(&loss.backward()?, |name| Hyper {
            lr: if name.starts_with(MASK_PREFIX) {
                cfg.mask_lr
            } else {
                cfg.lr
            },
            weight_decay: 0.0,
        })?;
        let mut values = [0f32; 4];
        for (v, t) in values.iter_mut().zip([&loss, &ce, &mi_raw, &mi_masked]) {
            *v = t.to_dtype(DType::F32)?.to_scalar::<f32>()?;
        }
        Ok(values)
    }

    /// The epoch's line: training means `train` and a held-out evaluation.
    fn line(&self, epoch: usize, train: [f32; 4], seconds: f32) -> Result<EpochMetrics> {
        let [raw, masked, acc, lambda] = evaluate(&self.net, &self.frozen, self.cfg, &self.eval)?;
        checked(raw, "the held-out estimate", epoch)?;
        let [loss, ce, mi_raw, mi_masked] = train;
        Ok(EpochMetrics {
            epoch,
            steps: self.adam.steps() as usize,
            train_loss: loss,
            train_ce: ce,
            train_mi_raw: mi_raw,
            train_mi_masked: mi_masked,
            heldout_dv_raw: raw,
            heldout_dv_masked: masked,
            heldout_masked_accuracy: acc,
            heldout_mean_lambda: lambda,
            seconds,
        })
    }
}

impl Trainer for MiRun<'_> {
    type Line = EpochMetrics;

    fn epochs_done(&self) -> usize {
        self.state.epoch
    }

    fn finished(&self) -> bool {
        self.state.epoch >= self.cfg.epochs
    }

    fn before_training(&self) -> Result<Option<EpochMetrics>> {
        self.line(0, [0.0; 4], 0.0).map(Some)
    }

    fn epoch(&mut self) -> Result<EpochMetrics> {
        let epoch = self.state.epoch + 1;
        let started = std::time::Instant::now();
        let seed = self.cfg.seed;
        let mut order_rng = training_run::rng(seed, STREAM_ORDER, epoch as u64);
        let mut negatives_rng = training_run::rng(seed, STREAM_NEGATIVES, epoch as u64);
        let (mut sums, mut n) = ([0f32; 4], 0usize);
        let (cache, cfg) = (self.cache, self.cfg);
        for_each_batch(cache, cfg, &mut order_rng, |batch| {
            let values = self.step(&batch, &mut negatives_rng)?;
            sums.iter_mut().zip(values).for_each(|(s, v)| *s += v);
            n += 1;
            self.bar.inc(1);
            self.bar.check()?;
            self.bar
                .set_message(format!("epoch {epoch} loss {:.3}", sums[0] / n as f32));
            Ok(())
        })?;
        let means = sums.map(|s| s / n.max(1) as f32);
        checked(means[0], "the training loss", epoch)?;
        let line = self.line(epoch, means, started.elapsed().as_secs_f32())?;
        self.state.epoch = epoch;
        self.state.steps = line.steps;
        tracing::info!(
            epoch,
            loss = means[0],
            heldout_dv_raw = line.heldout_dv_raw,
            heldout_dv_masked = line.heldout_dv_masked,
            "mi epoch done"
        );
        Ok(line)
    }

    fn save(&self, path: &Path) -> Result<()> {
        checkpoint::save(path, &self.state, &self.adam.state()?)
    }
}
