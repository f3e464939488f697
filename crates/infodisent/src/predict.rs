//! Classification with the original model: the top classes and their probabilities for images.

use crate::cache::Skipped;
use crate::engine::{Backbone, BackboneOutput};
use crate::error::{Error, Result};
use crate::onnx::model::FeatureLayout;
use crate::preprocess::Preprocess;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Images per engine call.
const BATCH: usize = 16;

/// One of an image's top classes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopClass {
    /// Class index of the original classifier.
    pub class: usize,
    /// Class name (the index as text when the model has no names).
    pub label: String,
    /// Softmax probability.
    pub prob: f32,
}

/// The top classes of one image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// The image file.
    pub path: String,
    /// Classes by decreasing probability.
    pub top: Vec<TopClass>,
}

pub use crate::classifier::softmax;

/// The `k` most probable classes for one image's logits.
pub fn top_k(logits: &[f32], k: usize, names: Option<&[String]>) -> Vec<TopClass> {
    let probs = softmax(logits);
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
    order
        .into_iter()
        .take(k)
        .map(|class| TopClass {
            class,
            label: names
                .and_then(|n| n.get(class))
                .cloned()
                .unwrap_or_else(|| class.to_string()),
            prob: probs[class],
        })
        .collect()
}

/// Per-image logits of a batch: the graph's own, or the stored classifier applied to the
/// average-pooled feature map when the graph has no logits output.
fn batch_logits(backbone: &Backbone, out: BackboneOutput, n: usize) -> Result<Vec<Vec<f32>>> {
    let model = backbone.model();
    if let Some(l) = out.logits {
        let c = l.len() / n.max(1);
        if c == 0 || c * n != l.len() {
            return Err(Error::Shape(format!("{} logits for {n} images", l.len())));
        }
        return Ok(l.chunks_exact(c).map(<[f32]>::to_vec).collect());
    }
    let classifier = model
        .classifier
        .as_ref()
        .filter(|_| model.layout == FeatureLayout::Nchw)
        .ok_or_else(|| {
            Error::model(
                &model.name,
                "the model has neither a logits output nor a recognised classifier",
            )
        })?;
    let [d, h, w] = model.feature_shape;
    let cells = h * w;
    if out.features.len() != n * d * cells || classifier.dim != d {
        return Err(Error::Shape(format!(
            "features of {n} images do not match [{d},{h},{w}] and classifier width {}",
            classifier.dim
        )));
    }
    Ok(classifier.logits_of_maps(&out.features, cells))
}

/// The top `k` classes of each image. Unreadable images are an error naming the file, or with
/// `skip_bad` are left out and returned as skips.
pub fn predict_files(
    backbone: &mut Backbone,
    paths: &[PathBuf],
    preprocess: &Preprocess,
    k: usize,
    skip_bad: bool,
) -> Result<(Vec<Prediction>, Vec<Skipped>)> {
    preprocess.validate()?;
    let names = backbone.model().class_names.clone();
    let mut predictions = Vec::with_capacity(paths.len());
    let mut skipped = Vec::new();
    // Chunk by chunk, so memory stays bounded however many images are given.
    for chunk in paths.chunks(BATCH) {
        let mut batch = Vec::with_capacity(chunk.len() * preprocess.input_len());
        let mut used = Vec::with_capacity(chunk.len());
        for path in chunk {
            let prepared = crate::imageio::load_rgb(path).and_then(|img| {
                preprocess
                    .apply(&img)
                    .map_err(|e| Error::input(path, e.to_string()))
            });
            match prepared {
                Ok(x) => {
                    batch.extend_from_slice(&x);
                    used.push(path.display().to_string());
                }
                Err(e) if skip_bad => {
                    tracing::warn!("skipping {e}");
                    skipped.push(Skipped {
                        path: path.display().to_string(),
                        reason: e.to_string(),
                    });
                }
                Err(e) => return Err(e),
            }
        }
        if used.is_empty() {
            continue;
        }
        let out = backbone.run(&batch, used.len())?;
        for (logits, path) in batch_logits(backbone, out, used.len())?
            .into_iter()
            .zip(used)
        {
            predictions.push(Prediction {
                path,
                top: top_k(&logits, k, names.as_deref()),
            });
        }
    }
    Ok((predictions, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_orders_by_probability() {
        let names: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let top = top_k(&[0.0, 2.0, 1.0], 2, Some(&names));
        assert_eq!(top.iter().map(|t| t.class).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(top[0].label, "b");
        let p = softmax(&[0.0, 2.0, 1.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!((top[0].prob - p[1]).abs() < 1e-7);
        assert_eq!(top_k(&[1000.0, 0.0], 5, None)[1].label, "1");
    }
}
