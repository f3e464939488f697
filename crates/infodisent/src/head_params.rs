//! A trained InfoDisent head as plain numbers (U, W ≥ 0, b) and its exact inference forward.
//!
//! Training (in `head`) produces it; explanations, metrics and reports consume it without
//! touching the autograd machinery. On disk: safetensors with `rotation` [D, D], `weight` [C, D]
//! and `bias` [C], all f32.

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
    /// Class biases b, [C].
    pub bias: Vec<f32>,
}

/// The sparse max/min pooling of one image: per channel, the value and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Pooled {
    /// `v_k = max ReLU(J_k) − max ReLU(−J_k)`, [D].
    pub v: Vec<f32>,
    /// `max ReLU(J_k)`, [D].
    pub pos: Vec<f32>,
    /// `max ReLU(−J_k)`, [D].
    pub neg: Vec<f32>,
    /// Cell (r·w + s) of the largest value of each channel, [D].
    pub argmax: Vec<usize>,
    /// Cell of the smallest value of each channel, [D].
    pub argmin: Vec<usize>,
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
}
