//! Where things are in an image, as a dataset's own annotation files say: the object's box
//! (CUB, Stanford Cars and Dogs, ImageNet's localisation set) and the visible part locations
//! (CUB's 15 parts). Coordinates are original-image pixels; they travel into the feature cache
//! so metrics can check a heatmap or a prototype against them.

use serde::{Deserialize, Serialize};

/// A pixel box `[x0, y0, x1, y1)`: the same as [`crate::geometry::PixelBox`], spelled out
/// because the cache, which geometry reads, stores annotations.
pub type PixelBox = [u32; 4];

/// One visible part location.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PartPoint {
    /// Index into the dataset's part names.
    pub part: u16,
    /// Column in original-image pixels.
    pub x: f32,
    /// Row in original-image pixels.
    pub y: f32,
}

/// The annotation of one image.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Annotation {
    /// The objects' boxes `[x0, y0, x1, y1]` (end exclusive), as many as the dataset marks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub boxes: Vec<PixelBox>,
    /// The parts marked visible.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<PartPoint>,
}

impl Annotation {
    /// An annotation holding only boxes.
    pub fn of_boxes(boxes: Vec<PixelBox>) -> Self {
        Annotation {
            boxes,
            parts: vec![],
        }
    }
}

/// The pixel box covering corners `(x0, y0)`-`(x1, y1)`, clamped at zero.
pub fn pixel_box(x0: f64, y0: f64, x1: f64, y1: f64) -> PixelBox {
    let px = |v: f64, round: fn(f64) -> f64| round(v.max(0.0)) as u32;
    [
        px(x0, f64::floor),
        px(y0, f64::floor),
        px(x1, f64::ceil),
        px(y1, f64::ceil),
    ]
}

/// The pixel box of an annotation that names the first and last column and row the object
/// covers (both inclusive) in pixels counted from `origin` (0 or 1), as `[first_x, first_y,
/// last_x, last_y]`; `None` when a last one comes before its first one or is not a number.
pub(crate) fn inclusive_box(corners: [f64; 4], origin: f64) -> Option<PixelBox> {
    let [x0, y0, x1, y1] = corners.map(|v| v - origin);
    (x1 >= x0 && y1 >= y0).then(|| pixel_box(x0, y0, x1 + 1.0, y1 + 1.0))
}
