//! Channels for 95%: how many channels carry a decision, under two readings of the paper's
//! definition. For one image, sort a class's contributions `a_ck = W[c,k]·v_k` in descending order:
//! - **paper**: the image's true class, the smallest m whose top-m sum reaches 95 % of the *net*
//!   total Σ_k a_ck (negative contributions included);
//! - **strict**: the predicted class, 95 % of the sum of the *positive* contributions only.
//!
//! Contributions are gauge-fixed first: under softmax cross-entropy a row added to W for every
//! class changes no prediction, so InfoDisent's W is read as W − min_c W (still ≥ 0) and a
//! baseline's as W − mean_c W.

pub use crate::head::params::{channels_for_fraction, channels_for_net_fraction};
use serde::{Deserialize, Serialize};

/// How a weight matrix is gauge-fixed before contributions are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gauge {
    /// Subtract each channel's smallest weight over the classes (keeps W ≥ 0).
    Min,
    /// Subtract each channel's mean weight over the classes.
    Mean,
}

/// `weight` `[classes, dim]` with the per-channel part shared by every class removed.
pub fn gauge_fixed(weight: &[f32], classes: usize, dim: usize, gauge: Gauge) -> Vec<f32> {
    let shift: Vec<f32> = (0..dim)
        .map(|k| {
            let column = (0..classes).map(|c| weight[c * dim + k]);
            match gauge {
                Gauge::Min => column.fold(f32::INFINITY, f32::min),
                Gauge::Mean => column.sum::<f32>() / classes as f32,
            }
        })
        .collect();
    weight
        .chunks_exact(dim)
        .flat_map(|row| row.iter().zip(&shift).map(|(w, s)| w - s))
        .collect()
}

/// One histogram bar: how many images needed at most `upto` channels (and more than the
/// previous bar's `upto`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistogramBin {
    /// Inclusive upper edge.
    pub upto: usize,
    /// Images in the bar.
    pub count: usize,
}

/// Summary of channels-for-95% over a set of images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConcentrationStats {
    /// Images measured.
    pub images: usize,
    /// Mean channel count.
    pub mean: f64,
    /// Median channel count.
    pub median: f64,
    /// Counts in bars with edges 1, 2, 3, 4, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000.
    pub histogram: Vec<HistogramBin>,
}

/// Mean, median and histogram of per-image channel counts.
pub fn summarize(counts: &[usize]) -> ConcentrationStats {
    const EDGES: [usize; 14] = [1, 2, 3, 4, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000];
    let n = counts.len();
    let mean = if n == 0 {
        0.0
    } else {
        counts.iter().sum::<usize>() as f64 / n as f64
    };
    let mut sorted = counts.to_vec();
    sorted.sort_unstable();
    let median = match n {
        0 => 0.0,
        _ if n % 2 == 1 => sorted[n / 2] as f64,
        _ => (sorted[n / 2 - 1] + sorted[n / 2]) as f64 / 2.0,
    };
    let max = sorted.last().copied().unwrap_or(0);
    let mut histogram = Vec::new();
    let mut lower = 0;
    for &upto in EDGES.iter().chain(std::iter::once(&usize::MAX)) {
        let count = sorted.iter().filter(|&&m| m > lower && m <= upto).count();
        histogram.push(HistogramBin {
            upto: upto.min(max.max(1)),
            count,
        });
        if upto >= max {
            break;
        }
        lower = upto;
    }
    ConcentrationStats {
        images: n,
        mean,
        median,
        histogram,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_the_channels_that_carry_the_evidence() {
        assert_eq!(channels_for_fraction(&[10.0, -5.0, 0.1, 0.1], 0.95), 1);
        assert_eq!(channels_for_fraction(&[1.0, 1.0, 1.0, 1.0], 0.95), 4);
        assert_eq!(channels_for_fraction(&[3.0, 1.0, 0.2], 0.95), 2);
        assert_eq!(channels_for_fraction(&[-1.0, 0.0], 0.95), 0);
    }

    #[test]
    fn the_paper_reading_counts_against_the_net_total() {
        // Net total 10 − 5 + 0.1 + 0.1 = 5.2: the largest contribution alone exceeds 95 % of it.
        assert_eq!(
            channels_for_net_fraction(&[10.0, -5.0, 0.1, 0.1], 0.95),
            Some(1)
        );
        assert_eq!(
            channels_for_net_fraction(&[2.0, 2.0, 1.0, -1.0], 0.95),
            Some(2)
        );
        assert_eq!(
            channels_for_net_fraction(&[2.0, 2.0, 1.0, -0.5], 0.95),
            Some(3)
        );
        assert_eq!(channels_for_net_fraction(&[1.0, -2.0], 0.95), None);
    }

    #[test]
    fn gauge_fixing_removes_what_every_class_shares() {
        // Channel 1 carries the same weight 3 for both classes: it decides nothing.
        let w = [1.0, 3.0, 0.0, 3.0];
        assert_eq!(gauge_fixed(&w, 2, 2, Gauge::Min), vec![1.0, 0.0, 0.0, 0.0]);
        assert_eq!(
            gauge_fixed(&w, 2, 2, Gauge::Mean),
            vec![0.5, 0.0, -0.5, 0.0]
        );
        let v = [1.0f32, 1.0];
        let raw: Vec<f32> = w[..2].iter().zip(&v).map(|(w, v)| w * v).collect();
        let fixed: Vec<f32> = gauge_fixed(&w, 2, 2, Gauge::Min)[..2]
            .iter()
            .zip(&v)
            .map(|(w, v)| w * v)
            .collect();
        assert_eq!(channels_for_fraction(&raw, 0.95), 2);
        assert_eq!(channels_for_fraction(&fixed, 0.95), 1);
    }

    #[test]
    fn summary_has_mean_median_and_bars() {
        let s = summarize(&[1, 1, 2, 7, 30]);
        assert_eq!((s.mean, s.median), (8.2, 2.0));
        let total: usize = s.histogram.iter().map(|b| b.count).sum();
        assert_eq!(total, 5);
        assert_eq!(s.histogram[0], HistogramBin { upto: 1, count: 2 });
        assert_eq!(s.histogram.last().unwrap().upto, 30);
    }
}
