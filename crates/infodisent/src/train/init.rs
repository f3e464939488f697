//! Where a head starts: a frame head from the raw channels that best separate the classes
//! ([`frame_channels`]); the rotation, when asked, at the principal axes of the training cells
//! ([`principal_rotation`]); a head fitted to the original classifier (`--target original`) from that
//! classifier, rewritten for InfoDisent's pooling and W ≥ 0.
//!
//! From a few hundred images a head cannot learn a thousand-class classifier's function; that
//! function is in the cache, though. With U = I the head reads channel k as
//! `v_k = max ReLU(F_k) − max ReLU(−F_k)` where the classifier reads its mean, so each
//! channel's weights are scaled by the least-squares ratio of mean to `v_k` over the training
//! images. A constant added to a channel's weights across all classes changes every logit of an
//! image by the same amount, which neither the softmax nor the top class sees, so subtracting
//! each channel's smallest weight makes W ≥ 0 without changing what the classifier decides.

use crate::cache::FeatureCache;
use crate::classifier::{average_pool, LinearClassifier, Pooling};
use crate::error::Result;
use crate::head::frame::candidate_channels;
use crate::head::linalg::{gemm_into, identity};
use crate::head::params::sparse_pool;
use crate::head::pool::rotate_pool;
use crate::head::Head;
use crate::train::batches::Images;

/// The channels a frame head starts from: per class, the `per_class` raw channels whose pooled
/// value (InfoDisent's max/min pooling at U = I) best separates it from the other classes over
/// the training `items`, by [`candidate_channels`]; read from the run's [`Images`], so a run
/// held in memory reads its images once.
pub fn frame_channels(
    images: &Images,
    items: &[usize],
    classes: usize,
    per_class: usize,
) -> Result<Vec<u32>> {
    let dim = images.dim();
    let identity = identity::<f32>(dim);
    let mut counts = vec![0usize; classes];
    let mut sums = vec![0f64; classes * dim];
    let mut squares = vec![0f64; classes * dim];
    images.for_each_batch(items, 256, None, |batch| {
        let (v, _) = rotate_pool(&identity, &batch.pixels, batch.n, batch.cells, dim);
        for (pooled, &label) in v.chunks_exact(dim).zip(&batch.labels) {
            let c = label as usize;
            counts[c] += 1;
            for (k, &x) in pooled.iter().enumerate() {
                sums[c * dim + k] += f64::from(x);
                squares[c * dim + k] += f64::from(x) * f64::from(x);
            }
        }
        Ok(())
    })?;
    Ok(candidate_channels(dim, &counts, &sums, &squares, per_class))
}

/// Training images whose cells estimate the covariance for [`principal_rotation`].
const PRINCIPAL_IMAGES: usize = 512;

/// Rows of a rotation at the principal axes of the cells of (up to 512 of) the
/// training `items`, largest variance first: `[D, D]` for a full rotation (`channels` empty),
/// or for a frame `[m, D]` rows that are the principal axes of its `channels` alone, so it
/// spans the same channels it would have started at.
pub fn principal_rotation(images: &Images, items: &[usize], channels: &[u32]) -> Result<Vec<f32>> {
    let dim = images.dim();
    let picked: Vec<usize> = if channels.is_empty() {
        (0..dim).collect()
    } else {
        channels.iter().map(|&c| c as usize).collect()
    };
    let step = items.len().div_ceil(PRINCIPAL_IMAGES).max(1);
    let sample: Vec<usize> = items.iter().step_by(step).copied().collect();
    let mut covariance = CellCovariance::new(dim, picked);
    images.for_each_batch(&sample, 64, None, |batch| {
        covariance.add(&batch.pixels);
        Ok(())
    })?;
    Ok(covariance.axes())
}

/// The covariance of some channels over pixel rows (`[N, D]`), accumulated batch by batch.
struct CellCovariance {
    dim: usize,
    picked: Vec<usize>,
    gram: Vec<f32>,
    sums: Vec<f64>,
    rows: usize,
}

impl CellCovariance {
    fn new(dim: usize, picked: Vec<usize>) -> Self {
        let m = picked.len();
        CellCovariance {
            dim,
            picked,
            gram: vec![0.0; m * m],
            sums: vec![0.0; m],
            rows: 0,
        }
    }

    fn add(&mut self, pixels: &[f32]) {
        let m = self.picked.len();
        let picked = &self.picked;
        let x: Vec<f32> = pixels
            .chunks_exact(self.dim)
            .flat_map(|pixel| picked.iter().map(move |&k| pixel[k]))
            .collect();
        let n = x.len() / m.max(1);
        gemm_into(m, m, n, &x, true, &x, false, &mut self.gram, true, 1.0);
        for pixel in x.chunks_exact(m) {
            for (s, &v) in self.sums.iter_mut().zip(pixel) {
                *s += f64::from(v);
            }
        }
        self.rows += n;
    }

    /// The eigenvectors of the covariance as rows of `[m, D]`, largest eigenvalue first.
    fn axes(&self) -> Vec<f32> {
        let m = self.picked.len();
        let rows = self.rows.max(1) as f64;
        let covariance: Vec<f64> = (0..m * m)
            .map(|i| {
                f64::from(self.gram[i]) / rows - self.sums[i / m] * self.sums[i % m] / (rows * rows)
            })
            .collect();
        let eig =
            nalgebra::SymmetricEigen::new(nalgebra::DMatrix::from_row_slice(m, m, &covariance));
        let mut order: Vec<usize> = (0..m).collect();
        order.sort_by(|&a, &b| eig.eigenvalues[b].total_cmp(&eig.eigenvalues[a]));
        let mut out = vec![0f32; m * self.dim];
        for (row, &axis) in order.iter().enumerate() {
            for (j, &k) in self.picked.iter().enumerate() {
                out[row * self.dim + k] = eig.eigenvectors[(j, axis)] as f32;
            }
        }
        out
    }
}

/// Sets W and b of the InfoDisent `head` from the cache's original classifier, scaled on the
/// `items` of `split`; returns why not, leaving the head as it is, when the cache has no
/// classifier that is linear on average-pooled features of the head's shape.
pub fn from_original(
    head: &Head,
    cache: &FeatureCache,
    split: &str,
    items: &[usize],
) -> Result<Option<&'static str>> {
    let Some(original) = cache.classifier()? else {
        return Ok(Some("the model's classifier is not a linear layer"));
    };
    if original.pooling != Pooling::Average
        || original.dim != head.dim
        || original.classes != head.classes
    {
        return Ok(Some(
            "the model's classifier does not read these features average-pooled",
        ));
    }
    let ratio = mean_to_pooled_ratio(cache, split, items)?;
    let (weight, bias) = shifted_weights(&original, &ratio);
    head.set_linear(&weight, &bias)?;
    Ok(None)
}

/// Per channel, the `r` that best fits `mean_k ≈ r · v_k` over the items (0 where `v_k` is
/// always 0), with `v` the head's own pooling at U = I.
fn mean_to_pooled_ratio(cache: &FeatureCache, split: &str, items: &[usize]) -> Result<Vec<f32>> {
    let [dim, h, w] = cache.feature_shape();
    let cells = h * w;
    let mut cross = vec![0f64; dim];
    let mut square = vec![0f64; dim];
    cache.visit_batches(split, items, 256, |shard| {
        for map in shard.features.chunks_exact(dim * cells) {
            let mean = average_pool(map, cells);
            let v = sparse_pool(map, dim, cells).v;
            for k in 0..dim {
                cross[k] += mean[k] as f64 * v[k] as f64;
                square[k] += v[k] as f64 * v[k] as f64;
            }
        }
        Ok(())
    })?;
    Ok(cross
        .iter()
        .zip(&square)
        .map(|(&c, &s)| if s > 0.0 { (c / s) as f32 } else { 0.0 })
        .collect())
}

/// W_ck = r_k·W⁰_ck − min_c r_k·W⁰_ck (each channel's weights shifted to start at 0) and the
/// original bias.
fn shifted_weights(original: &LinearClassifier, ratio: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let (classes, dim) = (original.classes, original.dim);
    let mut weight: Vec<f32> = (0..classes * dim)
        .map(|i| original.weight[i] * ratio[i % dim])
        .collect();
    for k in 0..dim {
        let low = (0..classes)
            .map(|c| weight[c * dim + k])
            .fold(f32::INFINITY, f32::min);
        (0..classes).for_each(|c| weight[c * dim + k] -= low);
    }
    (weight, original.bias.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principal_rows_are_orthonormal_and_decorrelate_the_cells() {
        use crate::head::frame::defect;
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let dim = 4;
        // Pixel rows: channels 0 and 1 share a common signal; 2 and 3 are independent noise.
        let pixels: Vec<f32> = (0..2000)
            .flat_map(|_| {
                let shared: f32 = rng.random();
                [
                    shared + 0.1 * rng.random::<f32>(),
                    shared + 0.1 * rng.random::<f32>(),
                    rng.random(),
                    rng.random(),
                ]
            })
            .collect();
        let mut full = CellCovariance::new(dim, (0..dim).collect());
        let (first, second) = pixels.split_at(4 * 700);
        full.add(first);
        full.add(second);
        let u = full.axes();
        assert!(defect(dim, dim, &u) < 1e-5);
        // The first axis is the shared signal: equal parts of channels 0 and 1.
        assert!(
            (u[0].abs() - u[1].abs()).abs() < 0.1 && u[0].abs() > 0.6,
            "{u:?}"
        );
        // The rotated channels are uncorrelated over the pixels.
        let rotated: Vec<f32> = pixels
            .chunks_exact(dim)
            .flat_map(|p| {
                u.chunks_exact(dim)
                    .map(move |row| row.iter().zip(p).map(|(a, b)| a * b).sum::<f32>())
            })
            .collect();
        let mut check = CellCovariance::new(dim, (0..dim).collect());
        check.add(&rotated);
        let n = check.rows as f64;
        let cov = |i: usize, j: usize| {
            f64::from(check.gram[i * dim + j]) / n - check.sums[i] * check.sums[j] / (n * n)
        };
        assert!(
            cov(0, 1).abs() < 1e-3 * cov(0, 0),
            "{} {}",
            cov(0, 1),
            cov(0, 0)
        );
        // A frame of channels 1 and 3 stays within them.
        let mut frame = CellCovariance::new(dim, vec![1, 3]);
        frame.add(&pixels);
        let rows = frame.axes();
        assert!(defect(2, dim, &rows) < 1e-5);
        assert!(rows
            .chunks_exact(dim)
            .all(|row| row[0] == 0.0 && row[2] == 0.0));
    }

    #[test]
    fn shifting_each_channel_keeps_every_decision_of_a_linear_classifier() {
        let original = LinearClassifier::new(
            3,
            2,
            vec![1.0, -2.0, -0.5, 3.0, 0.25, 0.0],
            vec![0.1, -0.2, 0.3],
        )
        .unwrap();
        let (weight, bias) = shifted_weights(&original, &[1.0, 1.0]);
        assert!(weight.iter().all(|&w| w >= 0.0));
        assert_eq!(
            (0..3).map(|c| weight[c * 2]).fold(f32::INFINITY, f32::min),
            0.0
        );
        let shifted = LinearClassifier::new(3, 2, weight, bias).unwrap();
        for x in [[1.0, 0.5], [-2.0, 1.0], [0.3, -4.0], [7.0, 7.0]] {
            let (a, b) = (original.logits(&x), shifted.logits(&x));
            let gaps: Vec<f32> = a.iter().zip(&b).map(|(a, b)| b - a).collect();
            assert!(gaps.iter().all(|g| (g - gaps[0]).abs() < 1e-5), "{gaps:?}");
        }
    }

    #[test]
    fn ratios_scale_each_channel_before_the_shift() {
        let original =
            LinearClassifier::new(2, 2, vec![1.0, 2.0, 3.0, -4.0], vec![0.0, 0.0]).unwrap();
        let (weight, _) = shifted_weights(&original, &[0.5, 2.0]);
        assert_eq!(weight, [0.0, 12.0, 1.0, 0.0]);
    }
}
