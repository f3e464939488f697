//! InfoDisent heatmaps: `H⁺_c = Σ_k W[c,k] · ReLU(J_k)` and `H⁻_c = Σ_k W[c,k] · ReLU(−J_k)`.
//!
//! With `refine = 1` the ReLU is taken on the feature grid and the map upsampled afterwards
//! (equal to the spec's `ReLU(↑J_k)` at every cell centre, and D times cheaper); `refine = f`
//! upsamples each `J_k` by `f` before the ReLU, which is the spec's formula on an `fh × fw` grid.

use super::{check_features, Explainer, Grid, Heatmap, Polarity, Subject};
use crate::draw::upsample_bilinear;
use crate::error::Result;
use crate::head::params::HeadParams;

/// Name of the positive map `H⁺`.
pub const POSITIVE: &str = "infodisent+";
/// Name of the negative map `H⁻`.
pub const NEGATIVE: &str = "infodisent-";

/// The dense InfoDisent map of one polarity.
pub struct InfoDisentMap<'a> {
    head: &'a HeadParams,
    polarity: Polarity,
    refine: usize,
}

impl<'a> InfoDisentMap<'a> {
    /// The map of `polarity` computed on the feature grid refined `refine` times (≥ 1).
    pub fn new(head: &'a HeadParams, polarity: Polarity, refine: usize) -> Self {
        InfoDisentMap {
            head,
            polarity,
            refine: refine.max(1),
        }
    }
}

impl Explainer for InfoDisentMap<'_> {
    fn name(&self) -> &str {
        self.polarity.pick(POSITIVE, NEGATIVE)
    }
    fn polarity(&self) -> Polarity {
        self.polarity
    }
    fn heatmap(&self, image: &Subject<'_>, class: usize) -> Result<Heatmap> {
        check_features(image, self.head.dim, self.head.classes, class)?;
        Ok(evidence_map(
            self.head,
            &image.decision.rotated,
            image.grid,
            class,
            self.polarity,
            self.refine,
        ))
    }
}

/// The map of one class from an already rotated map `J` [D, cells].
pub fn evidence_map(
    head: &HeadParams,
    j: &[f32],
    grid: Grid,
    class: usize,
    polarity: Polarity,
    refine: usize,
) -> Heatmap {
    let cells = grid.cells();
    let weights = &head.weight[class * head.dim..(class + 1) * head.dim];
    let sign = if polarity == Polarity::Positive {
        1.0
    } else {
        -1.0
    };
    let (h, w) = (grid.h * refine, grid.w * refine);
    let mut values = vec![0.0f32; h * w];
    for (k, &wk) in weights.iter().enumerate().filter(|(_, &wk)| wk > 0.0) {
        let row = &j[k * cells..(k + 1) * cells];
        if refine == 1 {
            for (acc, &x) in values.iter_mut().zip(row) {
                *acc += wk * (sign * x).max(0.0);
            }
        } else {
            let up = upsample_bilinear(row, grid.h, grid.w, h, w);
            for (acc, x) in values.iter_mut().zip(up) {
                *acc += wk * (sign * x).max(0.0);
            }
        }
    }
    Heatmap { h, w, values }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positive_and_negative_maps_split_the_rotated_evidence() {
        // Identity rotation, two channels on a 1×3 grid, class weights (1, 2).
        let head =
            HeadParams::new(2, 1, vec![1.0, 0.0, 0.0, 1.0], vec![1.0, 2.0], vec![0.0]).unwrap();
        let grid = Grid { dim: 2, h: 1, w: 3 };
        let f = [1.0, -2.0, 0.0, 0.5, 0.5, -1.0];
        let decision = head.decide(&f, grid.cells()).unwrap();
        let image = Subject {
            features: &f,
            grid,
            decision: &decision,
        };
        let pos = InfoDisentMap::new(&head, Polarity::Positive, 1)
            .heatmap(&image, 0)
            .unwrap();
        let neg = InfoDisentMap::new(&head, Polarity::Negative, 1)
            .heatmap(&image, 0)
            .unwrap();
        assert_eq!(pos.values, vec![2.0, 1.0, 0.0]);
        assert_eq!(neg.values, vec![0.0, 2.0, 2.0]);
        let fine = InfoDisentMap::new(&head, Polarity::Positive, 4)
            .heatmap(&image, 0)
            .unwrap();
        assert_eq!((fine.h, fine.w), (4, 12));
        assert!(InfoDisentMap::new(&head, Polarity::Positive, 1)
            .heatmap(&image, 1)
            .is_err());
    }
}
