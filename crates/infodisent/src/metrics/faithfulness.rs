//! Deletion and insertion (Petsiuk et al., RISE): remove the pixels a heatmap ranks highest,
//! step by step, and watch the class probability fall (deletion, lower AUC is better); or
//! reveal them into a blurred image and watch it rise (insertion, higher is better). The
//! perturbed images go through the backbone and the head in batches.

use crate::engine::FeatureFn;
use crate::error::{Error, Result};
use crate::explain::{Explainer, Grid, Heatmap, Subject};
use crate::head::params::Decision;
use crate::preprocess::Preprocess;
use image::RgbImage;
use serde::{Deserialize, Serialize};

/// Mean deletion and insertion AUC of one method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaithfulnessScore {
    /// Method name.
    pub method: String,
    /// Images measured.
    pub images: usize,
    /// Mean area under the probability curve while deleting (lower is better).
    pub deletion_auc: f64,
    /// Mean area under the probability curve while inserting (higher is better).
    pub insertion_auc: f64,
}

/// One image prepared for perturbation.
#[derive(Debug, Clone)]
pub struct PerturbationImage {
    /// The network input `[3, S, S]`.
    pub input: Vec<f32>,
    /// The same image blurred, the start of insertion.
    pub blurred: Vec<f32>,
    /// Its feature map `[D, h, w]`, from which heatmaps are computed.
    pub features: Vec<f32>,
    /// The head's decision on it.
    pub decision: Decision,
    /// The class whose probability is tracked (the predicted one).
    pub class: usize,
}

impl PerturbationImage {
    /// Prepares a decoded image: network input, blurred input (σ = input size / 20); the
    /// tracked class is the decision's prediction.
    pub fn new(
        img: &RgbImage,
        pre: &Preprocess,
        features: Vec<f32>,
        decision: Decision,
    ) -> Result<Self> {
        let (input, blurred) = input_and_blurred(img, pre)?;
        Ok(PerturbationImage {
            input,
            blurred,
            features,
            class: decision.predicted,
            decision,
        })
    }
}

/// The network input of `img` and the same image blurred (σ = input size / 20), where
/// insertion starts.
pub fn input_and_blurred(img: &RgbImage, pre: &Preprocess) -> Result<(Vec<f32>, Vec<f32>)> {
    let view = pre.resize_crop(img)?;
    let blurred_view = image::imageops::blur(&view, pre.crop as f32 / 20.0);
    let mut input = vec![0.0; pre.input_len()];
    let mut blurred = vec![0.0; pre.input_len()];
    pre.normalize_into(&view, &mut input)?;
    pre.normalize_into(&blurred_view, &mut blurred)?;
    Ok((input, blurred))
}

/// Pixels of the `size × size` input, most salient first (ties keep raster order).
pub fn pixel_order(map: &Heatmap, size: usize) -> Vec<usize> {
    let up = map.upsample(size);
    let mut order: Vec<usize> = (0..up.len()).collect();
    order.sort_by(|&a, &b| up[b].total_cmp(&up[a]));
    order
}

/// The `2 · (steps + 1)` inputs of one curve pair: deletion (pixels replaced by 0, the
/// normalised mean) for fractions 0, 1/steps, …, 1, then insertion (pixels of `input` revealed
/// into `blurred`) for the same fractions.
pub fn perturbed_inputs(input: &[f32], blurred: &[f32], order: &[usize], steps: usize) -> Vec<f32> {
    let plane = order.len();
    let mut out = Vec::with_capacity(2 * (steps + 1) * input.len());
    for deleting in [true, false] {
        let mut current = if deleting {
            input.to_vec()
        } else {
            blurred.to_vec()
        };
        let mut done = 0;
        for t in 0..=steps {
            let upto = plane * t / steps;
            for &p in &order[done..upto] {
                for c in 0..3 {
                    current[c * plane + p] = if deleting { 0.0 } else { input[c * plane + p] };
                }
            }
            done = upto;
            out.extend_from_slice(&current);
        }
    }
    out
}

/// Area under a curve sampled at evenly spaced points of [0, 1] (trapezoid rule).
pub fn trapezoid_auc(values: &[f32]) -> f64 {
    if values.len() < 2 {
        return values.first().map_or(0.0, |&v| f64::from(v));
    }
    let dx = 1.0 / (values.len() - 1) as f64;
    values
        .windows(2)
        .map(|w| (f64::from(w[0]) + f64::from(w[1])) * 0.5 * dx)
        .sum()
}

/// Refuses curves of no step, whatever the images.
fn check_steps(steps: usize) -> Result<()> {
    if steps == 0 {
        return Err(Error::Config(
            "deletion/insertion needs at least one step".into(),
        ));
    }
    Ok(())
}

/// Deletion and insertion AUC of one map: the probability of `class` as the model sees the
/// `2 · (steps + 1)` perturbed inputs. `model` maps a batch `[n, 3, S, S]` to logits `[n, C]`.
pub fn score_map(
    input: &[f32],
    blurred: &[f32],
    class: usize,
    map: &Heatmap,
    size: usize,
    steps: usize,
    model: &mut FeatureFn<'_>,
) -> Result<(f64, f64)> {
    check_steps(steps)?;
    let batch = perturbed_inputs(input, blurred, &pixel_order(map, size), steps);
    let n = 2 * (steps + 1);
    let logits = model(&batch, n)?;
    if logits.len() % n != 0 || logits.len() / n <= class {
        return Err(Error::Shape(format!(
            "model returned {} logits for {n} images and class {class}",
            logits.len(),
        )));
    }
    let classes = logits.len() / n;
    let probs: Vec<f32> = logits
        .chunks_exact(classes)
        .map(|l| crate::explain::image::softmax_at(l, class))
        .collect();
    Ok((
        trapezoid_auc(&probs[..steps + 1]),
        trapezoid_auc(&probs[steps + 1..]),
    ))
}

/// Mean deletion and insertion AUC of every explainer over `images`. `model` maps a batch of
/// inputs `[n, 3, S, S]` to class logits `[n, C]` (backbone, then the head being explained).
pub fn deletion_insertion(
    explainers: &[&dyn Explainer],
    images: &[PerturbationImage],
    grid: Grid,
    size: usize,
    steps: usize,
    model: &mut FeatureFn<'_>,
) -> Result<Vec<FaithfulnessScore>> {
    check_steps(steps)?;
    let mut sums = vec![(0.0f64, 0.0f64); explainers.len()];
    let bar = crate::progress::bar((images.len() * explainers.len()) as u64, "deletion", "map");
    for img in images {
        for (e, explainer) in explainers.iter().enumerate() {
            let subject = Subject {
                features: &img.features,
                grid,
                decision: &img.decision,
            };
            let map = explainer.heatmap(&subject, img.class)?;
            let (del, ins) = score_map(
                &img.input,
                &img.blurred,
                img.class,
                &map,
                size,
                steps,
                model,
            )?;
            sums[e].0 += del;
            sums[e].1 += ins;
            bar.inc(1);
            bar.check()?;
        }
    }
    bar.finish_and_clear();
    let n = images.len().max(1) as f64;
    Ok(explainers
        .iter()
        .zip(sums)
        .map(|(e, (del, ins))| FaithfulnessScore {
            method: e.name().to_owned(),
            images: images.len(),
            deletion_auc: del / n,
            insertion_auc: ins / n,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curves_delete_and_reveal_in_map_order() {
        let input = vec![1.0f32; 3 * 4];
        let blurred = vec![0.5f32; 3 * 4];
        let order = [3, 1, 0, 2];
        let out = perturbed_inputs(&input, &blurred, &order, 2);
        assert_eq!(out.len(), 6 * 12);
        let img = |i: usize| &out[i * 12..(i + 1) * 12];
        assert_eq!(img(0), &input[..]);
        assert_eq!(&img(1)[..4], &[1.0, 0.0, 1.0, 0.0]);
        assert!(img(2).iter().all(|&v| v == 0.0));
        assert_eq!(img(3), &blurred[..]);
        assert_eq!(&img(4)[4..8], &[0.5, 1.0, 0.5, 1.0]);
        assert_eq!(img(5), &input[..]);
        assert!((trapezoid_auc(&[1.0, 0.5, 0.0]) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn a_faithful_map_deletes_faster_than_its_reverse() {
        // A toy "model" whose class-0 logit is the mean of the left half of channel 0.
        let size = 4;
        let grid = Grid { dim: 1, h: 1, w: 2 };
        struct Fixed(Vec<f32>, &'static str);
        impl Explainer for Fixed {
            fn name(&self) -> &str {
                self.1
            }
            fn heatmap(&self, _: &Subject<'_>, _: usize) -> Result<Heatmap> {
                Ok(Heatmap {
                    h: 1,
                    w: 2,
                    values: self.0.clone(),
                })
            }
        }
        let good = Fixed(vec![1.0, 0.0], "good");
        let bad = Fixed(vec![0.0, 1.0], "bad");
        let head =
            crate::head::params::HeadParams::new(1, 2, vec![1.0], vec![1.0, 0.0], vec![0.0, 0.0])
                .unwrap();
        let image = PerturbationImage {
            input: vec![4.0; 3 * 16],
            blurred: vec![0.0; 3 * 16],
            features: vec![0.0; 2],
            decision: head.decide(&[0.0; 2], 2).unwrap(),
            class: 0,
        };
        let mut model = |batch: &[f32], n: usize| -> Result<Vec<f32>> {
            Ok((0..n)
                .flat_map(|i| {
                    let x = &batch[i * 48..i * 48 + 16];
                    let left: f32 = (0..size)
                        .flat_map(|r| (0..2).map(move |c| r * size + c))
                        .map(|p| x[p])
                        .sum::<f32>()
                        / 8.0;
                    [left, 0.0]
                })
                .collect())
        };
        let scores =
            deletion_insertion(&[&good, &bad], &[image], grid, size, 4, &mut model).unwrap();
        assert!(scores[0].deletion_auc < scores[1].deletion_auc);
        assert!(scores[0].insertion_auc > scores[1].insertion_auc);
    }
}
