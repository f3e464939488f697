//! The whole path on one dataset: extract → train (InfoDisent and a linear probe) → evaluate →
//! metrics → mutual-information maps → report. `infodisent demo` runs it on the default model
//! and data; every stage resumes from what an earlier, interrupted run left on disk.

use crate::backbone::BackboneSpec;
use crate::cache::FeatureCache;
use crate::dataset::Dataset;
use crate::error::{Error, Result};
use crate::eval::{evaluate, evaluate_original, EvalReport};
use crate::extract::{extract, ExtractOptions};
use crate::fsutil::write_json_atomic;
use crate::head::HeadKind;
use crate::metrics::{cache_metrics, faithfulness_metrics, MetricsOptions};
use crate::mi::{resolve_classifier, ClassifierChoice, MiConfig};
use crate::report::{ReportOptions, ReportSources};
use crate::runs;
use crate::train::{train_or_reuse, TrainConfig};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Instant;

/// Settings of a whole run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PipelineConfig {
    /// Backbone: a built-in name or an `.onnx` path.
    pub model: String,
    /// Dataset: an ImageFolder path or `fashion-mnist`.
    pub data: String,
    /// Output folder (cache, heads, metrics, report).
    pub out: PathBuf,
    /// Training images kept per class (all when `None`).
    pub train_per_class: Option<usize>,
    /// Test images kept per class (all when `None`).
    pub test_per_class: Option<usize>,
    /// Threads for the backbone and the math kernels.
    pub threads: usize,
    /// InfoDisent training settings (the linear probe uses the same loop and schedule).
    pub train: TrainConfig,
    /// Mutual-information settings; `None` skips that stage.
    pub mi: Option<MiConfig>,
    /// Images for deletion/insertion AUC (each re-runs the backbone `2 × steps` times).
    pub faithfulness_images: usize,
    /// What the report shows.
    pub report: ReportOptions,
}

impl PipelineConfig {
    /// The default run: EfficientNet-Lite0 on a Fashion-MNIST subset, sized to finish in
    /// minutes on two cores.
    pub fn demo(out: impl Into<PathBuf>, threads: usize) -> Self {
        PipelineConfig {
            model: "efficientnet-lite0".into(),
            data: "fashion-mnist".into(),
            out: out.into(),
            train_per_class: Some(100),
            test_per_class: Some(50),
            threads,
            train: TrainConfig::default(),
            mi: Some(MiConfig {
                epochs: 2,
                max_train_items: Some(512),
                eval_items: 256,
                ..MiConfig::default()
            }),
            faithfulness_images: 8,
            report: ReportOptions::default(),
        }
    }
}

/// How long each stage took, and the headline numbers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PipelineSummary {
    /// The feature cache.
    pub cache: PathBuf,
    /// The InfoDisent head folder.
    pub head: PathBuf,
    /// The linear-probe folder.
    pub probe: PathBuf,
    /// The report's entry page.
    pub report: PathBuf,
    /// Top-1 on the test split, per head (`None` where not applicable).
    pub accuracy: Vec<(String, Option<f64>)>,
    /// Seconds per stage.
    pub seconds: Vec<(String, f64)>,
}

fn timed<T>(
    seconds: &mut Vec<(String, f64)>,
    stage: &str,
    f: impl FnOnce() -> Result<T>,
) -> Result<T> {
    crate::progress::stage(&format!("{stage}: started"));
    let start = Instant::now();
    let out = f()?;
    let secs = start.elapsed().as_secs_f64();
    crate::progress::stage(&format!("{stage}: done in {secs:.1} s"));
    seconds.push((stage.to_owned(), secs));
    Ok(out)
}

/// Runs every stage, skipping or resuming those whose output is already on disk.
pub fn run(cfg: &PipelineConfig) -> Result<PipelineSummary> {
    let mut seconds = Vec::new();
    let cache_dir = cfg.out.join("cache");
    let (head_dir, probe_dir, mi_dir, report_dir) = (
        cfg.out.join("infodisent"),
        cfg.out.join("probe"),
        cfg.out.join("mi"),
        cfg.out.join("report"),
    );
    let mut backbone = timed(&mut seconds, "load model", || {
        BackboneSpec::new(cfg.model.as_str(), cfg.threads).load()
    })?;
    let cache = timed(&mut seconds, "extract", || {
        let mut dataset = Dataset::open(&cfg.data)?;
        for split in &mut dataset.splits {
            let per_class = if split.name == "train" {
                cfg.train_per_class
            } else {
                cfg.test_per_class
            };
            split.limit(per_class, None);
        }
        let opts = ExtractOptions::default();
        extract(&mut backbone, &dataset, &opts, &cache_dir)?;
        FeatureCache::open(&cache_dir)
    })?;
    let test = cache.evaluation_split()?;
    let test = test.as_str();
    timed(&mut seconds, "train infodisent", || {
        train_or_reuse(&cache, &cfg.train, &head_dir)
    })?;
    let probe_cfg = cfg.train.clone().with_kind(HeadKind::LinearProbe);
    timed(&mut seconds, "train linear probe", || {
        train_or_reuse(&cache, &probe_cfg, &probe_dir)
    })?;

    let head = runs::load_head(&head_dir)?;
    let probe = runs::load_probe(&probe_dir)?;
    let evals: Vec<(String, std::result::Result<EvalReport, String>)> =
        timed(&mut seconds, "evaluate", || {
            Ok(vec![
                (
                    "InfoDisent".to_owned(),
                    Ok(evaluate(&cache, test, "InfoDisent", &head)?),
                ),
                (
                    "linear probe".to_owned(),
                    Ok(evaluate(&cache, test, "linear probe", &probe)?),
                ),
                (
                    "original classifier".to_owned(),
                    evaluate_original(&cache, test)?,
                ),
            ])
        })?;
    write_json_atomic(
        cfg.out.join(runs::EVAL_FILE),
        &evals
            .iter()
            .map(|(n, r)| (n, r.as_ref().ok()))
            .collect::<Vec<_>>(),
    )?;

    let metrics = timed(&mut seconds, "metrics", || {
        let opts = MetricsOptions {
            split: test.into(),
            deletion_images: cfg.faithfulness_images,
            ..MetricsOptions::default()
        };
        let baseline = crate::baseline::choose(&cache, Some(&probe_dir))?.ok();
        let mut report = cache_metrics(&cache, &head, baseline.as_ref(), None, &opts)?;
        if cfg.faithfulness_images > 0 {
            let mut features = |input: &[f32], n: usize| backbone.run(input, n).map(|o| o.features);
            report.faithfulness =
                faithfulness_metrics(&cache, &head, Some(&probe), &mut features, &opts)?;
        }
        write_json_atomic(cfg.out.join(runs::METRICS_FILE), &report)?;
        Ok(report)
    })?;

    if let Some(mi_cfg) = &cfg.mi {
        timed(&mut seconds, "mutual information", || {
            if mi_dir.join(runs::MI_FILE).exists() {
                return Ok(());
            }
            let (classifier, source) =
                resolve_classifier(&cache, &ClassifierChoice::Probe(probe_dir.clone()))?;
            crate::mi::train::train(
                &cache,
                &classifier,
                &source,
                mi_cfg,
                &mi_dir,
                mi_dir.join(runs::CONFIG_FILE).exists(),
            )
            .map(|_| ())
        })?;
    }

    let report = timed(&mut seconds, "report", || {
        let sources = ReportSources {
            cache: &cache,
            head_dir: &head_dir,
            probe_dir: Some(&probe_dir),
            mi_dir: cfg.mi.as_ref().map(|_| mi_dir.as_path()),
            metrics: Some(metrics),
        };
        crate::report::build(
            &sources,
            &ReportOptions {
                split: test.into(),
                ..cfg.report.clone()
            },
            &report_dir,
        )
    })?;
    let summary = PipelineSummary {
        cache: cache_dir,
        head: head_dir,
        probe: probe_dir,
        report: report.index,
        accuracy: evals
            .into_iter()
            .map(|(n, r)| (n, r.ok().map(|r| r.top1)))
            .collect(),
        seconds,
    };
    write_json_atomic(cfg.out.join(runs::SUMMARY_FILE), &summary)?;
    if summary.accuracy.iter().all(|a| a.1.is_none()) {
        return Err(Error::Numeric("no head could be evaluated".into()));
    }
    Ok(summary)
}
