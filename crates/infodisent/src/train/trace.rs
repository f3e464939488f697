//! The RV of a head's channels along training (`TrainConfig::trace_rv`): once an epoch, on a
//! fixed class-balanced sample of the training images, both readings of [`crate::rv`]
//! over all of its channels and over those its decisions use, the raw channels' beside. What
//! `metrics` measures once at the end, followed through the run to see when the channels
//! entangle and which setting moves them.

use crate::cache::{balanced_sample, FeatureCache};
use crate::error::Result;
use crate::head::params::top_weighted_per_class;
use crate::head::{Classifies, Head, TrainedHead};
use crate::rv::{self, HeadRv};

/// Channel pairs sampled for each reading of each epoch.
const PAIRS: usize = 1000;

/// The sampled images' feature maps, read once at the start of the run.
pub struct RvTrace {
    maps: Vec<f32>,
    shape: [usize; 2],
    seed: u64,
}

impl RvTrace {
    /// Reads `images` of the `train` items of `split` (indices into its items), balanced over
    /// the classes and drawn with `seed`.
    pub fn new(
        cache: &FeatureCache,
        split: &str,
        train: &[usize],
        images: usize,
        seed: u64,
    ) -> Result<Self> {
        let items = cache.items(split)?;
        let pool: Vec<_> = train.iter().map(|&i| items[i].clone()).collect();
        let picks: Vec<usize> = balanced_sample(&pool, images, seed)
            .into_iter()
            .map(|p| train[p])
            .collect();
        let [dim, h, w] = cache.feature_shape();
        Ok(RvTrace {
            maps: cache.read_items(split, &picks)?.features,
            shape: [dim, h * w],
            seed,
        })
    }

    /// The head's RV now.
    pub fn measure(&self, head: &Head) -> Result<HeadRv> {
        let [dim, cells] = self.shape;
        let n = self.maps.len() / (dim * cells).max(1);
        let model = head.export()?;
        let used = top_weighted_per_class(
            &model.gauge_fixed_weights(),
            model.classes(),
            model.dim(),
            rv::USED_PER_CLASS,
        );
        let rotated: Option<Vec<f32>> = match &model {
            TrainedHead::InfoDisent(p) => Some(
                p.decide_batch(&self.maps, n, cells)?
                    .into_iter()
                    .flat_map(|d| d.rotated)
                    .collect(),
            ),
            TrainedHead::Linear(_) => None,
        };
        let infodisent = rotated.is_some();
        let report = rv::measure(
            &self.maps,
            rotated.as_deref(),
            self.shape,
            PAIRS,
            self.seed,
            if infodisent {
                [Some(&used), None]
            } else {
                [None, Some(&used)]
            },
            None,
        );
        Ok(report.of_head(infodisent))
    }
}
