//! Scores on the parts benchmark ([`crate::synth::parts`]), where every part's box is known:
//! - **prototype purity** (PIP-Net's measure): for each channel an explanation leans on (each
//!   class's largest gauge-fixed weights), the share of its top training boxes that land on its
//!   most frequent part;
//! - **explanation correctness**: of the channels that carry most of a test image's predicted
//!   class, the share whose deciding cell lands on a part that makes that class.
//!
//! A box lands on the part that covers most of it (the distractor counts as a part: a channel
//! pure on the ring that every class shares is pure, and correctness then marks it wrong).

use super::pointing::AnnotationIndex;
use crate::cache::FeatureCache;
use crate::error::{Error, Result};
use crate::explain::prototypes::find_prototypes;
use crate::explain::{Grid, ImageGeometry};
use crate::head::params::top_weighted;
use crate::head::params::{argmax, HeadParams};
use crate::head::{Classifies, TrainedHead};
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

/// The geometry both scores share: the head that finds cells and prototypes (the model itself,
/// or for a linear layer one that rotates by the identity), and where a cell lands.
struct Setup<'a> {
    finder: std::borrow::Cow<'a, HeadParams>,
    grid: Grid,
    geometry: ImageGeometry,
    input_size: usize,
    index: AnnotationIndex<'a, PartsImage>,
}

impl<'a> Setup<'a> {
    fn new(cache: &FeatureCache, model: &'a TrainedHead, truth: &'a PartsTruth) -> Result<Self> {
        let finder = model.cell_finder()?;
        let size = truth.config.size;
        Ok(Setup {
            grid: Grid::for_head(cache, finder.dim)?,
            finder,
            geometry: ImageGeometry::new(&cache.manifest().preprocess, size, size),
            input_size: cache.manifest().input_size,
            index: AnnotationIndex::new(&truth.images),
        })
    }

    fn image(&self, path: &str) -> Result<&'a PartsImage> {
        self.index
            .get(path)
            .ok_or_else(|| Error::input(path, "image is not in the parts benchmark's ground truth"))
    }

    /// The part a cell of the feature grid lands on in its image.
    fn part_at(&self, image: &'a PartsImage, cell: usize) -> Option<&'a str> {
        image.part_at(
            &self
                .geometry
                .to_image(self.grid.cell_box(cell, self.input_size)),
        )
    }
}

/// Purity of each channel `model` explains with: each class's `channels_per_class` largest
/// gauge-fixed weights, each channel's `prototypes` top training boxes.
pub fn purity(
    cache: &FeatureCache,
    model: &TrainedHead,
    truth: &PartsTruth,
    opts: &PartsOptions,
) -> Result<Vec<ChannelPurity>> {
    let setup = Setup::new(cache, model, truth)?;
    let weight = model.gauge_fixed_weights();
    let prototypes = find_prototypes(cache, &setup.finder, "train", opts.prototypes)?;
    let train_items = cache.items("train")?;
    let mut channels = Vec::new();
    for k in top_weighted(
        &weight,
        model.classes(),
        model.dim(),
        opts.channels_per_class,
    ) {
        let mut landed = Vec::with_capacity(opts.prototypes);
        for p in &prototypes.channels[k].positive {
            let img = setup.image(&train_items[p.item].path)?;
            let [r, c] = p.cell;
            landed.push(setup.part_at(img, r * setup.grid.w + c));
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
    Ok(channels)
}

/// Where the explanations of `opts.split` land: counts of checked channels and of those on a
/// part of the predicted class, on the distractor, on the background; and the chance cells.
#[derive(Default)]
struct Landing {
    checked: usize,
    hits: usize,
    distractor: usize,
    background: usize,
    chance_hits: usize,
    chance_cells: usize,
}

/// Checks the `explanation_channels` largest positive contributions of every test image's
/// predicted class: does each channel's deciding cell land on a part that makes the class?
fn correctness(
    cache: &FeatureCache,
    model: &TrainedHead,
    truth: &PartsTruth,
    opts: &PartsOptions,
) -> Result<Landing> {
    let setup = Setup::new(cache, model, truth)?;
    let (dim, cells) = (model.dim(), setup.grid.cells());
    let weight = model.gauge_fixed_weights();
    let items = cache.items(&opts.split)?;
    let names = &cache.manifest().classes;
    let mut landing = Landing::default();
    for shard in cache.shards(&opts.split)? {
        let shard = shard?;
        let decisions = setup
            .finder
            .decide_batch(&shard.features, shard.len, cells)?;
        let reads = model.decide(&shard.features, shard.len, cells)?;
        for (i, (decision, read)) in decisions.iter().zip(&reads).enumerate() {
            let (values, predicted) = (&read.pooled, argmax(&read.logits));
            let w = &weight[predicted * dim..(predicted + 1) * dim];
            let mut order: Vec<(f32, usize)> = (0..dim)
                .map(|k| (w[k] * values[k], k))
                .filter(|&(a, _)| a > 0.0)
                .collect();
            order.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
            order.truncate(opts.explanation_channels);
            let img = setup.image(&items[shard.index[i] as usize].path)?;
            let class = names.get(predicted).ok_or_else(|| {
                Error::Shape(format!(
                    "class {predicted} is beyond the cache's {}",
                    names.len()
                ))
            })?;
            let on_class_part = |cell: usize| {
                setup
                    .part_at(img, cell)
                    .is_some_and(|part| truth.defines(class, part))
            };
            landing.chance_hits += (0..cells).filter(|&cell| on_class_part(cell)).count();
            landing.chance_cells += cells;
            for (_, k) in order {
                // The channel's value is read where it is extreme in its sign: a positive value
                // (the only kind InfoDisent's W ≥ 0 turns into evidence) at its largest cell.
                let pooled = &decision.pooled;
                let cell = if values[k] >= 0.0 {
                    pooled.argmax[k]
                } else {
                    pooled.argmin[k]
                };
                landing.checked += 1;
                match setup.part_at(img, cell) {
                    Some(part) if truth.defines(class, part) => landing.hits += 1,
                    Some(part) if part == DISTRACTOR => landing.distractor += 1,
                    Some(_) => {}
                    None => landing.background += 1,
                }
            }
        }
    }
    Ok(landing)
}

/// Purity and correctness of `model` on the parts dataset the cache was extracted from.
pub fn parts_score(
    cache: &FeatureCache,
    model: &TrainedHead,
    truth: &PartsTruth,
    opts: &PartsOptions,
) -> Result<PartsScore> {
    let channels = purity(cache, model, truth, opts)?;
    let landing = correctness(cache, model, truth, opts)?;
    let mean_purity = if channels.is_empty() {
        0.0
    } else {
        channels.iter().map(|c| c.purity).sum::<f64>() / channels.len() as f64
    };
    let share = |n: usize| n as f64 / landing.checked.max(1) as f64;
    Ok(PartsScore {
        purity: mean_purity,
        correctness: share(landing.hits),
        chance: landing.chance_hits as f64 / landing.chance_cells.max(1) as f64,
        checked: landing.checked,
        on_distractor: share(landing.distractor),
        on_background: share(landing.background),
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
