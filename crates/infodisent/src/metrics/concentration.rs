//! Channels for 95%: how many channels carry a decision, under two readings of the paper's
//! definition. For one image, sort a class's contributions `a_ck = W[c,k]·v_k` in descending order:
//! - **paper**: the image's true class, the smallest m whose top-m sum reaches 95 % of the *net*
//!   total Σ_k a_ck (negative contributions included);
//! - **strict**: the predicted class, 95 % of the sum of the *positive* contributions only.
//!
//! Contributions are gauge-fixed first: under softmax cross-entropy a row added to W for every
//! class changes no prediction, so InfoDisent's W is read as W − min_c W (still ≥ 0) and a
//! baseline's as W − mean_c W ([`crate::head::Classifies::gauge_fixed_weights`]).

use super::pass::{Accumulator, Seen};
use crate::error::{Error, Result};
use crate::head::params::argmax;
pub use crate::head::params::{channels_for_fraction, channels_for_net_fraction};
use crate::head::Classifies;
use serde::{Deserialize, Serialize};

/// Channels for 95 % under both readings of the paper's definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelCounts {
    /// The paper's reading: true class, 95 % of the net total (negatives included).
    pub paper: ConcentrationStats,
    /// Images left out of `paper` because their true class's net total is not positive.
    pub paper_undefined: usize,
    /// The strict reading: predicted class, 95 % of the positive contributions.
    pub strict: ConcentrationStats,
}

/// Top-1 accuracy and channels for 95 % of one head over a split: the InfoDisent head's
/// decision the pass computed, or any other head that reads the feature maps itself.
pub struct DecisionTally<'a> {
    /// `None`: read the pass's InfoDisent decision.
    model: Option<&'a dyn Classifies>,
    fixed: Vec<f32>,
    correct: usize,
    paper: Vec<usize>,
    undefined: usize,
    strict: Vec<usize>,
}

impl<'a> DecisionTally<'a> {
    /// Tallies the decisions of the head the pass runs, whose gauge-fixed weights are `fixed`.
    pub fn of_pass(fixed: Vec<f32>) -> Self {
        Self::with(None, fixed)
    }

    /// Tallies the decisions of `model`, read from each feature map.
    pub fn of(model: &'a dyn Classifies) -> Self {
        Self::with(Some(model), model.gauge_fixed_weights())
    }

    fn with(model: Option<&'a dyn Classifies>, fixed: Vec<f32>) -> Self {
        DecisionTally {
            model,
            fixed,
            correct: 0,
            paper: vec![],
            undefined: 0,
            strict: vec![],
        }
    }

    /// Top-1 accuracy and the channel counts.
    pub fn finish(&self) -> (f64, ChannelCounts) {
        let n = self.strict.len();
        (
            self.correct as f64 / n.max(1) as f64,
            ChannelCounts {
                paper: summarize(&self.paper),
                paper_undefined: self.undefined,
                strict: summarize(&self.strict),
            },
        )
    }
}

impl Accumulator for DecisionTally<'_> {
    fn add(&mut self, image: &Seen) -> Result<()> {
        let read;
        let (v, predicted) = match (self.model, image.decision) {
            (Some(model), _) => {
                read = model
                    .decide(image.features, 1, image.grid.cells())?
                    .remove(0);
                (&read.pooled, argmax(&read.logits))
            }
            (None, Some(d)) => (&d.pooled.v, d.predicted),
            (None, None) => {
                return Err(Error::Config(
                    "channel counts of the pass's head, but the pass runs none".into(),
                ))
            }
        };
        let d = v.len();
        let contributions = |c: usize| -> Vec<f32> {
            self.fixed[c * d..(c + 1) * d]
                .iter()
                .zip(v)
                .map(|(w, x)| w * x)
                .collect()
        };
        match channels_for_net_fraction(&contributions(image.truth), 0.95) {
            Some(m) => self.paper.push(m),
            None => self.undefined += 1,
        }
        self.strict
            .push(channels_for_fraction(&contributions(predicted), 0.95));
        self.correct += usize::from(predicted == image.truth);
        Ok(())
    }
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
    use crate::head::trained::{gauge_fixed, Gauge};

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
