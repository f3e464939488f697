//! The batches a run trains and validates on: streamed from the cache, or, when the run's images
//! fit [`RESIDENT_BYTES`], read once and kept in memory as pixel rows. A small folder's run takes
//! hundreds of passes over the same images, and re-reading, decoding the f16 features and
//! laying them out one row per pixel cost as much as a frame head's training step. Both paths
//! hand out the same batches, bit for bit, so a run does not depend on which one it took.

use crate::cache::FeatureCache;
use crate::error::{Error, Result};
use crate::head::PixelBatch;
use rand::seq::SliceRandom;

/// The most feature memory a run keeps resident (f32, both splits' images together); larger runs
/// stream from the cache, holding one batch at a time.
pub const RESIDENT_BYTES: usize = 2 << 30;

/// Where a run's images come from.
pub struct Images<'a> {
    cache: &'a FeatureCache,
    split: &'a str,
    resident: Option<Resident>,
}

/// Images held in memory: for each item of the split, its slot in `pixels` (`[cells, D]` rows).
struct Resident {
    slot: Vec<Option<usize>>,
    pixels: Vec<f32>,
    labels: Vec<u32>,
    soft: Option<Vec<f32>>,
}

impl<'a> Images<'a> {
    /// The images of `split`; the `keep` items are read into memory now when they fit.
    pub fn new(cache: &'a FeatureCache, split: &'a str, keep: &[usize]) -> Result<Self> {
        let mut images = Images {
            cache,
            split,
            resident: None,
        };
        let [dim, h, w] = cache.feature_shape();
        if keep.len() * dim * h * w * 4 <= RESIDENT_BYTES {
            let mut resident = Resident {
                slot: Vec::new(),
                pixels: Vec::with_capacity(keep.len() * dim * h * w),
                labels: Vec::with_capacity(keep.len()),
                soft: None,
            };
            images.stream(keep, 256, |batch| {
                resident.pixels.extend_from_slice(&batch.pixels);
                resident.labels.extend_from_slice(&batch.labels);
                if let Some(p) = batch.soft {
                    resident.soft.get_or_insert_with(Vec::new).extend(p);
                }
                Ok(())
            })?;
            let last = keep.iter().copied().max().map_or(0, |m| m + 1);
            resident.slot = vec![None; last];
            for (slot, &item) in keep.iter().enumerate() {
                resident.slot[item] = Some(slot);
            }
            images.resident = Some(resident);
        }
        Ok(images)
    }

    /// Channels D of every image.
    pub fn dim(&self) -> usize {
        self.cache.feature_shape()[0]
    }

    /// Feeds the images `items` to `f` in batches. With `rng`, each pass draws a permutation of
    /// them, so batches mix classes whatever order the cache was written in (ImageFolder caches
    /// are written class by class).
    pub fn for_each_batch(
        &self,
        items: &[usize],
        batch_size: usize,
        rng: Option<&mut rand::rngs::StdRng>,
        f: impl FnMut(PixelBatch) -> Result<()>,
    ) -> Result<()> {
        let mut order = items.to_vec();
        if let Some(r) = rng {
            order.shuffle(r);
        }
        match &self.resident {
            Some(r)
                if order
                    .iter()
                    .all(|&i| r.slot.get(i).copied().flatten().is_some()) =>
            {
                self.resident_batches(r, &order, batch_size, f)
            }
            _ => self.stream(&order, batch_size, f),
        }
    }

    fn resident_batches(
        &self,
        r: &Resident,
        order: &[usize],
        batch_size: usize,
        mut f: impl FnMut(PixelBatch) -> Result<()>,
    ) -> Result<()> {
        let [dim, h, w] = self.cache.feature_shape();
        let (cells, classes) = (h * w, self.cache.num_classes());
        let per_image = cells * dim;
        for chunk in order.chunks(batch_size.max(1)) {
            let slots: Vec<usize> = chunk.iter().filter_map(|&i| r.slot[i]).collect();
            let mut pixels = Vec::with_capacity(slots.len() * per_image);
            for &s in &slots {
                pixels.extend_from_slice(&r.pixels[s * per_image..(s + 1) * per_image]);
            }
            f(PixelBatch {
                n: slots.len(),
                cells,
                dim,
                pixels,
                labels: slots.iter().map(|&s| r.labels[s]).collect(),
                soft: r.soft.as_ref().map(|p| {
                    slots
                        .iter()
                        .flat_map(|&s| p[s * classes..(s + 1) * classes].iter().copied())
                        .collect()
                }),
            })?;
        }
        Ok(())
    }

    /// [`Images::for_each_batch`] from the cache, in `order`; only one batch is in memory.
    fn stream(
        &self,
        order: &[usize],
        batch_size: usize,
        mut f: impl FnMut(PixelBatch) -> Result<()>,
    ) -> Result<()> {
        let (cache, split) = (self.cache, self.split);
        let [dim, h, w] = cache.feature_shape();
        let cells = h * w;
        let classes = cache.num_classes() as i64;
        let soft = cache.labels_are_original();
        cache.visit_batches(split, order, batch_size, |shard| {
            let mut labels = Vec::with_capacity(shard.len);
            for (&label, &index) in shard.labels.iter().zip(&shard.index) {
                if !(0..classes).contains(&label) {
                    return Err(Error::cache(
                        cache.dir(),
                        format!(
                            "split `{split}` item {index} has label {label}, outside 0..{classes}"
                        ),
                    ));
                }
                labels.push(label as u32);
            }
            let mut batch = PixelBatch::from_maps(&shard.features, labels, dim, cells);
            if soft {
                // The cache's original view only hands out shards that carry logits.
                let logits = shard.logits.as_deref().unwrap_or_default();
                batch.soft = Some(
                    logits
                        .chunks_exact(classes as usize)
                        .flat_map(crate::classifier::softmax)
                        .collect(),
                );
            }
            f(batch)
        })
    }
}
