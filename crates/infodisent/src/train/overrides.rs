//! Overrides of a training configuration, defined once for the CLI's flags (clap, behind the
//! `clap` feature), the Python keywords and the pipeline.

use super::{Init, Target, TrainConfig};
use crate::error::Result;
use crate::head::{HeadKind, Loss, Parametrization};
use std::path::PathBuf;

/// Changes to a training configuration, as the CLI's `train` flags, the Python `train` keywords
/// and the pipeline give them: each given one overrides the TOML config, which overrides the
/// defaults.
#[cfg_attr(feature = "clap", derive(clap::Args))]
#[derive(Debug, Clone, Default)]
pub struct TrainOverrides {
    /// TOML training configuration (keys as in config.json; head options under `[head]`).
    #[cfg_attr(feature = "clap", arg(long))]
    pub config: Option<PathBuf>,
    /// Cache split to train on.
    #[cfg_attr(feature = "clap", arg(long))]
    pub split: Option<String>,
    /// What the head learns: the dataset's labels, or the original classifier's softmax over
    /// its own classes (fidelity; needs a model with a classifier, works on unlabelled folders;
    /// eval then reports agreement with the original model).
    #[cfg_attr(feature = "clap", arg(long, value_enum))]
    pub target: Option<Target>,
    /// Epochs. Default: chosen by steps: 10 epochs, but at least --min-steps and at most
    /// --max-steps optimizer steps (printed with the reason before training starts).
    #[cfg_attr(feature = "clap", arg(long))]
    pub epochs: Option<usize>,
    /// Fewest optimizer steps when the epochs are chosen [default: 300; 1000 for a linear
    /// probe with --target original].
    #[cfg_attr(
        feature = "clap",
        arg(long, value_name = "STEPS", conflicts_with = "epochs")
    )]
    pub min_steps: Option<u64>,
    /// Most optimizer steps when the epochs are chosen (never below the 2 epochs pruning
    /// needs) [default: 3000].
    #[cfg_attr(
        feature = "clap",
        arg(long, value_name = "STEPS", conflicts_with = "epochs")
    )]
    pub max_steps: Option<u64>,
    /// Images per step [default: 64].
    #[cfg_attr(feature = "clap", arg(long))]
    pub batch: Option<usize>,
    /// Peak learning rate (W, b; and A unless --lr-rotation) [default: 0.003; 0.0001 with
    /// --target original, where the head starts from the model's classifier].
    #[cfg_attr(feature = "clap", arg(long))]
    pub lr: Option<f64>,
    /// Peak learning rate of the rotation parameter A.
    #[cfg_attr(feature = "clap", arg(long))]
    pub lr_rotation: Option<f64>,
    /// AdamW decoupled weight decay (A and W).
    #[cfg_attr(feature = "clap", arg(long))]
    pub weight_decay: Option<f64>,
    /// Warm-up epochs before the cosine decay.
    #[cfg_attr(feature = "clap", arg(long))]
    pub warmup: Option<f64>,
    /// Random seed.
    #[cfg_attr(feature = "clap", arg(long))]
    pub seed: Option<u64>,
    /// Share of each class of the split held out for validation: the epoch (after pruning)
    /// with the best validation accuracy is the head kept; 0 trains on everything and keeps the
    /// last epoch [default: 0.1].
    #[cfg_attr(feature = "clap", arg(long))]
    pub val_fraction: Option<f64>,
    /// Early stopping: epochs after pruning without a better validation accuracy; 0 never
    /// stops early [default: a quarter of the epochs after pruning, at least 2].
    #[cfg_attr(feature = "clap", arg(long))]
    pub patience: Option<usize>,
    /// Train on only the first N images of each class of the split (learning curves).
    #[cfg_attr(feature = "clap", arg(long, value_name = "N"))]
    pub limit_per_class: Option<usize>,
    /// How the rotation U is trained [default: frame; expm with --target original]. `frame`
    /// trains only the rows of U the classes can use (--frame-per-class candidates per class)
    /// as an orthonormal frame, many times faster than the full D×D rotation; `expm` is the paper's
    /// U = expm(A − Aᵀ), `cayley` the Cayley map. With --rebase-every (expm or cayley) it is
    /// the retraction that folds each step into the base: Cayley's is one LU solve (with
    /// OpenBLAS), the exponential's 5–6 products.
    #[cfg_attr(feature = "clap", arg(long, value_enum))]
    pub rotation: Option<Parametrization>,
    /// With --rotation frame: the raw channels per class (those whose pooled value best
    /// separates the class) that start the frame; the frame holds their union [default: 20].
    #[cfg_attr(feature = "clap", arg(long, value_name = "N"))]
    pub frame_per_class: Option<usize>,
    /// Loss: InfoDisent's default is sigmoid (one-vs-rest), which with --keep-top gave the
    /// purest prototypes; a linear probe's is cross-entropy, as is the paper's.
    #[cfg_attr(feature = "clap", arg(long, value_enum))]
    pub loss: Option<Loss>,
    /// Dynamic trivialization: every K steps fold the rotation into a base and reset A to 0,
    /// so the rotation is only ever evaluated near A = 0 (1: every step, the cheapest, fastest
    /// with --rotation cayley; 0: the paper's static U = expm(A − Aᵀ)). Weight decay on A then
    /// pulls towards the base.
    #[cfg_attr(feature = "clap", arg(long, value_name = "K"))]
    pub rebase_every: Option<usize>,
    /// Train with the Gumbel-softmax relaxation of the max.
    #[cfg_attr(feature = "clap", arg(long))]
    pub gumbel: bool,
    /// Linear probe only: keep its weights ≥ 0, like InfoDisent's.
    #[cfg_attr(feature = "clap", arg(long))]
    pub nonnegative: bool,
    /// Linear probe only: pool each channel by its mean (as ImageNet heads do) or its maximum
    /// (as InfoDisent does, without the rotation).
    #[cfg_attr(feature = "clap", arg(long, value_enum))]
    pub pooling: Option<crate::classifier::Pooling>,
    /// Initial scale of W.
    #[cfg_attr(feature = "clap", arg(long))]
    pub w_init: Option<f64>,
    /// Compact explanations: keep only the K largest weights of each class after half the
    /// epochs, then fine-tune (every prediction is then explained by at most K channels).
    /// InfoDisent's default is 5 (with the sigmoid loss, the ablation's best recipe), dense with
    /// --target original; 0 trains a dense head (`--keep-top 0 --loss cross-entropy --rotation
    /// expm` is the paper's).
    #[cfg_attr(feature = "clap", arg(long, value_name = "K"))]
    pub keep_top: Option<usize>,
    /// Where W and b start: at random, or from the model's own classifier (the default with
    /// --target original: a few hundred images cannot teach a head a thousand classes).
    #[cfg_attr(feature = "clap", arg(long, value_enum))]
    pub init: Option<Init>,
    /// Where the rotation starts: at the identity (the backbone's own channels), or at the
    /// principal axes of the training cells, so the rotated channels start uncorrelated
    /// [default: identity].
    #[cfg_attr(feature = "clap", arg(long, value_enum))]
    pub rotation_init: Option<super::RotationInit>,
    /// Weight of a penalty on the mean squared correlation between the pooled values of the
    /// head's channels over each batch (what the pooled RV measures); 0 trains without it
    /// [default: 0].
    #[cfg_attr(feature = "clap", arg(long, value_name = "WEIGHT"))]
    pub decorrelation: Option<f64>,
    /// Measure the RV of the head's channels on N training images after every epoch, into
    /// metrics.jsonl (to follow disentanglement along training) [default: 0, not measured].
    #[cfg_attr(feature = "clap", arg(long, value_name = "N"))]
    pub trace_rv: Option<usize>,
    /// Epochs trained before pruning to --keep-top (default: half of --epochs).
    #[cfg_attr(
        feature = "clap",
        arg(long, value_name = "EPOCHS", requires = "keep_top")
    )]
    pub prune_after: Option<usize>,
}

impl TrainOverrides {
    /// The configuration these overrides describe for a head of `kind` (the config file's or
    /// InfoDisent if `None`), validated by the caller once complete.
    pub fn config(&self, kind: Option<HeadKind>) -> Result<TrainConfig> {
        let mut cfg = match &self.config {
            Some(p) => TrainConfig::from_toml_file(p)?,
            None => TrainConfig::default(),
        };
        if let Some(k) = kind {
            cfg = cfg.with_kind(k);
        }
        if let Some(t) = self.target {
            cfg = cfg.with_target(t);
        }
        if let Some(r) = self.rotation {
            cfg.head.rotation = r;
        }
        if let Some(l) = self.loss {
            cfg.head.loss = l;
        }
        if let Some(k) = self.rebase_every {
            cfg.head.rebase_every = k;
        }
        if let Some(n) = self.frame_per_class {
            cfg.head.frame_per_class = n;
        }
        cfg.head.gumbel |= self.gumbel;
        cfg.head.nonnegative |= self.nonnegative;
        if let Some(p) = self.pooling {
            cfg.head.pooling = p;
        }
        if let Some(i) = self.init {
            cfg.init = i;
        }
        if let Some(x) = self.w_init {
            cfg.head.w_init = x;
        }
        if let Some(s) = &self.split {
            cfg.split = s.clone();
        }
        macro_rules! set {
            ($($flag:ident => $field:ident),*) => { $(if let Some(x) = self.$flag { cfg.$field = x; })* };
        }
        // Fields that are optional in the config too: a flag given replaces them.
        macro_rules! set_some {
            ($($field:ident),*) => { $(if self.$field.is_some() { cfg.$field = self.$field; })* };
        }
        if let Some(r) = self.rotation_init {
            cfg.rotation_init = r;
        }
        set!(decorrelation => decorrelation, trace_rv => trace_rv, min_steps => min_steps, max_steps => max_steps, batch => batch_size, lr => lr, weight_decay => weight_decay, warmup => warmup_epochs, seed => seed, val_fraction => val_fraction);
        set_some!(lr_rotation, epochs, patience, limit_per_class, prune_after);
        if let Some(k) = self.keep_top {
            cfg.keep_top = (k > 0).then_some(k);
        }
        Ok(cfg)
    }
}
