//! A plain linear classifier `logits = W x + b` on pooled features: the original model's head
//! read from its graph, or a linear probe.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// How a feature map `[D, cells]` becomes the classifier's input `[D]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Pooling {
    /// The mean over cells: what ImageNet classifiers' heads do.
    #[default]
    Average,
    /// The maximum over cells: a probe that reads the features the way InfoDisent's pooling
    /// does, without its rotation, min branch or W ≥ 0.
    Max,
}

impl Pooling {
    /// The name written into a probe file's metadata.
    fn as_str(self) -> &'static str {
        match self {
            Pooling::Average => "average",
            Pooling::Max => "max",
        }
    }
}

/// Metadata key of the pooling in a classifier file (absent: average, as files before it).
const POOLING_KEY: &str = "pooling";

/// Dense weights of a linear layer, row-major `weight[c * dim + k]`, and the pooling before it.
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
    /// How feature maps are pooled before the layer.
    pub pooling: Pooling,
}

/// Global average pooling of one feature map `[D, cells]` into `[D]`.
pub fn average_pool(map: &[f32], cells: usize) -> Vec<f32> {
    map.chunks_exact(cells.max(1))
        .map(|c| c.iter().sum::<f32>() / cells as f32)
        .collect()
}

/// Global max pooling of one feature map `[D, cells]` into `[D]`.
pub fn max_pool(map: &[f32], cells: usize) -> Vec<f32> {
    map.chunks_exact(cells.max(1))
        .map(|c| c.iter().copied().fold(f32::NEG_INFINITY, f32::max))
        .collect()
}

impl LinearClassifier {
    /// Checks that the buffers match the stated shape; the pooling is average (see
    /// [`LinearClassifier::with_pooling`]).
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
            pooling: Pooling::Average,
        })
    }

    /// The same layer after another pooling.
    pub fn with_pooling(mut self, pooling: Pooling) -> Self {
        self.pooling = pooling;
        self
    }

    /// This classifier's input for one feature map `[D, cells]`.
    pub fn pool(&self, map: &[f32], cells: usize) -> Vec<f32> {
        match self.pooling {
            Pooling::Average => average_pool(map, cells),
            Pooling::Max => max_pool(map, cells),
        }
    }

    /// Logits for one feature map `[D, cells]`: pooling, then the layer.
    pub fn logits_of_map(&self, map: &[f32], cells: usize) -> Vec<f32> {
        self.logits(&self.pool(map, cells))
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

    /// Saves as safetensors with tensors `weight` `[C, D]` and `bias` `[C]`, and the pooling
    /// in the metadata unless it is the average.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        crate::fsutil::write_f32_tensors(
            path,
            &[
                ("weight", vec![self.classes, self.dim], &self.weight),
                ("bias", vec![self.classes], &self.bias),
            ],
            (self.pooling != Pooling::Average).then_some((POOLING_KEY, self.pooling.as_str())),
        )
    }

    /// Loads what [`LinearClassifier::save`] wrote.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let (tensors, pooling) =
            crate::fsutil::read_f32_tensors_with(path, &["weight", "bias"], Some(POOLING_KEY))?;
        let pooling = match pooling.as_deref() {
            None | Some("average") => Pooling::Average,
            Some("max") => Pooling::Max,
            Some(other) => {
                return Err(Error::cache(
                    path,
                    format!("unknown pooling `{other}` (this version knows average and max)"),
                ))
            }
        };
        let mut tensors = tensors.into_iter();
        let (ws, w) = tensors.next().expect("one entry per name");
        let (_, b) = tensors.next().expect("one entry per name");
        if ws.len() != 2 {
            return Err(Error::cache(
                path,
                format!("weight has shape {ws:?}, expected [C, D]"),
            ));
        }
        Ok(Self::new(ws[0], ws[1], w, b)?.with_pooling(pooling))
    }
}

/// Numerically stable softmax of one row of logits.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooling_survives_the_file_and_an_unknown_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let map = [1.0, 3.0, -2.0, 0.0];
        let clf = LinearClassifier::new(1, 2, vec![1.0, -1.0], vec![0.5]).unwrap();
        assert_eq!(clf.logits_of_map(&map, 2), vec![2.0 + 1.0 + 0.5]);
        let max = clf.with_pooling(Pooling::Max);
        assert_eq!(max.logits_of_map(&map, 2), vec![3.0 - 0.0 + 0.5]);
        let path = dir.path().join("linear.safetensors");
        max.save(&path).unwrap();
        assert_eq!(LinearClassifier::load(&path).unwrap(), max);

        crate::fsutil::write_f32_tensors(
            &path,
            &[
                ("weight", vec![1, 2], &max.weight),
                ("bias", vec![1], &max.bias),
            ],
            Some((POOLING_KEY, "median")),
        )
        .unwrap();
        let err = LinearClassifier::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("median") && err.contains("linear.safetensors"),
            "{err}"
        );
    }
}
