//! One pass over a cached split that feeds every image to the metrics measuring it: each
//! metric is an [`Accumulator`] in its own file, and a new one is one more.

use crate::cache::FeatureCache;
use crate::error::Result;
use crate::explain::Grid;
use crate::head::params::{Decision, HeadParams};

/// One image of the measured split, as the pass hands it over.
pub struct Seen<'a> {
    /// Its index in the split's items.
    pub item: usize,
    /// Its image file.
    pub path: &'a str,
    /// Its feature map `[D, cells]`.
    pub features: &'a [f32],
    /// The grid of the feature map.
    pub grid: Grid,
    /// Its label.
    pub truth: usize,
    /// Its boxes and part locations, where the dataset records them.
    pub annotation: Option<&'a crate::dataset::Annotation>,
    /// The InfoDisent head's decision on it, when a head is measured.
    pub decision: Option<&'a Decision>,
}

/// A metric that sees the images of a split one at a time.
pub trait Accumulator {
    /// Takes one image into account.
    fn add(&mut self, image: &Seen) -> Result<()>;
}

/// Feeds every image of `split` to each of `metrics`, the head's decision computed once a
/// shard, with a progress bar.
pub fn each_image(
    cache: &FeatureCache,
    split: &str,
    head: Option<&HeadParams>,
    metrics: &mut [&mut dyn Accumulator],
) -> Result<()> {
    let grid = Grid::from_shape(cache.feature_shape());
    let (d, cells) = (grid.dim, grid.cells());
    let items = cache.items(split)?;
    let bar = crate::progress::bar(items.len() as u64, "metrics", "img");
    for shard in cache.shards(split)? {
        let shard = shard?;
        let decisions = match head {
            Some(h) => h.decide_batch(&shard.features, shard.len, cells)?,
            None => vec![],
        };
        for i in 0..shard.len {
            let item = shard.index[i] as usize;
            let seen = Seen {
                item,
                path: &items[item].path,
                features: &shard.features[i * d * cells..(i + 1) * d * cells],
                grid,
                truth: shard.labels[i] as usize,
                annotation: items[item].annotation.as_ref(),
                decision: decisions.get(i),
            };
            for metric in metrics.iter_mut() {
                metric.add(&seen)?;
            }
        }
        bar.inc(shard.len as u64);
        bar.check()?;
    }
    bar.finish_and_clear();
    Ok(())
}
