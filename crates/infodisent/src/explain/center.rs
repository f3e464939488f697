//! The center-prior floor for faithfulness metrics: a Gaussian bump at the image center, the
//! same for every image and class. Photographers center their subject, so a method that only
//! finds "the middle" scores this well without looking at the model.

use super::{Explainer, Heatmap, Subject};
use crate::error::Result;

/// Name of the center-prior map.
pub const NAME: &str = "center";

/// Side of the map's grid; fine enough that its upsampled rings look round.
const SIDE: usize = 28;

/// A Gaussian at the center with σ a quarter of the side.
#[derive(Debug, Clone, Copy, Default)]
pub struct CenterPrior;

impl Explainer for CenterPrior {
    fn name(&self) -> &str {
        NAME
    }
    fn heatmap(&self, _: &Subject<'_>, _: usize) -> Result<Heatmap> {
        let mid = (SIDE as f32 - 1.0) / 2.0;
        let sigma = SIDE as f32 / 4.0;
        let values = (0..SIDE * SIDE)
            .map(|i| {
                let (r, c) = ((i / SIDE) as f32 - mid, (i % SIDE) as f32 - mid);
                (-(r * r + c * c) / (2.0 * sigma * sigma)).exp()
            })
            .collect();
        Ok(Heatmap {
            h: SIDE,
            w: SIDE,
            values,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::Grid;

    #[test]
    fn the_center_prior_peaks_in_the_middle_and_is_symmetric() {
        let head =
            crate::head::params::HeadParams::new(1, 1, vec![1.0], vec![1.0], vec![0.0]).unwrap();
        let decision = head.decide(&[1.0], 1).unwrap();
        let subject = Subject {
            features: &[1.0],
            grid: Grid { dim: 1, h: 1, w: 1 },
            decision: &decision,
        };
        let map = CenterPrior.heatmap(&subject, 0).unwrap();
        let (x, y) = map.peak_point(224);
        assert!((x - 112.0).abs() <= 4.0 && (y - 112.0).abs() <= 4.0);
        let v = &map.values;
        assert_eq!(v[0], v[SIDE * SIDE - 1]);
        assert!(v[0] < map.max() / 20.0);
    }
}
