//! Prototype purity on a dataset's annotated part locations (CUB-200-2011's 15 parts), as
//! PIP-Net measures it: for each channel an explanation leans on (each class's largest
//! gauge-fixed weights), take its `k` top training images; in each, a visible part is present
//! when its location lies inside the channel's extreme cell, mapped to original-image pixels.
//! A part's purity is the share of the images showing it in which it is present; the channel's
//! purity is that of its purest part (ties to the part present more often). Parts named
//! `left X` and `right X` are one part `X`, present when either is, as PIP-Net merges them.
//!
//! A location is a point; a part has extent. PIP-Net's rule (`radius` 0) asks for the point in
//! the cell, so a cell on the edge of a wing holds no wing. A `radius` grows the cell by that
//! many pixels on every side: a part of side `2 · radius` around its location then counts
//! wherever the cell overlaps it, which is how the parts benchmark, whose parts are boxes,
//! counts them.

use crate::cache::{FeatureCache, Item};
use crate::error::{Error, Result};
use crate::explain::prototypes::find_prototypes;
use crate::explain::ImageGeometry;
use crate::head::params::top_weighted;
use crate::head::{Classifies, TrainedHead};
use serde::{Deserialize, Serialize};
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};

/// PIP-Net's number of top images per prototype.
pub const PIPNET_K: usize = 10;

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
    /// Pixels the cell is grown by before asking whether it holds a location (0: PIP-Net).
    pub radius: f64,
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
    fn add(&mut self, item: &Item, names: &[String], b: &crate::geometry::PixelBox, radius: f64) {
        let Some(ann) = &item.annotation else { return };
        let mut seen: BTreeMap<String, bool> = BTreeMap::new();
        for p in &ann.parts {
            let Some(name) = names.get(usize::from(p.part)) else {
                continue;
            };
            let (x, y) = (f64::from(p.x), f64::from(p.y));
            let inside = (f64::from(b[0]) - radius..=f64::from(b[2]) + radius).contains(&x)
                && (f64::from(b[1]) - radius..=f64::from(b[3]) + radius).contains(&y);
            *seen.entry(merged(name)).or_default() |= inside;
        }
        for (part, inside) in seen {
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

/// Part purity of `model`'s channels, `k` top training images each, cells grown by `radius`
/// pixels; `None` when the cache's items carry no part locations.
pub fn keypoint_purity(
    cache: &FeatureCache,
    model: &TrainedHead,
    channels_per_class: usize,
    k: usize,
    radius: f64,
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
            presence.add(item, &manifest.part_names, &cell, radius);
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
        radius,
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
        let cell = [0, 0, 10, 10];
        let mut p = Presence::default();
        // The eye is in the cell in three images (left, right, or both), out of four that show
        // an eye; the beak shows in two images and is in the cell in one.
        let images = [
            item(&[(1, 5.0, 5.0), (0, 50.0, 50.0)]),
            item(&[(2, 5.0, 5.0)]),
            item(&[(1, 5.0, 5.0), (2, 6.0, 6.0), (0, 5.0, 5.0)]),
            item(&[(2, 50.0, 5.0)]),
            item(&[]),
        ];
        for image in &images {
            p.add(image, &names, &cell, 0.0);
        }
        assert_eq!(p.purest(), (Some("eye".into()), 0.75));
        assert_eq!(p.most_held(images.len()), 3.0 / 5.0);
        // Grown by 40 pixels the cell reaches every eye and the beak at (50, 50): both are pure,
        // and the eye, present more often, wins the tie.
        let mut grown = Presence::default();
        for image in &images {
            grown.add(image, &names, &cell, 40.0);
        }
        assert_eq!(grown.purest(), (Some("eye".into()), 1.0));
        assert_eq!(merged(" right wing"), "wing");
        assert_eq!(Presence::default().purest(), (None, 0.0));
    }
}
