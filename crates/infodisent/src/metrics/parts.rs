//! Scores on the parts benchmark ([`crate::synth::parts`]), where every part's box is known:
//! - **prototype purity** (PIP-Net's measure): for each channel an explanation leans on (each
//!   class's largest gauge-fixed weights), the share of its top training boxes that land on its
//!   most frequent part;
//! - **explanation correctness**: of the channels that carry most of a test image's predicted
//!   class, the share whose deciding cell lands on a part that makes that class.
//!
//! A box lands on the part that covers most of it (the distractor counts as a part: a channel
//! pure on the ring that every class shares is pure, and correctness then marks it wrong).

use super::concentration::{gauge_fixed, Gauge};
use super::pointing::AnnotationIndex;
use crate::cache::FeatureCache;
use crate::classifier::LinearClassifier;
use crate::error::{Error, Result};
use crate::explain::prototypes::{find_prototypes, top_weighted};
use crate::explain::{Grid, ImageGeometry};
use crate::head::params::{argmax, HeadParams};
use crate::synth::parts::{PartsImage, PartsTruth, DISTRACTOR};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How much to measure.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartsOptions {
    /// Split whose explanations are checked (prototypes always come from `train`).
    pub split: String,
    /// Channels taken from each class: its largest gauge-fixed weights.
    pub channels_per_class: usize,
    /// Training boxes per channel (PIP-Net uses 10; 5 for small generated splits).
    pub prototypes: usize,
    /// Channels of each explanation checked: the largest positive contributions.
    pub explanation_channels: usize,
}

impl Default for PartsOptions {
    fn default() -> Self {
        PartsOptions {
            split: "test".into(),
            channels_per_class: 5,
            prototypes: 5,
            explanation_channels: 3,
        }
    }
}

/// What a model explains with: a trained InfoDisent head, or a linear probe on pooled features
/// (whose channels are the raw ones and whose cell is each channel's largest value).
#[derive(Clone, Copy)]
pub enum Explained<'a> {
    /// Contributions `(W − min_c W)[c,k] · v_k` of the sparse pooling.
    Head(&'a HeadParams),
    /// Contributions `(W − mean_c W)[c,k] · pool(F)_k`, pooled as the probe does.
    Probe(&'a LinearClassifier),
}

/// One measured channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelPurity {
    /// Channel k.
    pub channel: usize,
    /// The part most of its training boxes land on (`None`: all on the background).
    pub part: Option<String>,
    /// Share of its boxes on that part.
    pub purity: f64,
}

/// Purity and correctness of one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartsScore {
    /// Mean purity over `channels`.
    pub purity: f64,
    /// Share of checked explanation channels whose cell lands on a part of the predicted class.
    pub correctness: f64,
    /// The same share for a cell drawn at random: the share of all cells that land on a part of
    /// the predicted class (a cell touching a part counts, so chance is far from zero).
    pub chance: f64,
    /// Explanation channels checked (images × channels with positive contribution).
    pub checked: usize,
    /// Share of the checked channels whose cell lands on the distractor every class shares.
    pub on_distractor: f64,
    /// Share of the checked channels whose cell touches no part.
    pub on_background: f64,
    /// Measured channels whose most frequent part is the distractor.
    pub distractor_channels: usize,
    /// Every measured channel.
    pub channels: Vec<ChannelPurity>,
}

impl Explained<'_> {
    /// Classes and gauge-fixed weights `[C, D]`.
    fn fixed_weights(self) -> (usize, Vec<f32>) {
        match self {
            Explained::Head(h) => (
                h.classes,
                gauge_fixed(&h.weight, h.classes, h.dim, Gauge::Min),
            ),
            Explained::Probe(p) => (
                p.classes,
                gauge_fixed(&p.weight, p.classes, p.dim, Gauge::Mean),
            ),
        }
    }
}

/// A head that rotates by the identity: it finds a probe's cells and prototypes in the raw
/// channels (its zero weights are never read).
fn identity_head(p: &LinearClassifier) -> Result<HeadParams> {
    let mut identity = vec![0.0; p.dim * p.dim];
    identity
        .iter_mut()
        .step_by(p.dim + 1)
        .for_each(|x| *x = 1.0);
    HeadParams::new(
        p.dim,
        p.classes,
        identity,
        vec![0.0; p.classes * p.dim],
        vec![0.0; p.classes],
    )
}

/// Share of `landed` on its most frequent part (background boxes count against it), and that part.
pub fn purity_of(landed: &[Option<&str>]) -> (Option<String>, f64) {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for part in landed.iter().flatten() {
        *counts.entry(part).or_default() += 1;
    }
    match counts.into_iter().max_by_key(|&(_, n)| n) {
        Some((part, n)) => (Some(part.to_owned()), n as f64 / landed.len() as f64),
        None => (None, 0.0),
    }
}

/// Measures `model` on the parts dataset the cache was extracted from.
pub fn parts_score(
    cache: &FeatureCache,
    model: Explained,
    truth: &PartsTruth,
    opts: &PartsOptions,
) -> Result<PartsScore> {
    let identity;
    let finder = match model {
        Explained::Head(h) => h,
        Explained::Probe(p) => {
            identity = identity_head(p)?;
            &identity
        }
    };
    let (classes, weight) = model.fixed_weights();
    let dim = finder.dim;
    let grid = Grid::for_head(cache, dim)?;
    let cells = grid.cells();
    let input_size = cache.manifest().input_size;
    let size = truth.config.size;
    let geometry = ImageGeometry::new(&cache.manifest().preprocess, size, size);
    let index: AnnotationIndex<PartsImage> = AnnotationIndex::new(&truth.images);
    let lookup = |path: &str| {
        index
            .get(path)
            .ok_or_else(|| Error::input(path, "image is not in the parts benchmark's ground truth"))
    };
    let cell_image_box = |cell: usize| geometry.to_image(grid.cell_box(cell, input_size));

    let prototypes = find_prototypes(cache, finder, "train", opts.prototypes)?;
    let train_items = cache.items("train")?;
    let mut channels = Vec::new();
    for k in top_weighted(&weight, classes, dim, opts.channels_per_class) {
        let protos = &prototypes.channels[k].positive;
        let mut landed = Vec::with_capacity(opts.prototypes);
        for p in protos {
            let img = lookup(&train_items[p.item].path)?;
            let [r, c] = p.cell;
            landed.push(img.part_at(&cell_image_box(r * grid.w + c)));
        }
        // Missing prototypes (a channel that fires on fewer images) count as background.
        landed.resize(opts.prototypes, None);
        let (part, purity) = purity_of(&landed);
        channels.push(ChannelPurity {
            channel: k,
            part,
            purity,
        });
    }

    let items = cache.items(&opts.split)?;
    let names = &cache.manifest().classes;
    let (mut hits, mut checked, mut distractor, mut background) = (0usize, 0usize, 0usize, 0usize);
    let (mut chance_hits, mut chance_cells) = (0usize, 0usize);
    for shard in cache.shards(&opts.split)? {
        let shard = shard?;
        let decisions = finder.decide_batch(&shard.features, shard.len, cells)?;
        for (i, decision) in decisions.iter().enumerate() {
            let pooled;
            let (values, predicted) = match model {
                Explained::Head(_) => (&decision.pooled.v, decision.predicted),
                Explained::Probe(p) => {
                    let f = &shard.features[i * dim * cells..(i + 1) * dim * cells];
                    pooled = p.pool(f, cells);
                    (&pooled, argmax(&p.logits(&pooled)))
                }
            };
            let w = &weight[predicted * dim..(predicted + 1) * dim];
            let mut order: Vec<(f32, usize)> = (0..dim)
                .map(|k| (w[k] * values[k], k))
                .filter(|&(a, _)| a > 0.0)
                .collect();
            order.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
            order.truncate(opts.explanation_channels);
            let img = lookup(&items[shard.index[i] as usize].path)?;
            let class = names.get(predicted).ok_or_else(|| {
                Error::Shape(format!(
                    "class {predicted} is beyond the cache's {}",
                    names.len()
                ))
            })?;
            let on_class_part = |cell: usize| {
                img.part_at(&cell_image_box(cell))
                    .is_some_and(|part| truth.defines(class, part))
            };
            chance_hits += (0..cells).filter(|&cell| on_class_part(cell)).count();
            chance_cells += cells;
            for (_, k) in order {
                // The channel's value is read where it is extreme in its sign: a positive value
                // (the only kind InfoDisent's W ≥ 0 turns into evidence) at its largest cell.
                let pooled = &decision.pooled;
                let cell = if values[k] >= 0.0 {
                    pooled.argmax[k]
                } else {
                    pooled.argmin[k]
                };
                checked += 1;
                match img.part_at(&cell_image_box(cell)) {
                    Some(part) if truth.defines(class, part) => hits += 1,
                    Some(part) if part == DISTRACTOR => distractor += 1,
                    Some(_) => {}
                    None => background += 1,
                }
            }
        }
    }
    let purity = if channels.is_empty() {
        0.0
    } else {
        channels.iter().map(|c| c.purity).sum::<f64>() / channels.len() as f64
    };
    let share = |n: usize| {
        if checked == 0 {
            0.0
        } else {
            n as f64 / checked as f64
        }
    };
    Ok(PartsScore {
        purity,
        correctness: share(hits),
        chance: chance_hits as f64 / chance_cells.max(1) as f64,
        checked,
        on_distractor: share(distractor),
        on_background: share(background),
        distractor_channels: channels
            .iter()
            .filter(|c| c.part.as_deref() == Some(DISTRACTOR))
            .count(),
        channels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purity_is_the_share_of_the_most_frequent_part() {
        assert_eq!(
            purity_of(&[Some("disk"), Some("disk"), Some("ring"), None, Some("disk")]),
            (Some("disk".to_owned()), 0.6)
        );
        assert_eq!(purity_of(&[None, None]), (None, 0.0));
        assert_eq!(purity_of(&[Some("cross"); 5]).1, 1.0);
    }
}
