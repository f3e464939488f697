//! The chance baseline for faithfulness metrics: a uniformly random map, reproducible for a
//! given seed, image and class.

use super::{Explainer, Heatmap, Subject};
use crate::error::Result;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Name of the random map.
pub const NAME: &str = "random";

/// A random map on the feature grid refined `refine` times.
pub struct RandomMap {
    seed: u64,
    refine: usize,
}

impl RandomMap {
    /// Random maps drawn from `seed`.
    pub fn new(seed: u64, refine: usize) -> Self {
        RandomMap {
            seed,
            refine: refine.max(1),
        }
    }
}

impl Explainer for RandomMap {
    fn name(&self) -> &str {
        NAME
    }
    fn heatmap(&self, image: &Subject<'_>, class: usize) -> Result<Heatmap> {
        let (features, grid) = (image.features, image.grid);
        // Seeding from the image's values keeps the map fixed per image without shared state.
        let image_key = features
            .iter()
            .step_by(97)
            .fold(0u64, |h, v| h.rotate_left(7) ^ u64::from(v.to_bits()));
        let mut rng = StdRng::seed_from_u64(
            self.seed ^ image_key ^ (class as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        let (h, w) = (grid.h * self.refine, grid.w * self.refine);
        Ok(Heatmap {
            h,
            w,
            values: (0..h * w).map(|_| rng.random::<f32>()).collect(),
        })
    }
}
