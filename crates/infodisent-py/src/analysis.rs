//! The analysis commands from Python: `metrics`, `eval`, `prototypes`, `report` and the MI
//! decomposition's `mi train` and `mi explain`, each the library call its CLI command makes,
//! answering what `--json` prints as a dict or list.

use crate::errors::OrRaise;
use crate::explanation::to_python;
use crate::head::Head;
use infodisent::metrics::MetricsOptions;
use infodisent::mi::{self, ClassifierChoice, MiConfig};
use pyo3::prelude::*;
use std::path::PathBuf;

/// A library report as the Python object `json.loads` gives for it.
fn answer<'py, T: serde::Serialize>(py: Python<'py>, value: &T) -> PyResult<Bound<'py, PyAny>> {
    let json = serde_json::to_value(value)
        .map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(e.to_string()))?;
    to_python(py, &json)
}

/// The paper's measurements of `head` on `split` (default: the test split), as
/// `infodisent metrics --json`: channels for 95 %, RV coefficients, pointing game and, on
/// `deletion` images (0: none), deletion/insertion through the cache's backbone.
#[pyfunction]
#[pyo3(signature = (head, probe=None, split=None, deletion=16, steps=16, rv_images=1024, rv_pairs=2000, annotations=None, out=None, progress=true))]
#[allow(clippy::too_many_arguments)]
pub fn metrics<'py>(
    py: Python<'py>,
    head: &Head,
    probe: Option<PathBuf>,
    split: Option<String>,
    deletion: usize,
    steps: usize,
    rv_images: usize,
    rv_pairs: usize,
    annotations: Option<PathBuf>,
    out: Option<PathBuf>,
    progress: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let report = crate::progress::run(py, progress, || {
        let cache = &head.session.cache;
        let params = infodisent::runs::load_head(head.run_dir())?;
        let baseline = infodisent::baseline::choose_or_warn(cache, probe.as_deref())?;
        let opts = MetricsOptions {
            split: cache.split_or_default(split)?,
            rv_images,
            rv_pairs,
            deletion_images: deletion,
            steps,
            ..MetricsOptions::default()
        };
        let report = head.with_backbone(|backbone| {
            let mut features = backbone.feature_fn();
            let features = (deletion > 0).then_some(&mut features as &mut _);
            infodisent::metrics::measure(
                cache,
                &params,
                baseline.as_ref(),
                annotations.as_deref(),
                features,
                &opts,
            )
        })?;
        if let Some(out) = &out {
            infodisent::fsutil::write_json_atomic(out, &report)?;
        }
        Ok(report)
    })?;
    answer(py, &report)
}

/// Accuracy, per-class accuracy and confusion matrix of each run in `heads` and of the
/// original classifier on `split`, as `infodisent eval --json`. The cache is the first run's
/// unless given.
#[pyfunction(name = "eval")]
#[pyo3(signature = (heads, cache=None, split=None))]
pub fn evaluate<'py>(
    py: Python<'py>,
    heads: Vec<PathBuf>,
    cache: Option<PathBuf>,
    split: Option<String>,
) -> PyResult<Bound<'py, PyAny>> {
    let rows = py
        .detach(|| {
            let first = heads.first().ok_or_else(|| {
                infodisent::Error::Config("eval needs at least one run folder".into())
            })?;
            let dir = infodisent::runs::cache_of(cache.as_deref(), first)?;
            let cache = infodisent::cache::FeatureCache::open(dir)?;
            let split = cache.split_or_default(split)?;
            infodisent::eval::evaluate_runs(&cache, &split, &heads)
        })
        .or_raise()?;
    to_python(py, &infodisent::eval::rows_json(&rows))
}

/// Each channel's top `k` images of `split` (default: training), saved as `prototypes.json` in
/// `out` (default: the run folder), with pictures of the `render` heaviest channels per class;
/// as `infodisent prototypes --json`.
#[pyfunction]
#[pyo3(signature = (head, k=5, split=None, out=None, render=5, progress=true))]
pub fn prototypes<'py>(
    py: Python<'py>,
    head: &Head,
    k: usize,
    split: Option<String>,
    out: Option<PathBuf>,
    render: usize,
    progress: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let done = crate::progress::run(py, progress, || {
        let cache = &head.session.cache;
        let params = infodisent::runs::load_head(head.run_dir())?;
        let split = match split {
            Some(s) => s,
            None => infodisent::explain::session::training_split(cache)?,
        };
        let out = out.unwrap_or_else(|| infodisent::runs::folder_of(head.run_dir()));
        infodisent::explain::render::write_prototypes(cache, &params, &split, k, &out, render)
    })?;
    answer(py, &done)
}

/// The static HTML report of `head` into `out`, as `infodisent report --json`: beside a
/// linear `probe`, an `mi` run and a `metrics` JSON file when given.
#[pyfunction]
#[pyo3(signature = (head, out, probe=None, mi=None, metrics=None, split=None, sample=24, progress=true))]
#[allow(clippy::too_many_arguments)]
pub fn report<'py>(
    py: Python<'py>,
    head: &Head,
    out: PathBuf,
    probe: Option<PathBuf>,
    mi: Option<PathBuf>,
    metrics: Option<PathBuf>,
    split: Option<String>,
    sample: usize,
    progress: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let summary = crate::progress::run(py, progress, || {
        let cache = &head.session.cache;
        let sources = infodisent::report::ReportSources {
            cache,
            head_dir: head.run_dir(),
            probe_dir: probe.as_deref(),
            mi_dir: mi.as_deref(),
            metrics: metrics
                .as_ref()
                .map(infodisent::fsutil::read_json)
                .transpose()?,
        };
        let opts = infodisent::report::ReportOptions {
            split: cache.split_or_default(split)?,
            sample_images: sample,
            ..infodisent::report::ReportOptions::default()
        };
        infodisent::report::build(&sources, &opts, &out)
    })?;
    answer(py, &summary)
}

/// Trains the mutual-information mask and critic on `cache` into `out` against `classifier`
/// (`original`, or a linear probe's folder), as `infodisent mi train --json`.
#[pyfunction]
#[pyo3(signature = (cache, out, classifier="original", epochs=None, batch=None, lr=None, mask_lr=None, seed=0, sparsity=None, max_items=None, eval_items=None, resume=false, progress=true))]
#[allow(clippy::too_many_arguments)]
pub fn mi_train<'py>(
    py: Python<'py>,
    cache: &crate::cache::Cache,
    out: PathBuf,
    classifier: &str,
    epochs: Option<usize>,
    batch: Option<usize>,
    lr: Option<f64>,
    mask_lr: Option<f64>,
    seed: u64,
    sparsity: Option<f64>,
    max_items: Option<usize>,
    eval_items: Option<usize>,
    resume: bool,
    progress: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let d = MiConfig::default();
    let cfg = MiConfig {
        epochs: epochs.unwrap_or(d.epochs),
        batch: batch.unwrap_or(d.batch),
        lr: lr.unwrap_or(d.lr),
        mask_lr: mask_lr.unwrap_or(d.mask_lr),
        seed,
        sparsity: sparsity.unwrap_or(d.sparsity),
        max_train_items: max_items,
        eval_items: eval_items.unwrap_or(d.eval_items),
        ..d
    };
    let choice = ClassifierChoice::from_arg(classifier);
    let summary = crate::progress::run(py, progress, || {
        let (model, source) = mi::resolve_classifier(&cache.inner, &choice)?;
        mi::train(&cache.inner, &model, &source, &cfg, &out, resume)
    })?;
    answer(py, &summary)
}

/// Total, decision-related and redundant information maps of cached `items` of `split` and of
/// image `files` from the mi run `run`, drawn into `out` (default: `<run>/explanations`), as
/// `infodisent mi explain --json`.
#[pyfunction]
#[pyo3(signature = (run, items=Vec::new(), files=Vec::new(), cache=None, split=None, out=None))]
pub fn mi_explain<'py>(
    py: Python<'py>,
    run: PathBuf,
    items: Vec<usize>,
    files: Vec<PathBuf>,
    cache: Option<PathBuf>,
    split: Option<String>,
    out: Option<PathBuf>,
) -> PyResult<Bound<'py, PyAny>> {
    let explanations = py
        .detach(|| {
            let model = mi::MiModel::load(&run)?;
            let dir = infodisent::runs::cache_of(cache.as_deref(), &run)?;
            let cache = infodisent::cache::FeatureCache::open(dir)?;
            let split = cache.split_or_default(split)?;
            let out = out.unwrap_or_else(|| infodisent::runs::folder_of(&run).join("explanations"));
            let mut backbone = match files.is_empty() {
                true => None,
                false => Some(infodisent::backbone::from_cache(
                    &cache,
                    None,
                    crate::threads(None),
                )?),
            };
            let mut features = backbone
                .as_mut()
                .map(infodisent::engine::Backbone::feature_fn);
            mi::explain_all(
                &model,
                &cache,
                &split,
                &items,
                &files,
                features
                    .as_mut()
                    .map(|f| f as &mut infodisent::engine::FeatureFn<'_>),
                &out,
            )
        })
        .or_raise()?;
    answer(py, &explanations)
}
