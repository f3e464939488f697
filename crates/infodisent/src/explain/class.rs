//! Class-level explanations: the channels most consistently important for a class across its
//! images, by mean contribution `a_ck` and by how often the channel is among an image's top
//! contributions.

use super::image::ImageExplainer;
use crate::cache::FeatureCache;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// One channel's standing within a class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassChannel {
    /// Channel k.
    pub channel: usize,
    /// `W[c,k]`.
    pub weight: f32,
    /// Mean of `a_ck` over the class's images.
    pub mean_contribution: f32,
    /// Fraction of the class's images in whose top contributions (per [`ImageExplainer::top`])
    /// the channel appears.
    pub top_frequency: f32,
}

/// The explanation of one class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassExplanation {
    /// Class index.
    pub class: usize,
    /// Class name, when known.
    pub name: Option<String>,
    /// Images of the class that were summarised.
    pub images: usize,
    /// Of those, how many the head classifies correctly.
    pub correct: usize,
    /// Mean logit of the class on its own images.
    pub mean_logit: f32,
    /// The most important channels by mean contribution, largest first.
    pub channels: Vec<ClassChannel>,
}

/// Explains the classes `classes` (every class when `None`) over the images of `split` whose
/// label is that class, listing `channels` channels per class.
pub fn explain_classes(
    cache: &FeatureCache,
    explainer: &ImageExplainer,
    split: &str,
    classes: Option<&[usize]>,
    channels: usize,
) -> Result<Vec<ClassExplanation>> {
    Ok(explain_split(cache, explainer, split, classes, channels)?.0)
}

/// [`explain_classes`], and the head's prediction for every item of `split` from the same pass
/// (the viewer lists each class's images right and wrong).
pub fn explain_split(
    cache: &FeatureCache,
    explainer: &ImageExplainer,
    split: &str,
    classes: Option<&[usize]>,
    channels: usize,
) -> Result<(Vec<ClassExplanation>, Vec<usize>)> {
    let head = &explainer.head;
    let (d, cells) = (head.dim, explainer.grid.cells());
    let wanted: Vec<usize> = classes.map_or_else(|| (0..head.classes).collect(), <[usize]>::to_vec);
    if let Some(&bad) = wanted.iter().find(|&&c| c >= head.classes) {
        return Err(Error::Config(format!(
            "class {bad} out of range (the head has {} classes)",
            head.classes
        )));
    }
    let mut slot = vec![None; head.classes];
    for (i, &c) in wanted.iter().enumerate() {
        slot[c] = Some(i);
    }
    let mut sums = vec![vec![0.0f64; d]; wanted.len()];
    let mut top_counts = vec![vec![0usize; d]; wanted.len()];
    let mut stats = vec![(0usize, 0usize, 0.0f64); wanted.len()];
    let items = cache.split(split)?.num_items;
    let mut predictions = Vec::with_capacity(items);
    let bar = crate::progress::bar(items as u64, "classes", "img");
    for shard in cache.shards(split)? {
        let shard = shard?;
        let decisions = head.decide_batch(&shard.features, shard.len, cells)?;
        predictions.extend(decisions.iter().map(|d| d.predicted));
        for (i, decision) in decisions.iter().enumerate() {
            let label = usize::try_from(shard.labels[i])
                .ok()
                .filter(|&l| l < head.classes);
            let Some((c, s)) = label.and_then(|c| slot[c].map(|s| (c, s))) else {
                continue;
            };
            let a = head.contributions(decision, c);
            for (acc, &x) in sums[s].iter_mut().zip(&a) {
                *acc += f64::from(x);
            }
            let mut order: Vec<usize> = (0..d).filter(|&k| a[k] > 0.0).collect();
            order.sort_unstable_by(|&x, &y| a[y].total_cmp(&a[x]));
            for &k in order.iter().take(explainer.top) {
                top_counts[s][k] += 1;
            }
            let st = &mut stats[s];
            st.0 += 1;
            st.1 += usize::from(decision.predicted == c);
            st.2 += f64::from(decision.logits[c]);
        }
        bar.inc(shard.len as u64);
        bar.check()?;
    }
    bar.finish_and_clear();
    let summaries = wanted
        .iter()
        .enumerate()
        .map(|(s, &c)| {
            let n = stats[s].0.max(1) as f64;
            let mut list: Vec<ClassChannel> = (0..d)
                .map(|k| ClassChannel {
                    channel: k,
                    weight: head.weight[c * d + k],
                    mean_contribution: (sums[s][k] / n) as f32,
                    top_frequency: (top_counts[s][k] as f64 / n) as f32,
                })
                .collect();
            list.sort_unstable_by(|x, y| y.mean_contribution.total_cmp(&x.mean_contribution));
            list.truncate(channels);
            ClassExplanation {
                class: c,
                name: cache.manifest().classes.get(c).cloned(),
                images: stats[s].0,
                correct: stats[s].1,
                mean_logit: (stats[s].2 / n) as f32,
                channels: list,
            }
        })
        .collect();
    Ok((summaries, predictions))
}
