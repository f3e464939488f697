//! The paper's measurements of a trained head: how many channels carry a decision
//! ([`concentration`]), how disentangled the channels are ([`rv`]), whether heatmaps point at
//! the known deciding part ([`pointing`]) and how faithful they are ([`faithfulness`]).
//!
//! [`cache_metrics`] needs only the feature cache; [`faithfulness_metrics`] re-runs the
//! backbone on perturbed images.

pub mod concentration;
pub mod correlation;
pub mod faithfulness;
pub mod keypoints;
pub mod parts;
pub mod pass;
pub mod pointing;
pub mod rv;

use crate::baseline::Baseline;
use crate::cache::FeatureCache;
use crate::classifier::LinearClassifier;
use crate::dataset::ImageStore;
use crate::engine::FeatureFn;
use crate::error::Result;
use crate::explain::{explainers, of_polarity, Grid, Polarity, RandomMap};
use crate::head::params::top_weighted_per_class;
use crate::head::params::HeadParams;
use crate::head::Classifies;
use crate::rv::RvReport;
use crate::synth::Annotations;
use concentration::ChannelCounts;
use concentration::DecisionTally;
use faithfulness::{FaithfulnessScore, PerturbationImage};
use pass::{each_image, Accumulator};
use pointing::{BoxPointing, PointingGames, PointingScore};
use rv::RvSampler;
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
    /// Pointing game for the true class: on the deciding part of generated data, or on the
    /// object boxes of a dataset whose layout gives them (CUB, Stanford Cars and Dogs,
    /// ImageNet).
    pub pointing: Vec<PointingScore>,
    /// Whether `H⁻` of the true class peaks on the planted counter-evidence (generated data
    /// with counter-evidence only).
    pub counter_pointing: Vec<PointingScore>,
    /// Deletion and insertion AUC, when the backbone was run.
    pub faithfulness: Vec<FaithfulnessScore>,
    /// Prototype purity on the dataset's annotated part locations (CUB), PIP-Net's measure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part_purity: Option<keypoints::KeypointPurity>,
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
    baseline: Option<&Baseline>,
    annotations: Option<&Annotations>,
    opts: &MetricsOptions,
) -> Result<MetricsReport> {
    let grid = Grid::for_head(cache, head.dim)?;
    let baseline =
        baseline.and_then(|b| baseline_check(head, Some(&b.classifier)).map(|c| (b.name, c)));
    let items = cache.items(&opts.split)?;
    let random = RandomMap::new(opts.seed, 1);
    let methods = explainers(head, baseline.map(|(_, b)| b));
    let mut pointers = of_polarity(&methods, Polarity::Positive);
    pointers.push(&random);
    let mut decisions = DecisionTally::of_pass(head.gauge_fixed_weights());
    let mut baseline_decisions = baseline.map(|(_, b)| DecisionTally::of(b));
    let mut rv = RvSampler::new(&items, opts.rv_images, opts.seed);
    let mut pointing = annotations.map(|a| {
        let manifest = cache.manifest();
        let against = of_polarity(&methods, Polarity::Negative);
        PointingGames::new(
            a,
            pointers,
            against,
            &manifest.preprocess,
            manifest.input_size,
            opts.pointing_tolerance,
        )
    });
    // Without generated annotations the game runs on the dataset's boxes, if it has any.
    let mut boxes = annotations.is_none().then(|| {
        let manifest = cache.manifest();
        let mut pointers = of_polarity(&methods, Polarity::Positive);
        pointers.push(&random);
        BoxPointing::new(
            pointers,
            &manifest.preprocess,
            manifest.input_size,
            opts.pointing_tolerance,
        )
    });
    let mut metrics: Vec<&mut dyn Accumulator> = vec![&mut decisions, &mut rv];
    metrics.extend(boxes.as_mut().map(|p| p as &mut dyn Accumulator));
    metrics.extend(
        baseline_decisions
            .as_mut()
            .map(|t| t as &mut dyn Accumulator),
    );
    metrics.extend(pointing.as_mut().map(|p| p as &mut dyn Accumulator));
    each_image(cache, &opts.split, Some(head), &mut metrics)?;
    let (accuracy, channels_for_95) = decisions.finish();
    let used = top_weighted_per_class(
        &head.gauge_fixed_weights(),
        head.classes,
        head.dim,
        crate::rv::USED_PER_CLASS,
    );
    let baseline_used = baseline.map(|(_, b)| {
        top_weighted_per_class(
            &b.gauge_fixed_weights(),
            b.classes,
            b.dim,
            crate::rv::USED_PER_CLASS,
        )
    });
    let baseline_figures = baseline_decisions.as_ref().map(DecisionTally::finish);
    let (mut pointing, counter_pointing) = pointing.map(|p| p.finish()).unwrap_or_default();
    if let Some(boxes) = &boxes {
        pointing = boxes.finish();
    }
    Ok(MetricsReport {
        split: opts.split.clone(),
        images: channels_for_95.strict.images,
        accuracy,
        channels_for_95,
        baseline: baseline.map(|(name, _)| name.to_owned()),
        baseline_accuracy: baseline_figures.as_ref().map(|f| f.0),
        baseline_channels_for_95: baseline_figures.map(|f| f.1),
        weights: WeightStats::of(head),
        rv: rv.finish(
            grid.dim,
            grid.cells(),
            opts.rv_pairs,
            opts.seed,
            [Some(&used), baseline_used.as_deref()],
        ),
        pointing,
        counter_pointing,
        faithfulness: vec![],
        part_purity: None,
    })
}

/// Top-1 accuracy and channels for 95 % of any head on `opts.split`, and the RV of the raw
/// channels (what a linear layer explains with) in both readings.
pub fn head_metrics(
    cache: &FeatureCache,
    model: &dyn Classifies,
    opts: &MetricsOptions,
) -> Result<(f64, ChannelCounts, RvReport)> {
    let grid = Grid::for_head(cache, model.dim())?;
    let mut decisions = DecisionTally::of(model);
    let mut rv = RvSampler::new(&cache.items(&opts.split)?, opts.rv_images, opts.seed);
    each_image(cache, &opts.split, None, &mut [&mut decisions, &mut rv])?;
    let (accuracy, counts) = decisions.finish();
    let used = top_weighted_per_class(
        &model.gauge_fixed_weights(),
        model.classes(),
        model.dim(),
        crate::rv::USED_PER_CLASS,
    );
    let rv = rv.finish(
        grid.dim,
        grid.cells(),
        opts.rv_pairs,
        opts.seed,
        [None, Some(&used)],
    );
    Ok((accuracy, counts, rv))
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
    baseline: Option<&Baseline>,
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
    let model = crate::head::TrainedHead::InfoDisent(head.clone());
    report.part_purity = keypoints::keypoint_purity(
        cache,
        &model,
        5,
        keypoints::PIPNET_K,
        keypoints::CellRule::PointInCell,
    )?;
    if let (true, Some(features)) = (opts.deletion_images > 0, features) {
        report.faithfulness =
            faithfulness_metrics(cache, head, baseline.map(|b| &b.classifier), features, opts)?;
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
