//! Where things are: feature cells as pixel boxes, network-input pixels mapped back to the
//! original image.

use crate::preprocess::Preprocess;
use serde::{Deserialize, Serialize};

/// A box `[x0, y0, x1, y1)` in pixels.
pub type PixelBox = [u32; 4];

/// Shape of one image's feature map: `dim` channels on an `h × w` grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grid {
    /// Channels D.
    pub dim: usize,
    /// Grid rows h.
    pub h: usize,
    /// Grid columns w.
    pub w: usize,
}

impl Grid {
    /// From a cache's `[D, h, w]`.
    pub fn from_shape(shape: [usize; 3]) -> Self {
        Grid {
            dim: shape[0],
            h: shape[1],
            w: shape[2],
        }
    }
    /// The grid of a cache's features, refused unless it has the head's `dim` channels.
    pub fn for_head(cache: &crate::cache::FeatureCache, dim: usize) -> crate::error::Result<Self> {
        let grid = Self::from_shape(cache.feature_shape());
        if grid.dim != dim {
            return Err(crate::error::Error::Shape(format!(
                "head has D = {dim} but the cache at {} has D = {}",
                cache.dir().display(),
                grid.dim
            )));
        }
        Ok(grid)
    }
    /// Cells per channel, `h · w`.
    pub fn cells(&self) -> usize {
        self.h * self.w
    }
    /// Floats per image, `D · h · w`.
    pub fn len(&self) -> usize {
        self.dim * self.cells()
    }
    /// Whether the grid holds no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// `(row, column)` of a flat cell index.
    pub fn cell_rc(&self, cell: usize) -> [usize; 2] {
        [cell / self.w.max(1), cell % self.w.max(1)]
    }
    /// The square of network-input pixels (side `input_size`) that cell `cell` covers.
    pub fn cell_box(&self, cell: usize, input_size: usize) -> PixelBox {
        let [r, s] = self.cell_rc(cell);
        let edge = |i: usize, n: usize| ((i * input_size) as f64 / n as f64).round() as u32;
        [
            edge(s, self.w),
            edge(r, self.h),
            edge(s + 1, self.w),
            edge(r + 1, self.h),
        ]
    }
}

/// How network-input pixels relate to an original image of a given size, following the
/// preprocessing's resize and center crop (see [`Preprocess`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImageGeometry {
    left: f64,
    top: f64,
    scale_x: f64,
    scale_y: f64,
    width: u32,
    height: u32,
}

impl ImageGeometry {
    /// The mapping for an image of `width × height` under `pre`.
    pub fn new(pre: &Preprocess, width: u32, height: u32) -> Self {
        let (w, h) = (f64::from(width), f64::from(height));
        let crop = pre.crop.max(1) as f64;
        if pre.resize == pre.crop {
            return ImageGeometry {
                left: 0.0,
                top: 0.0,
                scale_x: w / crop,
                scale_y: h / crop,
                width,
                height,
            };
        }
        let side = crop * w.min(h) / pre.resize.max(1) as f64;
        ImageGeometry {
            left: (w - side) / 2.0,
            top: (h - side) / 2.0,
            scale_x: side / crop,
            scale_y: side / crop,
            width,
            height,
        }
    }

    /// The identity mapping for an image that is already the network input.
    pub fn identity(size: usize) -> Self {
        ImageGeometry {
            left: 0.0,
            top: 0.0,
            scale_x: 1.0,
            scale_y: 1.0,
            width: size as u32,
            height: size as u32,
        }
    }

    /// A network-input box in original-image pixels, clamped to the image.
    pub fn to_image(&self, b: PixelBox) -> PixelBox {
        let x = |v: u32| {
            (self.left + f64::from(v) * self.scale_x)
                .round()
                .clamp(0.0, f64::from(self.width)) as u32
        };
        let y = |v: u32| {
            (self.top + f64::from(v) * self.scale_y)
                .round()
                .clamp(0.0, f64::from(self.height)) as u32
        };
        [x(b[0]), y(b[1]), x(b[2]), y(b[3])]
    }

    /// A network-input point in original-image pixels.
    pub fn point_to_image(&self, x: f64, y: f64) -> (f64, f64) {
        (self.left + x * self.scale_x, self.top + y * self.scale_y)
    }

    /// An original-image point in network-input pixels (outside `[0, S)` where the crop cut it).
    pub fn point_to_input(&self, x: f64, y: f64) -> (f64, f64) {
        (
            (x - self.left) / self.scale_x,
            (y - self.top) / self.scale_y,
        )
    }

    /// The original image's `(width, height)`.
    pub fn image_size(&self) -> (u32, u32) {
        (self.width, self.height)
    }
}

/// Whether two boxes share at least one pixel.
pub fn boxes_overlap(a: &PixelBox, b: &PixelBox) -> bool {
    a[0] < b[2] && b[0] < a[2] && a[1] < b[3] && b[1] < a[3]
}

/// Of `boxes`, the one covering most of box `b` (ties to the later), or `None` when `b`
/// touches none: how a cell is matched to the part it lands on.
pub fn covering_most<T>(b: &PixelBox, boxes: impl IntoIterator<Item = (T, PixelBox)>) -> Option<T> {
    let area = |p: &PixelBox| {
        let w = b[2].min(p[2]).saturating_sub(b[0].max(p[0]));
        let h = b[3].min(p[3]).saturating_sub(b[1].max(p[1]));
        w * h
    };
    boxes
        .into_iter()
        .map(|(t, p)| (area(&p), t))
        .filter(|(a, _)| *a > 0)
        .max_by_key(|(a, _)| *a)
        .map(|(_, t)| t)
}

/// Whether point `(x, y)` lies within `tolerance` pixels of box `b`.
pub fn point_near_box(x: f64, y: f64, b: &PixelBox, tolerance: f64) -> bool {
    let dx = (f64::from(b[0]) - x).max(x - f64::from(b[2])).max(0.0);
    let dy = (f64::from(b[1]) - y).max(y - f64::from(b[3])).max(0.0);
    dx.hypot(dy) <= tolerance
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preprocess::Normalize;

    #[test]
    fn cells_tile_the_input_and_map_back_through_a_center_crop() {
        let g = Grid { dim: 1, h: 7, w: 7 };
        assert_eq!(g.cell_box(0, 224), [0, 0, 32, 32]);
        assert_eq!(g.cell_box(48, 224), [192, 192, 224, 224]);
        assert_eq!(g.cell_box(8, 224), [32, 32, 64, 64]);
        let squash = ImageGeometry::new(&Preprocess::new(224, 224, Normalize::Unit), 448, 224);
        assert_eq!(squash.to_image([32, 32, 64, 64]), [64, 32, 128, 64]);
        // Shorter side 256 → 224 crop: a 512×512 image scales by 2 and loses 32 px of margin.
        let crop = ImageGeometry::new(&Preprocess::new(256, 224, Normalize::Unit), 512, 512);
        assert_eq!(crop.to_image([0, 0, 224, 224]), [32, 32, 480, 480]);
    }

    #[test]
    fn points_near_boxes() {
        let b = [10, 10, 20, 20];
        assert!(point_near_box(15.0, 15.0, &b, 0.0));
        assert!(point_near_box(23.0, 24.0, &b, 5.0));
        assert!(!point_near_box(30.0, 15.0, &b, 5.0));
    }
}
