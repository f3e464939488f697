//! A trained InfoDisent head as plain numbers (U, W ≥ 0, b) and its exact inference forward.
//!
//! Training (in `head`) produces it; explanations, metrics and reports consume it without
//! touching the autograd machinery, through one inference path: [`HeadParams::decide`] gives a
//! [`Decision`] (rotated map, pooling, logits, prediction) and [`HeadParams::contributions`] the
//! per-channel terms of one class's logit. On disk: safetensors with `rotation` [D, D], `weight` [C, D]
//! and `bias` `[C]`, all f32.

use crate::error::{Error, Result};
use crate::head::linalg::gemm_into;
use std::path::Path;

/// U, W and b of a trained head. `J = U · F` per pixel, `v = max ReLU(J) − max ReLU(−J)`,
/// `logits = W v + b`.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadParams {
    /// Channels D.
    pub dim: usize,
    /// Classes C.
    pub classes: usize,
    /// Orthogonal rotation U, [D, D] row-major: `J_k = Σ_j U[k, j] F_j`.
    pub rotation: Vec<f32>,
    /// Nonnegative class weights W, [C, D] row-major.
    pub weight: Vec<f32>,
    /// Class biases b, `[C]`.
    pub bias: Vec<f32>,
}

/// The sparse max/min pooling of one image: per channel, the value and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Pooled {
    /// `v_k = max ReLU(J_k) − max ReLU(−J_k)`, `[D]`.
    pub v: Vec<f32>,
    /// `max ReLU(J_k)`, `[D]`.
    pub pos: Vec<f32>,
    /// `max ReLU(−J_k)`, `[D]`.
    pub neg: Vec<f32>,
    /// Cell (r·w + s) of the largest value of each channel, `[D]`.
    pub argmax: Vec<usize>,
    /// Cell of the smallest value of each channel, `[D]`.
    pub argmin: Vec<usize>,
}

/// The head's decision on one image: everything explanations read after one forward pass.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Rotated map `J = U · F`, [D, cells].
    pub rotated: Vec<f32>,
    /// Sparse max/min pooling of `J`.
    pub pooled: Pooled,
    /// `W v + b`, `[C]`.
    pub logits: Vec<f32>,
    /// Class with the largest logit.
    pub predicted: usize,
}

/// Index of the largest value (the first on ties): the predicted class of a row of logits.
pub fn argmax(values: &[f32]) -> usize {
    values
        .iter()
        .enumerate()
        .fold(0, |best, (i, &v)| if v > values[best] { i } else { best })
}

/// Sparse pooling of a rotated map J laid out [D, cells].
pub fn sparse_pool(j: &[f32], dim: usize, cells: usize) -> Pooled {
    let mut p = Pooled {
        v: vec![0.0; dim],
        pos: vec![0.0; dim],
        neg: vec![0.0; dim],
        argmax: vec![0; dim],
        argmin: vec![0; dim],
    };
    for k in 0..dim {
        let row = &j[k * cells..(k + 1) * cells];
        let (mut imax, mut imin) = (0, 0);
        for (i, &x) in row.iter().enumerate() {
            if x > row[imax] {
                imax = i;
            }
            if x < row[imin] {
                imin = i;
            }
        }
        p.pos[k] = row[imax].max(0.0);
        p.neg[k] = (-row[imin]).max(0.0);
        p.v[k] = p.pos[k] - p.neg[k];
        p.argmax[k] = imax;
        p.argmin[k] = imin;
    }
    p
}

/// For each class row of `weight` (`[classes, dim]`), the channels of its `per_class` largest
/// positive weights, largest first.
pub fn top_weighted_per_class(
    weight: &[f32],
    classes: usize,
    dim: usize,
    per_class: usize,
) -> Vec<Vec<usize>> {
    (0..classes)
        .map(|c| {
            let w = &weight[c * dim..(c + 1) * dim];
            let mut order: Vec<usize> = (0..dim).filter(|&k| w[k] > 0.0).collect();
            order.sort_unstable_by(|&a, &b| w[b].total_cmp(&w[a]));
            order.truncate(per_class);
            order
        })
        .collect()
}

/// [`top_weighted_per_class`] of all classes together; sorted, without repeats.
pub fn top_weighted(weight: &[f32], classes: usize, dim: usize, per_class: usize) -> Vec<usize> {
    channel_union(&top_weighted_per_class(weight, classes, dim, per_class))
}

/// The channels of all classes' lists, sorted, without repeats.
pub fn channel_union(per_class: &[Vec<usize>]) -> Vec<usize> {
    let mut all: Vec<usize> = per_class.iter().flatten().copied().collect();
    all.sort_unstable();
    all.dedup();
    all
}

/// The paper's reading of an explanation's size: fewest channels (largest contributions first)
/// whose sum reaches `fraction` of the net total; `None` when the net total is not positive.
pub fn channels_for_net_fraction(contributions: &[f32], fraction: f32) -> Option<usize> {
    let total: f64 = contributions.iter().map(|&x| f64::from(x)).sum();
    (total > 0.0).then(|| fewest_reaching(contributions.to_vec(), total * f64::from(fraction)))
}

/// The strict reading: fewest channels whose positive contributions reach `fraction` of their
/// sum (0 when no contribution is positive).
pub fn channels_for_fraction(contributions: &[f32], fraction: f32) -> usize {
    let pos: Vec<f32> = contributions.iter().copied().filter(|&x| x > 0.0).collect();
    let total: f64 = pos.iter().map(|&x| f64::from(x)).sum();
    if total <= 0.0 {
        return 0;
    }
    fewest_reaching(pos, total * f64::from(fraction))
}

/// How many of `values`, largest first, it takes for their running sum to reach `target`.
fn fewest_reaching(mut values: Vec<f32>, target: f64) -> usize {
    values.sort_unstable_by(|a, b| b.total_cmp(a));
    let mut acc = 0.0;
    for (m, &x) in values.iter().enumerate() {
        acc += f64::from(x);
        // The tolerance keeps m = all channels from failing on the last rounding error.
        if acc >= target * (1.0 - 1e-9) {
            return m + 1;
        }
    }
    values.len()
}

impl HeadParams {
    /// Checks shapes, finiteness and W ≥ 0.
    pub fn new(
        dim: usize,
        classes: usize,
        rotation: Vec<f32>,
        weight: Vec<f32>,
        bias: Vec<f32>,
    ) -> Result<Self> {
        if rotation.len() != dim * dim || weight.len() != classes * dim || bias.len() != classes {
            return Err(Error::Shape(format!(
                "head [{classes}, {dim}]: rotation {}, weight {}, bias {}",
                rotation.len(),
                weight.len(),
                bias.len()
            )));
        }
        if rotation
            .iter()
            .chain(&weight)
            .chain(&bias)
            .any(|x| !x.is_finite())
        {
            return Err(Error::Numeric(
                "head parameters contain NaN or infinity".into(),
            ));
        }
        if weight.iter().any(|&w| w < 0.0) {
            return Err(Error::Numeric("head weights must be nonnegative".into()));
        }
        Ok(HeadParams {
            dim,
            classes,
            rotation,
            weight,
            bias,
        })
    }

    /// Rotates a batch of feature maps `[n, D, cells]` into `[n, D, cells]` with one GEMM each.
    pub fn rotate(&self, features: &[f32], n: usize, cells: usize) -> Result<Vec<f32>> {
        let d = self.dim;
        if features.len() != n * d * cells {
            return Err(Error::Shape(format!(
                "features hold {} values, expected {n}×{d}×{cells}",
                features.len()
            )));
        }
        // Straight into gemm on the stored slices: wrapping U in a tensor copied D² floats per
        // call, which at D = 1280 cost as much as the rotation of one image itself.
        let mut j = vec![0.0f32; n * d * cells];
        let step = d * cells;
        for (f, out) in features.chunks_exact(step).zip(j.chunks_exact_mut(step)) {
            gemm_into(
                d,
                cells,
                d,
                &self.rotation,
                false,
                f,
                false,
                out,
                false,
                1.0,
            );
        }
        Ok(j)
    }

    /// The decision on one feature map `[D, cells]`.
    pub fn decide(&self, features: &[f32], cells: usize) -> Result<Decision> {
        let rotated = self.rotate(features, 1, cells)?;
        Ok(self.decide_rotated(rotated, cells))
    }

    /// The decisions on `n` feature maps `[n, D, cells]`, rotated with one GEMM each.
    pub fn decide_batch(&self, features: &[f32], n: usize, cells: usize) -> Result<Vec<Decision>> {
        use rayon::prelude::*;
        let step = self.dim * cells;
        if features.len() != n * step {
            return Err(Error::Shape(format!(
                "features hold {} values, expected {n}×{}×{cells}",
                features.len(),
                self.dim
            )));
        }
        // Each image is rotated into the buffer its decision keeps: rotating the batch into one
        // buffer and slicing it would copy every rotated map once more.
        let rotated = features
            .chunks_exact(step.max(1))
            .take(n)
            .map(|f| self.rotate(f, 1, cells))
            .collect::<Result<Vec<_>>>()?;
        Ok(rotated
            .into_par_iter()
            .map(|j| self.decide_rotated(j, cells))
            .collect())
    }

    fn decide_rotated(&self, rotated: Vec<f32>, cells: usize) -> Decision {
        let pooled = sparse_pool(&rotated, self.dim, cells);
        let logits = self.logits(&pooled.v);
        Decision {
            predicted: argmax(&logits),
            rotated,
            pooled,
            logits,
        }
    }

    /// Each channel's term `a_ck = W[c,k] · v_k` of class `c`'s logit (they sum to
    /// `logit_c − b_c`).
    pub fn contributions(&self, decision: &Decision, class: usize) -> Vec<f32> {
        self.weight[class * self.dim..(class + 1) * self.dim]
            .iter()
            .zip(&decision.pooled.v)
            .map(|(w, v)| w * v)
            .collect()
    }

    /// Logits from pooled values.
    pub fn logits(&self, v: &[f32]) -> Vec<f32> {
        (0..self.classes)
            .map(|c| {
                self.weight[c * self.dim..(c + 1) * self.dim]
                    .iter()
                    .zip(v)
                    .map(|(w, x)| w * x)
                    .sum::<f32>()
                    + self.bias[c]
            })
            .collect()
    }

    /// Saves as safetensors (`rotation`, `weight`, `bias`).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        crate::fsutil::write_f32_tensors(
            path,
            &[
                ("rotation", vec![self.dim, self.dim], &self.rotation),
                ("weight", vec![self.classes, self.dim], &self.weight),
                ("bias", vec![self.classes], &self.bias),
            ],
            None,
        )
    }

    /// Loads what [`HeadParams::save`] wrote, validating shapes and W ≥ 0.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let mut tensors =
            crate::fsutil::read_f32_tensors(path, &["rotation", "weight", "bias"])?.into_iter();
        let (rs, r) = tensors.next().expect("one entry per name");
        let (ws, w) = tensors.next().expect("one entry per name");
        let (_, b) = tensors.next().expect("one entry per name");
        if rs.len() != 2 || ws.len() != 2 || rs[0] != rs[1] || ws[1] != rs[0] {
            return Err(Error::cache(
                path,
                format!("inconsistent shapes: rotation {rs:?}, weight {ws:?}"),
            ));
        }
        Self::new(rs[0], ws[0], r, w, b).map_err(|e| Error::cache(path, e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooling_picks_extremes_and_contributions_sum_to_logit() {
        // Two channels over 3 cells; identity rotation.
        let head =
            HeadParams::new(2, 1, vec![1.0, 0.0, 0.0, 1.0], vec![0.5, 2.0], vec![0.25]).unwrap();
        let f = [1.0, -3.0, 2.0, -1.0, -0.5, -2.0];
        let j = head.rotate(&f, 1, 3).unwrap();
        let p = sparse_pool(&j, 2, 3);
        assert_eq!(p.argmax, vec![2, 1]);
        assert_eq!(p.argmin, vec![1, 2]);
        assert_eq!(p.v, vec![2.0 - 3.0, 0.0 - 2.0]);
        let logit = head.logits(&p.v)[0];
        assert!((logit - (-0.5 - 2.0 * 2.0 + 0.25)).abs() < 1e-6);
    }

    #[test]
    fn negative_weights_are_rejected() {
        assert!(HeadParams::new(1, 1, vec![1.0], vec![-0.1], vec![0.0]).is_err());
    }

    #[test]
    fn top_weighted_takes_each_class_top_positive_weights_once() {
        // 2 classes × 4 channels.
        let w = [0.0, 3.0, 1.0, 2.0, 5.0, 0.0, 0.0, 4.0];
        assert_eq!(top_weighted(&w, 2, 4, 2), vec![0, 1, 3]);
        assert_eq!(top_weighted(&w, 2, 4, 1), vec![0, 1]);
    }
}
