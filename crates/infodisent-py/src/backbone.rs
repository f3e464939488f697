//! `Backbone`: a frozen model (a built-in name or an ONNX file) and its preprocessing, which
//! extracts a folder of images into a cache exactly as `infodisent extract` does.

use crate::cache::Cache;
use crate::errors::{invalid, OrRaise};
use infodisent::cache::{FeatureCache, StoreDtype};
use infodisent::dataset::{Dataset, OpenOptions, DEFAULT_TEST_FRACTION};
use infodisent::extract::{
    extract, load_backbone, ExtractOptions, DEFAULT_BATCH, DEFAULT_SHARD_SIZE,
};
use infodisent::preprocess::PreprocessChoice;
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
    #[new]
    #[pyo3(signature = (model, preset=None, crop_pct=None, interpolation=None, feature_node=None, threads=None))]
    fn new(
        py: Python<'_>,
        model: String,
        preset: Option<&str>,
        crop_pct: Option<f64>,
        interpolation: Option<&str>,
        feature_node: Option<String>,
        threads: Option<usize>,
    ) -> PyResult<Self> {
        let choice = PreprocessChoice {
            preset: option("preset", preset)?,
            crop_pct,
            interpolation: option("interpolation", interpolation)?,
            ..PreprocessChoice::default()
        };
        let threads =
            threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let inner = py
            .detach(|| {
                load_backbone(&model, feature_node.as_deref(), threads, |p| {
                    choice.resolve(p)
                })
            })
            .or_raise()?;
        Ok(Backbone {
            inner: Mutex::new(inner),
            spec: model,
        })
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
    /// `test/`) into the cache folder `cache`, resuming one left unfinished. Without a test
    /// split, `test_fraction` of each class is held out (seeded by `split_seed`).
    #[pyo3(signature = (data, cache, test_fraction=DEFAULT_TEST_FRACTION, split_seed=0, skip_bad=false, batch=DEFAULT_BATCH, limit_per_class=None, overwrite=false))]
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
    ) -> PyResult<Cache> {
        let inner = py
            .detach(|| {
                let data = data.display().to_string();
                let mut dataset = Dataset::open_with(
                    &data,
                    &OpenOptions {
                        skip_bad,
                        test_fraction,
                        split_seed,
                    },
                )?;
                dataset.limit(limit_per_class, None);
                let mut backbone = self.inner.lock().unwrap_or_else(|p| p.into_inner());
                let opts = ExtractOptions {
                    splits: Vec::new(),
                    batch,
                    shard_size: DEFAULT_SHARD_SIZE,
                    dtype: StoreDtype::default(),
                    preprocess: backbone.model().preprocess.clone(),
                    skip_bad,
                    overwrite,
                    decode_threads: 0,
                    max_shards: None,
                };
                extract(&mut backbone, &dataset, &opts, &cache)?;
                FeatureCache::open(&cache)
            })
            .or_raise()?;
        Ok(Cache { inner })
    }

    fn __repr__(&self) -> String {
        format!("Backbone({:?}, input {} px)", self.spec, self.input_size())
    }
}
