//! Where a head starts: a frame head from the raw channels that best separate the classes
//! ([`frame_channels`]); a head fitted to the original classifier (`--target original`) from that
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
use crate::head::linalg::identity;
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
