//! The settings of an MI run and the record of what it was trained with (`config.json`).

use super::bounds::Bound;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

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
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
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
    /// training bound: within one image the map is then `T(z_i, x_p)` shifted
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
    /// Use at most this many training items per epoch (a fresh random sample of the split).
    pub max_train_items: Option<usize>,
    /// Held-out items evaluated after each epoch (the first ones of the split).
    pub eval_items: usize,
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
            reference_items: 128,
            map_negatives: MapNegatives::Representations,
        }
    }
}

impl MiConfig {
    /// Checks that the settings can train.
    pub fn validate(&self) -> Result<()> {
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
        if self.reference_items < 1 || self.eval_items < 2 {
            return Err(Error::Config(
                "mi needs reference-items ≥ 1 and eval-items ≥ 2".into(),
            ));
        }
        Ok(())
    }

    /// Whether two configurations describe the same run apart from its length.
    pub fn same_run(&self, other: &MiConfig) -> bool {
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

impl ClassifierChoice {
    /// `original`, or the path of a linear probe (as `mi train --classifier` takes it).
    pub fn from_arg(arg: &str) -> Self {
        if arg == "original" {
            ClassifierChoice::Original
        } else {
            ClassifierChoice::Probe(PathBuf::from(arg))
        }
    }
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

/// Sizes of the trainable modules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetDims {
    /// Channels D of the feature map.
    pub dim: usize,
    /// Hidden channels of the mask's first convolution.
    pub mask_hidden: usize,
    /// Width the critic projects `z` and `x` to.
    pub proj: usize,
    /// Hidden width of the critic's MLP.
    pub critic_hidden: usize,
}
