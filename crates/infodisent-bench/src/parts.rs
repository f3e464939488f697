//! The parts benchmark end to end: generate images whose classes are made of known parts
//! ([`infodisent::synth::parts`]), extract their features with a backbone, then train and measure
//! the ablation grid ([`infodisent::ablate`]) with prototype purity and explanation correctness.
//! Every stage resumes: the dataset and the cache are reused when their settings match, and
//! finished heads are reused by the ablation.

use infodisent::ablate::{self, AblationReport, Variant};
use infodisent::backbone::BackboneSpec;
use infodisent::cache::FeatureCache;
use infodisent::dataset::Dataset;
use infodisent::error::Result;
use infodisent::extract::{extract, ExtractOptions};
use infodisent::metrics::MetricsOptions;
use infodisent::synth::parts::{asset_backgrounds, generate, PartsConfig};
use infodisent::train::TrainConfig;
use std::path::Path;

/// Runs the benchmark under `out` (`data/`, `cache/`, `ablation/`) with backbone `model`.
pub fn bench_parts(
    out: &Path,
    data: &PartsConfig,
    model: &str,
    threads: usize,
    base: &TrainConfig,
    variants: &[Variant],
) -> Result<AblationReport> {
    let root = out.join("data");
    let truth = generate(&root, data, &asset_backgrounds()?)?;
    let cache_dir = out.join("cache");
    let mut backbone = BackboneSpec::new(model, threads).load()?;
    let dataset = Dataset::open(root.to_str().ok_or_else(|| {
        infodisent::error::Error::input(&root, "the benchmark's folder must be valid UTF-8")
    })?)?;
    let opts = ExtractOptions::default();
    extract(&mut backbone, &dataset, &opts, &cache_dir)?;
    let cache = FeatureCache::open(&cache_dir)?;
    let measure = MetricsOptions {
        split: "test".into(),
        ..MetricsOptions::default()
    };
    let mut rows = ablate::standard_probes(base);
    rows.extend_from_slice(variants);
    ablate::run(&cache, &rows, &out.join("ablation"), &measure, Some(&truth))
}
