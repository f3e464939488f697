//! The pointing game: a heatmap scores a hit when its peak lies on (or within a tolerance of)
//! the known deciding part of generated data ([`crate::synth`]), or of any of the object boxes
//! a dataset's annotation files give ([`BoxPointing`]).

use super::pass::{Accumulator, Seen};
use crate::error::{Error, Result};
use crate::explain::{Explainer, Heatmap, ImageGeometry, PixelBox, Subject};
use crate::preprocess::Preprocess;
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

/// Where `image` sits in its original pixels, and what a heatmap method reads of it.
fn placed<'a>(
    image: &Seen<'a>,
    decision: &'a crate::head::params::Decision,
    preprocess: &Preprocess,
) -> Result<(ImageGeometry, Subject<'a>)> {
    let (w, h) =
        image::image_dimensions(image.path).map_err(|e| Error::input(image.path, e.to_string()))?;
    let subject = Subject {
        features: image.features,
        grid: image.grid,
        decision,
    };
    Ok((ImageGeometry::new(preprocess, w, h), subject))
}

/// Both pointing games over the annotated images of a split: every evidence-for method against
/// the planted part, every evidence-against method against the planted counter-evidence.
pub struct PointingGames<'a> {
    index: AnnotationIndex<'a>,
    pointers: Vec<&'a dyn Explainer>,
    counter_pointers: Vec<&'a dyn Explainer>,
    preprocess: &'a Preprocess,
    input_size: usize,
    tolerance: f64,
    hits: Vec<usize>,
    pointed: usize,
    counter_hits: Vec<usize>,
    countered: usize,
}

impl<'a> PointingGames<'a> {
    /// The games of `pointers` and `counter_pointers` on the images `annotations` cover, peaks
    /// within `tolerance` original-image pixels of the box counting as hits.
    pub fn new(
        annotations: &'a crate::synth::Annotations,
        pointers: Vec<&'a dyn Explainer>,
        counter_pointers: Vec<&'a dyn Explainer>,
        preprocess: &'a Preprocess,
        input_size: usize,
        tolerance: f64,
    ) -> Self {
        PointingGames {
            index: AnnotationIndex::new(annotations),
            hits: vec![0; pointers.len()],
            counter_hits: vec![0; counter_pointers.len()],
            pointers,
            counter_pointers,
            preprocess,
            input_size,
            tolerance,
            pointed: 0,
            countered: 0,
        }
    }

    /// The scores of both games (empty when no image was annotated).
    pub fn finish(&self) -> (Vec<PointingScore>, Vec<PointingScore>) {
        let scores = |methods: &[&dyn Explainer], hits: &[usize], total: usize| {
            if total == 0 {
                return vec![];
            }
            methods
                .iter()
                .zip(hits)
                .map(|(m, &h)| PointingScore::new(m.name(), h, total))
                .collect()
        };
        (
            scores(&self.pointers, &self.hits, self.pointed),
            scores(&self.counter_pointers, &self.counter_hits, self.countered),
        )
    }
}

impl Accumulator for PointingGames<'_> {
    fn add(&mut self, image: &Seen) -> Result<()> {
        let (Some(ann), Some(decision)) = (self.index.get(image.path), image.decision) else {
            return Ok(());
        };
        let (geometry, subject) = placed(image, decision, self.preprocess)?;
        let game = |methods: &[&dyn Explainer], hits: &mut [usize], target: &PixelBox| {
            for (hit, method) in hits.iter_mut().zip(methods) {
                let map = method.heatmap(&subject, ann.label)?;
                let on = points_at(&map, self.input_size, &geometry, target, self.tolerance);
                *hit += usize::from(on);
            }
            Ok::<_, Error>(())
        };
        game(&self.pointers, &mut self.hits, &ann.decisive)?;
        self.pointed += 1;
        if let Some((_, counter)) = ann.counter {
            game(&self.counter_pointers, &mut self.counter_hits, &counter)?;
            self.countered += 1;
        }
        Ok(())
    }
}

/// The pointing game on the object boxes of annotated datasets (CUB, Stanford Cars and Dogs,
/// ImageNet): a hit when the map of the true class peaks within the tolerance of any box.
pub struct BoxPointing<'a> {
    pointers: Vec<&'a dyn Explainer>,
    preprocess: &'a Preprocess,
    input_size: usize,
    tolerance: f64,
    hits: Vec<usize>,
    total: usize,
}

impl<'a> BoxPointing<'a> {
    /// The game of `pointers`, peaks within `tolerance` original-image pixels counting.
    pub fn new(
        pointers: Vec<&'a dyn Explainer>,
        preprocess: &'a Preprocess,
        input_size: usize,
        tolerance: f64,
    ) -> Self {
        BoxPointing {
            hits: vec![0; pointers.len()],
            pointers,
            preprocess,
            input_size,
            tolerance,
            total: 0,
        }
    }

    /// The scores (empty when no image had a box).
    pub fn finish(&self) -> Vec<PointingScore> {
        if self.total == 0 {
            return vec![];
        }
        let scores = self.pointers.iter().zip(&self.hits);
        scores
            .map(|(m, &h)| PointingScore::new(m.name(), h, self.total))
            .collect()
    }
}

impl Accumulator for BoxPointing<'_> {
    fn add(&mut self, image: &Seen) -> Result<()> {
        let (Some(ann), Some(decision)) = (image.annotation, image.decision) else {
            return Ok(());
        };
        if ann.boxes.is_empty() {
            return Ok(());
        }
        let (geometry, subject) = placed(image, decision, self.preprocess)?;
        for (hit, method) in self.hits.iter_mut().zip(&self.pointers) {
            let map = method.heatmap(&subject, image.truth)?;
            let on = ann
                .boxes
                .iter()
                .any(|b| points_at(&map, self.input_size, &geometry, b, self.tolerance));
            *hit += usize::from(on);
        }
        self.total += 1;
        Ok(())
    }
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
