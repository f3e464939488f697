//! Explanations of an InfoDisent head's decisions, computed from cached feature maps without a
//! backward pass: per-image contributions ([`image`]), prototypes ([`prototypes`]), class-level
//! summaries ([`class`]), heatmaps (one [`Explainer`] per method: [`dense`], [`sparse`],
//! [`cam`], [`random`], [`center`]) and PNG figures ([`render`]).

pub mod cam;
pub mod center;
pub mod class;
pub mod dense;
pub mod image;
pub mod prototypes;
pub mod random;
pub mod render;
pub mod session;
pub mod sparse;

pub use crate::geometry::{Grid, ImageGeometry, PixelBox};
pub use cam::Cam;
pub use center::CenterPrior;
pub use class::{explain_classes, ClassChannel, ClassExplanation};
pub use dense::InfoDisentMap;
pub use image::{Contribution, HeatmapSet, ImageExplainer, ImageExplanation};
pub use prototypes::{
    find_prototypes, top_weighted_channels, ChannelPrototypes, Prototype, Prototypes,
};
pub use random::RandomMap;
pub use sparse::SparseInfoDisentMap;

use crate::classifier::LinearClassifier;
use crate::error::{Error, Result};
use crate::head::params::{Decision, HeadParams};
use serde::{Deserialize, Serialize};

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

    /// The map over the original image, `height × width` row-major, for an image whose
    /// network input (side `input_size`) `geometry` describes: bilinear on the grid as
    /// [`Self::upsample`] is, and 0 where the center crop cut the image away.
    pub fn on_image(&self, geometry: &ImageGeometry, input_size: usize) -> Vec<f32> {
        let (width, height) = geometry.image_size();
        let s = input_size as f64;
        let sample = |u: f64, n: usize| {
            let src = (u * n as f64 / s - 0.5).clamp(0.0, (n - 1) as f64);
            let i0 = src.floor() as usize;
            (i0, (i0 + 1).min(n - 1), (src - i0 as f64) as f32)
        };
        let mut out = Vec::with_capacity(width as usize * height as usize);
        for y in 0..height {
            for x in 0..width {
                let (u, v) = geometry.point_to_input(f64::from(x) + 0.5, f64::from(y) + 0.5);
                if !(0.0..s).contains(&u) || !(0.0..s).contains(&v) {
                    out.push(0.0);
                    continue;
                }
                let ((x0, x1, fx), (y0, y1, fy)) = (sample(u, self.w), sample(v, self.h));
                let at = |r: usize, c: usize| self.values[r * self.w + c];
                let top = at(y0, x0) * (1.0 - fx) + at(y0, x1) * fx;
                let bottom = at(y1, x0) * (1.0 - fx) + at(y1, x1) * fx;
                out.push(top * (1.0 - fy) + bottom * fy);
            }
        }
        out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_on_the_image_is_the_upsampled_map_where_the_crop_kept_the_image() {
        let map = Heatmap {
            h: 2,
            w: 3,
            values: vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0],
        };
        let on_input = map.on_image(&ImageGeometry::identity(12), 12);
        for (a, b) in on_input.iter().zip(map.upsample(12)) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        // Resize the shorter side to 16 (scale 1 here), crop the middle 12 × 12: a 32 × 16
        // image keeps columns 10..22 and rows 2..14, pixel for pixel.
        let pre = crate::preprocess::Preprocess::new(16, 12, crate::preprocess::Normalize::Unit);
        let on_image = map.on_image(&ImageGeometry::new(&pre, 32, 16), 12);
        assert_eq!(on_image.len(), 32 * 16);
        let up = map.upsample(12);
        for y in 0..16 {
            for x in 0..32 {
                let got = on_image[y * 32 + x];
                let kept = (10..22).contains(&x) && (2..14).contains(&y);
                let want = if kept {
                    up[(y - 2) * 12 + (x - 10)]
                } else {
                    0.0
                };
                assert!((got - want).abs() < 1e-5, "({x}, {y}): {got} vs {want}");
            }
        }
    }
}
