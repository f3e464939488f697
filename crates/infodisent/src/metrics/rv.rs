//! The RV coefficient as one of the metrics' accumulators: the maps of a class-balanced sample
//! of the split, stacked during the one pass over the shards and compared by [`crate::rv`].

use super::pass::{Accumulator, Seen};
use crate::error::Result;
use crate::rv::{measure, RvReport};

/// Stacks the maps of a class-balanced sample of the split, rotated and raw, for
/// [`RvSampler::finish`] to compare their channels.
pub struct RvSampler {
    sample: std::collections::HashSet<usize>,
    rotated: Vec<f32>,
    raw: Vec<f32>,
    labels: Vec<usize>,
}

impl RvSampler {
    /// Samples `images` of `items` (class-balanced, seeded).
    pub fn new(items: &[crate::cache::Item], images: usize, seed: u64) -> Self {
        RvSampler {
            sample: crate::cache::balanced_sample(items, images, seed)
                .into_iter()
                .collect(),
            rotated: vec![],
            raw: vec![],
            labels: vec![],
        }
    }

    /// [`measure`] on the sampled images, each class's `used` channels also within the class.
    pub fn finish(
        &self,
        dim: usize,
        cells: usize,
        pairs: usize,
        seed: u64,
        used: [Option<&[Vec<usize>]>; 2],
    ) -> RvReport {
        let rotated = (!self.rotated.is_empty()).then_some(self.rotated.as_slice());
        let labels = Some(self.labels.as_slice());
        measure(&self.raw, rotated, [dim, cells], pairs, seed, used, labels)
    }
}

impl Accumulator for RvSampler {
    fn add(&mut self, image: &Seen) -> Result<()> {
        if self.sample.contains(&image.item) {
            self.raw.extend_from_slice(image.features);
            self.labels.push(image.truth);
            if let Some(d) = image.decision {
                self.rotated.extend_from_slice(&d.rotated);
            }
        }
        Ok(())
    }
}
