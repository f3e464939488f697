//! The paper's measurements of a trained head: how many channels carry a decision
//! ([`concentration`]), how disentangled the channels are ([`rv`]), whether heatmaps point at
//! the known deciding part ([`pointing`]) and how faithful they are ([`faithfulness`]).
//!
//! [`cache_metrics`] needs only the feature cache; [`faithfulness_metrics`] re-runs the
//! backbone on perturbed images.

pub mod concentration;
pub mod faithfulness;
pub mod parts;
pub mod pointing;
pub mod rv;

use crate::cache::FeatureCache;
use crate::classifier::LinearClassifier;
use crate::dataset::ImageStore;
use crate::engine::FeatureFn;
use crate::error::{Error, Result};
use crate::explain::{
    explainers, of_polarity, Explainer, Grid, ImageGeometry, Polarity, RandomMap, Subject,
};
use crate::head::params::{argmax, HeadParams};
use crate::synth::Annotations;
use concentration::{
    channels_for_fraction, channels_for_net_fraction, gauge_fixed, summarize, ConcentrationStats,
    Gauge,
};
use faithfulness::{FaithfulnessScore, PerturbationImage};
use pointing::{points_at, AnnotationIndex, PointingScore};
use rv::RvReport;
use serde::{Deserialize, Serialize};

/// What to measure and how much.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetricsOptions {
    /// Split measured (normally `test`).
    pub split: String,
    /// Images stacked for the RV coefficient (a class-balanced sample across the split).
    pub rv_images: usize,
    /// Channel pairs sampled for the RV coefficient.
    pub rv_pairs: usize,
    /// Images for deletion/insertion.
    pub deletion_images: usize,
    /// Steps of each deletion/insertion curve.
    pub steps: usize,
    /// Pointing-game tolerance in original-image pixels (15 in Zhang et al.).
    pub pointing_tolerance: f64,
    /// Seed for sampled pairs and random maps.
    pub seed: u64,
}

impl Default for MetricsOptions {
    fn default() -> Self {
        MetricsOptions {
            split: "test".into(),
            rv_images: 1024,
            rv_pairs: 2000,
            deletion_images: 16,
            steps: 16,
            pointing_tolerance: 15.0,
            seed: 0,
        }
    }
}

/// Every metric; serialised as `metrics.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsReport {
    /// Split measured.
    pub split: String,
    /// Images in it.
    pub images: usize,
    /// Top-1 accuracy of the InfoDisent head.
    pub accuracy: f64,
    /// Channels for 95 % of the InfoDisent head, gauge-fixed (W − min_c W), both readings.
    pub channels_for_95: ChannelCounts,
    /// What the baseline numbers refer to (`linear probe`, `original classifier`), if any.
    pub baseline: Option<String>,
    /// Top-1 accuracy of the baseline.
    pub baseline_accuracy: Option<f64>,
    /// Channels for 95 % of the baseline, contributions `(W − mean_c W)[c,k] · avgpool(F)_k`.
    pub baseline_channels_for_95: Option<ChannelCounts>,
    /// Sparsity of W and how far U moved from the identity.
    pub weights: WeightStats,
    /// RV coefficients of InfoDisent vs raw channels.
    pub rv: RvReport,
    /// Pointing game for the true class (generated data only).
    pub pointing: Vec<PointingScore>,
    /// Whether `H⁻` of the true class peaks on the planted counter-evidence (generated data
    /// with counter-evidence only).
    pub counter_pointing: Vec<PointingScore>,
    /// Deletion and insertion AUC, when the backbone was run.
    pub faithfulness: Vec<FaithfulnessScore>,
}

/// Channels for 95 % under both readings of the paper's definition (see [`concentration`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelCounts {
    /// The paper's reading: true class, 95 % of the net total (negatives included).
    pub paper: ConcentrationStats,
    /// Images left out of `paper` because their true class's net total is not positive.
    pub paper_undefined: usize,
    /// The strict reading: predicted class, 95 % of the positive contributions.
    pub strict: ConcentrationStats,
}

/// What the trained parameters look like.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WeightStats {
    /// Share of W's entries that are exactly zero (after the nonnegativity clamp).
    pub zero_share: f64,
    /// ‖U − I‖_F / √D: 0 for the identity, about √2 for a random rotation.
    pub rotation_from_identity: f64,
}

impl WeightStats {
    /// The statistics of a head.
    pub fn of(head: &HeadParams) -> Self {
        let d = head.dim;
        let zeros = head.weight.iter().filter(|&&w| w == 0.0).count();
        let off: f64 = head
            .rotation
            .iter()
            .enumerate()
            .map(|(i, &u)| {
                let identity = if i / d == i % d { 1.0 } else { 0.0 };
                (f64::from(u) - identity).powi(2)
            })
            .sum();
        WeightStats {
            zero_share: zeros as f64 / head.weight.len().max(1) as f64,
            rotation_from_identity: (off / d.max(1) as f64).sqrt(),
        }
    }
}

/// Per-image channel counts under both readings, gathered then summarised.
#[derive(Default)]
struct CountTally {
    paper: Vec<usize>,
    undefined: usize,
    strict: Vec<usize>,
}

impl CountTally {
    /// Adds one image: `weight` (gauge-fixed, `[classes, dim]`) times `v`, for the true and the
    /// predicted class.
    fn add(&mut self, weight: &[f32], v: &[f32], truth: usize, predicted: usize) {
        let d = v.len();
        let contributions = |c: usize| -> Vec<f32> {
            weight[c * d..(c + 1) * d]
                .iter()
                .zip(v)
                .map(|(w, x)| w * x)
                .collect()
        };
        match channels_for_net_fraction(&contributions(truth), 0.95) {
            Some(m) => self.paper.push(m),
            None => self.undefined += 1,
        }
        self.strict
            .push(channels_for_fraction(&contributions(predicted), 0.95));
    }

    fn finish(&self) -> ChannelCounts {
        ChannelCounts {
            paper: summarize(&self.paper),
            paper_undefined: self.undefined,
            strict: summarize(&self.strict),
        }
    }
}

fn baseline_check<'a>(
    head: &HeadParams,
    baseline: Option<&'a LinearClassifier>,
) -> Option<&'a LinearClassifier> {
    baseline.filter(|b| b.dim == head.dim && b.classes == head.classes)
}

/// Everything that needs only the cache: accuracy, channels for 95% (InfoDisent and
/// baseline), RV coefficients, and with `annotations` the pointing game, in one pass.
pub fn cache_metrics(
    cache: &FeatureCache,
    head: &HeadParams,
    baseline: Option<(&str, &LinearClassifier)>,
    annotations: Option<&Annotations>,
    opts: &MetricsOptions,
) -> Result<MetricsReport> {
    let grid = Grid::for_head(cache, head.dim)?;
    let baseline = baseline.and_then(|(name, b)| baseline_check(head, Some(b)).map(|b| (name, b)));
    let (d, cells) = (grid.dim, grid.cells());
    let input_size = cache.manifest().input_size;
    let pre = &cache.manifest().preprocess;
    let items = cache.items(&opts.split)?;
    let index = annotations.map(AnnotationIndex::new);
    let random = RandomMap::new(opts.seed, 1);
    // The pointing game scores every evidence-for method against the planted part, with the
    // random map as chance; the counter-evidence game scores every evidence-against method.
    let methods = explainers(head, baseline.map(|(_, b)| b));
    let mut pointers = of_polarity(&methods, Polarity::Positive);
    pointers.push(&random);
    let counter_pointers = of_polarity(&methods, Polarity::Negative);
    let fixed = gauge_fixed(&head.weight, head.classes, d, Gauge::Min);
    let baseline_fixed =
        baseline.map(|(_, b)| gauge_fixed(&b.weight, b.classes, b.dim, Gauge::Mean));
    let rv_sample: std::collections::HashSet<usize> =
        crate::cache::balanced_sample(&items, opts.rv_images, opts.seed)
            .into_iter()
            .collect();
    let mut counts = CountTally::default();
    let mut baseline_counts = CountTally::default();
    let (mut correct, mut baseline_correct) = (0usize, 0usize);
    let mut hits = vec![0usize; pointers.len()];
    let mut pointed = 0usize;
    let (mut counter_hits, mut counter_total) = (vec![0usize; counter_pointers.len()], 0usize);
    let mut rv_rotated = Vec::new();
    let mut rv_raw = Vec::new();
    let bar = crate::progress::bar(items.len() as u64, "metrics", "img");
    for shard in cache.shards(&opts.split)? {
        let shard = shard?;
        let decisions = head.decide_batch(&shard.features, shard.len, cells)?;
        for (i, decision) in decisions.iter().enumerate() {
            let f = &shard.features[i * d * cells..(i + 1) * d * cells];
            if rv_sample.contains(&(shard.index[i] as usize)) {
                rv_rotated.extend_from_slice(&decision.rotated);
                rv_raw.extend_from_slice(f);
            }
            let truth = shard.labels[i] as usize;
            let predicted = decision.predicted;
            correct += usize::from(predicted == truth);
            counts.add(&fixed, &decision.pooled.v, truth, predicted);
            if let (Some((_, b)), Some(bw)) = (baseline, &baseline_fixed) {
                let pooled = b.pool(f, cells);
                let bp = argmax(&b.logits(&pooled));
                baseline_correct += usize::from(bp == truth);
                baseline_counts.add(bw, &pooled, truth, bp);
            }
            let item = &items[shard.index[i] as usize];
            let Some(ann) = index.as_ref().and_then(|x| x.get(&item.path)) else {
                continue;
            };
            let (w, h) = image::image_dimensions(&item.path)
                .map_err(|e| Error::input(&item.path, e.to_string()))?;
            let geometry = ImageGeometry::new(pre, w, h);
            let class = ann.label;
            let tol = opts.pointing_tolerance;
            let image = Subject {
                features: f,
                grid,
                decision,
            };
            for (hit, method) in hits.iter_mut().zip(&pointers) {
                let map = method.heatmap(&image, class)?;
                *hit += usize::from(points_at(&map, input_size, &geometry, &ann.decisive, tol));
            }
            pointed += 1;
            if let Some((_, counter_box)) = ann.counter {
                for (hit, method) in counter_hits.iter_mut().zip(&counter_pointers) {
                    let map = method.heatmap(&image, class)?;
                    *hit += usize::from(points_at(&map, input_size, &geometry, &counter_box, tol));
                }
                counter_total += 1;
            }
        }
        bar.inc(shard.len as u64);
        bar.check()?;
    }
    bar.finish_and_clear();
    let n = counts.strict.len();
    let rv_n = rv_rotated.len() / (d * cells);
    let rv = RvReport {
        images: rv_n,
        pairs: opts.rv_pairs.min(d * d.saturating_sub(1) / 2),
        infodisent: rv::mean_rv(&rv_rotated, rv_n, d, cells, opts.rv_pairs, opts.seed),
        raw: rv::mean_rv(&rv_raw, rv_n, d, cells, opts.rv_pairs, opts.seed),
    };
    let scores = |methods: &[&dyn Explainer], hits: &[usize], total: usize| -> Vec<PointingScore> {
        if total == 0 {
            return vec![];
        }
        methods
            .iter()
            .zip(hits)
            .map(|(m, &h)| PointingScore::new(m.name(), h, total))
            .collect()
    };
    let pointing = scores(&pointers, &hits, pointed);
    let counter_pointing = scores(&counter_pointers, &counter_hits, counter_total);
    Ok(MetricsReport {
        split: opts.split.clone(),
        images: n,
        accuracy: correct as f64 / n.max(1) as f64,
        channels_for_95: counts.finish(),
        baseline: baseline.map(|(name, _)| name.to_owned()),
        baseline_accuracy: baseline.map(|_| baseline_correct as f64 / n.max(1) as f64),
        baseline_channels_for_95: baseline.map(|_| baseline_counts.finish()),
        weights: WeightStats::of(head),
        rv,
        pointing,
        counter_pointing,
        faithfulness: vec![],
    })
}

/// Annotations beside the images of `split` (`annotations.json` in the dataset root that holds
/// their class folders), as generated datasets carry them.
pub fn find_annotations(cache: &FeatureCache, split: &str) -> Option<std::path::PathBuf> {
    let items = cache.items(split).ok()?;
    let root = std::path::Path::new(&items.first()?.path)
        .parent()?
        .parent()?
        .parent()?;
    Some(root.join("annotations.json")).filter(|p| p.exists())
}

/// Every metric of `metrics` on a head and its cache: the cache-only ones, then
/// deletion/insertion through `features` when `opts.deletion_images > 0` and a backbone is
/// given. `annotations` defaults to the split's own ([`find_annotations`]).
pub fn measure(
    cache: &FeatureCache,
    head: &HeadParams,
    baseline: Option<(&str, &LinearClassifier)>,
    annotations: Option<&std::path::Path>,
    features: Option<&mut FeatureFn<'_>>,
    opts: &MetricsOptions,
) -> Result<MetricsReport> {
    let path = annotations
        .map(std::path::Path::to_path_buf)
        .or_else(|| find_annotations(cache, &opts.split));
    let annotations = path
        .as_ref()
        .map(crate::fsutil::read_json::<Annotations>)
        .transpose()?;
    let mut report = cache_metrics(cache, head, baseline, annotations.as_ref(), opts)?;
    if let (true, Some(features)) = (opts.deletion_images > 0, features) {
        report.faithfulness =
            faithfulness_metrics(cache, head, baseline.map(|(_, b)| b), features, opts)?;
    }
    Ok(report)
}

/// Deletion/insertion AUC of InfoDisent (dense and sparse), CAM (with a baseline over the same
/// classes) and random maps on `opts.deletion_images` images spread evenly over the split.
/// `features` runs the backbone: inputs `[n, 3, S, S]` to feature maps `[n, D, h, w]`. The
/// tracked probability is the InfoDisent head's for its predicted class, for every method.
pub fn faithfulness_metrics(
    cache: &FeatureCache,
    head: &HeadParams,
    baseline: Option<&LinearClassifier>,
    features: &mut FeatureFn<'_>,
    opts: &MetricsOptions,
) -> Result<Vec<FaithfulnessScore>> {
    let grid = Grid::from_shape(cache.feature_shape());
    let pre = &cache.manifest().preprocess;
    let items = cache.items(&opts.split)?;
    let n = opts.deletion_images.min(items.len());
    let picks: Vec<usize> = (0..n).map(|t| t * items.len() / n).collect();
    let rows = cache.read_items(&opts.split, &picks)?;
    let store = ImageStore::default();
    let mut images = Vec::with_capacity(n);
    for (row, &i) in picks.iter().enumerate() {
        let f = rows.features[row * grid.len()..(row + 1) * grid.len()].to_vec();
        let decision = head.decide(&f, grid.cells())?;
        images.push(PerturbationImage::new(
            store.get(&items[i].path)?.as_ref(),
            pre,
            f,
            decision,
        )?);
    }
    let random = RandomMap::new(opts.seed, 1);
    let methods = explainers(head, baseline_check(head, baseline));
    let mut measured = of_polarity(&methods, Polarity::Positive);
    measured.push(&random);
    let mut model = |batch: &[f32], n: usize| -> Result<Vec<f32>> {
        let f = features(batch, n)?;
        Ok(head
            .decide_batch(&f, n, grid.cells())?
            .into_iter()
            .flat_map(|d| d.logits)
            .collect())
    };
    faithfulness::deletion_insertion(&measured, &images, grid, pre.crop, opts.steps, &mut model)
}
