//! The baseline: Class Activation Mapping of a global-average-pool + linear classifier,
//! `ReLU(Σ_k W[c,k] · F_k)`. For such a head this equals Grad-CAM at the last layer (the
//! gradient of the logit with respect to `F_k` is `W[c,k] / (h·w)` everywhere), so no backward
//! pass is needed. For a max-pooled probe each channel's term `W[c,k] · max F_k` sits on its
//! maximal cell, where the gradient is.

use super::{check_features, Explainer, Grid, Heatmap, Subject};
use crate::classifier::{LinearClassifier, Pooling};
use crate::error::Result;
use crate::head::params::argmax;

/// Name of the CAM map.
pub const NAME: &str = "cam";

/// CAM of a linear classifier on pooled features (the original model's head, or a linear
/// probe trained on the same features).
pub struct Cam<'a> {
    classifier: &'a LinearClassifier,
}

impl<'a> Cam<'a> {
    /// CAM of `classifier`.
    pub fn new(classifier: &'a LinearClassifier) -> Self {
        Cam { classifier }
    }
}

impl Explainer for Cam<'_> {
    fn name(&self) -> &str {
        NAME
    }
    fn heatmap(&self, image: &Subject<'_>, class: usize) -> Result<Heatmap> {
        check_features(image, self.classifier.dim, self.classifier.classes, class)?;
        Ok(cam_map(self.classifier, image.features, image.grid, class))
    }
}

/// The CAM of one class.
pub fn cam_map(
    classifier: &LinearClassifier,
    features: &[f32],
    grid: Grid,
    class: usize,
) -> Heatmap {
    let cells = grid.cells();
    let weights = &classifier.weight[class * classifier.dim..(class + 1) * classifier.dim];
    let mut values = vec![0.0f32; cells];
    for (k, &wk) in weights.iter().enumerate() {
        let channel = &features[k * cells..(k + 1) * cells];
        match classifier.pooling {
            Pooling::Average => {
                for (acc, &x) in values.iter_mut().zip(channel) {
                    *acc += wk * x;
                }
            }
            Pooling::Max => {
                let at = argmax(channel);
                values[at] += wk * channel[at];
            }
        }
    }
    values.iter_mut().for_each(|v| *v = v.max(0.0));
    Heatmap {
        h: grid.h,
        w: grid.w,
        values,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cam_averages_to_the_logit_minus_bias() {
        let clf = LinearClassifier::new(1, 2, vec![1.0, 0.5], vec![0.3]).unwrap();
        let grid = Grid { dim: 2, h: 1, w: 2 };
        let f = [2.0, 4.0, 2.0, 0.0];
        let identity = crate::head::params::HeadParams::new(
            2,
            1,
            vec![1.0, 0.0, 0.0, 1.0],
            vec![0.0, 0.0],
            vec![0.0],
        )
        .unwrap();
        let decision = identity.decide(&f, grid.cells()).unwrap();
        let image = Subject {
            features: &f,
            grid,
            decision: &decision,
        };
        let cam = Cam::new(&clf).heatmap(&image, 0).unwrap();
        assert_eq!(cam.values, vec![3.0, 4.0]);
        let pooled = [3.0, 1.0];
        let mean: f32 = cam.values.iter().sum::<f32>() / 2.0;
        assert!((clf.logits(&pooled)[0] - 0.3 - mean).abs() < 1e-6);

        // Max pooling: each channel's term on its maximal cell; they sum to the logit.
        let max = clf.with_pooling(Pooling::Max);
        let cam = Cam::new(&max).heatmap(&image, 0).unwrap();
        assert_eq!(cam.values, vec![1.0, 4.0]);
        let logit = max.logits_of_map(&f, 2)[0];
        assert!((cam.values.iter().sum::<f32>() + 0.3 - logit).abs() < 1e-6);
    }
}
