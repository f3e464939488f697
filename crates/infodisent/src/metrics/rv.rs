//! The RV coefficient between channels: `RV(X, Y) = ‖XᵀY‖²_F / (‖XᵀX‖_F ‖YᵀY‖_F)` where `X`
//! stacks one channel's spatial maps over N images (rows = images, columns = cells,
//! column-centred). 1 means the two channels carry the same spatial pattern up to a linear
//! map; the mean over channel pairs measures how entangled a set of channels is.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Mean RV of InfoDisent channels (after U) and of the raw backbone channels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RvReport {
    /// Images whose maps were stacked.
    pub images: usize,
    /// Channel pairs sampled.
    pub pairs: usize,
    /// Mean RV of the rotated channels `J`.
    pub infodisent: f64,
    /// Mean RV of the raw channels `F` (U = I).
    pub raw: f64,
}

/// One channel's centred maps `[cells, n]` and `‖XᵀX‖_F`.
struct Centred {
    cols: Vec<f64>,
    self_norm: f64,
}

fn centre(maps: &[f32], n: usize, dim: usize, cells: usize, k: usize) -> Centred {
    let mut cols = vec![0.0f64; cells * n];
    for c in 0..cells {
        let col = &mut cols[c * n..(c + 1) * n];
        for (i, v) in col.iter_mut().enumerate() {
            *v = f64::from(maps[(i * dim + k) * cells + c]);
        }
        let mean = col.iter().sum::<f64>() / n as f64;
        col.iter_mut().for_each(|v| *v -= mean);
    }
    let self_norm = cross_norm_sq(&cols, &cols, n, cells).sqrt();
    Centred { cols, self_norm }
}

/// `‖XᵀY‖²_F` for column-major centred maps.
fn cross_norm_sq(x: &[f64], y: &[f64], n: usize, cells: usize) -> f64 {
    let mut total = 0.0;
    for a in 0..cells {
        let xa = &x[a * n..(a + 1) * n];
        for b in 0..cells {
            let dot: f64 = xa
                .iter()
                .zip(&y[b * n..(b + 1) * n])
                .map(|(p, q)| p * q)
                .sum();
            total += dot * dot;
        }
    }
    total
}

/// RV coefficient of two channels `k`, `l` of maps `[n, dim, cells]`; 0 when either channel is
/// constant.
pub fn rv_coefficient(maps: &[f32], n: usize, dim: usize, cells: usize, k: usize, l: usize) -> f64 {
    let (x, y) = (
        centre(maps, n, dim, cells, k),
        centre(maps, n, dim, cells, l),
    );
    rv_of(&x, &y, n, cells)
}

fn rv_of(x: &Centred, y: &Centred, n: usize, cells: usize) -> f64 {
    let denom = x.self_norm * y.self_norm;
    if denom <= f64::EPSILON {
        return 0.0;
    }
    cross_norm_sq(&x.cols, &y.cols, n, cells) / denom
}

/// Mean RV over `pairs` random pairs of distinct channels of maps `[n, dim, cells]` (every
/// pair when there are fewer). The same `seed` samples the same pairs, so two sets of
/// channels are compared on equal terms.
pub fn mean_rv(maps: &[f32], n: usize, dim: usize, cells: usize, pairs: usize, seed: u64) -> f64 {
    use rayon::prelude::*;
    let all = dim * (dim - 1) / 2;
    let chosen: Vec<(usize, usize)> = if all <= pairs {
        (0..dim)
            .flat_map(|k| (k + 1..dim).map(move |l| (k, l)))
            .collect()
    } else {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..pairs)
            .map(|_| {
                let k = rng.random_range(0..dim);
                let l = (k + rng.random_range(1..dim)) % dim;
                (k, l)
            })
            .collect()
    };
    if chosen.is_empty() || n < 2 {
        return 0.0;
    }
    let mut needed: Vec<usize> = chosen.iter().flat_map(|&(k, l)| [k, l]).collect();
    needed.sort_unstable();
    needed.dedup();
    let centred: std::collections::HashMap<usize, Centred> = needed
        .par_iter()
        .map(|&k| (k, centre(maps, n, dim, cells, k)))
        .collect();
    let total: f64 = chosen
        .par_iter()
        .map(|(k, l)| rv_of(&centred[k], &centred[l], n, cells))
        .sum();
    total / chosen.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_channels_score_one_and_unrelated_ones_little() {
        let (n, dim, cells) = (40, 3, 4);
        let mut rng = StdRng::seed_from_u64(1);
        let mut maps = vec![0.0f32; n * dim * cells];
        for i in 0..n {
            for c in 0..cells {
                let x: f32 = rng.random();
                maps[(i * dim) * cells + c] = x;
                maps[(i * dim + 1) * cells + c] = 3.0 * x + 1.0;
                maps[(i * dim + 2) * cells + c] = rng.random();
            }
        }
        assert!((rv_coefficient(&maps, n, dim, cells, 0, 1) - 1.0).abs() < 1e-9);
        assert!(rv_coefficient(&maps, n, dim, cells, 0, 2) < 0.3);
        let mean = mean_rv(&maps, n, dim, cells, 10, 0);
        assert!(mean > 0.33 && mean < 0.6, "{mean}");
    }
}
