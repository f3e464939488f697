//! Prototype purity on a dataset's annotated part locations (CUB-200-2011's 15 parts), as
//! PIP-Net measures it: for each channel an explanation leans on (each class's largest
//! gauge-fixed weights), take its `k` top training images; in each, the [`CellRule`] says which
//! visible parts the channel's extreme cell (mapped to original-image pixels) holds. A part's
//! purity is the share of the images showing it in which the cell holds it; the channel's
//! purity is that of its purest part (ties to the part held more often). Parts named `left X`
//! and `right X` are one part `X`, held when either is, as PIP-Net merges them.

use crate::annotation::pixel_box;
use crate::cache::{FeatureCache, Item};
use crate::error::{Error, Result};
use crate::explain::prototypes::find_prototypes;
use crate::explain::ImageGeometry;
use crate::geometry::{covering_most, point_near_box, PixelBox};
use crate::head::params::top_weighted;
use crate::head::{Classifies, TrainedHead};
use serde::{Deserialize, Serialize};
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// PIP-Net's number of top images per prototype.
pub const PIPNET_K: usize = 10;

/// Which annotated parts a prototype's cell holds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CellRule {
    /// PIP-Net's: every part whose location lies inside the cell. A location is a point and a
    /// part has extent, so a cell on the edge of a wing holds no wing, and a cell may hold two.
    PointInCell,
    /// Each location stands for a square part of this half-side (pixels) around it; the cell
    /// holds the one covering most of it, as the parts benchmark matches cells to its boxes.
    Covering(f64),
}

/// Purity of one channel on the annotated parts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeypointChannel {
    /// Channel k.
    pub channel: usize,
    /// Its purest part (`None`: no top image shows an annotated part).
    pub part: Option<String>,
    /// Share of the top images showing that part whose cell holds it.
    pub purity: f64,
    /// Share of all its top images whose cell holds its most often held part: images that do
    /// not show the part count against it, as the parts benchmark counts them.
    pub purity_of_all: f64,
}

/// Part purity of a model on a cache whose items carry part locations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeypointPurity {
    /// Mean purity over the measured channels.
    pub purity: f64,
    /// Mean of [`KeypointChannel::purity_of_all`].
    pub purity_of_all: f64,
    /// Top training images per channel.
    pub k: usize,
    /// Channels taken from each class.
    pub channels_per_class: usize,
    /// How a cell is matched to the parts.
    pub rule: CellRule,
    /// Every measured channel.
    pub channels: Vec<KeypointChannel>,
}

/// A part's name with PIP-Net's left/right merge applied.
fn merged(name: &str) -> String {
    let name = name.trim();
    ["left ", "right "]
        .iter()
        .find_map(|side| name.strip_prefix(side))
        .unwrap_or(name)
        .to_owned()
}

/// Per merged part: images showing it, and of those, images whose cell holds it.
#[derive(Default)]
struct Presence(BTreeMap<String, (usize, usize)>);

impl Presence {
    /// Records one top image: the merged parts it shows, and which the cell `b` holds.
    fn add(&mut self, item: &Item, names: &[String], b: &PixelBox, rule: CellRule) {
        let Some(ann) = &item.annotation else { return };
        let named = || {
            ann.parts
                .iter()
                .filter_map(|p| Some((merged(names.get(usize::from(p.part))?), p)))
        };
        let held: Vec<String> = match rule {
            CellRule::PointInCell => named()
                .filter(|(_, p)| point_near_box(f64::from(p.x), f64::from(p.y), b, 0.0))
                .map(|(name, _)| name)
                .collect(),
            CellRule::Covering(half) => covering_most(
                b,
                named().map(|(name, p)| {
                    let (x, y) = (f64::from(p.x), f64::from(p.y));
                    (name, pixel_box(x - half, y - half, x + half, y + half))
                }),
            )
            .into_iter()
            .collect(),
        };
        let shown: BTreeSet<String> = named().map(|(name, _)| name).collect();
        for part in shown {
            let inside = held.contains(&part);
            let e = self.0.entry(part).or_default();
            e.0 += 1;
            e.1 += usize::from(inside);
        }
    }

    /// The purest part and its purity.
    fn purest(&self) -> (Option<String>, f64) {
        let best = self.0.iter().max_by(|a, b| {
            let share = |&(shown, held): &(usize, usize)| held as f64 / shown as f64;
            share(a.1).total_cmp(&share(b.1)).then(a.1 .1.cmp(&b.1 .1))
        });
        match best {
            Some((part, &(shown, held))) => (Some(part.clone()), held as f64 / shown as f64),
            None => (None, 0.0),
        }
    }

    /// The largest share of `k` top images whose cell holds one part.
    fn most_held(&self, k: usize) -> f64 {
        let held = self.0.values().map(|&(_, held)| held).max().unwrap_or(0);
        held as f64 / k.max(1) as f64
    }
}

/// Part purity of `model`'s channels, `k` top training images each, cells matched to parts by
/// `rule`; `None` when the cache's items carry no part locations.
pub fn keypoint_purity(
    cache: &FeatureCache,
    model: &TrainedHead,
    channels_per_class: usize,
    k: usize,
    rule: CellRule,
) -> Result<Option<KeypointPurity>> {
    let manifest = cache.manifest();
    if manifest.part_names.is_empty() {
        return Ok(None);
    }
    let finder = model.cell_finder()?;
    let prototypes = find_prototypes(cache, &finder, "train", k)?;
    let items = cache.items("train")?;
    let weight = model.gauge_fixed_weights();
    // An image is a top image of many channels: its size is read from its header once.
    let mut sizes: HashMap<usize, (u32, u32)> = HashMap::new();
    let mut channels = Vec::new();
    for c in top_weighted(&weight, model.classes(), model.dim(), channels_per_class) {
        let mut presence = Presence::default();
        for p in &prototypes.channels[c].positive {
            let item = &items[p.item];
            let (w, h) = match sizes.entry(p.item) {
                Entry::Occupied(known) => *known.get(),
                Entry::Vacant(slot) => *slot.insert(
                    image::image_dimensions(&item.path)
                        .map_err(|e| Error::input(&item.path, e.to_string()))?,
                ),
            };
            let cell = ImageGeometry::new(&manifest.preprocess, w, h).to_image(p.input_box);
            presence.add(item, &manifest.part_names, &cell, rule);
        }
        let (part, purity) = presence.purest();
        channels.push(KeypointChannel {
            channel: c,
            part,
            purity,
            // Missing prototypes (a channel that fires on fewer images) count against it.
            purity_of_all: presence.most_held(k),
        });
    }
    let mean = |f: fn(&KeypointChannel) -> f64| {
        channels.iter().map(f).sum::<f64>() / channels.len().max(1) as f64
    };
    Ok(Some(KeypointPurity {
        purity: mean(|c| c.purity),
        purity_of_all: mean(|c| c.purity_of_all),
        k,
        channels_per_class,
        rule,
        channels,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::{Annotation, PartPoint};

    fn item(parts: &[(u16, f32, f32)]) -> Item {
        Item {
            path: "x.jpg".into(),
            label: 0,
            annotation: Some(Annotation {
                boxes: vec![],
                parts: parts
                    .iter()
                    .map(|&(part, x, y)| PartPoint { part, x, y })
                    .collect(),
            }),
        }
    }

    #[test]
    fn purity_counts_only_images_showing_the_part_and_merges_left_and_right() {
        let names: Vec<String> = ["beak", "left eye", "right eye"].map(String::from).to_vec();
        let cell = [0, 0, 30, 30];
        let mut p = Presence::default();
        // The eye is in the cell in three images (left, right, or both), out of four that show
        // an eye; the beak shows in two images and is in the cell in one, beside the eye.
        let images = [
            item(&[(1, 5.0, 5.0), (0, 50.0, 50.0)]),
            item(&[(2, 5.0, 5.0)]),
            item(&[(1, 5.0, 5.0), (2, 6.0, 6.0), (0, 25.0, 25.0)]),
            item(&[(2, 50.0, 5.0)]),
            item(&[]),
        ];
        for image in &images {
            p.add(image, &names, &cell, CellRule::PointInCell);
        }
        assert_eq!(p.purest(), (Some("eye".into()), 0.75));
        assert_eq!(p.most_held(images.len()), 3.0 / 5.0);
        assert_eq!(p.0["beak"], (2, 1));
        // As parts of side 20, the third image's beak and eyes all cover some of the cell; the
        // eye at (6, 6) covers most of it (16 × 16 pixels, the beak 15 × 15), so the cell holds
        // the eye and not the beak there.
        let mut covering = Presence::default();
        for image in &images {
            covering.add(image, &names, &cell, CellRule::Covering(10.0));
        }
        assert_eq!(covering.purest(), (Some("eye".into()), 0.75));
        assert_eq!(covering.0["beak"], (2, 0));
        assert_eq!(merged(" right wing"), "wing");
        assert_eq!(Presence::default().purest(), (None, 0.0));
    }
}
