//! Training a head on a feature cache: AdamW with a cosine schedule and optional warm-up,
//! a [schedule] chosen by optimizer steps, deterministic streaming of shards and early stopping
//! on a class-stratified [hold-out](holdout) of the split, in the
//! [run skeleton](crate::training_run) shared with the MI trainer (atomic checkpoints that
//! resume bit-for-bit, a JSON-lines metrics log).
//!
//! Output folder: `config.json` (the [`TrainConfig`]), `checkpoint.safetensors` (parameters,
//! AdamW moments, best parameters; progress in the metadata), `metrics.jsonl` (one object per
//! epoch), `summary.json`, and the final head: `head.safetensors` ([`HeadParams`](crate::head::params::HeadParams) format) for
//! InfoDisent or `linear.safetensors` ([`LinearClassifier`](crate::classifier::LinearClassifier) format) for the linear probe.

pub mod batches;
pub mod config;
pub mod decorrelation;
pub mod holdout;
pub mod init;
pub mod overrides;
pub mod schedule;
pub mod trace;

pub use batches::Images;
pub use config::{
    Init, RotationInit, Target, TrainConfig, DEFAULT_EPOCHS, DEFAULT_KEEP_TOP, DEFAULT_MAX_STEPS,
    DEFAULT_MIN_STEPS, ORIGINAL_LR, ORIGINAL_MIN_STEPS,
};
pub use holdout::Holdout;
pub use overrides::TrainOverrides;
pub use schedule::Schedule;

use crate::cache::FeatureCache;
use crate::checkpoint::{self, Checkpoint, NamedTensor};
use crate::error::{Error, Result};
use crate::fsutil::{read_json, write_json_atomic};
use crate::head::params::argmax;
use crate::head::{Head, HeadKind, Parametrization, TrainMode, TrainedHead};
use crate::optim::{warmup_cosine, AdamW, Hyper};
use crate::runs;
use crate::training_run::{self, mix, Trainer, TrainingRun};
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

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
    /// Highest validation accuracy of the epochs that count (those after pruning), when
    /// validating.
    pub best_val_acc: Option<f64>,
    /// The epoch whose parameters were kept: the last one within one standard error of the
    /// highest validation accuracy.
    pub best_epoch: Option<usize>,
    /// Validation accuracy of the kept epoch.
    pub kept_val_acc: Option<f64>,
    /// Whether early stopping ended the run.
    pub stopped_early: bool,
    /// The schedule the run followed (images, epochs, steps, pruning, patience, and why).
    pub schedule: Schedule,
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
    /// Wall time of the epoch in seconds (the RV measurement left out).
    pub seconds: f64,
    /// The RV of the head's channels after the epoch, when traced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rv: Option<crate::rv::HeadRv>,
}

/// Progress stored in the checkpoint's metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Progress {
    epochs_done: usize,
    adam_steps: u64,
    steps: u64,
    best_val_acc: Option<f64>,
    best_epoch: Option<usize>,
    #[serde(default)]
    kept_val_acc: Option<f64>,
    epochs_since_best: usize,
    stopped_early: bool,
    cache_fingerprint: String,
    config: TrainConfig,
    /// Per class, the weight indices kept by pruning, once it has happened. Stored because
    /// a kept weight can also sit at zero, so the pattern is not readable from W.
    #[serde(default)]
    kept: Option<Vec<Vec<u32>>>,
    /// A frame head's channels, chosen once at the start from the training images.
    #[serde(default)]
    channels: Option<Vec<u32>>,
}

const STREAM_SHUFFLE: u64 = 1 << 40;
const STREAM_NOISE: u64 = 2 << 40;
const STREAM_VAL: u64 = 3 << 40;

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
    path: &Path,
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
    checkpoint::save(path, &progress, &tensors)
}

/// Restores parameters, `U₀` and optimiser state from the checkpoint `saved` read from `path`;
/// returns the progress and the best snapshot.
fn load_checkpoint(
    path: &Path,
    saved: Checkpoint<Progress>,
    head: &Head,
    opt: &mut AdamW,
) -> Result<(Progress, Option<Snapshot>)> {
    if saved.has_prefix(EARLIER_BASE) {
        return Err(Error::cache(
            path,
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

/// Accuracy of the head (inference pooling) on `items` of `split`.
fn accuracy(images: &Images, items: &[usize], batch_size: usize, head: &Head) -> Result<f64> {
    let (mut correct, mut total) = (0usize, 0usize);
    images.for_each_batch(items, batch_size, None, |batch| {
        let logits = head.logits(&batch, None)?.to_vec2::<f32>()?;
        correct += logits
            .iter()
            .zip(&batch.labels)
            .filter(|(l, &y)| argmax(l) == y as usize)
            .count();
        total += batch.n;
        Ok(())
    })?;
    Ok(correct as f64 / total.max(1) as f64)
}

/// `cache` labelled as `cfg.target` asks: by the dataset, or by the original classifier.
fn target_view(cache: &FeatureCache, target: Target) -> Result<std::borrow::Cow<'_, FeatureCache>> {
    Ok(match target {
        Target::Labels => std::borrow::Cow::Borrowed(cache),
        Target::Original => std::borrow::Cow::Owned(cache.clone().with_original_labels()?),
    })
}

/// Which images of the split a run of `cfg` trains and validates on, and the schedule it
/// follows: what [`train`] will do, without training.
pub fn plan(cache: &FeatureCache, cfg: &TrainConfig) -> Result<(Holdout, Schedule)> {
    cfg.validate()?;
    plan_on(&*target_view(cache, cfg.target)?, cfg)
}

/// [`plan`] on a cache already labelled as the target asks.
fn plan_on(cache: &FeatureCache, cfg: &TrainConfig) -> Result<(Holdout, Schedule)> {
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
    let labels: Vec<i64> = items.iter().map(|item| item.label).collect();
    let holdout = holdout::divide(&labels, cfg.limit_per_class, cfg.val_fraction, |i| {
        mix(cfg.seed ^ STREAM_VAL, i as u64)
    });
    if cfg.val_fraction > 0.0 && holdout.val.is_empty() {
        return Err(Error::Config(format!(
            "val_fraction {} holds out no image of the {} in `{}`: lower it to 0 (--val-fraction 0) or add images",
            cfg.val_fraction,
            holdout.train.len(),
            cfg.split
        )));
    }
    let schedule = Schedule::new(cfg, holdout.train.len(), holdout.val.len())?;
    Ok((holdout, schedule))
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

/// [`train`], handing `announce` the schedule once it is chosen, before the first epoch (what
/// `infodisent train` prints), without planning twice.
pub fn train_announcing(
    cache: &FeatureCache,
    cfg: &TrainConfig,
    out_dir: &Path,
    resume: bool,
    announce: impl FnOnce(&Schedule),
) -> Result<TrainSummary> {
    run_training(cache, cfg, out_dir, resume, None, announce)
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
    run_training(cache, cfg, out_dir, resume, stop_after, |_| {})
}

fn run_training(
    cache: &FeatureCache,
    cfg: &TrainConfig,
    out_dir: &Path,
    resume: bool,
    stop_after: Option<usize>,
    announce: impl FnOnce(&Schedule),
) -> Result<TrainSummary> {
    cfg.validate()?;
    let cache = target_view(cache, cfg.target)?;
    let (holdout, schedule) = plan_on(&cache, cfg)?;
    announce(&schedule);
    let run = Run::start(&cache, cfg, holdout, schedule, out_dir, resume)?;
    let mut run = TrainingRun::begin(out_dir, cfg, &cache, run)?;
    run.drive(stop_after)?;
    let (run, log) = run.into_parts();
    run.finish(log.last())
}

/// The optimizer of `head`'s parameters: AdamW, with Riemannian steps for a frame.
pub fn optimizer(head: &Head) -> Result<AdamW> {
    let opt = AdamW::new(head.vars());
    if head.channels().is_empty() {
        Ok(opt)
    } else {
        opt.on_stiefel("frame")
    }
}

/// The binomial standard error of an accuracy measured on `n` images.
pub fn standard_error(accuracy: f64, n: usize) -> f64 {
    (accuracy * (1.0 - accuracy) / n.max(1) as f64).sqrt()
}

/// A run in progress: the head, its optimizer, and what the checkpoint records.
struct Run<'a> {
    images: Images<'a>,
    cfg: &'a TrainConfig,
    holdout: Holdout,
    schedule: Schedule,
    out_dir: &'a Path,
    head: Head,
    opt: AdamW,
    progress: Progress,
    best: Option<Snapshot>,
    trace: Option<trace::RvTrace>,
}

/// What one epoch of training measured.
struct EpochStats {
    loss: f64,
    acc: f64,
    lr: f64,
}

impl<'a> Run<'a> {
    /// A new run, or the one checkpointed in `out_dir` when resuming (refused if it was made
    /// from another cache or configuration).
    fn start(
        cache: &'a FeatureCache,
        cfg: &'a TrainConfig,
        holdout: Holdout,
        schedule: Schedule,
        out_dir: &'a Path,
        resume: bool,
    ) -> Result<Self> {
        let [dim, _, _] = cache.feature_shape();
        let ckpt = out_dir.join(runs::CHECKPOINT_FILE);
        let saved: Option<Checkpoint<Progress>> =
            match training_run::resumable_checkpoint(out_dir, resume, "a training run")? {
                Some(path) => Some(checkpoint::load(&path)?),
                None => None,
            };
        let everything: Vec<usize> = holdout.train.iter().chain(&holdout.val).copied().collect();
        let images = Images::new(cache, &cfg.split, &everything)?;
        let frame =
            cfg.head.kind == HeadKind::InfoDisent && cfg.head.rotation == Parametrization::Frame;
        let channels = match &saved {
            _ if !frame => None,
            Some(saved) => Some(saved.state.channels.clone().ok_or_else(|| {
                Error::cache(&ckpt, "a frame run's checkpoint without its channels")
            })?),
            None => Some(init::frame_channels(
                &images,
                &holdout.train,
                cache.num_classes(),
                cfg.head.frame_per_class,
            )?),
        };
        let head = Head::with_channels(
            cfg.head.clone(),
            dim,
            cache.num_classes(),
            cfg.seed,
            channels.clone().unwrap_or_default(),
        )?;
        let opt = optimizer(&head)?;
        let fingerprint = cache.manifest().fingerprint.clone();
        let mut run = Run {
            images,
            cfg,
            holdout,
            schedule,
            out_dir,
            head,
            opt,
            progress: Progress {
                epochs_done: 0,
                adam_steps: 0,
                steps: 0,
                best_val_acc: None,
                best_epoch: None,
                kept_val_acc: None,
                epochs_since_best: 0,
                stopped_early: false,
                cache_fingerprint: fingerprint.clone(),
                config: cfg.clone(),
                kept: None,
                channels,
            },
            best: None,
            trace: None,
        };
        if cfg.trace_rv > 0 {
            run.trace = Some(trace::RvTrace::new(
                cache,
                &cfg.split,
                &run.holdout.train,
                cfg.trace_rv,
                cfg.seed,
            )?);
        }
        if let Some(saved) = saved {
            let (p, b) = load_checkpoint(&ckpt, saved, &run.head, &mut run.opt)?;
            if p.cache_fingerprint != fingerprint {
                return Err(Error::cache(
                    &ckpt,
                    "stale checkpoint: it was trained on another feature cache",
                ));
            }
            if p.config != *cfg {
                return Err(Error::cache(&ckpt, "stale checkpoint: it was made with another training configuration (see config.json there)"));
            }
            run.progress = p;
            run.best = b;
        } else {
            if cfg.init == Init::Original {
                if let Some(why) =
                    init::from_original(&run.head, cache, &cfg.split, &run.holdout.train)?
                {
                    tracing::warn!(
                        "the head starts at random, not from the model's classifier: {why}"
                    );
                }
            }
            if cfg.rotation_init == RotationInit::Principal {
                let rows =
                    init::principal_rotation(&run.images, &run.holdout.train, run.head.channels())?;
                run.head.start_rotation_at(rows)?;
            }
        }
        Ok(run)
    }

    /// One pass over the training images, a step per batch.
    fn train_epoch(
        &mut self,
        epoch: usize,
        tau: Option<f64>,
        keep_mask: Option<&Tensor>,
    ) -> Result<EpochStats> {
        let (cfg, schedule) = (self.cfg, &self.schedule);
        let lr_rotation = cfg.lr_rotation.unwrap_or(cfg.lr);
        let bar = crate::progress::bar(
            schedule.steps_per_epoch,
            &format!("epoch {}/{}", epoch + 1, schedule.epochs),
            "steps",
        );
        let mut rng = training_run::rng(cfg.seed, STREAM_SHUFFLE, epoch as u64);
        let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
        let mut lr_now = cfg.lr;
        let (head, opt, progress) = (&self.head, &mut self.opt, &mut self.progress);
        self.images.for_each_batch(
            &self.holdout.train,
            cfg.batch_size,
            Some(&mut rng),
            |batch| {
                let step = progress.steps;
                let factor = warmup_cosine(step, schedule.total_steps, schedule.warmup_steps);
                lr_now = cfg.lr * factor;
                let mode = TrainMode {
                    tau: tau.unwrap_or(1.0),
                    noise_seed: mix(cfg.seed ^ STREAM_NOISE, step),
                };
                let (pooled, logits) = head.forward(&batch, Some(mode))?;
                let mut loss = head.loss(&logits, &batch.labels, batch.soft.as_deref())?;
                if cfg.decorrelation > 0.0 {
                    loss = (loss + (decorrelation::penalty(&pooled)? * cfg.decorrelation)?)?;
                }
                let loss_value = f64::from(loss.to_scalar::<f32>()?);
                if !loss_value.is_finite() {
                    return Err(Error::Numeric(format!(
                        "loss became {loss_value} at step {step}: lower the learning rate"
                    )));
                }
                let grads = loss.backward()?;
                opt.step(&grads, |name| Hyper {
                    lr: if name == "a" || name == "frame" {
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
                head.clamp_weights(keep_mask)?;
                let rebase = cfg.head.rebase_every;
                if rebase > 0 && (progress.steps + 1) % rebase as u64 == 0 {
                    head.rebase()?;
                }
                correct += logits
                    .to_vec2::<f32>()?
                    .iter()
                    .zip(&batch.labels)
                    .filter(|(l, &y)| argmax(l) == y as usize)
                    .count();
                loss_sum += loss_value * batch.n as f64;
                seen += batch.n;
                progress.steps += 1;
                bar.inc(1);
                bar.check()?;
                bar.set_message(format!(
                    "loss {:.4} acc {:.3}",
                    loss_sum / seen as f64,
                    correct as f64 / seen as f64
                ));
                Ok(())
            },
        )?;
        bar.finish_and_clear();
        Ok(EpochStats {
            loss: loss_sum / seen.max(1) as f64,
            acc: correct as f64 / seen.max(1) as f64,
            lr: lr_now,
        })
    }

    /// Early stopping: keeps the parameters of the last epoch within one standard error of the
    /// highest validation accuracy, and counts the epochs since. On a small hold-out (30
    /// images: one image is 3 points) epochs that close cannot be told apart, and the later one
    /// is further fine-tuned; picking the strict maximum kept heads of a few fine-tuning steps
    /// that scored 3 points lower on the test split (user guide, training chapter). Only epochs
    /// after pruning count, so the head kept is always a pruned one.
    fn keep_if_best(&mut self, epoch: usize, acc: f64) -> Result<()> {
        if self.schedule.prune_epoch.is_some_and(|p| epoch < p) {
            return Ok(());
        }
        let progress = &mut self.progress;
        let best = progress.best_val_acc.map_or(acc, |b| b.max(acc));
        progress.best_val_acc = Some(best);
        if acc >= best - standard_error(best, self.holdout.val.len()) {
            progress.best_epoch = Some(progress.epochs_done);
            progress.kept_val_acc = Some(acc);
            progress.epochs_since_best = 0;
            self.best = Some(Snapshot::of(&self.head)?);
        } else {
            progress.epochs_since_best += 1;
            if self
                .schedule
                .patience
                .is_some_and(|p| progress.epochs_since_best >= p)
            {
                progress.stopped_early = true;
            }
        }
        Ok(())
    }

    /// Writes the head (the best epoch's when validating) and the summary once the run is
    /// over; a run stopped before that only reports how far it got.
    fn finish(self, last: Option<&EpochMetrics>) -> Result<TrainSummary> {
        let finished = self.finished();
        let head_file = runs::head_file(self.out_dir, self.cfg.head.kind);
        if finished {
            if let Some(b) = &self.best {
                b.restore(&self.head)?;
            }
            match self.head.export()? {
                TrainedHead::InfoDisent(p) => p.save(&head_file)?,
                TrainedHead::Linear(l) => l.save(&head_file)?,
            }
        }
        let summary = TrainSummary {
            epochs: self.progress.epochs_done,
            steps: self.progress.steps,
            train_loss: last.map_or(f64::NAN, |m| m.train_loss),
            train_acc: last.map_or(0.0, |m| m.train_acc),
            best_val_acc: self.progress.best_val_acc,
            best_epoch: self.progress.best_epoch,
            kept_val_acc: self.progress.kept_val_acc,
            stopped_early: self.progress.stopped_early,
            schedule: self.schedule,
            head_file,
        };
        if finished {
            write_json_atomic(self.out_dir.join(runs::SUMMARY_FILE), &summary)?;
        }
        Ok(summary)
    }
}

impl Trainer for Run<'_> {
    type Line = EpochMetrics;

    fn epochs_done(&self) -> usize {
        self.progress.epochs_done
    }

    fn finished(&self) -> bool {
        self.progress.epochs_done >= self.schedule.epochs || self.progress.stopped_early
    }

    fn epoch(&mut self) -> Result<EpochMetrics> {
        let epoch = self.progress.epochs_done;
        let started = std::time::Instant::now();
        if let (Some(k), Some(p)) = (self.cfg.keep_top, self.schedule.prune_epoch) {
            if self.progress.kept.is_none() && epoch >= p {
                self.progress.kept = Some(self.head.top_weights(k)?);
            }
        }
        let keep_mask = match &self.progress.kept {
            Some(kept) => Some(self.head.weight_mask(kept)?),
            None => None,
        };
        if keep_mask.is_some() {
            self.head.clamp_weights(keep_mask.as_ref())?;
        }
        let tau = self.cfg.head.gumbel.then(|| {
            self.cfg
                .head
                .tau(epoch as f64 / (self.schedule.epochs.max(2) - 1) as f64)
        });
        let stats = self.train_epoch(epoch, tau, keep_mask.as_ref())?;
        let val_acc = if self.holdout.val.is_empty() {
            None
        } else {
            Some(accuracy(
                &self.images,
                &self.holdout.val,
                self.cfg.batch_size,
                &self.head,
            )?)
        };
        self.progress.epochs_done += 1;
        if let Some(acc) = val_acc {
            self.keep_if_best(epoch, acc)?;
        }
        let seconds = started.elapsed().as_secs_f64();
        let rv = match &self.trace {
            Some(t) => Some(t.measure(&self.head)?),
            None => None,
        };
        let line = EpochMetrics {
            epoch: self.progress.epochs_done,
            lr: stats.lr,
            train_loss: stats.loss,
            train_acc: stats.acc,
            val_acc,
            tau,
            seconds,
            rv,
        };
        tracing::info!(
            epoch = self.progress.epochs_done,
            train_loss = stats.loss,
            ?val_acc,
            "epoch done"
        );
        Ok(line)
    }

    fn save(&self, path: &Path) -> Result<()> {
        save_checkpoint(
            path,
            &self.head,
            &self.opt,
            self.best.as_ref(),
            &self.progress,
        )
    }
}

impl training_run::EpochLine for EpochMetrics {
    fn epoch(&self) -> usize {
        self.epoch
    }
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
