//! The pointing game: a heatmap scores a hit when its peak lies on (or within a tolerance of)
//! the known deciding part. Ground truth comes from generated data ([`crate::synth`]).

use crate::explain::{Heatmap, ImageGeometry, PixelBox};
use crate::synth::Annotation;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Pointing-game accuracy of one method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointingScore {
    /// Method name.
    pub method: String,
    /// Images whose map peaked on the deciding part.
    pub hits: usize,
    /// Images scored.
    pub total: usize,
    /// `hits / total`.
    pub accuracy: f64,
}

impl PointingScore {
    /// A score from counts.
    pub fn new(method: &str, hits: usize, total: usize) -> Self {
        PointingScore {
            method: method.to_owned(),
            hits,
            total,
            accuracy: if total == 0 {
                0.0
            } else {
                hits as f64 / total as f64
            },
        }
    }
}

/// Whether `map`'s peak, mapped to original-image pixels, lies within `tolerance` pixels of
/// `target`.
pub fn points_at(
    map: &Heatmap,
    input_size: usize,
    geometry: &ImageGeometry,
    target: &PixelBox,
    tolerance: f64,
) -> bool {
    let (x, y) = map.peak_point(input_size);
    let (x, y) = geometry.point_to_image(x, y);
    crate::geometry::point_near_box(x, y, target, tolerance)
}

/// Finds the annotation of a cache item by its path: annotation keys are paths relative to
/// the generated dataset's root (`test/square/0003.png`), item paths may be absolute.
pub struct AnnotationIndex<'a, A = Annotation> {
    by_suffix: HashMap<String, &'a A>,
}

impl<'a, A> AnnotationIndex<'a, A> {
    /// Indexes annotations (the shapes' [`crate::synth::Annotations`] or the parts benchmark's images) by
    /// their last three path components.
    pub fn new(annotations: &'a std::collections::BTreeMap<String, A>) -> Self {
        AnnotationIndex {
            by_suffix: annotations.iter().map(|(k, a)| (suffix(k), a)).collect(),
        }
    }
    /// The annotation of `path`, if it is a generated image.
    pub fn get(&self, path: &str) -> Option<&'a A> {
        self.by_suffix.get(&suffix(path)).copied()
    }
}

fn suffix(path: &str) -> String {
    let parts: Vec<&str> = path.split(['/', '\\']).filter(|p| !p.is_empty()).collect();
    parts[parts.len().saturating_sub(3)..].join("/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::Annotations;

    #[test]
    fn peak_on_the_box_is_a_hit() {
        let mut values = vec![0.0; 49];
        values[7 + 3] = 1.0; // row 1, column 3: centre (112, 48) at 224 px
        let map = Heatmap { h: 7, w: 7, values };
        let g = ImageGeometry::identity(224);
        assert!(points_at(&map, 224, &g, &[100, 30, 140, 70], 0.0));
        assert!(!points_at(&map, 224, &g, &[0, 150, 40, 190], 15.0));
        let mut ann = Annotations::new();
        ann.insert(
            "test/disk/0001.png".into(),
            Annotation {
                label: 0,
                decisive: [0, 0, 1, 1],
                distractor: None,
                counter: None,
            },
        );
        let index = AnnotationIndex::new(&ann);
        assert!(index.get("/tmp/x/synth/test/disk/0001.png").is_some());
        assert!(index.get("/tmp/x/synth/train/disk/0001.png").is_none());
    }
}
