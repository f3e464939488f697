//! `Head` and `train`: a trained InfoDisent head with its cache, prototypes and backbone, and
//! the training call that makes one. Explaining images runs the backbone the cache records.

use crate::cache::Cache;
use crate::errors::{invalid, OrRaise};
use crate::explanation::{Explanation, Picture};
use image::RgbImage;
use infodisent::engine::Backbone;
use infodisent::explain::session::ExplainSession;
use infodisent::head::HeadKind;
use infodisent::train::{RotationInit, Target, TrainOverrides};
use numpy::{PyReadonlyArray3, PyReadonlyArray4, PyUntypedArrayMethods};
use pyo3::prelude::*;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// A trained head, ready to explain images: the run folder, its cache and prototypes, and the
/// backbone that made the cache (loaded on the first image explained).
#[pyclass(module = "infodisent", frozen)]
pub struct Head {
    pub(crate) session: Arc<ExplainSession>,
    run: PathBuf,
    model: Option<String>,
    threads: usize,
    backbone: Mutex<Option<Backbone>>,
}

/// An image as Python handed it: a path, or an `[H, W, 3]` uint8 array.
fn decode(py: Python<'_>, item: &Bound<'_, PyAny>, i: usize) -> PyResult<(String, RgbImage)> {
    if let Ok(path) = item.extract::<PathBuf>() {
        let name = path.display().to_string();
        let img = py
            .detach(|| infodisent::imageio::load_rgb(&path))
            .or_raise()?;
        return Ok((name, img));
    }
    let array: PyReadonlyArray3<u8> = item.extract().map_err(|_| {
        invalid(format!(
            "image {i}: expected a path or an [H, W, 3] uint8 array (PIL images and torch tensors go through infodisent.Head.explain), got {}",
            item.get_type().name().map_or_else(|_| "?".into(), |n| n.to_string())
        ))
    })?;
    let shape = array.shape();
    if shape[2] != 3 || shape[0] == 0 || shape[1] == 0 {
        return Err(invalid(format!(
            "image {i}: an array of shape {shape:?}; expected [H, W, 3] with H, W > 0"
        )));
    }
    let pixels = array.as_slice().map_or_else(
        |_| array.as_array().iter().copied().collect(),
        <[u8]>::to_vec,
    );
    let img = RgbImage::from_raw(shape[1] as u32, shape[0] as u32, pixels)
        .ok_or_else(|| invalid(format!("image {i}: pixels do not fill {shape:?}")))?;
    Ok((format!("<array {i}>"), img))
}

impl Head {
    /// The run folder.
    pub(crate) fn run_dir(&self) -> &std::path::Path {
        &self.run
    }

    /// Runs `f` with the backbone the cache records, loaded on first use.
    pub(crate) fn with_backbone<T>(
        &self,
        f: impl FnOnce(&mut Backbone) -> infodisent::Result<T>,
    ) -> infodisent::Result<T> {
        let mut slot = self.backbone.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(infodisent::backbone::from_cache(
                &self.session.cache,
                self.model.as_deref(),
                self.threads,
            )?);
        }
        f(slot.as_mut().expect("loaded above"))
    }
}

#[pymethods]
impl Head {
    /// Opens the run folder `run` (output of `train`); its cache is the one the run records
    /// unless `cache` is given, and `model` re-points a backbone file that moved.
    #[staticmethod]
    #[pyo3(signature = (run, cache=None, probe=None, model=None, threads=None, k=5))]
    fn load(
        py: Python<'_>,
        run: PathBuf,
        cache: Option<PathBuf>,
        probe: Option<PathBuf>,
        model: Option<String>,
        threads: Option<usize>,
        k: usize,
    ) -> PyResult<Self> {
        let session = py
            .detach(|| {
                let cache = infodisent::runs::cache_of(cache.as_deref(), &run)?;
                ExplainSession::open(&cache, &run, probe.as_deref(), None, k)
            })
            .or_raise()?;
        Ok(Head {
            session: Arc::new(session),
            run,
            model,
            threads: crate::threads(threads),
            backbone: Mutex::new(None),
        })
    }

    /// The run folder.
    #[getter]
    fn run(&self) -> PathBuf {
        self.run.clone()
    }

    /// The class names.
    #[getter]
    fn classes(&self) -> Vec<String> {
        self.session.explainer.class_names.clone()
    }

    /// Channels D.
    #[getter]
    fn channels(&self) -> usize {
        self.session.explainer.head.dim
    }

    /// The cache the head reads.
    #[getter]
    fn cache(&self) -> Cache {
        Cache {
            inner: self.session.cache.clone(),
        }
    }

    /// Explains images: each a path or an `[H, W, 3]` uint8 array. `class_` explains that class
    /// instead of each prediction. One backbone run per batch of 16.
    #[pyo3(signature = (images, class_=None))]
    fn explain_images(
        &self,
        py: Python<'_>,
        images: Vec<Bound<'_, PyAny>>,
        class_: Option<usize>,
    ) -> PyResult<Vec<Explanation>> {
        let decoded = images
            .iter()
            .enumerate()
            .map(|(i, item)| decode(py, item, i))
            .collect::<PyResult<Vec<_>>>()?;
        let explanations = py
            .detach(|| {
                self.with_backbone(|backbone| {
                    let mut run = backbone.feature_fn();
                    let refs: Vec<&RgbImage> = decoded.iter().map(|d| &d.1).collect();
                    let names: Vec<String> = decoded.iter().map(|d| d.0.clone()).collect();
                    self.session.explain_images(&refs, &names, class_, &mut run)
                })
            })
            .or_raise()?;
        Ok(explanations
            .into_iter()
            .zip(decoded)
            .map(|(ex, (_, img))| {
                Explanation::new(ex, Arc::clone(&self.session), Picture::Image(img))
            })
            .collect())
    }

    /// Explains a batch already preprocessed as the cache was: `float32 [N, 3, S, S]`, S the
    /// network's input side (as grad-cam and Captum users hold their inputs).
    #[pyo3(signature = (batch, class_=None))]
    fn explain_inputs(
        &self,
        py: Python<'_>,
        batch: PyReadonlyArray4<'_, f32>,
        class_: Option<usize>,
    ) -> PyResult<Vec<Explanation>> {
        let s = self.session.preprocess.crop;
        let shape = batch.shape().to_vec();
        if shape[1..] != [3, s, s] || shape[0] == 0 {
            return Err(invalid(format!(
                "a batch of shape {shape:?}; preprocessed inputs are [N, 3, {s}, {s}] with N > 0"
            )));
        }
        let input = batch.as_slice().map_or_else(
            |_| batch.as_array().iter().copied().collect(),
            <[f32]>::to_vec,
        );
        if let Some(i) = input.iter().position(|v| !v.is_finite()) {
            return Err(invalid(format!(
                "image {}: the input holds {}",
                i / (3 * s * s),
                input[i]
            )));
        }
        let n = shape[0];
        let (explanations, views) = py
            .detach(|| {
                let names: Vec<String> = (0..n).map(|i| format!("<input {i}>")).collect();
                let features = self.with_backbone(|b| Ok(b.run(&input, n)?.features))?;
                let ex = self
                    .session
                    .explain_features(&features, n, class_, &names)?;
                let views = input
                    .chunks_exact(3 * s * s)
                    .map(|x| self.session.preprocess.to_view(x))
                    .collect::<infodisent::Result<Vec<_>>>()?;
                Ok((ex, views))
            })
            .or_raise()?;
        Ok(explanations
            .into_iter()
            .zip(views)
            .map(|(ex, view)| Explanation::new(ex, Arc::clone(&self.session), Picture::View(view)))
            .collect())
    }

    /// Explains cached item `item` of `split` from its stored features (no backbone run).
    #[pyo3(signature = (item, split=None, class_=None))]
    fn explain_item(
        &self,
        py: Python<'_>,
        item: usize,
        split: Option<String>,
        class_: Option<usize>,
    ) -> PyResult<Explanation> {
        let (ex, img) = py
            .detach(|| {
                let split = self.session.cache.split_or_default(split)?;
                let ex = self.session.explain_item(&split, item, class_)?;
                let img = self.session.store.get(&ex.source)?;
                Ok((ex, img.as_ref().clone()))
            })
            .or_raise()?;
        Ok(Explanation::new(
            ex,
            Arc::clone(&self.session),
            Picture::Image(img),
        ))
    }

    fn __repr__(&self) -> String {
        format!(
            "Head({:?}, channels={}, classes={})",
            self.run.display().to_string(),
            self.session.explainer.head.dim,
            self.session.explainer.head.classes
        )
    }
}

/// Trains a head on `cache` into `out` with the CLI's default recipe (None for a linear
/// probe, which has no explanations to give); any keyword the CLI's
/// `train` takes as a flag overrides it (`epochs`, `batch`, `lr`, `seed`, `val_fraction`,
/// `keep_top`, `decorrelation`, `rotation_init`, `trace_rv`), and `config` names a TOML
/// configuration as `--config` does. `kind` is `infodisent` or `linear-probe`, `target`
/// `labels` or `original`, `rotation_init` `identity` or `principal`.
#[pyfunction]
#[pyo3(signature = (cache, out, kind="infodisent", target="labels", epochs=None, batch=None, lr=None, seed=None, val_fraction=None, keep_top=None, decorrelation=None, rotation_init=None, trace_rv=None, config=None, resume=false, progress=true))]
#[allow(clippy::too_many_arguments)]
pub fn train(
    py: Python<'_>,
    cache: &Cache,
    out: PathBuf,
    kind: &str,
    target: &str,
    epochs: Option<usize>,
    batch: Option<usize>,
    lr: Option<f64>,
    seed: Option<u64>,
    val_fraction: Option<f64>,
    keep_top: Option<usize>,
    decorrelation: Option<f64>,
    rotation_init: Option<&str>,
    trace_rv: Option<usize>,
    config: Option<PathBuf>,
    resume: bool,
    progress: bool,
) -> PyResult<Option<Head>> {
    let kind = match kind {
        "infodisent" => HeadKind::InfoDisent,
        "linear-probe" | "probe" => HeadKind::LinearProbe,
        other => {
            return Err(invalid(format!(
                "kind `{other}`: use infodisent or linear-probe"
            )))
        }
    };
    let target = match target {
        "labels" => Target::Labels,
        "original" => Target::Original,
        other => return Err(invalid(format!("target `{other}`: use labels or original"))),
    };
    let rotation_init = match rotation_init {
        None => None,
        Some("identity") => Some(RotationInit::Identity),
        Some("principal") => Some(RotationInit::Principal),
        Some(other) => {
            return Err(invalid(format!(
                "rotation_init `{other}`: use identity or principal"
            )))
        }
    };
    let cfg = TrainOverrides {
        config,
        target: Some(target),
        epochs,
        batch,
        lr,
        seed,
        val_fraction,
        keep_top,
        decorrelation,
        rotation_init,
        trace_rv,
        ..TrainOverrides::default()
    }
    .config(Some(kind))
    .or_raise()?;
    let inner = &cache.inner;
    crate::progress::run(py, progress, || {
        infodisent::train::train(inner, &cfg, &out, resume)
    })?;
    if kind == HeadKind::LinearProbe {
        return Ok(None);
    }
    Head::load(
        py,
        out,
        Some(inner.dir().to_path_buf()),
        None,
        None,
        None,
        5,
    )
    .map(Some)
}
