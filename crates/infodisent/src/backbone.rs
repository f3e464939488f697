//! One way to build a backbone from what a user names: a model, its feature node, its
//! preprocessing, the engine and arithmetic to run it on, and (for a cache) the very backbone
//! that made it. `extract`, `predict`, `inspect`, the viewer, the metrics and Python all build
//! theirs here.

use crate::cache::FeatureCache;
use crate::dataset::{Dataset, ImageStore};
use crate::engine::{Backbone, BackboneSource, Engine, Int8Calibration, Precision};
use crate::error::{Error, Result};
use crate::preprocess::{Preprocess, PreprocessChoice};
use rayon::prelude::*;

/// Calibration images of int8 when the user asks for int8 without saying how many.
pub const DEFAULT_INT8_IMAGES: usize = 64;

/// A backbone as a user names it; [`BackboneSpec::load`] builds it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BackboneSpec {
    /// A built-in name (efficientnet-lite0, -lite1, -lite2) or an ONNX file.
    pub model: String,
    /// Graph node whose output is the feature map (`None`: detected).
    pub feature_node: Option<String>,
    /// Preprocessing: a preset and overrides of the model's default.
    pub preprocess: PreprocessChoice,
    /// Inference engine.
    pub engine: Engine,
    /// Arithmetic of the backbone.
    pub precision: Precision,
    /// int8 calibration images (`Some` also when `precision` is int8).
    pub int8: Option<usize>,
    /// Intra-op threads of the engine.
    pub threads: usize,
}

impl BackboneSpec {
    /// `model` with its own preprocessing, on ONNX Runtime in f32.
    pub fn new(model: impl Into<String>, threads: usize) -> Self {
        BackboneSpec {
            model: model.into(),
            threads,
            ..BackboneSpec::default()
        }
    }

    /// Calibration images when int8 is asked for, by `int8` or by `precision`.
    pub fn int8_images(&self) -> Option<usize> {
        match self.precision {
            Precision::Int8 => Some(self.int8.unwrap_or(DEFAULT_INT8_IMAGES)),
            _ => self.int8,
        }
    }

    /// The backbone in f32 or bf16 on the chosen engine. int8 is refused here: its calibration
    /// images come from a dataset ([`BackboneSpec::load_for`]).
    pub fn load(&self) -> Result<Backbone> {
        if self.int8_images().is_some() {
            return Err(Error::Config(format!(
                "{} in int8 needs calibration images, which only extraction takes from the dataset; run f32 or bf16 here",
                self.model
            )));
        }
        self.load_float()?.on(self.engine, self.precision)
    }

    /// The backbone as [`BackboneSpec::load`] builds it, quantized to int8 when asked, on
    /// images spread evenly over `dataset`'s `train` split (its first split if it has none),
    /// so every extraction of the same dataset and model calibrates alike and a cache resumes.
    pub fn load_for(&self, dataset: &Dataset) -> Result<Backbone> {
        let Some(n) = self.int8_images() else {
            return self.load();
        };
        Engine::resolve(self.engine, Precision::Int8)?;
        let backbone = self.load_float()?;
        int8_on_dataset(&backbone, dataset, n)
    }

    /// The float backbone with the chosen preprocessing, on ONNX Runtime in f32.
    pub fn load_float(&self) -> Result<Backbone> {
        with_preprocess(
            Backbone::load(&self.model, self.feature_node.as_deref(), self.threads)?,
            |p| self.preprocess.resolve(p),
        )
    }
}

/// `backbone` with preprocessing `adjust(preset)`. A different crop size re-probes the feature
/// shape at that size (graphs with a fixed input size then fail with ONNX Runtime's message).
fn with_preprocess(
    backbone: Backbone,
    adjust: impl FnOnce(&Preprocess) -> Result<Preprocess>,
) -> Result<Backbone> {
    let preset = &backbone.model().preprocess;
    let wanted = adjust(preset)?;
    if wanted == *preset {
        return Ok(backbone);
    }
    let mut model = backbone.model().clone();
    if wanted.crop != preset.crop {
        model.feature_shape = [0; 3];
    }
    model.preprocess = wanted;
    let threads = backbone.threads();
    let source = backbone.source().cloned();
    drop(backbone);
    Ok(Backbone::from_prepared(model, threads)?.with_source(source))
}

/// Rebuilds the backbone that made `cache`, as extraction built it: the recorded model (a
/// built-in, or the file, found relative to the cache folder), feature node and preprocessing,
/// quantized again on the recorded calibration images for an int8 cache. `model` re-points a
/// model that moved; a file that is another model is refused, naming both.
pub fn from_cache(cache: &FeatureCache, model: Option<&str>, threads: usize) -> Result<Backbone> {
    let manifest = cache.manifest();
    let load = |spec: &str| {
        let backbone = Backbone::load(spec, Some(&manifest.feature_node), threads)?;
        with_preprocess(backbone, |_| Ok(manifest.preprocess.clone()))
    };
    let Some(recorded) = &manifest.backbone else {
        // Caches made before the source was recorded name built-ins and file stems only.
        return load(model.unwrap_or(&manifest.model));
    };
    let spec = match model {
        Some(spec) => spec.to_owned(),
        None => recorded_model(cache, recorded)?,
    };
    let refuse = |why: String| {
        Error::model(
            &spec,
            format!(
                "is not the model that made cache {} ({why}; the cache records {} from {})",
                cache.dir().display(),
                short(&recorded.fingerprint),
                recorded.model
            ),
        )
    };
    let backbone = load(&spec).map_err(|e| match model {
        // A model the user named that cannot even be prepared as the recorded one was is
        // another model; a recorded one that fails says why itself.
        Some(_) => refuse(e.to_string()),
        None => e,
    })?;
    let found = backbone.source().map(|s| s.fingerprint.as_str());
    if found != Some(recorded.fingerprint.as_str()) {
        return Err(refuse(format!(
            "fingerprint {}",
            short(found.unwrap_or("unknown"))
        )));
    }
    match &recorded.int8 {
        None => backbone.on(recorded.engine, recorded.precision),
        Some(int8) => requantize(cache, &backbone, int8),
    }
}

/// Where the model a cache records is now: its built-in name, or its file beside the cache.
fn recorded_model(cache: &FeatureCache, recorded: &BackboneSource) -> Result<String> {
    if recorded.built_in {
        return Ok(recorded.model.clone());
    }
    let path = cache.dir().join(&recorded.model);
    if !path.exists() {
        return Err(Error::model(
            &path,
            format!(
                "the model that made cache {} is no longer there: pass --model with its new location",
                cache.dir().display()
            ),
        ));
    }
    Ok(path.display().to_string())
}

/// The first 12 hex digits of a fingerprint, enough to tell two apart in a message.
fn short(fingerprint: &str) -> &str {
    &fingerprint[..fingerprint.len().min(12)]
}

/// `backbone` quantized on the recorded calibration images of an int8 cache, checked to be the
/// quantized model that made it.
fn requantize(
    cache: &FeatureCache,
    backbone: &Backbone,
    int8: &Int8Calibration,
) -> Result<Backbone> {
    let preprocess = &cache.manifest().preprocess;
    let store = ImageStore::default();
    let len = preprocess.input_len();
    let mut images = vec![0.0f32; int8.images.len() * len];
    images
        .par_chunks_mut(len)
        .zip(&int8.images)
        .try_for_each(|(out, key)| preprocess.apply_into(&*store.get(&cache.resolve(key))?, out))?;
    let quantized = backbone.to_int8(&images, int8.images.len())?;
    let found = quantized.model().fingerprint.clone();
    if found != int8.fingerprint {
        return Err(Error::cache(
            cache.dir(),
            format!(
                "its int8 calibration images changed since extraction (quantized fingerprint {} instead of {}): re-extract it",
                short(&found),
                short(&int8.fingerprint)
            ),
        ));
    }
    let source = backbone.source().cloned().map(|s| BackboneSource {
        int8: Some(int8.clone()),
        ..s
    });
    Ok(quantized.with_source(source))
}

/// `backbone` quantized to int8 ([`Backbone::to_int8`]), calibrated on `n` images spread
/// evenly over the dataset's `train` split (its first split if it has none).
fn int8_on_dataset(backbone: &Backbone, dataset: &Dataset, n: usize) -> Result<Backbone> {
    let split = dataset
        .splits
        .iter()
        .find(|s| s.name == "train")
        .or_else(|| dataset.splits.first())
        .filter(|s| !s.samples.is_empty())
        .ok_or_else(|| {
            Error::Config("int8 calibration needs images, the dataset has none".into())
        })?;
    let preprocess = &backbone.model().preprocess;
    let total = split.samples.len();
    let n = n.clamp(1, total);
    let len = preprocess.input_len();
    let mut images = vec![0.0f32; n * len];
    images
        .par_chunks_mut(len)
        .enumerate()
        .try_for_each(|(i, out)| split.samples[i * total / n].preprocess_into(preprocess, out))?;
    let quantized = backbone.to_int8(&images, n)?;
    let keys = (0..n)
        .map(|i| dataset.key(&split.samples[i * total / n]))
        .collect();
    let source = quantized.source().cloned().map(|mut s| {
        if let Some(int8) = &mut s.int8 {
            int8.images = keys;
        }
        s
    });
    Ok(quantized.with_source(source))
}
