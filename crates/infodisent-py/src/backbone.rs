//! `Backbone`: a frozen model (a built-in name or an ONNX file) and its preprocessing, which
//! extracts a folder of images into a cache exactly as `infodisent extract` does.

use crate::cache::Cache;
use crate::errors::{invalid, OrRaise};
use infodisent::backbone::BackboneSpec;
use infodisent::cache::FeatureCache;
use infodisent::dataset::{OpenOptions, DEFAULT_TEST_FRACTION};
use infodisent::engine::{Engine, Precision};
use infodisent::extract::{ExtractOptions, ExtractRequest, DEFAULT_BATCH, DEFAULT_SHARD_SIZE};
use infodisent::preprocess::{Normalize, PreprocessChoice};
use pyo3::prelude::*;
use std::path::PathBuf;
use std::sync::Mutex;

/// A model to extract features with: `efficientnet-lite0` (or `-lite1`, `-lite2`) or an ONNX
/// image classifier, whose last feature map and classifier are found as `inspect` shows.
#[pyclass(module = "infodisent", frozen)]
pub struct Backbone {
    inner: Mutex<infodisent::engine::Backbone>,
    spec: String,
}

/// A preprocessing option named as the CLI spells it (`timm`, `bicubic`, `imagenet`).
fn option<T: serde::de::DeserializeOwned>(what: &str, value: Option<&str>) -> PyResult<Option<T>> {
    value
        .map(|v| {
            serde_json::from_value(serde_json::Value::String(v.to_lowercase()))
                .map_err(|_| invalid(format!("{what} `{v}` is not one the CLI's --{what} takes")))
        })
        .transpose()
}

#[pymethods]
impl Backbone {
    /// Loads `model` with the preprocessing of `preset` (`torchvision`, `timm`, `tflite`;
    /// default: the model's own), timm's `crop_pct` and `interpolation`, as the CLI's flags.
    /// `mean` and `std` replace the preset's normalisation (per channel, of `x / 255`).
    /// `engine` (`ort`, `openvino`, `auto`) and `precision` (`f32`, `bf16`) as the CLI's
    /// `--engine` and `--precision`.
    #[new]
    #[pyo3(signature = (model, preset=None, crop_pct=None, interpolation=None, mean=None, std=None, feature_node=None, threads=None, engine=None, precision=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        model: String,
        preset: Option<&str>,
        crop_pct: Option<f64>,
        interpolation: Option<&str>,
        mean: Option<[f32; 3]>,
        std: Option<[f32; 3]>,
        feature_node: Option<String>,
        threads: Option<usize>,
        engine: Option<&str>,
        precision: Option<&str>,
    ) -> PyResult<Self> {
        let engine: Engine = option("engine", engine)?.unwrap_or_default();
        let precision: Precision = option("precision", precision)?.unwrap_or_default();
        let normalize = match (mean, std) {
            (Some(mean), Some(std)) => Some(Normalize::MeanStd { mean, std }),
            (None, None) => None,
            _ => return Err(invalid("give mean and std together")),
        };
        let choice = PreprocessChoice {
            preset: option("preset", preset)?,
            crop_pct,
            interpolation: option("interpolation", interpolation)?,
            normalize,
            ..PreprocessChoice::default()
        };
        let spec = BackboneSpec {
            feature_node,
            preprocess: choice,
            engine,
            precision,
            ..BackboneSpec::new(model.clone(), crate::threads(threads))
        };
        let inner = py.detach(|| spec.load()).or_raise()?;
        Ok(Backbone {
            inner: Mutex::new(inner),
            spec: model,
        })
    }

    /// Exports a PyTorch `nn.Module` with `torch.onnx.export` into a folder keyed by its
    /// content (reused next time) and loads it; a timm model brings its own preprocessing.
    #[staticmethod]
    #[pyo3(signature = (model, preset=None, input_size=None, crop_pct=None, interpolation=None, mean=None, std=None, cache_dir=None, dynamo=true, threads=None, engine=None, precision=None))]
    #[allow(clippy::too_many_arguments)]
    fn from_torch(
        py: Python<'_>,
        model: Bound<'_, PyAny>,
        preset: Option<String>,
        input_size: Option<usize>,
        crop_pct: Option<f64>,
        interpolation: Option<String>,
        mean: Option<[f32; 3]>,
        std: Option<[f32; 3]>,
        cache_dir: Option<PathBuf>,
        dynamo: bool,
        threads: Option<usize>,
        engine: Option<&str>,
        precision: Option<&str>,
    ) -> PyResult<Self> {
        let options = pyo3::types::PyDict::new(py);
        options.set_item("crop_pct", crop_pct)?;
        options.set_item("interpolation", interpolation)?;
        options.set_item("mean", mean)?;
        options.set_item("std", std)?;
        let plan = py.import("infodisent._torch")?.call_method1(
            "plan",
            (model, preset, input_size, options, cache_dir, dynamo),
        )?;
        let get = |k: &str| plan.get_item(k).ok().filter(|v| !v.is_none());
        let text = |k: &str| get(k).map(|v| v.extract::<String>()).transpose();
        Self::new(
            py,
            plan.get_item("model")?.extract()?,
            text("preset")?.as_deref(),
            get("crop_pct").map(|v| v.extract()).transpose()?,
            text("interpolation")?.as_deref(),
            get("mean").map(|v| v.extract()).transpose()?,
            get("std").map(|v| v.extract()).transpose()?,
            None,
            threads,
            engine,
            precision,
        )
    }

    /// The model: a built-in name or the ONNX file's path.
    #[getter]
    fn model(&self) -> &str {
        &self.spec
    }

    /// Side of the network input in pixels.
    #[getter]
    fn input_size(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .input_size()
    }

    /// The preprocessing, as the cache manifest records it.
    #[getter]
    fn preprocess(&self) -> String {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.model().preprocess.to_json().to_string()
    }

    /// Extracts the image folder `data` (one folder per class, with or without `train/` and
    /// `test/`, or the official layout of CUB-200-2011, Stanford Cars, Stanford Dogs or
    /// ImageNet, detected unless `layout` names it) into the cache folder `cache`, resuming
    /// one left unfinished. Without a test
    /// split, `test_fraction` of each class is held out (seeded by `split_seed`).
    /// Ctrl-C stops it after the batch under way; calling again resumes. `part` ("I/N", or
    /// "auto" from a Slurm array or, with `parts`, a Kubernetes Indexed Job) extracts one part
    /// of a cluster job, as the CLI's `--part` does.
    #[pyo3(signature = (data, cache, test_fraction=DEFAULT_TEST_FRACTION, split_seed=0, skip_bad=false, batch=DEFAULT_BATCH, limit_per_class=None, overwrite=false, shard_size=DEFAULT_SHARD_SIZE, progress=true, part=None, parts=None, layout=None))]
    #[allow(clippy::too_many_arguments)]
    fn extract(
        &self,
        py: Python<'_>,
        data: PathBuf,
        cache: PathBuf,
        test_fraction: f64,
        split_seed: u64,
        skip_bad: bool,
        batch: usize,
        limit_per_class: Option<usize>,
        overwrite: bool,
        shard_size: usize,
        progress: bool,
        part: Option<String>,
        parts: Option<usize>,
        layout: Option<String>,
    ) -> PyResult<Cache> {
        let inner = crate::progress::run(py, progress, || {
            let request = ExtractRequest {
                data: data.display().to_string(),
                open: OpenOptions {
                    skip_bad,
                    test_fraction,
                    split_seed,
                    layout: layout.as_deref().map(str::parse).transpose()?,
                },
                limit_per_class,
                limit: None,
                part,
                parts,
                options: ExtractOptions {
                    batch,
                    shard_size,
                    overwrite,
                    ..ExtractOptions::default()
                },
            };
            let dataset = request.dataset()?;
            let mut backbone = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            request.run(&mut backbone, &dataset, &cache)?;
            FeatureCache::open(&cache)
        })?;
        Ok(Cache { inner })
    }

    fn __repr__(&self) -> String {
        format!("Backbone({:?}, input {} px)", self.spec, self.input_size())
    }
}
