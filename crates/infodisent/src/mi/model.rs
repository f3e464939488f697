//! The mask and critic together ([`MiNet`]), the forward pass shared by training and
//! explanation, and a trained run loaded from disk ([`MiModel`]).

use super::bounds::Bound;
use super::config::{MapNegatives, MiMeta, NetDims};
use super::critic::Critic;
use super::mask::MaskModule;
use super::standardize::ChannelNorm;
use crate::classifier::LinearClassifier;
use crate::error::{Error, Result};
use crate::runs;
use candle_core::{DType, Device, Tensor, Var, D};
use candle_nn::{VarBuilder, VarMap};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// The trainable part: mask and critic, with their variables, and the fixed standardisation of
/// their inputs.
pub struct MiNet {
    varmap: VarMap,
    mask: MaskModule,
    critic: Critic,
    /// Standardisation of local features (the mask's and the critic's `x`).
    x_norm: ChannelNorm,
    /// Standardisation of representations (the critic's `z`).
    z_norm: ChannelNorm,
}

impl MiNet {
    /// Builds both modules with weights drawn from `seed` (candle's own CPU generator cannot be
    /// seeded, so every variable is overwritten from a seeded generator, in name order).
    pub fn new(dims: &NetDims, seed: u64) -> Result<Self> {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let mask = MaskModule::new(dims.dim, dims.mask_hidden, vb.pp("mask"))?;
        let critic = Critic::new(dims.dim, dims.proj, dims.critic_hidden, vb.pp("critic"))?;
        let net = MiNet {
            varmap,
            mask,
            critic,
            x_norm: ChannelNorm::identity(dims.dim, &Device::Cpu)?,
            z_norm: ChannelNorm::identity(dims.dim, &Device::Cpu)?,
        };
        let mut rng = StdRng::seed_from_u64(seed);
        for (_, var) in net.vars() {
            let dims = var.dims().to_vec();
            let values: Vec<f32> = if dims.len() >= 2 {
                // PyTorch's default bound for linear and convolution weights.
                let bound = 1.0 / (dims[1..].iter().product::<usize>() as f32).sqrt();
                (0..var.elem_count())
                    .map(|_| rng.random_range(-bound..bound))
                    .collect()
            } else {
                vec![0.0; var.elem_count()]
            };
            var.set(&Tensor::from_vec(values, dims, &Device::Cpu)?)?;
        }
        Ok(net)
    }

    /// Sets the input standardisation of local features and of representations.
    pub fn set_norms(&mut self, x_norm: ChannelNorm, z_norm: ChannelNorm) {
        self.x_norm = x_norm;
        self.z_norm = z_norm;
    }

    /// The mask `[B, 1, h, w]` of feature maps `[B, D, h, w]`.
    pub fn lambda(&self, features: &Tensor) -> Result<Tensor> {
        Ok(self.mask.forward(&self.x_norm.maps(features)?)?)
    }

    /// The critic's embedding of representations `[B, D]`.
    pub fn embed_z(&self, z: &Tensor) -> Result<Tensor> {
        Ok(self.critic.embed_z(&self.z_norm.rows(z)?)?)
    }

    /// The critic's projection of local features `[M, D]` (what a reference bank stores).
    pub fn project_x(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.critic.project_x(&self.x_norm.rows(x)?)?)
    }

    /// The critic's embedding of local features `[M, D]`.
    pub fn embed_x(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.critic.embed_projected_x(&self.project_x(x)?)?)
    }

    /// Variables and standardisation statistics, as saved in `mi.safetensors`.
    pub fn tensors(&self) -> Vec<(String, Tensor)> {
        let mut out: Vec<(String, Tensor)> = self
            .vars()
            .into_iter()
            .map(|(k, v)| (k, v.as_tensor().clone()))
            .collect();
        for (name, norm) in [("x", &self.x_norm), ("z", &self.z_norm)] {
            out.push((format!("{NORM_PREFIX}{name}_shift"), norm.shift.clone()));
            out.push((format!("{NORM_PREFIX}{name}_scale"), norm.scale.clone()));
        }
        out
    }

    /// Loads what [`MiNet::tensors`] saved.
    pub fn load(&mut self, tensors: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
        self.load_vars(tensors, "", path)?;
        let dim = self.x_norm.shift.dim(0)?;
        let get = |k: String| -> Result<Tensor> {
            let t = tensors
                .get(&k)
                .ok_or_else(|| Error::cache(path, format!("lacks tensor `{k}` (trained by an older version: re-run `infodisent mi train`)")))?;
            if t.dims() != [dim] {
                return Err(Error::cache(
                    path,
                    format!("`{k}` has shape {:?}, expected [{dim}]", t.dims()),
                ));
            }
            Ok(t.to_dtype(DType::F32)?)
        };
        for (name, norm) in [("x", &mut self.x_norm), ("z", &mut self.z_norm)] {
            norm.shift = get(format!("{NORM_PREFIX}{name}_shift"))?;
            norm.scale = get(format!("{NORM_PREFIX}{name}_scale"))?;
        }
        Ok(())
    }

    /// Every variable with its name, sorted by name (a stable order for optimizers and files).
    pub fn vars(&self) -> Vec<(String, Var)> {
        let data = self.varmap.data().lock().unwrap_or_else(|e| e.into_inner());
        let mut vars: Vec<(String, Var)> =
            data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        vars
    }

    /// Overwrites the variables from `tensors` (keys as in [`MiNet::vars`], optionally behind
    /// `prefix`), checking that every one is present with the right shape.
    fn load_vars(
        &self,
        tensors: &HashMap<String, Tensor>,
        prefix: &str,
        path: &Path,
    ) -> Result<()> {
        for (name, var) in self.vars() {
            let key = format!("{prefix}{name}");
            let t = tensors
                .get(&key)
                .ok_or_else(|| Error::cache(path, format!("lacks tensor `{key}`")))?;
            if t.dims() != var.dims() {
                return Err(Error::cache(
                    path,
                    format!(
                        "`{key}` has shape {:?}, the configuration needs {:?}",
                        t.dims(),
                        var.dims()
                    ),
                ));
            }
            var.set(&t.to_dtype(DType::F32)?)?;
        }
        Ok(())
    }
}

/// Name prefix of the mask's variables.
pub(crate) const MASK_PREFIX: &str = "mask.";

/// Key prefix of the standardisation statistics in `mi.safetensors`.
const NORM_PREFIX: &str = "norm/";

/// Local features `[B·N, D]` (position-major within each image) of feature maps `[B, D, h, w]`.
pub fn locals(features: &Tensor) -> Result<Tensor> {
    let (b, d, h, w) = features.dims4()?;
    Ok(features
        .reshape((b, d, h * w))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((b * h * w, d))?)
}

/// Representations `[B, D]`: the global average pool of feature maps `[B, D, h, w]`.
pub fn pooled(features: &Tensor) -> Result<Tensor> {
    Ok(features.mean((2, 3))?)
}

/// Draws, for each of `b` anchors, `k` negatives among the local features of the *other*
/// images of the batch (indices into the `[b·n]` local features), `[b, k]`.
pub fn sample_negatives(rng: &mut StdRng, b: usize, n: usize, k: usize) -> Result<Tensor> {
    let mut idx = Vec::with_capacity(b * k);
    for anchor in 0..b {
        for _ in 0..k {
            let other = rng.random_range(0..b - 1);
            let image = other + usize::from(other >= anchor);
            idx.push((image * n + rng.random_range(0..n)) as u32);
        }
    }
    Ok(Tensor::from_vec(idx, (b, k), &Device::Cpu)?)
}

/// Per-position bound values `[B, N]`: anchor `b` is scored against its own N local features
/// (positives) and against the local features `negatives[b]` of other images.
/// `ez` is `[B, E]`, `ex` is `[B·N, E]` (critic embeddings), `negatives` is `[B, K]` indices into `ex`.
pub fn batch_values(
    critic: &Critic,
    bound: Bound,
    ez: &Tensor,
    ex: &Tensor,
    n: usize,
    negatives: &Tensor,
) -> Result<Tensor> {
    let (b, k) = negatives.dims2()?;
    let hidden = ex.dim(1)?;
    let positives = critic.score_per_anchor(ez, &ex.reshape((b, n, hidden))?)?;
    let neg = ex
        .index_select(&negatives.flatten_all()?, 0)?
        .reshape((b, k, hidden))?;
    Ok(bound.per_position(&positives, &critic.score_per_anchor(ez, &neg)?, None)?)
}

/// The frozen classifier as tensors: `logits = pool(F) Wᵀ + b`.
#[derive(Debug, Clone)]
pub struct FrozenClassifier {
    weight_t: Tensor,
    bias: Tensor,
}

impl FrozenClassifier {
    /// Wraps a linear classifier, checking its input width against the feature channels.
    pub fn new(c: &LinearClassifier, dim: usize) -> Result<Self> {
        if c.dim != dim {
            return Err(Error::Shape(format!(
                "classifier takes {}-dim input but the features have {dim} channels",
                c.dim
            )));
        }
        let weight = Tensor::from_slice(&c.weight, (c.classes, c.dim), &Device::Cpu)?;
        Ok(FrozenClassifier {
            weight_t: weight.t()?.contiguous()?,
            bias: Tensor::from_slice(&c.bias, c.classes, &Device::Cpu)?,
        })
    }

    /// Logits `[B, C]` of pooled vectors `[B, D]`.
    pub fn logits(&self, pooled: &Tensor) -> Result<Tensor> {
        Ok(pooled.matmul(&self.weight_t)?.broadcast_add(&self.bias)?)
    }
}

/// Everything one forward pass over a batch produces.
pub struct BatchForward {
    /// Mask `[B, 1, h, w]`.
    pub lambda: Tensor,
    /// Classifier logits on the masked path, `[B, C]`.
    pub logits: Tensor,
    /// Per-position bound values of the raw features, `[B, N]`.
    pub mi_raw: Tensor,
    /// Per-position bound values of the masked features, `[B, N]`.
    pub mi_masked: Tensor,
}

/// One forward pass. The local features and the masked path come from `x_features`; the
/// representations from `z_features` (the same tensor for true pairs, other images for the
/// shuffled-pairs control). `negatives` comes from [`sample_negatives`]. With
/// `mask_from_mi == false` the masked MI term sees λ as a constant, so only the classifier
/// loss and the sparsity penalty shape the mask.
pub fn forward(
    net: &MiNet,
    classifier: &FrozenClassifier,
    bound: Bound,
    x_features: &Tensor,
    z_features: &Tensor,
    negatives: &Tensor,
    mask_from_mi: bool,
) -> Result<BatchForward> {
    let (_, _, h, w) = x_features.dims4()?;
    let lambda = net.lambda(x_features)?;
    let masked = x_features.broadcast_mul(&lambda)?;
    let logits = classifier.logits(&pooled(&masked)?)?;
    let masked_for_mi = if mask_from_mi {
        masked
    } else {
        x_features.broadcast_mul(&lambda.detach())?
    };
    let ez = net.embed_z(&pooled(z_features)?)?;
    let mi_raw = batch_values(
        &net.critic,
        bound,
        &ez,
        &net.embed_x(&locals(x_features)?)?,
        h * w,
        negatives,
    )?;
    let mi_masked = batch_values(
        &net.critic,
        bound,
        &ez,
        &net.embed_x(&locals(&masked_for_mi)?)?,
        h * w,
        negatives,
    )?;
    Ok(BatchForward {
        lambda,
        logits,
        mi_raw,
        mi_masked,
    })
}

/// Fraction of rows of `logits` `[B, C]` whose argmax equals `labels` `[B]`.
pub fn accuracy(logits: &Tensor, labels: &Tensor) -> Result<f32> {
    let pred = logits.argmax(D::Minus1)?.to_dtype(DType::I64)?;
    let hits = pred
        .eq(labels)?
        .to_dtype(DType::F32)?
        .sum_all()?
        .to_scalar::<f32>()?;
    Ok(hits / labels.dim(0)? as f32)
}

/// Per-position values of one image, row-major over the `h × w` feature grid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MiMaps {
    /// Grid rows.
    pub h: usize,
    /// Grid columns.
    pub w: usize,
    /// Unit of the values (`nats`, or `js-score` for the Jensen–Shannon bound).
    pub unit: String,
    /// Total information `I(Z; X_i)`.
    pub total: Vec<f32>,
    /// Decision-related information `I(Z; λ_i X_i)`.
    pub decision: Vec<f32>,
    /// Redundant information: total − decision.
    pub redundant: Vec<f32>,
    /// The mask λ.
    pub lambda: Vec<f32>,
    /// Class the frozen classifier predicts from the masked features.
    pub masked_prediction: usize,
}

/// A trained run, ready to explain feature maps.
pub struct MiModel {
    /// What the run was trained with.
    pub meta: MiMeta,
    net: MiNet,
    classifier: FrozenClassifier,
    /// Critic embeddings of the reference local features, raw `[K·N, E]`.
    reference_raw: Tensor,
    /// The same for the masked reference features.
    reference_masked: Tensor,
    /// Critic embeddings of the reference representations, `[K, E]`.
    reference_z: Tensor,
}

impl MiModel {
    /// Loads `config.json`, `mi.safetensors`, `classifier.safetensors` and
    /// `reference.safetensors` from a finished `mi train` folder.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let meta_path = dir.join(runs::CONFIG_FILE);
        if !meta_path.exists() {
            return Err(Error::cache(
                dir,
                "no config.json: not an `infodisent mi train` output folder",
            ));
        }
        let meta: MiMeta = crate::fsutil::read_json(&meta_path)?;
        let params_path = dir.join(runs::MI_FILE);
        if !params_path.exists() {
            return Err(Error::cache(dir, "no mi.safetensors: training has not finished (re-run `infodisent mi train --resume`)"));
        }
        let mut net = MiNet::new(&meta.dims(), 0)?;
        net.load(&read_tensors(&params_path)?, &params_path)?;
        let classifier = LinearClassifier::load(dir.join(runs::CLASSIFIER_FILE))?;
        let classifier = FrozenClassifier::new(&classifier, meta.feature_shape[0])?;
        let ref_path = dir.join(runs::REFERENCE_FILE);
        let refs = read_tensors(&ref_path)?;
        // Checked f32 tensor `[M, width]`.
        let get = |k: &str, width: usize| -> Result<Tensor> {
            let t = refs.get(k).ok_or_else(|| {
                Error::cache(
                    &ref_path,
                    format!("lacks tensor `{k}` (trained by an older version? re-run `infodisent mi train`)"),
                )
            })?;
            if t.dims().len() != 2 || t.dim(1)? != width {
                return Err(Error::cache(
                    &ref_path,
                    format!("`{k}` has shape {:?}, expected [M, {width}]", t.dims()),
                ));
            }
            Ok(t.to_dtype(DType::F32)?)
        };
        let proj = meta.config.proj_dim;
        let reference_raw = net.critic.embed_projected_x(&get("x_raw", proj)?)?;
        let reference_masked = net.critic.embed_projected_x(&get("x_masked", proj)?)?;
        let reference_z = net.embed_z(&get("z", meta.feature_shape[0])?)?;
        Ok(MiModel {
            meta,
            net,
            classifier,
            reference_raw,
            reference_masked,
            reference_z,
        })
    }

    /// Per-position maps of `n` feature maps `[n, D, h, w]` (row-major), each scored against
    /// the reference images as negatives.
    pub fn maps(&self, features: &[f32], n: usize) -> Result<Vec<MiMaps>> {
        let [d, h, w] = self.meta.feature_shape;
        if features.len() != n * d * h * w {
            return Err(Error::Shape(format!(
                "expected {n} feature maps of [{d}, {h}, {w}], got {} values",
                features.len()
            )));
        }
        let bound = self.meta.config.bound;
        let mut out = Vec::with_capacity(n);
        for f in features.chunks_exact(d * h * w) {
            let feats = Tensor::from_slice(f, (1, d, h, w), &Device::Cpu)?;
            let lambda = self.net.lambda(&feats)?;
            let masked = feats.broadcast_mul(&lambda)?;
            let logits = self.classifier.logits(&pooled(&masked)?)?;
            let ez = self.net.embed_z(&pooled(&feats)?)?;
            let value = |x: &Tensor, reference: &Tensor| -> Result<Vec<f32>> {
                let ex = self.net.embed_x(&locals(x)?)?;
                let positives = self.net.critic.scores(&ez, &ex)?;
                let values = match self.meta.config.map_negatives {
                    MapNegatives::Locals => {
                        let negatives = self.net.critic.scores(&ez, reference)?;
                        bound.per_position(&positives, &negatives, None)?
                    }
                    MapNegatives::Representations => {
                        let negatives = self.net.critic.scores(&self.reference_z, &ex)?;
                        bound.per_position(&positives.t()?, &negatives.t()?, None)?
                    }
                };
                Ok(values.flatten_all()?.to_vec1()?)
            };
            let total = value(&feats, &self.reference_raw)?;
            let decision = value(&masked, &self.reference_masked)?;
            let redundant = total.iter().zip(&decision).map(|(t, d)| t - d).collect();
            let logits: Vec<f32> = logits.flatten_all()?.to_vec1()?;
            let predicted = logits
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map_or(0, |(i, _)| i);
            out.push(MiMaps {
                h,
                w,
                unit: bound.unit().to_owned(),
                total,
                decision,
                redundant,
                lambda: lambda.flatten_all()?.to_vec1()?,
                masked_prediction: predicted,
            });
        }
        Ok(out)
    }
}

/// Reads every tensor of a safetensors file, naming the file on failure.
pub fn read_tensors(path: &Path) -> Result<HashMap<String, Tensor>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
        .map_err(|e| Error::cache(path, format!("corrupt: {e}")))
}

/// Writes named tensors (and optional string metadata) as one safetensors file, atomically.
pub fn write_tensors(
    path: &Path,
    tensors: &[(String, Tensor)],
    metadata: Option<HashMap<String, String>>,
) -> Result<()> {
    let views: Vec<(String, &Tensor)> = tensors.iter().map(|(k, t)| (k.clone(), t)).collect();
    let bytes =
        safetensors::serialize(views, metadata).map_err(|e| Error::cache(path, e.to_string()))?;
    crate::fsutil::write_atomic(path, &bytes)
}
