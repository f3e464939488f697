//! The explanation of one image: prediction, each channel's contribution `a_ck = W[c,k] · v_k`
//! to the explained class (they add up to the logit with the bias), the strongest evidence for
//! and against, and the heatmap of every registered method ([`super::explainers`]) on the
//! feature grid.

use super::{explainers, Grid, Heatmap, PixelBox, Polarity, Subject};
use crate::classifier::LinearClassifier;
use crate::error::{Error, Result};
use crate::head::params::{channels_for_fraction, Decision, HeadParams};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One channel's part in a decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contribution {
    /// Channel k (after the rotation).
    pub channel: usize,
    /// `a_ck = W[c,k] · v_k`.
    pub contribution: f32,
    /// `a_ck / logit_c`.
    pub share_of_logit: f32,
    /// `a_ck` over the sum of all contributions of the same sign (the channel's part of the
    /// evidence for, or against, the class).
    pub share: f32,
    /// `W[c,k]`.
    pub weight: f32,
    /// Pooled value `v_k`.
    pub value: f32,
    /// `[row, column]` of the cell the pooling took `v_k` from (argmax for positive
    /// contributions, argmin for negative ones).
    pub cell: [usize; 2],
    /// That cell as a box in network-input pixels.
    pub input_box: PixelBox,
}

/// The heatmaps of one image for the explained class on the feature grid (`h × w`,
/// row-major), keyed by method name (`infodisent+`, `infodisent-`, `infodisent-sparse±`, and
/// `cam` when a baseline is available); upsample bilinearly to the input size to draw them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct HeatmapSet(pub BTreeMap<String, Heatmap>);

impl HeatmapSet {
    /// The map of the method called `name`, if it ran.
    pub fn get(&self, name: &str) -> Option<&Heatmap> {
        self.0.get(name)
    }
}

/// Everything that explains one decision; serialised as the per-image JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageExplanation {
    /// Where the image came from (file path, or cache item path).
    pub source: String,
    /// Index within the cache split, when explained from the cache.
    pub item: Option<usize>,
    /// True label, when known.
    pub label: Option<usize>,
    /// Class with the highest logit.
    pub predicted: usize,
    /// The explained class (the prediction unless another was asked for).
    pub class: usize,
    /// Name of the explained class, when known.
    pub class_name: Option<String>,
    /// `logit_c` of the explained class.
    pub logit: f32,
    /// Softmax probability of the explained class.
    pub probability: f32,
    /// `b_c`.
    pub bias: f32,
    /// Every class's logit.
    pub logits: Vec<f32>,
    /// Sum of the positive contributions.
    pub positive_total: f32,
    /// Sum of the negative contributions.
    pub negative_total: f32,
    /// Fewest channels whose positive contributions reach 95% of the positive total.
    pub channels_for_95: usize,
    /// The largest positive contributions, largest first.
    pub positive: Vec<Contribution>,
    /// The most negative contributions (evidence against), most negative first.
    pub negative: Vec<Contribution>,
    /// Heatmaps for the explained class.
    pub heatmaps: HeatmapSet,
    /// File name of the rendered figure, once written.
    pub figure: Option<String>,
}

/// What an explanation needs besides the image's features: the head, the baseline for CAM,
/// the grid and input size, class names.
#[derive(Debug, Clone)]
pub struct ImageExplainer {
    /// The trained head.
    pub head: HeadParams,
    /// Baseline classifier over the same classes (for CAM), if any.
    pub baseline: Option<LinearClassifier>,
    /// Feature grid.
    pub grid: Grid,
    /// Side of the network input in pixels.
    pub input_size: usize,
    /// Class names, indexed by class.
    pub class_names: Vec<String>,
    /// How many contributions to list on each side.
    pub top: usize,
}

impl ImageExplainer {
    /// Checks that head, baseline and grid agree.
    pub fn new(
        head: HeadParams,
        baseline: Option<LinearClassifier>,
        grid: Grid,
        input_size: usize,
        class_names: Vec<String>,
    ) -> Result<Self> {
        if head.dim != grid.dim {
            return Err(Error::Shape(format!(
                "head has D = {} but the features have D = {}",
                head.dim, grid.dim
            )));
        }
        let baseline = baseline.filter(|b| b.dim == head.dim && b.classes == head.classes);
        Ok(ImageExplainer {
            head,
            baseline,
            grid,
            input_size,
            class_names,
            top: 5,
        })
    }

    /// Explains one image from its feature map `[D, h, w]`: the predicted class, or `class`.
    pub fn explain(
        &self,
        features: &[f32],
        class: Option<usize>,
        source: &str,
    ) -> Result<ImageExplanation> {
        let decision = self.head.decide(features, self.grid.cells())?;
        self.explain_decided(features, &decision, class, source)
    }

    /// Explains many images `[n, D, h, w]` with one GEMM for the rotation.
    pub fn explain_batch(
        &self,
        features: &[f32],
        n: usize,
        classes: Option<&[usize]>,
        sources: &[String],
    ) -> Result<Vec<ImageExplanation>> {
        use rayon::prelude::*;
        let len = self.grid.len();
        let decisions = self.head.decide_batch(features, n, self.grid.cells())?;
        decisions
            .par_iter()
            .enumerate()
            .map(|(i, decision)| {
                let class = classes.map(|c| c[i]);
                let source = sources.get(i).map_or("", String::as_str);
                self.explain_decided(&features[i * len..(i + 1) * len], decision, class, source)
            })
            .collect()
    }

    fn explain_decided(
        &self,
        features: &[f32],
        decision: &Decision,
        class: Option<usize>,
        source: &str,
    ) -> Result<ImageExplanation> {
        let (grid, head) = (self.grid, &self.head);
        let (pooled, predicted) = (&decision.pooled, decision.predicted);
        let class = class.unwrap_or(predicted);
        if class >= head.classes {
            return Err(Error::Config(format!(
                "class {class} out of range (the head has {} classes)",
                head.classes
            )));
        }
        let weights = &head.weight[class * head.dim..(class + 1) * head.dim];
        let a = head.contributions(decision, class);
        let positive_total: f32 = a.iter().filter(|&&x| x > 0.0).sum();
        let negative_total: f32 = a.iter().filter(|&&x| x < 0.0).sum();
        let logit = decision.logits[class];
        let contribution = |k: usize, polarity: Polarity| {
            let (cell, total) = match polarity {
                Polarity::Positive => (pooled.argmax[k], positive_total),
                Polarity::Negative => (pooled.argmin[k], negative_total),
            };
            Contribution {
                channel: k,
                contribution: a[k],
                share_of_logit: a[k] / logit,
                share: a[k] / total,
                weight: weights[k],
                value: pooled.v[k],
                cell: grid.cell_rc(cell),
                input_box: grid.cell_box(cell, self.input_size),
            }
        };
        let mut order: Vec<usize> = (0..head.dim).collect();
        order.sort_unstable_by(|&x, &y| a[y].total_cmp(&a[x]));
        let positive = order
            .iter()
            .take_while(|&&k| a[k] > 0.0)
            .take(self.top)
            .map(|&k| contribution(k, Polarity::Positive))
            .collect();
        let negative = order
            .iter()
            .rev()
            .take_while(|&&k| a[k] < 0.0)
            .take(self.top)
            .map(|&k| contribution(k, Polarity::Negative))
            .collect();
        let image = Subject {
            features,
            grid,
            decision,
        };
        let heatmaps = HeatmapSet(
            explainers(head, self.baseline.as_ref())
                .iter()
                .map(|e| Ok((e.name().to_owned(), e.heatmap(&image, class)?)))
                .collect::<Result<_>>()?,
        );
        Ok(ImageExplanation {
            source: source.to_owned(),
            item: None,
            label: None,
            predicted,
            class,
            class_name: self.class_names.get(class).cloned(),
            logit,
            probability: softmax_at(&decision.logits, class),
            bias: head.bias[class],
            logits: decision.logits.clone(),
            positive_total,
            negative_total,
            channels_for_95: channels_for_fraction(&a, 0.95),
            positive,
            negative,
            heatmaps,
            figure: None,
        })
    }
}

/// Softmax probability of entry `i`, computed stably.
pub fn softmax_at(logits: &[f32], i: usize) -> f32 {
    let m = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let z: f32 = logits.iter().map(|&l| (l - m).exp()).sum();
    (logits[i] - m).exp() / z
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn contributions_add_up_to_the_logit() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let (d, c) = (16, 3);
        let grid = Grid { dim: d, h: 3, w: 3 };
        // A random orthogonal-ish rotation is not needed: any U makes Σ a + b = logit hold.
        let rotation: Vec<f32> = (0..d * d).map(|_| rng.random_range(-0.5..0.5)).collect();
        let weight: Vec<f32> = (0..c * d).map(|_| rng.random_range(0.0..1.0)).collect();
        let head = HeadParams::new(d, c, rotation, weight, vec![0.1, -0.2, 0.3]).unwrap();
        let ex = ImageExplainer {
            top: d,
            ..ImageExplainer::new(head, None, grid, 96, vec![]).unwrap()
        };
        let f: Vec<f32> = (0..grid.len())
            .map(|_| rng.random_range(0.0..2.0))
            .collect();
        for class in 0..c {
            let e = ex.explain(&f, Some(class), "x").unwrap();
            let sum: f32 = e
                .positive
                .iter()
                .chain(&e.negative)
                .map(|x| x.contribution)
                .sum();
            assert!(
                (sum + e.bias - e.logit).abs() <= 1e-4,
                "{sum} + {} vs {}",
                e.bias,
                e.logit
            );
            assert!((e.positive_total + e.negative_total + e.bias - e.logit).abs() <= 1e-4);
            assert!(e
                .positive
                .windows(2)
                .all(|p| p[0].contribution >= p[1].contribution));
            assert!(e.negative.iter().all(|x| x.contribution < 0.0));
        }
        let batch = ex
            .explain_batch(&[f.clone(), f.clone()].concat(), 2, None, &[])
            .unwrap();
        assert_eq!(batch[1].logits, ex.explain(&f, None, "").unwrap().logits);
    }
}
