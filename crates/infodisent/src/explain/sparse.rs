//! The sparse InfoDisent map: only what the pooling keeps, i.e. each channel's argmax cell
//! (positive map, weight `W[c,k] · max ReLU(J_k)`) or argmin cell (negative map).

use super::{check_features, Explainer, Grid, Heatmap, Polarity, Subject};
use crate::error::Result;
use crate::head::params::{HeadParams, Pooled};

/// Name of the sparse positive map.
pub const POSITIVE: &str = "infodisent-sparse+";
/// Name of the sparse negative map.
pub const NEGATIVE: &str = "infodisent-sparse-";

/// The sparse InfoDisent map of one polarity.
pub struct SparseInfoDisentMap<'a> {
    head: &'a HeadParams,
    polarity: Polarity,
}

impl<'a> SparseInfoDisentMap<'a> {
    /// The sparse map of `polarity`.
    pub fn new(head: &'a HeadParams, polarity: Polarity) -> Self {
        SparseInfoDisentMap { head, polarity }
    }
}

impl Explainer for SparseInfoDisentMap<'_> {
    fn name(&self) -> &str {
        self.polarity.pick(POSITIVE, NEGATIVE)
    }
    fn polarity(&self) -> Polarity {
        self.polarity
    }
    fn heatmap(&self, image: &Subject<'_>, class: usize) -> Result<Heatmap> {
        check_features(image, self.head.dim, self.head.classes, class)?;
        Ok(sparse_map(
            self.head,
            &image.decision.pooled,
            image.grid,
            class,
            self.polarity,
        ))
    }
}

/// The sparse map of one class from a pooled map.
pub fn sparse_map(
    head: &HeadParams,
    pooled: &Pooled,
    grid: Grid,
    class: usize,
    polarity: Polarity,
) -> Heatmap {
    let weights = &head.weight[class * head.dim..(class + 1) * head.dim];
    let mut values = vec![0.0f32; grid.cells()];
    for (k, &wk) in weights.iter().enumerate() {
        let (cell, x) = match polarity {
            Polarity::Positive => (pooled.argmax[k], pooled.pos[k]),
            Polarity::Negative => (pooled.argmin[k], pooled.neg[k]),
        };
        values[cell] += wk * x;
    }
    Heatmap {
        h: grid.h,
        w: grid.w,
        values,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_pooled_cells_light_up() {
        let head =
            HeadParams::new(2, 1, vec![1.0, 0.0, 0.0, 1.0], vec![1.0, 2.0], vec![0.0]).unwrap();
        let grid = Grid { dim: 2, h: 1, w: 3 };
        let f = [1.0, -2.0, 0.5, 0.5, 0.25, -1.0];
        let decision = head.decide(&f, grid.cells()).unwrap();
        let image = Subject {
            features: &f,
            grid,
            decision: &decision,
        };
        let pos = SparseInfoDisentMap::new(&head, Polarity::Positive)
            .heatmap(&image, 0)
            .unwrap();
        let neg = SparseInfoDisentMap::new(&head, Polarity::Negative)
            .heatmap(&image, 0)
            .unwrap();
        assert_eq!(pos.values, vec![2.0, 0.0, 0.0]);
        assert_eq!(neg.values, vec![0.0, 2.0, 2.0]);
    }
}
