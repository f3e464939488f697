//! Prototypes: for every channel, the training images that activate it most (positive
//! prototypes, by `max ReLU(J_k)`) and least (negative prototypes, by `max ReLU(−J_k)`), found
//! in one streaming pass over the cache: one GEMM per shard for the rotation, then a per-channel
//! top-k kept in parallel over channels.

use super::{Grid, PixelBox};
use crate::cache::FeatureCache;
use crate::error::{Error, Result};
use crate::head::params::{top_weighted, HeadParams};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One prototype: an image, how strongly it activates the channel, and where.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prototype {
    /// Index of the image within the split.
    pub item: usize,
    /// The image's path (as recorded in the cache).
    pub path: String,
    /// The image's label.
    pub label: i64,
    /// `max ReLU(J_k)` (positive) or `max ReLU(−J_k)` (negative).
    pub score: f32,
    /// `[row, column]` of the extreme cell.
    pub cell: [usize; 2],
    /// That cell in network-input pixels (map to the original image with
    /// [`super::ImageGeometry`]).
    pub input_box: PixelBox,
}

/// A channel's prototypes, strongest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelPrototypes {
    /// Channel k.
    pub channel: usize,
    /// Images with the largest positive activation.
    pub positive: Vec<Prototype>,
    /// Images with the largest negative activation.
    pub negative: Vec<Prototype>,
}

/// Every channel's prototypes; saved as `prototypes.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prototypes {
    /// Split searched (normally `train`).
    pub split: String,
    /// Prototypes kept per channel and polarity.
    pub k: usize,
    /// Feature grid.
    pub grid: Grid,
    /// Side of the network input in pixels.
    pub input_size: usize,
    /// Cache fingerprint, so stale prototypes are noticed.
    pub cache_fingerprint: String,
    /// SHA-256 of the head's parameters, so stale prototypes are noticed.
    pub head_digest: String,
    /// One entry per channel, in channel order.
    pub channels: Vec<ChannelPrototypes>,
}

impl Prototypes {
    /// Points every prototype at its image as `cache` resolves it now (the dataset may have
    /// moved since the prototypes were found).
    pub fn resolve_paths(&mut self, cache: &FeatureCache) -> Result<()> {
        let items = cache.items(&self.split)?;
        for p in self
            .channels
            .iter_mut()
            .flat_map(|c| c.positive.iter_mut().chain(c.negative.iter_mut()))
        {
            let item = items.get(p.item).ok_or_else(|| {
                Error::cache(
                    cache.dir(),
                    format!(
                        "a prototype names item {} beyond the split's {}",
                        p.item,
                        items.len()
                    ),
                )
            })?;
            p.path.clone_from(&item.path);
        }
        Ok(())
    }

    /// Writes the JSON atomically.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        crate::fsutil::write_json_atomic(path, self)
    }
    /// Reads what [`Prototypes::save`] wrote.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        crate::fsutil::read_json(path)
    }
    /// Refuses prototypes found with another head or cache.
    pub fn check_matches(
        &self,
        path: &Path,
        head: &HeadParams,
        cache_fingerprint: &str,
    ) -> Result<()> {
        if self.head_digest != head_digest(head) || self.cache_fingerprint != cache_fingerprint {
            return Err(Error::cache(
                path,
                "prototypes were found with another head or cache: re-run `infodisent prototypes`",
            ));
        }
        Ok(())
    }
}

/// A digest of the head's parameters.
pub fn head_digest(head: &HeadParams) -> String {
    let bytes: Vec<u8> = [&head.rotation[..], &head.weight, &head.bias]
        .iter()
        .flat_map(|s| bytemuck::cast_slice::<f32, u8>(s).iter().copied())
        .collect();
    crate::fsutil::sha256_bytes(&bytes)
}

/// The channels worth drawing: for each class, its `per_class` largest weights; sorted,
/// without repeats.
pub fn top_weighted_channels(head: &HeadParams, per_class: usize) -> Vec<usize> {
    top_weighted(&head.weight, head.classes, head.dim, per_class)
}

/// A bounded list of the `k` best `(score, item, cell)`, best first.
#[derive(Clone)]
struct TopK {
    k: usize,
    best: Vec<(f32, usize, usize)>,
}

impl TopK {
    fn offer(&mut self, score: f32, item: usize, cell: usize) {
        if score <= 0.0 || (self.best.len() == self.k && score <= self.best[self.k - 1].0) {
            return;
        }
        let at = self.best.partition_point(|b| b.0 >= score);
        self.best.insert(at, (score, item, cell));
        self.best.truncate(self.k);
    }
}

/// Finds the top-`k` positive and negative prototypes of every channel of `head` in `split`.
pub fn find_prototypes(
    cache: &FeatureCache,
    head: &HeadParams,
    split: &str,
    k: usize,
) -> Result<Prototypes> {
    let grid = Grid::for_head(cache, head.dim)?;
    if k == 0 {
        return Err(Error::Config(
            "prototypes per channel must be at least 1".into(),
        ));
    }
    let items = cache.items(split)?;
    let cells = grid.cells();
    let empty = TopK {
        k,
        best: Vec::with_capacity(k + 1),
    };
    let mut tops: Vec<(TopK, TopK)> = vec![(empty.clone(), empty); grid.dim];
    let bar = crate::progress::bar(items.len() as u64, "prototypes", "img");
    for shard in cache.shards(split)? {
        let shard = shard?;
        let decisions = head.decide_batch(&shard.features, shard.len, cells)?;
        tops.par_iter_mut()
            .enumerate()
            .for_each(|(ch, (pos, neg))| {
                for (d, &item) in decisions.iter().zip(&shard.index) {
                    // Ranked by the raw extreme of J, so channels that never fire still order.
                    let row = &d.rotated[ch * cells..(ch + 1) * cells];
                    let (imax, imin) = (d.pooled.argmax[ch], d.pooled.argmin[ch]);
                    pos.offer(row[imax], item as usize, imax);
                    neg.offer(-row[imin], item as usize, imin);
                }
            });
        bar.inc(shard.len as u64);
        bar.check()?;
    }
    bar.finish_and_clear();
    let input_size = cache.manifest().input_size;
    let to_protos = |top: &TopK| -> Result<Vec<Prototype>> {
        top.best
            .iter()
            .map(|&(score, item, cell)| {
                let it = items.get(item).ok_or_else(|| {
                    Error::cache(
                        cache.dir(),
                        format!(
                            "shard names item {item} beyond the split's {} items",
                            items.len()
                        ),
                    )
                })?;
                Ok(Prototype {
                    item,
                    path: it.path.clone(),
                    label: it.label,
                    score,
                    cell: grid.cell_rc(cell),
                    input_box: grid.cell_box(cell, input_size),
                })
            })
            .collect()
    };
    let channels = tops
        .iter()
        .enumerate()
        .map(|(channel, (pos, neg))| {
            Ok(ChannelPrototypes {
                channel,
                positive: to_protos(pos)?,
                negative: to_protos(neg)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Prototypes {
        split: split.to_owned(),
        k,
        grid,
        input_size,
        cache_fingerprint: cache.manifest().fingerprint.clone(),
        head_digest: head_digest(head),
        channels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_keeps_the_best_in_order_and_skips_zeros() {
        let mut t = TopK { k: 3, best: vec![] };
        for (i, s) in [0.5, 0.0, 2.0, 1.0, 3.0, 0.7, -1.0].into_iter().enumerate() {
            t.offer(s, i, 0);
        }
        let items: Vec<usize> = t.best.iter().map(|b| b.1).collect();
        assert_eq!(items, vec![4, 2, 3]);
    }
}
