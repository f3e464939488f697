//! A plain linear classifier `logits = W x + b` on pooled features: the original model's head
//! read from its graph, or a linear probe.

use crate::error::{Error, Result};
use std::path::Path;

/// Dense weights of a linear layer, row-major `weight[c * dim + k]`.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearClassifier {
    /// Number of outputs C.
    pub classes: usize,
    /// Input width D.
    pub dim: usize,
    /// [C, D] row-major.
    pub weight: Vec<f32>,
    /// `[C]`.
    pub bias: Vec<f32>,
}

/// Global average pooling of one feature map `[D, cells]` into `[D]`.
pub fn average_pool(map: &[f32], cells: usize) -> Vec<f32> {
    map.chunks_exact(cells.max(1))
        .map(|c| c.iter().sum::<f32>() / cells as f32)
        .collect()
}

impl LinearClassifier {
    /// Checks that the buffers match the stated shape.
    pub fn new(classes: usize, dim: usize, weight: Vec<f32>, bias: Vec<f32>) -> Result<Self> {
        if weight.len() != classes * dim || bias.len() != classes {
            return Err(Error::Shape(format!(
                "linear classifier [{classes}, {dim}] given {} weights and {} biases",
                weight.len(),
                bias.len()
            )));
        }
        Ok(LinearClassifier {
            classes,
            dim,
            weight,
            bias,
        })
    }

    /// Logits for one feature map `[D, cells]`: global average pooling, then the layer.
    pub fn logits_of_map(&self, map: &[f32], cells: usize) -> Vec<f32> {
        self.logits(&average_pool(map, cells))
    }

    /// Logits for each feature map of a batch `[n, D, cells]`.
    pub fn logits_of_maps(&self, maps: &[f32], cells: usize) -> Vec<Vec<f32>> {
        maps.chunks_exact((self.dim * cells).max(1))
            .map(|m| self.logits_of_map(m, cells))
            .collect()
    }

    /// Logits for one pooled feature vector.
    pub fn logits(&self, x: &[f32]) -> Vec<f32> {
        (0..self.classes)
            .map(|c| {
                let row = &self.weight[c * self.dim..(c + 1) * self.dim];
                row.iter().zip(x).map(|(w, v)| w * v).sum::<f32>() + self.bias[c]
            })
            .collect()
    }

    /// Saves as safetensors with tensors `weight` `[C, D]` and `bias` `[C]`.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        crate::fsutil::write_f32_tensors(
            path,
            &[
                ("weight", vec![self.classes, self.dim], &self.weight),
                ("bias", vec![self.classes], &self.bias),
            ],
        )
    }

    /// Loads what [`LinearClassifier::save`] wrote.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let mut tensors = crate::fsutil::read_f32_tensors(path, &["weight", "bias"])?.into_iter();
        let (ws, w) = tensors.next().expect("one entry per name");
        let (_, b) = tensors.next().expect("one entry per name");
        if ws.len() != 2 {
            return Err(Error::cache(
                path,
                format!("weight has shape {ws:?}, expected [C, D]"),
            ));
        }
        Self::new(ws[0], ws[1], w, b)
    }
}

/// Numerically stable softmax of one row of logits.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}
