//! What defines a training run: [`TrainConfig`], its defaults and the checks that refuse a
//! configuration that cannot train.

use crate::error::{Error, Result};
use crate::head::{HeadConfig, HeadKind, Loss, Parametrization};
use serde::{Deserialize, Serialize};
use std::path::Path;

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

/// Where W and b of an InfoDisent head start (A starts at 0, U = I, either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Init {
    /// W uniform in [0, w_init], b = 0.
    #[default]
    Random,
    /// The original classifier, rescaled for max pooling and shifted to W ≥ 0 without changing
    /// its decisions; the default with `--target original`. Falls back to
    /// random, saying why, when the model's classifier is not linear on average-pooled features.
    Original,
}

/// Where the rotation U starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum RotationInit {
    /// U = I: the rotated channels start as the backbone's own (a frame at its chosen
    /// channels).
    #[default]
    Identity,
    /// The principal axes of the training images' cells: the rotated channels start
    /// uncorrelated over the cells (a frame: the principal axes within its chosen channels,
    /// so it spans the same channels).
    Principal,
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
    /// Passes over the training data; `None` lets the [schedule](super::schedule) choose them
    /// from `min_steps` and `max_steps`.
    pub epochs: Option<usize>,
    /// With the epochs chosen: the fewest optimizer steps a run takes, however small the
    /// folder.
    pub min_steps: u64,
    /// With the epochs chosen: the most steps a run takes, however large the folder (but never
    /// fewer than the epochs pruning needs).
    pub max_steps: u64,
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
    /// Share of each class of the split held out for validation and early stopping (0
    /// disables both).
    pub val_fraction: f64,
    /// Stop after this many epochs without a better validation accuracy, counted after pruning;
    /// `None` lets the schedule choose, `Some(0)` never stops early.
    pub patience: Option<usize>,
    /// Train on at most the first N images of each class of the split (learning curves).
    pub limit_per_class: Option<usize>,
    /// Compact explanations: after `prune_after` epochs keep only the
    /// `keep_top` largest weights of each class row, and fine-tune the rest of the run with
    /// every other weight held at zero. InfoDisent heads only; `None` trains a dense head
    /// ([`TrainConfig::paper`] is the paper's). The default, [`DEFAULT_KEEP_TOP`], was chosen
    /// by the ablation (user guide, `docs/book/src/training.md`).
    pub keep_top: Option<usize>,
    /// Epochs trained before pruning (default: half the epochs).
    pub prune_after: Option<usize>,
    /// Where W and b start.
    pub init: Init,
    /// Where the rotation U starts.
    pub rotation_init: RotationInit,
    /// Weight of the decorrelation penalty: the mean squared correlation, over each batch,
    /// between the pooled values of the head's channels (their RV in the pooled reading),
    /// added to the loss; 0 trains without it. InfoDisent heads only.
    pub decorrelation: f64,
    /// Images of the training split on which the RV of the head's channels is measured after
    /// every epoch, into `metrics.jsonl` (0: not measured).
    pub trace_rv: usize,
}

/// Weights kept per class by default. With the sigmoid loss (also the default) this was the
/// ablation's best recipe on the demo cache and the parts benchmark: within a point of the
/// probe's accuracy or above it, explanations of at most five channels, and on the parts
/// benchmark 85 % prototype purity (user guide, `docs/book/src/training.md`).
pub const DEFAULT_KEEP_TOP: usize = 5;

/// Epochs a run takes when that gives between `min_steps` and `max_steps` steps.
pub const DEFAULT_EPOCHS: usize = 10;

/// The fewest steps a run with chosen epochs takes (`min_steps`): chosen by the sweep in the
/// user guide (`docs/book/src/training.md#how-long-a-run-trains`).
pub const DEFAULT_MIN_STEPS: u64 = 300;

/// The most steps a run with chosen epochs takes (`max_steps`).
pub const DEFAULT_MAX_STEPS: u64 = 3000;

/// The fewest steps when a linear probe fits the original classifier from a random start: its
/// many classes need more.
pub const ORIGINAL_MIN_STEPS: u64 = 1000;

/// The learning rate of an InfoDisent head started from the original classifier: the default
/// rate moves it away from that start within an epoch (user guide, `docs/book/src/own-model.md`).
pub const ORIGINAL_LR: f64 = 1e-4;

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            // Pruning with the one-vs-rest loss: the ablation's best row on both datasets; the
            // rotation trained as a frame of the channels the classes can use, which trains the
            // same head many times faster (user guide, performance chapter).
            head: HeadConfig {
                loss: Loss::Sigmoid,
                rotation: Parametrization::Frame,
                ..HeadConfig::default()
            },
            target: Target::Labels,
            split: "train".into(),
            epochs: None,
            min_steps: DEFAULT_MIN_STEPS,
            max_steps: DEFAULT_MAX_STEPS,
            batch_size: 64,
            lr: 3e-3,
            lr_rotation: None,
            weight_decay: 0.0,
            warmup_epochs: 0.0,
            seed: 0,
            val_fraction: 0.1,
            patience: None,
            limit_per_class: None,
            keep_top: Some(DEFAULT_KEEP_TOP),
            prune_after: None,
            init: Init::Random,
            rotation_init: RotationInit::Identity,
            decorrelation: 0.0,
            trace_rv: 0,
        }
    }
}

/// Writes every key of `top` over `base`, descending into tables both have.
fn overlay(base: &mut serde_json::Value, top: serde_json::Value) {
    match (base, top) {
        (serde_json::Value::Object(b), serde_json::Value::Object(t)) => {
            for (key, value) in t {
                match b.get_mut(&key) {
                    Some(slot) => overlay(slot, value),
                    None => {
                        b.insert(key, value);
                    }
                }
            }
        }
        (slot, value) => *slot = value,
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
    /// Reads a TOML config: the recipe of the kind and target it names (the defaults of
    /// [`TrainConfig::with_kind`] and [`TrainConfig::with_target`]), with every key the file
    /// names on top; `keep_top = 0` means a dense head.
    pub fn from_toml_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let bad = |e: &dyn std::fmt::Display| Error::Config(format!("{}: {e}", path.display()));
        let table: toml::Table = toml::from_str(&text).map_err(|e| bad(&e))?;
        let named: TrainConfig = table.clone().try_into().map_err(|e| bad(&e))?;
        let base = TrainConfig::default()
            .with_kind(named.head.kind)
            .with_target(named.target);
        // Merged as JSON, where an unset option is an explicit null rather than a missing key
        // that would fall back to the InfoDisent default.
        let mut merged = serde_json::to_value(&base).map_err(|e| bad(&e))?;
        overlay(
            &mut merged,
            serde_json::to_value(&table).map_err(|e| bad(&e))?,
        );
        let mut cfg: TrainConfig = serde_json::from_value(merged).map_err(|e| bad(&e))?;
        if cfg.keep_top == Some(0) {
            cfg.keep_top = None;
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// The same recipe for another kind of head. A linear probe is the standard baseline: it
    /// has no nonnegative weights to prune and trains with cross-entropy, so switching to it
    /// makes the recipe [`TrainConfig::paper`]'s, and drops the settings of InfoDisent's
    /// rotation and pooling (Gumbel, rebasing, its start, decorrelation), which a probe does
    /// not have. Everything else
    /// (schedule, hold-out, early stopping) stays, so the two compare fairly.
    pub fn with_kind(mut self, kind: HeadKind) -> Self {
        self.head.kind = kind;
        if kind == HeadKind::LinearProbe {
            self = self.paper();
            self.head.gumbel = false;
            self.head.rebase_every = 0;
            self.init = Init::Random;
            self.rotation_init = RotationInit::Identity;
            self.decorrelation = 0.0;
        }
        self
    }

    /// The same recipe for another target (set the kind first). Fitting the original
    /// classifier's softmax takes the cross-entropy loss (the soft targets are a distribution
    /// over its classes, which the one-vs-rest loss fits poorly). A few hundred images cannot
    /// teach a head a thousand classes, so an InfoDisent head starts from that classifier
    /// ([`Init::Original`]), dense (pruning to a few channels a class discards what it starts
    /// from) and at [`ORIGINAL_LR`]; a linear probe, the baseline, starts at random and trains
    /// at least [`ORIGINAL_MIN_STEPS`] steps (user guide, `docs/book/src/own-model.md`).
    pub fn with_target(mut self, target: Target) -> Self {
        self.target = target;
        if target == Target::Original {
            if self.head.kind == HeadKind::InfoDisent {
                self = self.paper();
                self.init = Init::Original;
                self.lr = ORIGINAL_LR;
            } else {
                self.head.loss = Loss::CrossEntropy;
                self.min_steps = self.min_steps.max(ORIGINAL_MIN_STEPS);
            }
        }
        self
    }

    /// The paper's recipe: this one without pruning, with softmax cross-entropy and the full
    /// rotation U = expm(A − Aᵀ) (a frame stays a frame only if asked for after this).
    pub fn paper(mut self) -> Self {
        self.keep_top = None;
        self.prune_after = None;
        self.head.loss = Loss::CrossEntropy;
        if self.head.rotation == Parametrization::Frame {
            self.head.rotation = Parametrization::Expm;
        }
        self
    }

    /// Rejects values that cannot train, naming the key and the accepted range. What depends
    /// on the number of epochs is checked once the [schedule](super::schedule) has chosen it.
    pub fn validate(&self) -> Result<()> {
        self.head.validate()?;
        if self.epochs == Some(0) {
            return Err(Error::Config("epochs must be at least 1".into()));
        }
        if self.min_steps > self.max_steps {
            return Err(Error::Config(format!(
                "min_steps ({}) must not exceed max_steps ({})",
                self.min_steps, self.max_steps
            )));
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
        if !(self.warmup_epochs.is_finite() && self.warmup_epochs >= 0.0) {
            return Err(Error::Config(format!(
                "warmup_epochs must be a finite number ≥ 0, got {}",
                self.warmup_epochs
            )));
        }
        if !(0.0..1.0).contains(&self.val_fraction) {
            return Err(Error::Config(format!(
                "val_fraction must be in [0, 1), got {}",
                self.val_fraction
            )));
        }
        if self.patience.is_some_and(|p| p > 0) && self.val_fraction == 0.0 {
            return Err(Error::Config(
                "patience (early stopping) needs a validation split: set val_fraction > 0".into(),
            ));
        }
        if self.limit_per_class == Some(0) {
            return Err(Error::Config("limit_per_class must be at least 1".into()));
        }
        if self.init == Init::Original {
            if self.head.kind != HeadKind::InfoDisent {
                return Err(Error::Config(
                    "init = original starts an InfoDisent head from the model's classifier; a linear probe is the baseline and starts at random".into(),
                ));
            }
            if self.target != Target::Original {
                return Err(Error::Config(
                    "init = original starts from the model's classifier, which only --target original fits".into(),
                ));
            }
        }
        if !(self.decorrelation.is_finite() && self.decorrelation >= 0.0) {
            return Err(Error::Config(format!(
                "decorrelation must be a finite number ≥ 0, got {}",
                self.decorrelation
            )));
        }
        if self.head.kind != HeadKind::InfoDisent
            && (self.decorrelation > 0.0 || self.rotation_init != RotationInit::Identity)
        {
            return Err(Error::Config(
                "decorrelation and rotation_init act on InfoDisent's rotated channels; a linear probe reads the raw ones".into(),
            ));
        }
        if self.rotation_init == RotationInit::Principal && self.init == Init::Original {
            return Err(Error::Config(
                "rotation_init = principal rotates the channels the model's classifier reads, so it cannot start from that classifier (init = original)".into(),
            ));
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
        } else if self.prune_after.is_some() {
            return Err(Error::Config("prune_after needs keep_top".into()));
        }
        match self.epochs {
            Some(epochs) => self.check_epochs(epochs),
            None => Ok(()),
        }
    }

    /// Rejects a pruning or warm-up that `epochs` leave no room for: checked by
    /// [`TrainConfig::validate`] when the epochs are given, else once the schedule chose them.
    pub fn check_epochs(&self, epochs: usize) -> Result<()> {
        if let Some(k) = self.keep_top {
            if epochs < self.fewest_epochs() {
                return Err(Error::Config(format!(
                    "keep_top = {k} prunes after half the epochs, and 1 epoch leaves none to train before it: train at least 2 epochs, set prune_after = 0 to prune the initial weights, or keep_top = 0 (--keep-top 0) for the dense head"
                )));
            }
            let p = self.pruning_epoch(epochs);
            if p >= epochs {
                return Err(Error::Config(format!(
                    "prune_after must leave epochs to fine-tune: it is {p} of {epochs} epochs"
                )));
            }
        }
        if self.warmup_epochs >= epochs as f64 {
            return Err(Error::Config(format!(
                "warmup_epochs must be below the {epochs} epochs of the run, got {}",
                self.warmup_epochs
            )));
        }
        Ok(())
    }

    /// The fewest epochs a run can have: pruning at half the epochs needs one on either side.
    pub fn fewest_epochs(&self) -> usize {
        if self.keep_top.is_some() && self.prune_after.is_none() {
            2
        } else {
            1
        }
    }

    /// The epoch (0-based) at whose start W is pruned in a run of `epochs`.
    pub fn pruning_epoch(&self, epochs: usize) -> usize {
        self.prune_after.unwrap_or(epochs / 2)
    }
}
