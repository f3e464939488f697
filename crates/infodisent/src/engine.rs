//! Running a prepared backbone with ONNX Runtime (loaded at run time from `libonnxruntime.so`).
//!
//! One run yields the feature map (converted to `[n, D, h, w]` whatever the graph's layout) and,
//! when the graph has a classifier, its original logits.

use crate::error::{Error, Result};
use crate::model::{FeatureLayout, PreparedModel};
use ort::environment::Environment;
use ort::session::Session;
use ort::value::TensorRef;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Environment variable naming the ONNX Runtime shared library to load.
pub const DYLIB_ENV: &str = "ORT_DYLIB_PATH";

/// The process-wide ONNX Runtime environment (the library can be loaded only once).
static ENVIRONMENT: OnceLock<std::result::Result<Environment, String>> = OnceLock::new();

/// The loaded ONNX Runtime environment, initialised on first use.
fn environment() -> Result<&'static Environment> {
    ENVIRONMENT
        .get_or_init(|| {
            let lib = find_library()?;
            let builder =
                ort::init_from(&lib).map_err(|e| format!("cannot load {}: {e}", lib.display()))?;
            builder
                .with_name("infodisent")
                .with_telemetry(false)
                .build()
                .map_err(|e| format!("cannot initialise {}: {e}", lib.display()))
        })
        .as_ref()
        .map_err(|e| Error::Runtime(e.clone()))
}

/// Where `libonnxruntime.so` is: `$ORT_DYLIB_PATH`, the asset folder, or an installed Python
/// `onnxruntime` package.
pub fn find_library() -> std::result::Result<PathBuf, String> {
    if let Some(path) = std::env::var_os(DYLIB_ENV) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("{DYLIB_ENV}={} does not exist", path.display()))
        };
    }
    if let Ok(dir) = crate::assets::assets_dir() {
        let path = dir.join("onnxruntime/libonnxruntime.so");
        if path.is_file() {
            return Ok(path);
        }
    }
    if let Some(path) = python_onnxruntime() {
        return Ok(path);
    }
    Err(format!(
        "libonnxruntime.so not found: run `scripts/fetch-assets.sh` (it puts it in .assets/onnxruntime/) or set {DYLIB_ENV}"
    ))
}

/// The library inside a Python `onnxruntime` installation, if Python has one.
fn python_onnxruntime() -> Option<PathBuf> {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import onnxruntime, os; print(os.path.dirname(onnxruntime.__file__))",
        ])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let capi = Path::new(String::from_utf8_lossy(&out.stdout).trim()).join("capi");
    std::fs::read_dir(capi)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("libonnxruntime.so"))
        })
}

/// A backbone as a callback: a preprocessed batch of `n` images in, their feature maps out
/// (what explanations and metrics call when they must look at new or perturbed pixels).
pub type FeatureFn<'a> = dyn FnMut(&[f32], usize) -> Result<Vec<f32>> + 'a;

/// What one run of a backbone returns.
#[derive(Debug, Clone)]
pub struct BackboneOutput {
    /// Feature maps `[n, D, h, w]`.
    pub features: Vec<f32>,
    /// Original logits `[n, C]`, when the graph has a classifier.
    pub logits: Option<Vec<f32>>,
}

/// The feature output as the graph gives it (before any token-to-grid conversion).
struct RawOutput {
    shape: Vec<usize>,
    features: Vec<f32>,
    logits: Option<Vec<f32>>,
}

/// A prepared model with its ONNX Runtime session.
pub struct Backbone {
    model: PreparedModel,
    session: Session,
}

impl std::fmt::Debug for Backbone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backbone")
            .field("model", &self.model.name)
            .field("feature_shape", &self.model.feature_shape)
            .finish()
    }
}

impl Backbone {
    /// Loads a built-in model by name (`efficientnet-lite0/1/2`) or an `.onnx` file, with
    /// `threads` intra-op threads; `feature_node` overrides the detected feature map.
    pub fn load(spec: &str, feature_node: Option<&str>, threads: usize) -> Result<Backbone> {
        let model = if crate::models::find(spec).is_some() {
            crate::models::load(spec, feature_node)?
        } else {
            let path = Path::new(spec);
            if !path.exists() {
                let names: Vec<_> = crate::models::BUILT_INS.iter().map(|b| b.name).collect();
                return Err(Error::model(
                    path,
                    format!(
                        "no such file, and not a built-in model ({})",
                        names.join(", ")
                    ),
                ));
            }
            crate::onnx::prepare_file(path, feature_node)?
        };
        Backbone::from_prepared(model, threads)
    }

    /// Opens a session for an already prepared model; probes one input when the feature shape
    /// is not known from the graph.
    pub fn from_prepared(model: PreparedModel, threads: usize) -> Result<Backbone> {
        let env = environment()?;
        let fail = |e: String| {
            Error::model(
                &model.name,
                format!("ONNX Runtime cannot load the graph: {e}"),
            )
        };
        let session = Session::builder(env)
            .map_err(|e| fail(e.to_string()))?
            .with_intra_threads(threads.max(1))
            .map_err(|e| fail(e.to_string()))?
            .commit_from_memory(&model.onnx)
            .map_err(|e| fail(e.to_string()))?;
        let mut backbone = Backbone { model, session };
        if backbone.model.feature_shape.contains(&0) {
            backbone.probe()?;
        }
        let dim = backbone.model.feature_shape[0];
        if let Some(c) = backbone.model.classifier.as_ref().filter(|c| c.dim != dim) {
            tracing::warn!(
                "{}: the classifier reads {} channels but the feature map has {dim}; ignoring it",
                backbone.model.name,
                c.dim
            );
            backbone.model.classifier = None;
        }
        Ok(backbone)
    }

    /// The prepared model (with `feature_shape` filled in).
    pub fn model(&self) -> &PreparedModel {
        &self.model
    }

    /// Side of the square input images.
    pub fn input_size(&self) -> usize {
        self.model.preprocess.crop
    }

    /// Runs a zero image to learn the feature shape (and whether the output is tokens).
    fn probe(&mut self) -> Result<()> {
        let s = self.input_size();
        let zeros = vec![0.0f32; 3 * s * s];
        let shape = {
            let RawOutput { shape, .. } = self.raw_run(&zeros, 1, false)?;
            shape
        };
        let name = &self.model.name;
        self.model.feature_shape = match (shape.as_slice(), self.model.layout) {
            ([1, d, h, w], FeatureLayout::Nchw) => [*d, *h, *w],
            ([1, t, d], _) => {
                let skip = match self.model.layout {
                    FeatureLayout::Tokens { skip } => skip,
                    FeatureLayout::Nchw => crate::onnx::detect::token_skip(*t),
                };
                let side = ((t.saturating_sub(skip)) as f64).sqrt().round() as usize;
                if side == 0 || side * side + skip != *t {
                    return Err(Error::model(
                        name,
                        format!("{t} tokens minus {skip} leading ones do not form a square grid"),
                    ));
                }
                self.model.layout = FeatureLayout::Tokens { skip };
                [*d, side, side]
            }
            (other, _) => {
                return Err(Error::model(
                    name,
                    format!(
                    "feature output `{}` has shape {other:?}; expected [N,D,h,w] or tokens [N,T,D]",
                    self.model.feature_output
                ),
                ))
            }
        };
        Ok(())
    }

    /// Runs the session; returns the raw feature shape (and data) and the logits if asked.
    fn raw_run(&mut self, input: &[f32], batch: usize, want_logits: bool) -> Result<RawOutput> {
        let s = self.model.preprocess.crop;
        let name = self.model.name.clone();
        let rt = |e: ort::Error| Error::model(&name, format!("ONNX Runtime run failed: {e}"));
        let tensor = TensorRef::from_array_view(([batch, 3, s, s], input)).map_err(rt)?;
        let outputs = self
            .session
            .run(ort::inputs![self.model.input_name.as_str() => tensor])
            .map_err(rt)?;
        let value = outputs.get(&self.model.feature_output).ok_or_else(|| {
            Error::model(
                &name,
                format!("the graph does not output `{}`", self.model.feature_output),
            )
        })?;
        let (shape, data) = value.try_extract_tensor::<f32>().map_err(rt)?;
        let shape: Vec<usize> = shape.iter().map(|&d| d.max(0) as usize).collect();
        let features = data.to_vec();
        let logits = match (&self.model.logits_output, want_logits) {
            (Some(out), true) => {
                let value = outputs.get(out).ok_or_else(|| {
                    Error::model(&name, format!("the graph does not output `{out}`"))
                })?;
                Some(value.try_extract_tensor::<f32>().map_err(rt)?.1.to_vec())
            }
            _ => None,
        };
        Ok(RawOutput {
            shape,
            features,
            logits,
        })
    }

    /// Runs `batch` preprocessed images (`[batch, 3, S, S]`, NCHW) through the backbone.
    pub fn run(&mut self, input: &[f32], batch: usize) -> Result<BackboneOutput> {
        let s = self.input_size();
        if batch == 0 || input.len() != batch * 3 * s * s {
            return Err(Error::Shape(format!(
                "{}: input holds {} values, expected {batch} images of 3×{s}×{s} = {}",
                self.model.name,
                input.len(),
                batch * 3 * s * s
            )));
        }
        let RawOutput {
            shape,
            features: raw,
            logits,
        } = self.raw_run(input, batch, true)?;
        let [d, h, w] = self.model.feature_shape;
        let features = match self.model.layout {
            FeatureLayout::Nchw => {
                if shape != [batch, d, h, w] {
                    return Err(self.shape_error(&shape, &[batch, d, h, w]));
                }
                raw
            }
            FeatureLayout::Tokens { skip } => {
                if shape != [batch, skip + h * w, d] {
                    return Err(self.shape_error(&shape, &[batch, skip + h * w, d]));
                }
                tokens_to_nchw(&raw, batch, skip, h * w, d)
            }
        };
        if let (Some(l), Some(c)) = (&logits, &self.model.classifier) {
            if l.len() != batch * c.classes {
                return Err(Error::Shape(format!(
                    "{}: {} logits for {batch} images of {} classes",
                    self.model.name,
                    l.len(),
                    c.classes
                )));
            }
        }
        Ok(BackboneOutput { features, logits })
    }

    fn shape_error(&self, got: &[usize], want: &[usize]) -> Error {
        Error::Shape(format!(
            "{}: feature output `{}` is {got:?}, expected {want:?}",
            self.model.name, self.model.feature_output
        ))
    }
}

/// `[n, skip + cells, d]` tokens to `[n, d, cells]` channel-major maps, dropping the first `skip`.
fn tokens_to_nchw(raw: &[f32], n: usize, skip: usize, cells: usize, d: usize) -> Vec<f32> {
    let mut out = vec![0.0; n * d * cells];
    for b in 0..n {
        let src = &raw[b * (skip + cells) * d..];
        let dst = &mut out[b * d * cells..(b + 1) * d * cells];
        for cell in 0..cells {
            let token = &src[(skip + cell) * d..(skip + cell + 1) * d];
            for (k, &v) in token.iter().enumerate() {
                dst[k * cells + cell] = v;
            }
        }
    }
    out
}
