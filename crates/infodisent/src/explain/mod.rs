//! Explanations of an InfoDisent head's decisions, computed from cached feature maps without a
//! backward pass: per-image contributions ([`image`]), prototypes ([`prototypes`]), class-level
//! summaries ([`class`]), heatmaps (one [`Explainer`] per method: [`infodisent`], [`sparse`],
//! [`cam`], [`random`]) and PNG figures ([`render`]).

pub mod cam;
pub mod class;
pub mod geometry;
pub mod image;
pub mod infodisent;
pub mod prototypes;
pub mod random;
pub mod render;
pub mod session;
pub mod sparse;

pub use cam::Cam;
pub use class::{explain_classes, ClassChannel, ClassExplanation};
pub use geometry::{Grid, ImageGeometry, PixelBox};
pub use image::{Contribution, HeatmapSet, ImageExplainer, ImageExplanation};
pub use infodisent::InfoDisentMap;
pub use prototypes::{
    find_prototypes, top_weighted_channels, ChannelPrototypes, Prototype, Prototypes,
    PROTOTYPES_FILE,
};
pub use random::RandomMap;
pub use sparse::SparseInfoDisentMap;

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// File name of a trained InfoDisent head inside a training output folder.
pub const HEAD_FILE: &str = "head.safetensors";
/// File name of a trained linear probe inside a training output folder.
pub const PROBE_FILE: &str = "linear.safetensors";

fn resolve(path: &Path, file: &str) -> PathBuf {
    if path.is_dir() {
        path.join(file)
    } else {
        path.to_path_buf()
    }
}

/// Loads an InfoDisent head from a training folder (its `head.safetensors`) or a file.
pub fn load_head(path: impl AsRef<Path>) -> Result<crate::head_params::HeadParams> {
    let file = resolve(path.as_ref(), HEAD_FILE);
    if !file.exists() {
        return Err(Error::input(
            &file,
            "no trained head here (run `infodisent train`)",
        ));
    }
    crate::head_params::HeadParams::load(file)
}

/// Loads a linear probe from a training folder (its `linear.safetensors`) or a file.
pub fn load_probe(path: impl AsRef<Path>) -> Result<crate::classifier::LinearClassifier> {
    let file = resolve(path.as_ref(), PROBE_FILE);
    if !file.exists() {
        return Err(Error::input(
            &file,
            "no linear probe here (run `infodisent train --kind linear-probe`)",
        ));
    }
    crate::classifier::LinearClassifier::load(file)
}

/// The baseline for CAM and the channel-count comparison: the probe when given, else the
/// original classifier stored in the cache when it has the dataset's classes.
pub fn baseline_classifier(
    cache: &crate::cache::FeatureCache,
    probe: Option<&Path>,
) -> Result<Option<(String, crate::classifier::LinearClassifier)>> {
    if let Some(p) = probe {
        return Ok(Some(("linear probe".to_owned(), load_probe(p)?)));
    }
    let found = cache
        .classifier()?
        .filter(|c| c.classes == cache.num_classes())
        .map(|c| ("original classifier".to_owned(), c));
    if found.is_none() {
        let why = match (
            &cache.manifest().original_head,
            cache.manifest().original_classes,
        ) {
            (Some(head), _)
                if head.kind == crate::model::OriginalHeadKind::Other
                    || head.kind == crate::model::OriginalHeadKind::Missing =>
            {
                head.detail.clone()
            }
            (_, Some(c)) if c != cache.num_classes() => format!(
                "the original classifier has {c} classes, the dataset {}",
                cache.num_classes()
            ),
            _ => "the cache holds no original classifier".to_owned(),
        };
        tracing::warn!("no CAM baseline: {why}; pass --probe DIR (a linear probe) for one");
    }
    Ok(found)
}

/// Which side of the evidence a map shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Polarity {
    /// Evidence for the class (drawn red).
    Positive,
    /// Evidence against the class (drawn blue).
    Negative,
}

/// A nonnegative saliency map on an `h × w` grid (the feature grid, or a refinement of it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heatmap {
    /// Rows.
    pub h: usize,
    /// Columns.
    pub w: usize,
    /// Row-major values, `h · w`.
    pub values: Vec<f32>,
}

impl Heatmap {
    /// Index of the largest value (the first on ties).
    pub fn argmax(&self) -> usize {
        crate::head_params::argmax(&self.values)
    }

    /// The largest value.
    pub fn max(&self) -> f32 {
        self.values.iter().copied().fold(0.0, f32::max)
    }

    /// Bilinear upsampling to `size × size` network-input pixels.
    pub fn upsample(&self, size: usize) -> Vec<f32> {
        geometry::upsample_bilinear(&self.values, self.h, self.w, size, size)
    }

    /// The network-input pixel `(x, y)` where the upsampled map peaks: the centre of the peak
    /// cell, since bilinear upsampling of a grid peaks at a cell centre.
    pub fn peak_point(&self, size: usize) -> (f64, f64) {
        let i = self.argmax();
        let (r, s) = (i / self.w.max(1), i % self.w.max(1));
        (
            (s as f64 + 0.5) * size as f64 / self.w as f64,
            (r as f64 + 0.5) * size as f64 / self.h as f64,
        )
    }
}

/// One heatmap method: given one image's feature map `[D, h, w]` and a class, where is the
/// evidence. Metrics (deletion/insertion, pointing game) are written once against this trait.
pub trait Explainer: Sync {
    /// Short name used in reports (`infodisent+`, `cam`, …).
    fn name(&self) -> &str;
    /// The map for `class` on the feature grid (or a refinement of it).
    fn heatmap(&self, features: &[f32], grid: Grid, class: usize) -> Result<Heatmap>;
}

fn check_features(
    features: &[f32],
    grid: Grid,
    dim: usize,
    classes: usize,
    class: usize,
) -> Result<()> {
    use crate::error::Error;
    if grid.dim != dim || features.len() != grid.len() {
        return Err(Error::Shape(format!(
            "features of {} values for a {}×{}×{} grid, explainer expects D = {dim}",
            features.len(),
            grid.dim,
            grid.h,
            grid.w
        )));
    }
    if class >= classes {
        return Err(Error::Config(format!(
            "class {class} out of range (the head has {classes} classes)"
        )));
    }
    Ok(())
}
