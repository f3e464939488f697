//! Explanations of an InfoDisent head's decisions, computed from cached feature maps without a
//! backward pass: per-image contributions ([`image`]), prototypes ([`prototypes`]), class-level
//! summaries ([`class`]), heatmaps (one [`Explainer`] per method: [`infodisent`], [`sparse`],
//! [`cam`], [`random`]) and PNG figures ([`render`]).

pub mod cam;
pub mod class;
pub mod image;
pub mod infodisent;
pub mod prototypes;
pub mod random;
pub mod render;
pub mod session;
pub mod sparse;

pub use crate::geometry::{Grid, ImageGeometry, PixelBox};
pub use cam::Cam;
pub use class::{explain_classes, ClassChannel, ClassExplanation};
pub use image::{Contribution, HeatmapSet, ImageExplainer, ImageExplanation};
pub use infodisent::InfoDisentMap;
pub use prototypes::{
    find_prototypes, top_weighted_channels, ChannelPrototypes, Prototype, Prototypes,
};
pub use random::RandomMap;
pub use sparse::SparseInfoDisentMap;

use crate::classifier::LinearClassifier;
use crate::error::{Error, Result};
use crate::head::params::{Decision, HeadParams};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The baseline for CAM and the channel-count comparison: the probe when given, else the
/// original classifier stored in the cache when it has the dataset's classes.
pub fn baseline_classifier(
    cache: &crate::cache::FeatureCache,
    probe: Option<&Path>,
) -> Result<Option<(String, LinearClassifier)>> {
    if let Some(p) = probe {
        return Ok(Some((
            "linear probe".to_owned(),
            crate::runs::load_probe(p)?,
        )));
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
                if head.kind == crate::onnx::model::OriginalHeadKind::Other
                    || head.kind == crate::onnx::model::OriginalHeadKind::Missing =>
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

impl Polarity {
    /// `positive` or `negative`, by this polarity.
    pub fn pick<T>(self, positive: T, negative: T) -> T {
        match self {
            Polarity::Positive => positive,
            Polarity::Negative => negative,
        }
    }
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
        crate::head::params::argmax(&self.values)
    }

    /// The largest value.
    pub fn max(&self) -> f32 {
        self.values.iter().copied().fold(0.0, f32::max)
    }

    /// Bilinear upsampling to `size × size` network-input pixels.
    pub fn upsample(&self, size: usize) -> Vec<f32> {
        crate::draw::upsample_bilinear(&self.values, self.h, self.w, size, size)
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

/// One image as every explainer sees it: its feature map on the grid and the head's decision
/// on it, computed once and shared by all methods.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// The feature map `[D, h, w]`.
    pub features: &'a [f32],
    /// Its grid.
    pub grid: Grid,
    /// The InfoDisent head's decision on it.
    pub decision: &'a Decision,
}

/// One heatmap method: given one image and a class, where is the evidence. Metrics
/// (deletion/insertion, pointing game) and explanations iterate over [`explainers`] by name.
pub trait Explainer: Sync {
    /// Short name used in reports and JSON (`infodisent+`, `cam`, …).
    fn name(&self) -> &str;
    /// Which side of the evidence the map shows.
    fn polarity(&self) -> Polarity {
        Polarity::Positive
    }
    /// The map for `class` on the feature grid (or a refinement of it).
    fn heatmap(&self, image: &Subject<'_>, class: usize) -> Result<Heatmap>;
}

/// The heatmap methods shown to a reader of `head`'s decisions: InfoDisent's dense and sparse
/// maps of both polarities, and CAM of `baseline` when it has the head's channels and classes.
/// A new method is one new file and one line here.
pub fn explainers<'a>(
    head: &'a HeadParams,
    baseline: Option<&'a LinearClassifier>,
) -> Vec<Box<dyn Explainer + 'a>> {
    let mut all: Vec<Box<dyn Explainer + 'a>> = vec![
        Box::new(InfoDisentMap::new(head, Polarity::Positive, 1)),
        Box::new(InfoDisentMap::new(head, Polarity::Negative, 1)),
        Box::new(SparseInfoDisentMap::new(head, Polarity::Positive)),
        Box::new(SparseInfoDisentMap::new(head, Polarity::Negative)),
    ];
    if let Some(b) = baseline.filter(|b| b.dim == head.dim && b.classes == head.classes) {
        all.push(Box::new(Cam::new(b)));
    }
    all
}

/// The methods of `methods` that show evidence of `polarity`.
pub fn of_polarity<'a>(
    methods: &'a [Box<dyn Explainer + 'a>],
    polarity: Polarity,
) -> Vec<&'a dyn Explainer> {
    methods
        .iter()
        .map(|e| e.as_ref())
        .filter(|e| e.polarity() == polarity)
        .collect()
}

fn check_features(image: &Subject<'_>, dim: usize, classes: usize, class: usize) -> Result<()> {
    let grid = image.grid;
    if grid.dim != dim || image.features.len() != grid.len() {
        return Err(Error::Shape(format!(
            "features of {} values for a {}×{}×{} grid, explainer expects D = {dim}",
            image.features.len(),
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
