//! The RV coefficient between channels: `RV(X, Y) = ‖XᵀY‖²_F / (‖XᵀX‖_F ‖YᵀY‖_F)` where `X`
//! stacks one channel's spatial maps over N images (rows = images, columns = cells,
//! column-centred). 1 means the two channels carry the same spatial pattern up to a linear
//! map; the mean over channel pairs measures how entangled a set of channels is.
//!
//! Two readings, both reported. Over the **maps** (the definition above). Over the **pooled**
//! values: each channel reduced to the one number per image its classifier reads (InfoDisent's
//! `max ReLU(J_k) − max ReLU(−J_k)` of a rotated channel; the average of a raw channel, what
//! the backbone's own linear classifier reads), where RV is the squared correlation over the
//! images. The paper (its Table 8) compares InfoDisent with the baseline network without saying
//! which it stacked; the pooled reading is what the two classifiers see, the maps reading what
//! the prototypes and heatmaps draw.
//!
//! With N images the RV of independent channels is not 0 (about √(β_X β_Y)/(N−1), β the
//! effective rank of a channel's maps), so the mean is reported beside a permutation null: the
//! same pairs with channel `l` taken from another image (`π(i)`) than channel `k`. Constant
//! channels (dead after a ReLU) have no RV and are left out of the pairs.

use crate::classifier::average_pool;
use crate::head::params::{channel_union, sparse_pool};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Mean RV of InfoDisent channels (after U) and of the raw backbone channels, in both readings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RvReport {
    /// Images whose maps were stacked (a class-balanced sample across the split).
    pub images: usize,
    /// Channel pairs sampled.
    pub pairs: usize,
    /// Over each channel's spatial maps.
    #[serde(flatten)]
    pub maps: RvSet,
    /// Over each channel's pooled value (the number its classifier reads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pooled: Option<RvSet>,
}

/// The RV of each set of channels compared, in one reading.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RvSet {
    /// The rotated channels `J`.
    pub infodisent: RvStat,
    /// The raw channels `F` (U = I).
    pub raw: RvStat,
    /// The rotated channels the decisions read: each class's largest gauge-fixed weights
    /// ([`USED_PER_CLASS`] a class, all a pruned head keeps), the same pairs' null beside.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub infodisent_used: Option<RvStat>,
    /// The raw channels the baseline's decisions read, chosen the same way from its weights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_used: Option<RvStat>,
    /// [`RvSet::infodisent_used`] within each class: each class's own channels over its own
    /// images, averaged over the classes (see [`within_class`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub infodisent_within: Option<RvStat>,
    /// [`RvSet::baseline_used`] within each class, the same way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_within: Option<RvStat>,
}

impl RvReport {
    /// The figures of one head's channels: the rotated ones of an InfoDisent head
    /// (`infodisent`), else the raw ones a linear layer reads, and the raw level beside.
    pub fn of_head(&self, infodisent: bool) -> HeadRv {
        let excess = |s: Option<RvStat>| s.map(|s| s.excess());
        let pooled = self.pooled.unwrap_or(self.maps);
        let pick = |set: &RvSet| match infodisent {
            true => (set.infodisent.excess(), excess(set.infodisent_used)),
            false => (set.raw.excess(), excess(set.baseline_used)),
        };
        let ((maps, maps_used), (pooled_all, pooled_used)) = (pick(&self.maps), pick(&pooled));
        HeadRv {
            maps,
            maps_used,
            pooled: pooled_all,
            pooled_used,
            raw_maps: self.maps.raw.excess(),
            raw_pooled: pooled.raw.excess(),
        }
    }
}

/// One head's RV above the permutation null, in both readings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HeadRv {
    /// Over the maps of all the head's channels (rotated; raw for a linear layer).
    pub maps: f64,
    /// Over the maps of the channels its decisions use (each class's largest gauge-fixed
    /// weights), where measured.
    pub maps_used: Option<f64>,
    /// Over the pooled values of all its channels.
    pub pooled: f64,
    /// Over the pooled values of the channels its decisions use, where measured.
    pub pooled_used: Option<f64>,
    /// Over the maps of all raw channels: the level to get below.
    pub raw_maps: f64,
    /// Over the average-pooled raw channels.
    pub raw_pooled: f64,
}

/// Channels per class counted as used by a decision: the default recipe keeps 5 weights a class.
pub const USED_PER_CLASS: usize = 5;

/// Mean RV of one set of channels and what independent channels would score.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RvStat {
    /// Mean RV over the sampled pairs.
    pub mean: f64,
    /// Mean RV of the same pairs with the images of one channel permuted.
    pub null: f64,
    /// Channels left out because their maps are constant over the sample.
    pub constant_channels: usize,
}

impl RvStat {
    /// The RV above the level of independent channels: the number to compare.
    pub fn excess(&self) -> f64 {
        self.mean - self.null
    }
}

/// One channel's centred maps `[cells, n]` (f32 keeps 1,024-image samples of wide backbones in
/// memory; sums run in f64) and `‖XᵀX‖_F`.
struct Centred {
    cols: Vec<f32>,
    self_norm: f64,
}

fn centre(maps: &[f32], n: usize, dim: usize, cells: usize, k: usize) -> Centred {
    let mut cols = vec![0.0f32; cells * n];
    for c in 0..cells {
        let col = &mut cols[c * n..(c + 1) * n];
        for (i, v) in col.iter_mut().enumerate() {
            *v = maps[(i * dim + k) * cells + c];
        }
        let mean = col.iter().map(|&v| f64::from(v)).sum::<f64>() / n as f64;
        col.iter_mut()
            .for_each(|v| *v = (f64::from(*v) - mean) as f32);
    }
    let self_norm = cross_norm_sq(&cols, &cols, n, cells, None).sqrt();
    Centred { cols, self_norm }
}

/// `‖XᵀY‖²_F` for column-major centred maps; with `perm`, row `i` of X meets row `perm[i]` of Y.
fn cross_norm_sq(x: &[f32], y: &[f32], n: usize, cells: usize, perm: Option<&[usize]>) -> f64 {
    let mut total = 0.0;
    let mut permuted = vec![0.0f32; n];
    for b in 0..cells {
        let yb = &y[b * n..(b + 1) * n];
        let yb = match perm {
            Some(p) => {
                for (dst, &i) in permuted.iter_mut().zip(p) {
                    *dst = yb[i];
                }
                permuted.as_slice()
            }
            None => yb,
        };
        for a in 0..cells {
            let dot: f64 = x[a * n..(a + 1) * n]
                .iter()
                .zip(yb)
                .map(|(&p, &q)| f64::from(p) * f64::from(q))
                .sum();
            total += dot * dot;
        }
    }
    total
}

fn is_constant(c: &Centred) -> bool {
    c.self_norm <= f64::EPSILON
}

/// RV coefficient of two channels `k`, `l` of maps `[n, dim, cells]`; 0 when either channel is
/// constant.
pub fn rv_coefficient(maps: &[f32], n: usize, dim: usize, cells: usize, k: usize, l: usize) -> f64 {
    let (x, y) = (
        centre(maps, n, dim, cells, k),
        centre(maps, n, dim, cells, l),
    );
    rv_of(&x, &y, n, cells, None)
}

fn rv_of(x: &Centred, y: &Centred, n: usize, cells: usize, perm: Option<&[usize]>) -> f64 {
    let denom = x.self_norm * y.self_norm;
    if denom <= f64::EPSILON {
        return 0.0;
    }
    cross_norm_sq(&x.cols, &y.cols, n, cells, perm) / denom
}

/// Mean RV over `pairs` random pairs of distinct non-constant channels of maps `[n, dim, cells]`
/// (every pair when there are fewer), and its permutation null. The same `seed` samples the
/// same pairs and permutation, so two sets of channels are compared on equal terms.
pub fn mean_rv(
    maps: &[f32],
    n: usize,
    dim: usize,
    cells: usize,
    pairs: usize,
    seed: u64,
) -> RvStat {
    let all: Vec<usize> = (0..dim).collect();
    mean_rv_of(maps, n, dim, cells, &all, pairs, seed)
}

/// [`mean_rv`] over the pairs of `channels` only (a decision's channels, say).
pub fn mean_rv_of(
    maps: &[f32],
    n: usize,
    dim: usize,
    cells: usize,
    channels: &[usize],
    pairs: usize,
    seed: u64,
) -> RvStat {
    use rand::seq::SliceRandom;
    use rayon::prelude::*;
    let centred: std::collections::HashMap<usize, Centred> = channels
        .par_iter()
        .map(|&k| (k, centre(maps, n, dim, cells, k)))
        .collect();
    let live: Vec<usize> = channels
        .iter()
        .copied()
        .filter(|k| !is_constant(&centred[k]))
        .collect();
    let constant_channels = channels.len() - live.len();
    let m = live.len();
    let all = m * m.saturating_sub(1) / 2;
    let mut rng = StdRng::seed_from_u64(seed);
    let chosen: Vec<(usize, usize)> = if all <= pairs {
        (0..m)
            .flat_map(|a| (a + 1..m).map(move |b| (a, b)))
            .map(|(a, b)| (live[a], live[b]))
            .collect()
    } else {
        (0..pairs)
            .map(|_| {
                let a = rng.random_range(0..m);
                let b = (a + rng.random_range(1..m)) % m;
                (live[a], live[b])
            })
            .collect()
    };
    if chosen.is_empty() || n < 2 {
        return RvStat {
            mean: 0.0,
            null: 0.0,
            constant_channels,
        };
    }
    let mut perm: Vec<usize> = (0..n).collect();
    perm.shuffle(&mut rng);
    let (total, null): (f64, f64) = chosen
        .par_iter()
        .map(|&(k, l)| {
            (
                rv_of(&centred[&k], &centred[&l], n, cells, None),
                rv_of(&centred[&k], &centred[&l], n, cells, Some(&perm)),
            )
        })
        .reduce(|| (0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
    RvStat {
        mean: total / chosen.len() as f64,
        null: null / chosen.len() as f64,
        constant_channels,
    }
}

/// [`mean_rv_of`] of each class's own channels (`used[c]`, every pair) over that class's
/// images only (`labels`), averaged over the classes with 3 or more images and 2 or more
/// channels that are not constant over them; `None` when no class has. Every channel a class's decision adds up also says
/// "class c", which makes them alike over a sample of many classes whatever they look at; within
/// the class, what they share beyond the label is what is left.
pub fn within_class(
    maps: &[f32],
    labels: &[usize],
    [dim, cells]: [usize; 2],
    used: &[Vec<usize>],
    seed: u64,
) -> Option<RvStat> {
    let stride = dim * cells;
    let stats: Vec<RvStat> = used
        .iter()
        .enumerate()
        .filter_map(|(c, channels)| {
            let own: Vec<f32> = labels
                .iter()
                .enumerate()
                .filter(|&(_, &l)| l == c)
                .flat_map(|(i, _)| &maps[i * stride..(i + 1) * stride])
                .copied()
                .collect();
            let n = own.len() / stride.max(1);
            (n >= 3).then(|| {
                (
                    channels,
                    mean_rv_of(&own, n, dim, cells, channels, usize::MAX, seed),
                )
            })
        })
        // Fewer than 2 live channels leave no pair: the zeros mean_rv_of returns are no figure.
        .filter(|(channels, s)| channels.len() - s.constant_channels >= 2)
        .map(|(_, s)| s)
        .collect();
    let classes = stats.len() as f64;
    (!stats.is_empty()).then(|| RvStat {
        mean: stats.iter().map(|s| s.mean).sum::<f64>() / classes,
        null: stats.iter().map(|s| s.null).sum::<f64>() / classes,
        constant_channels: stats.iter().map(|s| s.constant_channels).sum(),
    })
}

/// Both readings of the RV of maps `raw` (`[n, D, cells]`) and, for an InfoDisent head, of
/// the same images' `rotated` maps, over `pairs` sampled pairs of all channels and of the
/// channels each class's decisions use (`used`: the head's rotated, the baseline's raw), and,
/// given the images' `labels`, of those within each class.
pub fn measure(
    raw: &[f32],
    rotated: Option<&[f32]>,
    [dim, cells]: [usize; 2],
    pairs: usize,
    seed: u64,
    used: [Option<&[Vec<usize>]>; 2],
    labels: Option<&[usize]>,
) -> RvReport {
    let n = raw.len() / (dim * cells).max(1);
    let reading = |raw: &[f32], rotated: Option<&[f32]>, cells: usize| {
        let [rotated_used, raw_used] = used;
        let over_all = |maps: &[f32], per_class: &[Vec<usize>]| {
            mean_rv_of(maps, n, dim, cells, &channel_union(per_class), pairs, seed)
        };
        let within = |maps: &[f32], per_class: &[Vec<usize>]| {
            labels.and_then(|l| within_class(maps, l, [dim, cells], per_class, seed))
        };
        let rotated_used = rotated.zip(rotated_used);
        let raw_used = raw_used.map(|c| (raw, c));
        RvSet {
            infodisent: rotated
                .map_or_else(RvStat::default, |r| mean_rv(r, n, dim, cells, pairs, seed)),
            raw: mean_rv(raw, n, dim, cells, pairs, seed),
            infodisent_used: rotated_used.map(|(r, c)| over_all(r, c)),
            baseline_used: raw_used.map(|(r, c)| over_all(r, c)),
            infodisent_within: rotated_used.and_then(|(r, c)| within(r, c)),
            baseline_within: raw_used.and_then(|(r, c)| within(r, c)),
        }
    };
    let pooled_raw: Vec<f32> = raw
        .chunks_exact(dim * cells)
        .flat_map(|map| average_pool(map, cells))
        .collect();
    let pooled_rotated: Option<Vec<f32>> = rotated.map(|r| {
        r.chunks_exact(dim * cells)
            .flat_map(|map| sparse_pool(map, dim, cells).v)
            .collect()
    });
    RvReport {
        images: n,
        pairs: pairs.min(dim * dim.saturating_sub(1) / 2),
        maps: reading(raw, rotated, cells),
        pooled: Some(reading(&pooled_raw, pooled_rotated.as_deref(), 1)),
    }
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
        let stat = mean_rv(&maps, n, dim, cells, 10, 0);
        assert!(stat.mean > 0.33 && stat.mean < 0.6, "{stat:?}");
        // Pairing another image's maps breaks the identical pair: the null is the level of
        // unrelated channels.
        assert!(stat.null < 0.3, "{stat:?}");
        assert_eq!(stat.constant_channels, 0);
        // Over the identical pair alone the mean is 1; over the unrelated pair it is small.
        let same = mean_rv_of(&maps, n, dim, cells, &[0, 1], 10, 0);
        assert!((same.mean - 1.0).abs() < 1e-9, "{same:?}");
        assert!(mean_rv_of(&maps, n, dim, cells, &[0, 2], 10, 0).mean < 0.3);
    }

    #[test]
    fn the_pooled_reading_sees_what_a_classifier_reads_and_the_maps_reading_where() {
        // Channel 1 has channel 0's average in each image but its own pattern around it
        // (pooled RV 1, maps that differ; a permutation of cells would not do, RV is blind to
        // it). Channel 2 is unrelated.
        let (n, dim, cells) = (60, 3, 8);
        let mut rng = StdRng::seed_from_u64(7);
        let mut maps = vec![0.0f32; n * dim * cells];
        for i in 0..n {
            let scale: f32 = 1.0 + rng.random::<f32>() * 0.5;
            let x: Vec<f32> = (0..cells).map(|_| scale * rng.random::<f32>()).collect();
            let y: Vec<f32> = (0..cells).map(|_| scale * rng.random::<f32>()).collect();
            let shift = (x.iter().sum::<f32>() - y.iter().sum::<f32>()) / cells as f32;
            for c in 0..cells {
                maps[(i * dim) * cells + c] = x[c];
                maps[(i * dim + 1) * cells + c] = y[c] + shift;
                maps[(i * dim + 2) * cells + c] = rng.random();
            }
        }
        let both = [vec![0usize, 1]];
        let report = measure(&maps, None, [dim, cells], 10, 0, [None, Some(&both)], None);
        let pooled = report.pooled.unwrap();
        assert!(
            (pooled.baseline_used.unwrap().mean - 1.0).abs() < 1e-5,
            "{pooled:?}"
        );
        assert!(report.maps.baseline_used.unwrap().mean < 0.5, "{report:?}");
        // Without a rotation the InfoDisent figures are empty, and the head reading of a linear
        // layer is the raw channels'.
        assert_eq!(report.maps.infodisent, RvStat::default());
        let head = report.of_head(false);
        assert_eq!(head.pooled, pooled.raw.excess());
        assert_eq!(
            head.pooled_used,
            Some(pooled.baseline_used.unwrap().excess())
        );
        // Rotated maps equal to the raw ones give the raw figures in the InfoDisent slots.
        let same = measure(
            &maps,
            Some(&maps),
            [dim, cells],
            10,
            0,
            [Some(&both), None],
            None,
        );
        assert_eq!(same.maps.infodisent, same.maps.raw);
        assert_eq!(same.of_head(true).maps, same.of_head(false).maps);
    }

    #[test]
    fn within_each_class_the_label_is_taken_out_and_shared_detail_is_left() {
        // Channels 0 and 1 each say "class 1" plus their own noise; channels 2 and 3 say it too,
        // plus one detail that varies from image to image, shared by both.
        let (n, dim) = (200, 4);
        let mut rng = StdRng::seed_from_u64(4);
        let labels: Vec<usize> = (0..n).map(|i| i % 2).collect();
        let mut pooled = vec![0.0f32; n * dim];
        for (i, &label) in labels.iter().enumerate() {
            let class = 5.0 * label as f32;
            let detail: f32 = rng.random();
            pooled[i * dim] = class + rng.random::<f32>();
            pooled[i * dim + 1] = class + rng.random::<f32>();
            pooled[i * dim + 2] = class + detail + 0.1 * rng.random::<f32>();
            pooled[i * dim + 3] = class + detail + 0.1 * rng.random::<f32>();
        }
        let label_only = [vec![0usize, 1], vec![0, 1]];
        let across = mean_rv_of(&pooled, n, dim, 1, &label_only[0], 10, 0);
        let within = within_class(&pooled, &labels, [dim, 1], &label_only, 0).unwrap();
        assert!(across.excess() > 0.8, "{across:?}");
        assert!(within.excess().abs() < 0.05, "{within:?}");
        let shared = [vec![2usize, 3], vec![2, 3]];
        let within = within_class(&pooled, &labels, [dim, 1], &shared, 0).unwrap();
        assert!(within.excess() > 0.8, "{within:?}");
        // The report carries it beside the across-class figure, for the baseline's channels.
        let report = measure(
            &pooled,
            None,
            [dim, 1],
            10,
            0,
            [None, Some(&label_only)],
            Some(&labels),
        );
        let maps = report.maps;
        assert_eq!(
            maps.baseline_within.map(|s| s.excess()),
            Some(
                within_class(&pooled, &labels, [dim, 1], &label_only, 0)
                    .unwrap()
                    .excess()
            )
        );
        assert_eq!(maps.infodisent_within, None);
        // A class with fewer than 3 images, or fewer than 2 channels, is left out.
        assert_eq!(
            within_class(&pooled[..2 * dim], &labels[..2], [dim, 1], &label_only, 0),
            None
        );
        assert_eq!(
            within_class(&pooled, &labels, [dim, 1], &[vec![0], vec![]], 0),
            None
        );
        // So is one whose second channel is constant (dead): a single live channel has no pair.
        let mut dead = pooled.clone();
        (0..n).for_each(|i| dead[i * dim + 1] = 0.5);
        assert_eq!(within_class(&dead, &labels, [dim, 1], &label_only, 0), None);
    }

    #[test]
    fn constant_channels_are_left_out_and_the_null_tracks_the_sample_size() {
        let (dim, cells) = (6, 9);
        let mut rng = StdRng::seed_from_u64(2);
        let null_at = |n: usize, rng: &mut StdRng| {
            let mut maps = vec![0.0f32; n * dim * cells];
            for i in 0..n {
                for k in 1..dim {
                    for c in 0..cells {
                        maps[(i * dim + k) * cells + c] = rng.random();
                    }
                }
            }
            mean_rv(&maps, n, dim, cells, 100, 3)
        };
        let small = null_at(20, &mut rng);
        let large = null_at(400, &mut rng);
        assert_eq!((small.constant_channels, large.constant_channels), (1, 1));
        // Independent channels: the mean sits at the null, and both shrink with more images.
        assert!((small.mean - small.null).abs() < 0.1, "{small:?}");
        assert!(large.null < small.null / 5.0, "{small:?} {large:?}");
        assert!(large.excess().abs() < 0.01, "{large:?}");
    }
}
