//! How alike a head's deciding channels are from image to image, for a picture: the |correlation|
//! over images of the pooled values of the channels its decisions use (the pooled reading of
//! [`super::rv`], pair by pair), rotated by U beside the raw backbone channels of the same
//! indices, in the same order. A frame head's rotated channel k starts as raw channel k, so
//! the two matrices show what training the rotation did to those channels.

use crate::cache::{balanced_sample, FeatureCache};
use crate::classifier::average_pool;
use crate::error::Result;
use crate::head::params::HeadParams;
use crate::head::Classifies;
use serde::{Deserialize, Serialize};

/// Images of a split the picture is computed on (a class-balanced sample).
pub const IMAGES: usize = 512;

/// |r| between the pooled values of a head's deciding channels, rotated and raw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelCorrelation {
    /// The channels, grouped by the first class that uses each (classes in order, each
    /// class's largest gauge-fixed weights first).
    pub channels: Vec<usize>,
    /// The class each channel is listed under.
    pub classes: Vec<usize>,
    /// `[m, m]` |r| of the rotated channels' pooled values (InfoDisent's max − min).
    pub rotated: Vec<f32>,
    /// `[m, m]` |r| of the raw channels' average-pooled values.
    pub raw: Vec<f32>,
    /// Images the correlations are over.
    pub images: usize,
}

impl ChannelCorrelation {
    /// Mean |r| over the distinct pairs of `matrix` (one of the two).
    pub fn mean_off_diagonal(&self, matrix: &[f32]) -> f64 {
        let m = self.channels.len();
        let pairs = (m * m.saturating_sub(1)).max(1) as f64;
        let total: f64 = (0..m * m)
            .filter(|i| i / m != i % m)
            .map(|i| f64::from(matrix[i]))
            .sum();
        total / pairs
    }
}

/// The channels `head`'s decisions use, [`crate::rv::USED_PER_CLASS`] a class, grouped by class.
fn deciding_channels(head: &HeadParams) -> (Vec<usize>, Vec<usize>) {
    let weights = head.gauge_fixed_weights();
    let (mut channels, mut classes) = (Vec::new(), Vec::new());
    for c in 0..head.classes {
        let row = &weights[c * head.dim..(c + 1) * head.dim];
        let mut order: Vec<usize> = (0..head.dim).filter(|&k| row[k] > 0.0).collect();
        order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
        for k in order.into_iter().take(crate::rv::USED_PER_CLASS) {
            if !channels.contains(&k) {
                channels.push(k);
                classes.push(c);
            }
        }
    }
    (channels, classes)
}

/// |r| of each pair of columns `[n, m]` of `values` (0 where a column is constant).
fn abs_correlation(values: &[f64], n: usize, m: usize) -> Vec<f32> {
    let mut z = values.to_vec();
    for j in 0..m {
        let mean = (0..n).map(|i| z[i * m + j]).sum::<f64>() / n.max(1) as f64;
        let norm = (0..n)
            .map(|i| (z[i * m + j] - mean).powi(2))
            .sum::<f64>()
            .sqrt();
        for i in 0..n {
            z[i * m + j] = if norm > 0.0 {
                (z[i * m + j] - mean) / norm
            } else {
                0.0
            };
        }
    }
    (0..m * m)
        .map(|p| {
            let (a, b) = (p / m, p % m);
            (0..n)
                .map(|i| z[i * m + a] * z[i * m + b])
                .sum::<f64>()
                .abs() as f32
        })
        .collect()
}

/// The correlation picture of `head` on a class-balanced sample of `split`.
pub fn channel_correlation(
    cache: &FeatureCache,
    split: &str,
    head: &HeadParams,
) -> Result<ChannelCorrelation> {
    let picks = balanced_sample(&cache.items(split)?, IMAGES, 0);
    let maps = cache.read_items(split, &picks)?.features;
    let [dim, h, w] = cache.feature_shape();
    let cells = h * w;
    let n = picks.len();
    let (channels, classes) = deciding_channels(head);
    let m = channels.len();
    let decisions = head.decide_batch(&maps, n, cells)?;
    let mut rotated = Vec::with_capacity(n * m);
    let mut raw = Vec::with_capacity(n * m);
    for (map, d) in maps.chunks_exact(dim * cells).zip(&decisions) {
        let mean = average_pool(map, cells);
        for &k in &channels {
            rotated.push(f64::from(d.pooled.v[k]));
            raw.push(f64::from(mean[k]));
        }
    }
    Ok(ChannelCorrelation {
        rotated: abs_correlation(&rotated, n, m),
        raw: abs_correlation(&raw, n, m),
        channels,
        classes,
        images: n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_that_move_together_score_one_and_a_constant_one_zero() {
        // Column 1 = −2 · column 0, column 2 constant, column 3 unrelated to column 0.
        let rows = [
            [1.0, -2.0, 5.0, 1.0],
            [2.0, -4.0, 5.0, -1.0],
            [3.0, -6.0, 5.0, -1.0],
            [4.0, -8.0, 5.0, 1.0],
        ];
        let values: Vec<f64> = rows.iter().flatten().copied().collect();
        let r = abs_correlation(&values, 4, 4);
        assert!((r[1] - 1.0).abs() < 1e-6 && (r[4] - 1.0).abs() < 1e-6);
        assert_eq!((r[2], r[2 * 4 + 2]), (0.0, 0.0));
        assert!(r[3].abs() < 1e-6, "{r:?}");
        assert!((r[0] - 1.0).abs() < 1e-6);
    }
}
