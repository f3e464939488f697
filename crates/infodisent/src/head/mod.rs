//! The trainable heads on cached feature maps: the InfoDisent head (orthogonal channel rotation,
//! sparse max/min pooling, nonnegative linear layer) and the linear-probe baseline.
//!
//! Parameters are candle [`Var`]s; the structured parts are custom candle ops with hand-written
//! backward passes ([`rotation`]: U = expm(A − Aᵀ) or Cayley; [`pool`]: the fused rotation and
//! sparse pooling). [`reference`](mod@reference) is the straightforward dense implementation the benchmark and the
//! gradient tests compare against.

pub mod blas;
pub mod cayley;
pub mod expm;
pub mod frame;
pub mod linalg;
pub mod params;
pub mod pool;
pub mod reference;
pub mod rotation;
pub mod trained;

use crate::classifier::{LinearClassifier, Pooling};
use crate::error::{Error, Result};
use crate::head::params::HeadParams;
use candle_core::{DType, Device, Tensor, Var, D};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

pub use rotation::Parametrization;
pub use trained::{Classifies, TrainedHead};

/// Which head is trained.
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HeadKind {
    /// Rotation + sparse pooling + W ≥ 0.
    #[default]
    #[cfg_attr(feature = "clap", value(name = "infodisent"))]
    InfoDisent,
    /// Global average (or max) pooling + unconstrained linear layer.
    LinearProbe,
}

/// The training objective.
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Loss {
    /// Softmax cross-entropy.
    #[default]
    CrossEntropy,
    /// One-vs-rest sigmoid (binary cross-entropy per class).
    Sigmoid,
}

/// Architecture and objective of a head (the `[head]` table of a training config). Written
/// out, it shows only what applies to its kind.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HeadConfig {
    /// InfoDisent or the linear probe.
    pub kind: HeadKind,
    /// How U is generated from A.
    pub rotation: Parametrization,
    /// Training objective.
    pub loss: Loss,
    /// Train with a Gumbel-softmax relaxation of the max (hard max at inference).
    pub gumbel: bool,
    /// Gumbel temperature at the first epoch.
    pub tau_start: f64,
    /// Gumbel temperature at the last epoch (annealed geometrically).
    pub tau_end: f64,
    /// Initial weights W_raw are drawn uniformly from [0, w_init] (InfoDisent) or
    /// [−w_init, w_init] (linear probe).
    pub w_init: f64,
    /// Dynamic trivialization: every this many optimiser steps, fold the rotation into a base
    /// (`U₀ ← rotation(A) · U₀`, `A ← 0`), so the rotation map is only evaluated near A = 0.
    /// 0 keeps the paper's static `U = expm(A − Aᵀ)`.
    pub rebase_every: usize,
    /// Linear probe only: keep W ≥ 0 like InfoDisent's (ReLU in the forward pass, clamped after
    /// each step), the ablation that separates nonnegativity from the rotation and the pooling.
    pub nonnegative: bool,
    /// Linear probe only: how its feature maps are pooled (InfoDisent pools its rotated
    /// channels by max and min).
    pub pooling: Pooling,
    /// With `rotation = "frame"`: the raw channels per class that start the frame (those that
    /// best separate the class by their pooled value); the frame holds their union.
    pub frame_per_class: usize,
}

/// Candidate channels per class of a frame head by default: four times the weights the default
/// recipe keeps, so pruning still chooses among several per class (user guide, training chapter).
pub const DEFAULT_FRAME_PER_CLASS: usize = 20;

impl Default for HeadConfig {
    fn default() -> Self {
        HeadConfig {
            kind: HeadKind::InfoDisent,
            rotation: Parametrization::Expm,
            loss: Loss::CrossEntropy,
            gumbel: false,
            tau_start: 1.0,
            tau_end: 0.1,
            w_init: 0.01,
            rebase_every: 0,
            nonnegative: false,
            pooling: Pooling::Average,
            frame_per_class: DEFAULT_FRAME_PER_CLASS,
        }
    }
}

impl Serialize for HeadConfig {
    /// Leaves out what does not apply to the kind (a probe's pooling in an InfoDisent config,
    /// the rotation in a probe's, the Gumbel temperatures without Gumbel) unless it was set to
    /// something else than its default, so reading a config back gives the same settings.
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let d = HeadConfig::default();
        let infodisent = self.kind == HeadKind::InfoDisent;
        let mut out = s.serialize_struct("HeadConfig", 11)?;
        out.serialize_field("kind", &self.kind)?;
        macro_rules! field {
            ($($name:ident if $applies:expr),*) => {$(
                if $applies || self.$name != d.$name {
                    out.serialize_field(stringify!($name), &self.$name)?;
                } else {
                    out.skip_field(stringify!($name))?;
                }
            )*};
        }
        field!(
            rotation if infodisent,
            loss if true,
            gumbel if infodisent,
            tau_start if infodisent && self.gumbel,
            tau_end if infodisent && self.gumbel,
            w_init if true,
            rebase_every if infodisent,
            nonnegative if !infodisent,
            pooling if !infodisent,
            frame_per_class if infodisent && self.rotation == Parametrization::Frame
        );
        out.end()
    }
}

impl HeadConfig {
    /// Rejects values that cannot train.
    pub fn validate(&self) -> Result<()> {
        if !(self.w_init.is_finite() && self.w_init >= 0.0) {
            return Err(Error::Config(format!(
                "head.w_init must be a finite number ≥ 0, got {}",
                self.w_init
            )));
        }
        if self.gumbel
            && !(self.tau_end > 0.0 && self.tau_start >= self.tau_end && self.tau_start.is_finite())
        {
            return Err(Error::Config(format!(
                "head.tau_start and head.tau_end must satisfy tau_start ≥ tau_end > 0, got {} and {}",
                self.tau_start, self.tau_end
            )));
        }
        if self.gumbel && self.kind == HeadKind::LinearProbe {
            return Err(Error::Config(
                "head.gumbel applies to the InfoDisent head only".into(),
            ));
        }
        if self.pooling != Pooling::Average && self.kind == HeadKind::InfoDisent {
            return Err(Error::Config(
                "head.pooling applies to the linear probe (InfoDisent pools its rotated channels by max and min)"
                    .into(),
            ));
        }
        if self.frame_per_class == 0 {
            return Err(Error::Config(
                "head.frame_per_class must be at least 1".into(),
            ));
        }
        if self.rotation == Parametrization::Frame && self.rebase_every > 0 {
            return Err(Error::Config(
                "head.rebase_every (--rebase-every) folds a rotation of A into a base; the frame (rotation = \"frame\") has no A: choose rotation = \"expm\" or \"cayley\" with it".into(),
            ));
        }
        if self.nonnegative && self.kind == HeadKind::InfoDisent {
            return Err(Error::Config(
                "head.nonnegative applies to the linear probe (InfoDisent's W is always ≥ 0)"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Gumbel temperature at `progress` ∈ [0, 1] of training.
    pub fn tau(&self, progress: f64) -> f64 {
        self.tau_start * (self.tau_end / self.tau_start).powf(progress.clamp(0.0, 1.0))
    }
}

/// A batch of feature maps laid out one row per pixel, `[n·cells, D]`, with labels.
#[derive(Debug, Clone)]
pub struct PixelBatch {
    /// Images.
    pub n: usize,
    /// Pixels per image (h·w).
    pub cells: usize,
    /// Channels D.
    pub dim: usize,
    /// `[n·cells, D]` row-major.
    pub pixels: Vec<f32>,
    /// Class of each image.
    pub labels: Vec<u32>,
    /// Target distribution of each image, `[n, C]`, when fitting another model's softmax
    /// (then `labels` are its top classes).
    pub soft: Option<Vec<f32>>,
}

impl PixelBatch {
    /// Builds a batch from `[n, D, cells]` maps (the cache layout).
    pub fn from_maps(maps: &[f32], labels: Vec<u32>, dim: usize, cells: usize) -> Self {
        let n = labels.len();
        let mut pixels = vec![0.0f32; n * cells * dim];
        for b in 0..n {
            let src = &maps[b * dim * cells..(b + 1) * dim * cells];
            let dst = &mut pixels[b * cells * dim..(b + 1) * cells * dim];
            for k in 0..dim {
                for r in 0..cells {
                    dst[r * dim + k] = src[k * cells + r];
                }
            }
        }
        PixelBatch {
            n,
            cells,
            dim,
            pixels,
            labels,
            soft: None,
        }
    }

    /// Global average or max pool, `[n, D]`.
    pub fn pooled(&self, pooling: Pooling) -> Vec<f32> {
        let start = match pooling {
            Pooling::Average => 0.0,
            Pooling::Max => f32::NEG_INFINITY,
        };
        let mut out = vec![start; self.n * self.dim];
        for b in 0..self.n {
            let o = &mut out[b * self.dim..(b + 1) * self.dim];
            for row in self.pixels[b * self.cells * self.dim..(b + 1) * self.cells * self.dim]
                .chunks_exact(self.dim)
            {
                match pooling {
                    Pooling::Average => o.iter_mut().zip(row).for_each(|(x, &p)| *x += p),
                    Pooling::Max => o.iter_mut().zip(row).for_each(|(x, &p)| *x = x.max(p)),
                }
            }
            if pooling == Pooling::Average {
                let inv = 1.0 / self.cells as f32;
                o.iter_mut().for_each(|x| *x *= inv);
            }
        }
        out
    }
}

/// Options of one forward pass during training.
#[derive(Debug, Clone, Copy)]
pub struct TrainMode {
    /// Gumbel temperature (ignored unless the head was configured with Gumbel pooling).
    pub tau: f64,
    /// Seed of this step's Gumbel noise.
    pub noise_seed: u64,
}

/// A trainable head: named parameters and the forward pass.
pub struct Head {
    /// Architecture and objective.
    pub config: HeadConfig,
    /// Channels D.
    pub dim: usize,
    /// Classes C.
    pub classes: usize,
    vars: Vec<(String, Var)>,
    /// `U₀` of the dynamic trivialization, once the first rebase has happened.
    base: std::sync::Mutex<Option<std::sync::Arc<Vec<f32>>>>,
    /// A frame head's rows: the channel of U each frame row is (empty for other heads).
    channels: Vec<u32>,
}

impl Head {
    /// A freshly initialised head: U = I, W_raw uniform, b = 0; a frame head's frame holds every
    /// channel ([`Head::with_channels`] chooses fewer).
    pub fn new(config: HeadConfig, dim: usize, classes: usize, seed: u64) -> Result<Self> {
        Self::with_channels(config, dim, classes, seed, (0..dim as u32).collect())
    }

    /// [`Head::new`] whose frame (with `rotation = "frame"`) starts at the rows of I of
    /// `channels` (sorted, distinct); other heads ignore `channels`.
    pub fn with_channels(
        config: HeadConfig,
        dim: usize,
        classes: usize,
        seed: u64,
        channels: Vec<u32>,
    ) -> Result<Self> {
        config.validate()?;
        let frame =
            config.kind == HeadKind::InfoDisent && config.rotation == Parametrization::Frame;
        let channels = if frame { channels } else { Vec::new() };
        if frame
            && (channels.is_empty()
                || channels.windows(2).any(|w| w[0] >= w[1])
                || channels.iter().any(|&c| c as usize >= dim))
        {
            return Err(Error::Shape(format!(
                "a frame needs distinct sorted channels below {dim}, got {} of them",
                channels.len()
            )));
        }
        let width = if frame { channels.len() } else { dim };
        let dev = Device::Cpu;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let lo = if config.kind == HeadKind::InfoDisent || config.nonnegative {
            0.0
        } else {
            -config.w_init
        };
        let w: Vec<f32> = (0..classes * width)
            .map(|_| (lo + rng.random::<f64>() * (config.w_init - lo)) as f32)
            .collect();
        let weight = Var::from_tensor(&Tensor::from_vec(w, (classes, width), &dev)?)?;
        let bias = Var::zeros(classes, DType::F32, &dev)?;
        let vars = match config.kind {
            HeadKind::InfoDisent => {
                let rotation = if frame {
                    let mut rows = vec![0.0f32; width * dim];
                    for (i, &c) in channels.iter().enumerate() {
                        rows[i * dim + c as usize] = 1.0;
                    }
                    ("frame", Var::from_vec(rows, (width, dim), &dev)?)
                } else {
                    ("a", Var::zeros((dim, dim), DType::F32, &dev)?)
                };
                vec![
                    (rotation.0.to_owned(), rotation.1),
                    ("w_raw".to_owned(), weight),
                    ("bias".to_owned(), bias),
                ]
            }
            HeadKind::LinearProbe => vec![("weight".to_owned(), weight), ("bias".to_owned(), bias)],
        };
        Ok(Head {
            config,
            dim,
            classes,
            vars,
            base: std::sync::Mutex::new(None),
            channels,
        })
    }

    /// A frame head's rows as channels of U (empty for other heads).
    pub fn channels(&self) -> &[u32] {
        &self.channels
    }

    /// Replaces W (`[C, D]` row-major) and b of an InfoDisent head, as a start other than
    /// [`Head::new`]'s; a frame head takes the columns of its channels.
    pub fn set_linear(&self, weight: &[f32], bias: &[f32]) -> Result<()> {
        if self.config.kind != HeadKind::InfoDisent
            || weight.len() != self.classes * self.dim
            || bias.len() != self.classes
        {
            return Err(Error::Shape(format!(
                "a start for W and b must fit an InfoDisent head's [{}, {}] weights",
                self.classes, self.dim
            )));
        }
        let dev = Device::Cpu;
        let w = if self.channels.is_empty() {
            Tensor::from_slice(weight, (self.classes, self.dim), &dev)?
        } else {
            let picked: Vec<f32> = weight
                .chunks_exact(self.dim)
                .flat_map(|row| self.channels.iter().map(|&c| row[c as usize]))
                .collect();
            Tensor::from_vec(picked, (self.classes, self.channels.len()), &dev)?
        };
        self.var("w_raw").set(&w)?;
        self.var("bias")
            .set(&Tensor::from_slice(bias, self.classes, &dev)?)?;
        Ok(())
    }

    /// Starts the rotation elsewhere than at U = I: `rows` are orthonormal rows of U, a frame
    /// head's `[m, D]` or a full rotation's `[D, D]` (which becomes its base `U₀`).
    pub fn start_rotation_at(&self, rows: Vec<f32>) -> Result<()> {
        if self.config.kind != HeadKind::InfoDisent {
            return Err(Error::Config("a linear probe has no rotation".into()));
        }
        if self.channels.is_empty() {
            return self.set_rotation_base(Some(rows));
        }
        let m = self.channels.len();
        if rows.len() != m * self.dim {
            return Err(Error::Shape(format!(
                "a frame of {m} rows needs {m}×{} entries, got {}",
                self.dim,
                rows.len()
            )));
        }
        self.var("frame")
            .set(&Tensor::from_vec(rows, (m, self.dim), &Device::Cpu)?)?;
        Ok(())
    }

    /// The named parameters, in a fixed order.
    pub fn vars(&self) -> &[(String, Var)] {
        &self.vars
    }

    fn var(&self, name: &str) -> &Var {
        &self
            .vars
            .iter()
            .find(|(n, _)| n == name)
            .expect("parameter names are fixed by Head::new")
            .1
    }

    /// Logits [n, C]. `train` selects the Gumbel relaxation when configured; inference always uses
    /// the hard max.
    pub fn logits(&self, batch: &PixelBatch, train: Option<TrainMode>) -> Result<Tensor> {
        Ok(self.forward(batch, train)?.1)
    }

    /// The pooled values of the head's channels `[n, m]` (a frame's rows, all of U's, or the
    /// probe's pooled raw channels) and the logits `[n, C]`, as [`Head::logits`] computes them.
    pub fn forward(
        &self,
        batch: &PixelBatch,
        train: Option<TrainMode>,
    ) -> Result<(Tensor, Tensor)> {
        if batch.dim != self.dim {
            return Err(Error::Shape(format!(
                "batch has {} channels, head expects {}",
                batch.dim, self.dim
            )));
        }
        let dev = Device::Cpu;
        match self.config.kind {
            HeadKind::LinearProbe => {
                let x = Tensor::from_vec(
                    batch.pooled(self.config.pooling),
                    (batch.n, batch.dim),
                    &dev,
                )?;
                let w = self.var("weight").as_tensor();
                let w = if self.config.nonnegative {
                    w.relu()?
                } else {
                    w.clone()
                };
                let logits = x
                    .matmul(&w.t()?)?
                    .broadcast_add(self.var("bias").as_tensor())?;
                Ok((x, logits))
            }
            HeadKind::InfoDisent if !self.channels.is_empty() => {
                let rows = (batch.n * batch.cells, batch.dim);
                let pixels = Tensor::from_slice(&batch.pixels, rows, &dev)?;
                self.pool_and_weigh(self.var("frame").as_tensor(), &pixels, batch, train)
            }
            HeadKind::InfoDisent => {
                let a = self.var("a").as_tensor();
                let rows = (batch.n * batch.cells, batch.dim);
                let (u, pixels) = match self.rotation_base_arc() {
                    // Right after a rebase (A = 0, U = R(A)·U₀ with R(0) = I): rotate the pixels
                    // by U₀ here, outside the graph, so the pool op pools them as they are and
                    // gathers ∂L/∂R from them directly.
                    Some(base) if a.flatten_all()?.to_vec1::<f32>()?.iter().all(|&x| x == 0.0) => {
                        let mut rotated = vec![0.0f32; batch.pixels.len()];
                        linalg::gemm_into(
                            rows.0,
                            rows.1,
                            rows.1,
                            &batch.pixels,
                            false,
                            &base,
                            true,
                            &mut rotated,
                            false,
                            1.0,
                        );
                        let r = a.apply_op1(rotation::Rotation::new(self.config.rotation))?;
                        (r, Tensor::from_vec(rotated, rows, &dev)?)
                    }
                    base => (
                        a.apply_op1(rotation::Rotation::with_base(self.config.rotation, base))?,
                        Tensor::from_slice(&batch.pixels, rows, &dev)?,
                    ),
                };
                self.pool_and_weigh(&u, &pixels, batch, train)
            }
        }
    }

    /// Pooled values and logits from the rotation rows `u` ([m, D]) and the pixels: pooled,
    /// then W ≥ 0 and b.
    fn pool_and_weigh(
        &self,
        u: &Tensor,
        pixels: &Tensor,
        batch: &PixelBatch,
        train: Option<TrainMode>,
    ) -> Result<(Tensor, Tensor)> {
        let v = match train {
            Some(mode) if self.config.gumbel => gumbel_pool(u, pixels, batch, mode)?,
            _ => u.apply_op2(pixels, pool::RotatePool::new(batch.n, batch.cells))?,
        };
        let w = self.var("w_raw").as_tensor().relu()?;
        let logits = v
            .matmul(&w.t()?)?
            .broadcast_add(self.var("bias").as_tensor())?;
        Ok((v, logits))
    }

    /// The configured loss, averaged over the batch: against `labels`, or against the target
    /// distributions `soft` (`[n, C]`) when given.
    pub fn loss(&self, logits: &Tensor, labels: &[u32], soft: Option<&[f32]>) -> Result<Tensor> {
        let dev = logits.device();
        let target = Tensor::from_slice(labels, labels.len(), dev)?;
        let soft = soft
            .map(|p| Tensor::from_slice(p, (labels.len(), self.classes), dev))
            .transpose()?;
        match self.config.loss {
            Loss::CrossEntropy => match soft {
                None => Ok(candle_nn::loss::cross_entropy(logits, &target)?),
                Some(p) => {
                    let log_q = candle_nn::ops::log_softmax(logits, D::Minus1)?;
                    Ok((p * log_q)?.sum(D::Minus1)?.mean_all()?.neg()?)
                }
            },
            Loss::Sigmoid => {
                // Stable BCE with logits: relu(z) − z·y + log(1 + e^{−|z|}), summed over classes.
                let y = match soft {
                    None => candle_nn::encoding::one_hot(target, self.classes, 1f32, 0f32)?,
                    Some(p) => p,
                };
                let per = (logits.relu()? - (logits * &y)?)?
                    .add(&((logits.abs()?.neg()?.exp()? + 1.0)?.log()?))?;
                Ok(per.sum(D::Minus1)?.mean_all()?)
            }
        }
    }

    /// Per class row, the indices of the `k` largest weights (ties broken by index).
    pub fn top_weights(&self, k: usize) -> Result<Vec<Vec<u32>>> {
        let w = self.var("w_raw").as_tensor().relu()?.to_vec2::<f32>()?;
        Ok(w.iter()
            .map(|row| {
                let mut idx: Vec<u32> = (0..row.len() as u32).collect();
                idx.sort_by(|&a, &b| row[b as usize].total_cmp(&row[a as usize]).then(a.cmp(&b)));
                idx.truncate(k);
                idx.sort_unstable();
                idx
            })
            .collect())
    }

    /// A 0/1 tensor shaped like W with ones at the `kept` indices of each row.
    pub fn weight_mask(&self, kept: &[Vec<u32>]) -> Result<Tensor> {
        let (c, d) = self.var("w_raw").as_tensor().dims2()?;
        if kept.len() != c || kept.iter().flatten().any(|&i| i as usize >= d) {
            return Err(Error::Shape(format!(
                "kept-weight pattern does not fit a [{c}, {d}] weight matrix"
            )));
        }
        let mut mask = vec![0f32; c * d];
        for (row, idx) in kept.iter().enumerate() {
            for &i in idx {
                mask[row * d + i as usize] = 1.0;
            }
        }
        Ok(Tensor::from_vec(mask, (c, d), &Device::Cpu)?)
    }

    /// Projects W_raw onto W ≥ 0 after an optimiser step, and onto the pruned pattern `keep`
    /// (a [`Head::weight_mask`]) when given; for the linear probe only with `nonnegative`.
    pub fn clamp_weights(&self, keep: Option<&Tensor>) -> Result<()> {
        if self.config.nonnegative {
            let w = self.var("weight");
            w.set(&w.as_tensor().relu()?)?;
        }
        if self.config.kind == HeadKind::InfoDisent {
            let w = self.var("w_raw");
            let clamped = w.as_tensor().relu()?;
            w.set(&match keep {
                Some(mask) => clamped.mul(mask)?,
                None => clamped,
            })?;
        }
        Ok(())
    }

    /// The current U in f32 (InfoDisent only): `rotation(A) · U₀`, or a frame completed to a
    /// full rotation.
    pub fn rotation(&self) -> Result<Vec<f32>> {
        if !self.channels.is_empty() {
            let rows = self
                .var("frame")
                .as_tensor()
                .flatten_all()?
                .to_vec1::<f32>()?;
            return frame::complete(self.dim, &self.channels, &rows);
        }
        let a = self.var("a").as_tensor().flatten_all()?.to_vec1::<f32>()?;
        let base = self.rotation_base_arc();
        Ok(rotation::rotation_times(
            self.config.rotation,
            self.dim,
            &a,
            base.as_deref().map(Vec::as_slice),
        ))
    }

    fn rotation_base_arc(&self) -> Option<std::sync::Arc<Vec<f32>>> {
        self.base
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// `U₀` of the dynamic trivialization, when a rebase has happened.
    pub fn rotation_base(&self) -> Option<Vec<f32>> {
        self.rotation_base_arc().map(|b| b.to_vec())
    }

    /// Sets `U₀` (a checkpoint's, or `None` for the identity).
    pub fn set_rotation_base(&self, base: Option<Vec<f32>>) -> Result<()> {
        if base
            .as_ref()
            .is_some_and(|b| b.len() != self.dim * self.dim)
        {
            return Err(Error::Shape(format!(
                "rotation base does not have {0}×{0} entries",
                self.dim
            )));
        }
        *self
            .base
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = base.map(std::sync::Arc::new);
        Ok(())
    }

    /// The dynamic trivialization's step: `U₀ ← rotation(A) · U₀` and `A ← 0`, leaving U
    /// unchanged. The f32 products drift from orthogonality by rounding, a random walk of about
    /// 1e-7 per product; a Newton–Schulz step (two products) pulls `U₀` back once a sample of
    /// `UᵀU` rows shows a defect of 4e-6, so the trained U stays within 1e-5 of orthogonal.
    pub fn rebase(&self) -> Result<()> {
        if self.config.kind != HeadKind::InfoDisent || !self.channels.is_empty() {
            return Ok(());
        }
        let d = self.dim;
        let mut u = self.rotation()?;
        if linalg::orthogonality_sample(d, &u, 8) > 4e-6 {
            u = linalg::reorthogonalize(d, &u);
        }
        self.set_rotation_base(Some(u))?;
        let a = self.var("a");
        a.set(&a.as_tensor().zeros_like()?)?;
        Ok(())
    }

    /// The trained head in the form explanations consume.
    pub fn export(&self) -> Result<TrainedHead> {
        let vec = |name: &str| -> Result<Vec<f32>> {
            Ok(self.var(name).as_tensor().flatten_all()?.to_vec1::<f32>()?)
        };
        match self.config.kind {
            HeadKind::InfoDisent => {
                let mut weight: Vec<f32> = vec("w_raw")?.into_iter().map(|w| w.max(0.0)).collect();
                if !self.channels.is_empty() {
                    let mut full = vec![0.0f32; self.classes * self.dim];
                    for (row, local) in full
                        .chunks_exact_mut(self.dim)
                        .zip(weight.chunks_exact(self.channels.len()))
                    {
                        for (&c, &w) in self.channels.iter().zip(local) {
                            row[c as usize] = w;
                        }
                    }
                    weight = full;
                }
                Ok(TrainedHead::InfoDisent(HeadParams::new(
                    self.dim,
                    self.classes,
                    self.rotation()?,
                    weight,
                    vec("bias")?,
                )?))
            }
            HeadKind::LinearProbe => {
                let mut weight = vec("weight")?;
                if self.config.nonnegative {
                    weight.iter_mut().for_each(|w| *w = w.max(0.0));
                }
                Ok(TrainedHead::Linear(
                    LinearClassifier::new(self.classes, self.dim, weight, vec("bias")?)?
                        .with_pooling(self.config.pooling),
                ))
            }
        }
    }
}

/// Gumbel-softmax relaxation of both maxima, straight-through: per channel the forward value is
/// the hard max of ReLU(±J), exactly what inference computes, while the gradient flows through
/// softmax((ReLU(±J) + g)/τ) over the cells, g Gumbel noise (divided by τ with the values, so τ
/// sharpens the sample instead of drowning the noise). Dense by nature; used only when asked for.
fn gumbel_pool(u: &Tensor, pixels: &Tensor, batch: &PixelBatch, mode: TrainMode) -> Result<Tensor> {
    let shape = (batch.n, batch.cells, u.dims2()?.0);
    let j = pixels.matmul(&u.t()?)?.reshape(shape)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(mode.noise_seed);
    let mut soft_max = |x: Tensor| -> Result<Tensor> {
        let noise: Vec<f32> = (0..shape.0 * shape.1 * shape.2)
            .map(|_| {
                let p: f64 = rng.random_range(1e-12..1.0);
                (-(-p.ln()).ln()) as f32
            })
            .collect();
        let g = Tensor::from_vec(noise, shape, x.device())?;
        let weights = candle_nn::ops::softmax(&((&x + g)? / mode.tau)?, 1)?;
        let soft = (weights * &x)?.sum(1)?;
        let hard = x.max(1)?;
        Ok((&soft + (hard - &soft)?.detach())?)
    };
    let pos = soft_max(j.relu()?)?;
    let neg = soft_max(j.neg()?.relu()?)?;
    Ok((pos - neg)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(config: &HeadConfig) -> serde_json::Value {
        serde_json::to_value(config).unwrap()
    }

    #[test]
    fn a_config_shows_what_its_kind_has_and_reads_back_the_same() {
        let infodisent = HeadConfig::default();
        let probe = HeadConfig {
            kind: HeadKind::LinearProbe,
            ..HeadConfig::default()
        };
        let shown = written(&infodisent);
        assert!(shown.get("rotation").is_some());
        assert!(shown.get("pooling").is_none() && shown.get("nonnegative").is_none());
        assert!(
            shown.get("tau_start").is_none(),
            "no temperatures without Gumbel"
        );
        let shown = written(&probe);
        assert!(shown.get("pooling").is_some() && shown.get("nonnegative").is_some());
        assert!(shown.get("rotation").is_none() && shown.get("rebase_every").is_none());
        // A setting that does not apply but was changed is kept, so nothing is lost.
        let odd = HeadConfig {
            pooling: Pooling::Max,
            ..HeadConfig::default()
        };
        assert_eq!(written(&odd)["pooling"], "max");
        for config in [infodisent, probe, odd] {
            let back: HeadConfig = serde_json::from_value(written(&config)).unwrap();
            assert_eq!(back, config);
        }
    }
}
