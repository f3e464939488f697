//! Running a prepared backbone: with ONNX Runtime (loaded at run time from
//! `libonnxruntime.so`), or with OpenVINO ([`openvino`]) where that is faster.
//!
//! One run yields the feature map (converted to `[n, D, h, w]` whatever the graph's layout) and,
//! when the graph has a classifier, its original logits.

mod onnxruntime;
pub mod openvino;

pub use onnxruntime::{find_library, use_library, DYLIB_ENV};

use crate::error::{Error, Result};
use crate::onnx::model::{FeatureLayout, OriginalHead, OriginalHeadKind, PreparedModel};
use onnxruntime::session;
use ort::session::Session;
use ort::value::TensorRef;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Which inference engine runs a backbone.
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// ONNX Runtime for f32 and int8, OpenVINO for bf16.
    #[default]
    Auto,
    /// ONNX Runtime.
    Ort,
    /// OpenVINO's CPU plugin.
    Openvino,
}

/// The arithmetic a backbone runs in.
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Full precision: the features as exact as the graph computes them.
    #[default]
    F32,
    /// bfloat16 matrix arithmetic (AMX or AVX512-BF16 units), through OpenVINO.
    Bf16,
    /// Convolutions before the feature map quantized to int8, through ONNX Runtime.
    Int8,
}

impl Precision {
    /// Whether this is the default, f32.
    pub fn is_f32(&self) -> bool {
        *self == Precision::F32
    }
}

impl Engine {
    /// The engine `self` stands for at `precision`: `auto` is OpenVINO for bf16 and ONNX
    /// Runtime for f32 and int8 (f32 features are as exact on both; ONNX Runtime needs no
    /// second library). bf16 needs a CPU with AMX or AVX512-BF16 and OpenVINO; int8 runs on
    /// ONNX Runtime only.
    pub fn resolve(self, precision: Precision) -> Result<Engine> {
        let engine = match (self, precision) {
            (Engine::Auto, Precision::Bf16) => Engine::Openvino,
            (Engine::Auto, _) => Engine::Ort,
            (chosen, _) => chosen,
        };
        match (engine, precision) {
            (Engine::Ort, Precision::Bf16) => Err(Error::Config(
                "ONNX Runtime runs f32 and int8 here: bf16 needs --engine openvino (or auto)"
                    .into(),
            )),
            (Engine::Openvino, Precision::Int8) => Err(Error::Config(
                "int8 runs on ONNX Runtime (--engine ort or auto): OpenVINO runs f32 and bf16"
                    .into(),
            )),
            (Engine::Openvino, precision) => {
                openvino::load().map_err(|why| {
                    Error::Runtime(format!("the OpenVINO engine is unavailable: {why}"))
                })?;
                let cpu = &crate::cpu::Cpu::get().features;
                let bf16 = cpu.iter().any(|f| f == "amx_bf16" || f == "avx512_bf16");
                if precision == Precision::Bf16 && !bf16 {
                    return Err(Error::Config(format!(
                        "this CPU has neither AMX nor AVX512-BF16 ({}): bf16 would run no faster than f32",
                        crate::cpu::Cpu::get().describe()
                    )));
                }
                Ok(engine)
            }
            _ => Ok(engine),
        }
    }
}

/// The folder of the Python package `package` of the `python3` on `PATH`, when it has one:
/// where a pip-installed engine keeps its shared libraries.
fn python_package_dir(package: &str) -> Option<PathBuf> {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            &format!("import {package}, os; print(os.path.dirname({package}.__file__))"),
        ])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    Some(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// The file in `dir` whose name starts with `prefix` (e.g. `libopenvino_c.so`, soversioned
/// names included), the last in name order when there are several.
fn library_in(dir: &Path, prefix: &str) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
        })
        .collect();
    found.sort();
    found.pop()
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

/// The outputs as the graph gives them (before any layout conversion).
struct RawOutput {
    shape: Vec<usize>,
    features: Vec<f32>,
    logits: Option<(Vec<usize>, Vec<f32>)>,
}

/// The engine session a backbone runs on.
enum Runner {
    Ort(Session),
    OpenVino(openvino::OpenVinoRunner),
}

/// Where a backbone came from: what a cache records so that later commands rebuild the very
/// backbone that made it, from any folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackboneSource {
    /// A built-in model's name, or the model file: absolute in a loaded backbone, relative to
    /// the cache folder in a cache manifest when that is shorter.
    pub model: String,
    /// Whether `model` names a built-in model.
    pub built_in: bool,
    /// Fingerprint of the float model ([`PreparedModel::fingerprint`] before quantization):
    /// a model found elsewhere must have the same.
    pub fingerprint: String,
    /// How the backbone was quantized, when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub int8: Option<Int8Calibration>,
    /// The engine it ran on (absent: ONNX Runtime).
    #[serde(default, skip_serializing_if = "is_ort")]
    pub engine: Engine,
    /// Its arithmetic (absent: f32, or int8 when `int8` is set).
    #[serde(default, skip_serializing_if = "Precision::is_f32")]
    pub precision: Precision,
}

fn is_ort(engine: &Engine) -> bool {
    matches!(engine, Engine::Ort | Engine::Auto)
}

/// The images an int8 backbone was calibrated on, so it can be quantized again identically.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Int8Calibration {
    /// The calibration images as the dataset keys them (relative to its root).
    pub images: Vec<String>,
    /// Fingerprint of the quantized model, which hashes the calibration pixels.
    pub fingerprint: String,
}

/// A prepared model with its engine session.
pub struct Backbone {
    model: PreparedModel,
    runner: Runner,
    /// The engine and arithmetic of `runner`.
    engine: (Engine, Precision),
    /// Set when the graph only runs one image at a time (a batch dim baked to 1 by its exporter).
    one_at_a_time: bool,
    /// Intra-op threads of the session.
    threads: usize,
    /// Convolutions on integer kernels, when made by [`Backbone::to_int8`].
    int8_layers: Option<usize>,
    /// Where it came from, when it was loaded by name or path.
    source: Option<BackboneSource>,
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
        let built_in = crate::models::find(spec).is_some();
        let mut location = spec.to_owned();
        let model = if built_in {
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
            location = path
                .canonicalize()
                .map_err(|e| Error::io(path, e))?
                .display()
                .to_string();
            crate::onnx::prepare_file(path, feature_node)?
        };
        let fingerprint = model.fingerprint.clone();
        let mut backbone = Backbone::from_prepared(model, threads)?;
        backbone.source = Some(BackboneSource {
            model: location,
            built_in,
            fingerprint,
            int8: None,
            engine: Engine::Ort,
            precision: Precision::F32,
        });
        Ok(backbone)
    }

    /// Opens a session for an already prepared model, then runs a probe batch that learns what
    /// the graph does not say: the feature shape, whether the graph takes more than one image,
    /// how many classes its logits have, and whether the detected linear head reproduces them.
    pub fn from_prepared(model: PreparedModel, threads: usize) -> Result<Backbone> {
        Backbone::start(model, threads, (Engine::Ort, Precision::F32), None)
    }

    /// A backbone of `model` on a resolved engine and precision, probed there; `source` is
    /// recorded with that engine and precision.
    fn start(
        model: PreparedModel,
        threads: usize,
        (engine, precision): (Engine, Precision),
        source: Option<BackboneSource>,
    ) -> Result<Backbone> {
        let runner = runner(&model, engine, precision, threads)?;
        let mut backbone = Backbone {
            model,
            runner,
            engine: (engine, precision),
            one_at_a_time: false,
            threads,
            int8_layers: None,
            source: source.map(|s| BackboneSource {
                engine,
                precision,
                ..s
            }),
        };
        backbone.probe()?;
        Ok(backbone)
    }

    /// The same backbone with its layers before the feature map quantized to int8
    /// ([`crate::onnx::quantize`]), activation ranges calibrated on `images` (`n` preprocessed
    /// images, NCHW). Faster on CPUs; the features differ from f32 by the quantization error.
    pub fn to_int8(&self, images: &[f32], n: usize) -> Result<Backbone> {
        use crate::onnx::quantize::{QuantPlan, Range};
        let model = self.model.clone();
        let per_image = model.preprocess.input_len();
        if n == 0 || images.len() != n * per_image {
            return Err(Error::Shape(format!(
                "{}: int8 calibration needs preprocessed images, got {} values for {n}",
                model.name,
                images.len()
            )));
        }
        let plan = QuantPlan::new(&model)?;
        let calibration = plan.calibration_model(&model)?;
        let mut calibrate = session(&model, &calibration, self.threads)?;
        let values = plan.calibrated_values();
        let mut ranges: HashMap<String, Range> = HashMap::new();
        let mut input_range = Range::EMPTY;
        input_range.cover(images);
        ranges.insert(model.input_name.clone(), input_range);
        let s = model.preprocess.crop;
        let rt = |e: ort::Error| Error::model(&model.name, format!("int8 calibration failed: {e}"));
        let chunk = if self.one_at_a_time { 1 } else { 8 };
        for batch in images.chunks(chunk * per_image) {
            let count = batch.len() / per_image;
            let tensor = TensorRef::from_array_view(([count, 3, s, s], batch)).map_err(rt)?;
            let outputs = calibrate
                .run(ort::inputs![model.input_name.as_str() => tensor])
                .map_err(rt)?;
            for v in &values {
                let (_, data) = outputs
                    .get(v)
                    .ok_or_else(|| {
                        Error::model(&model.name, format!("no calibration output `{v}`"))
                    })?
                    .try_extract_tensor::<f32>()
                    .map_err(rt)?;
                ranges
                    .entry((*v).to_owned())
                    .or_insert(Range::EMPTY)
                    .cover(data);
            }
        }
        drop(calibrate);
        let onnx = plan.quantized_model(&model, &ranges)?;
        tracing::info!(
            "{}: {} convolutions quantized to int8, calibrated on {n} images",
            model.name,
            plan.int8_convs()
        );
        // Named by what went in, not by the ranges that came out: a calibration run's float
        // sums may differ in the last bits with the thread count, and a resumed cache must
        // still match.
        let fingerprint = crate::fsutil::sha256_bytes(
            format!(
                "{}:int8-v1:{}",
                model.fingerprint,
                crate::fsutil::sha256_bytes(bytemuck::cast_slice(images))
            )
            .as_bytes(),
        );
        let quantized = PreparedModel {
            name: format!("{} int8", model.name),
            onnx,
            fingerprint,
            ..model
        };
        let int8 = Int8Calibration {
            images: vec![],
            fingerprint: quantized.fingerprint.clone(),
        };
        let mut backbone = Backbone::from_prepared(quantized, self.threads)?;
        backbone.int8_layers = Some(plan.int8_convs());
        backbone.engine = (Engine::Ort, Precision::Int8);
        backbone.source = self.source.clone().map(|s| BackboneSource {
            int8: Some(int8),
            precision: Precision::Int8,
            ..s
        });
        Ok(backbone)
    }

    /// The same model on `engine` at `precision` (f32 or bf16; int8 is [`Backbone::to_int8`]),
    /// probed again there. A backbone already on them is returned as it is.
    pub fn on(self, engine: Engine, precision: Precision) -> Result<Backbone> {
        let engine = engine.resolve(precision)?;
        if (engine, precision) == self.engine {
            return Ok(self);
        }
        let int8_layers = self.int8_layers;
        let mut backbone =
            Backbone::start(self.model, self.threads, (engine, precision), self.source)?;
        backbone.int8_layers = int8_layers;
        Ok(backbone)
    }

    /// A second backbone of the same float model on `engine` at `precision`, this one kept
    /// (what a benchmark compares engines with).
    pub fn another(&self, engine: Engine, precision: Precision) -> Result<Backbone> {
        let engine = engine.resolve(precision)?;
        Backbone::start(
            self.model.clone(),
            self.threads,
            (engine, precision),
            self.source.clone(),
        )
    }

    /// Intra-op threads of its engine session.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The engine it runs on and its arithmetic.
    pub fn engine(&self) -> (Engine, Precision) {
        self.engine
    }

    /// Where the backbone came from (`None` for one made from a prepared model directly).
    pub fn source(&self) -> Option<&BackboneSource> {
        self.source.as_ref()
    }

    /// The same backbone recording `source` as its origin: for a backbone rebuilt from another
    /// one's prepared model (another input size) or quantized with known calibration images.
    pub fn with_source(mut self, source: Option<BackboneSource>) -> Backbone {
        self.source = source;
        self
    }

    /// The prepared model (with `feature_shape` filled in).
    pub fn model(&self) -> &PreparedModel {
        &self.model
    }

    /// Convolutions running on integer kernels (`None` for a float backbone).
    pub fn int8_layers(&self) -> Option<usize> {
        self.int8_layers
    }

    /// Side of the square input images.
    pub fn input_size(&self) -> usize {
        self.model.preprocess.crop
    }

    /// Whether the graph runs only one image per call.
    pub fn one_at_a_time(&self) -> bool {
        self.one_at_a_time
    }

    /// Runs two deterministic images (one when the graph only takes one at a time).
    fn probe(&mut self) -> Result<()> {
        let s = self.input_size();
        let probe: Vec<f32> = (0..2 * 3 * s * s)
            .map(|i| ((i.wrapping_mul(2_654_435_761) >> 7) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        let raw = match self.raw_run(&probe, 2) {
            Ok(raw) => raw,
            Err(batch_err) => {
                let raw = self
                    .raw_run(&probe[..3 * s * s], 1)
                    .map_err(|_| batch_err)?;
                tracing::warn!(
                    "{}: the graph does not run a batch of 2 images (its exporter fixed the batch \
                     size to 1); images will go through it one at a time",
                    self.model.name
                );
                self.one_at_a_time = true;
                raw
            }
        };
        let n = if self.one_at_a_time { 1 } else { 2 };
        self.learn_feature_shape(&raw.shape, n)?;
        self.learn_logits(raw.logits.as_ref(), n);
        let features = self.to_nchw(&raw.shape, raw.features, n)?;
        self.check_classifier(&features, raw.logits.as_ref().map(|(_, l)| l.as_slice()), n);
        Ok(())
    }

    /// Fills in the per-image feature shape from the first run's output shape.
    fn learn_feature_shape(&mut self, shape: &[usize], n: usize) -> Result<()> {
        let name = &self.model.name;
        let learned = match (shape, self.model.layout) {
            ([b, d, h, w], FeatureLayout::Nchw) if *b == n => [*d, *h, *w],
            ([b, h, w, d], FeatureLayout::Nhwc) if *b == n => [*d, *h, *w],
            ([b, t, d], _) if *b == n => {
                // Static shapes may not have known the token count when the prefix was guessed.
                let guessed = crate::onnx::detect::token_skip(*t);
                let skip = match self.model.layout {
                    FeatureLayout::Tokens { skip } if is_square(t.saturating_sub(skip)) => skip,
                    _ => guessed,
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
                        "feature output `{}` has shape {other:?} for {n} images; expected \
                         [N,D,h,w], [N,h,w,D] or tokens [N,T,D]",
                        self.model.feature_output
                    ),
                ))
            }
        };
        if self.model.feature_shape != [0, 0, 0] && self.model.feature_shape != learned {
            tracing::debug!(
                "{name}: static shapes said {:?}, the run gives {learned:?}",
                self.model.feature_shape
            );
        }
        self.model.feature_shape = learned;
        Ok(())
    }

    /// Keeps the logits output only when it is `[N, C]`, and records `C`.
    fn learn_logits(&mut self, logits: Option<&(Vec<usize>, Vec<f32>)>, n: usize) {
        match logits.map(|(shape, _)| shape.as_slice()) {
            Some(&[b, c]) if b == n && c > 0 => self.model.original_classes = Some(c),
            _ => {
                self.model.logits_output = None;
                self.model.original_classes = None;
            }
        }
    }

    /// Drops a detected linear head that does not fit the map, or (for a plain linear head) does
    /// not reproduce the graph's logits from the average-pooled map.
    fn check_classifier(&mut self, features: &[f32], logits: Option<&[f32]>, n: usize) {
        let Some(c) = &self.model.classifier else {
            return;
        };
        let [d, h, w] = self.model.feature_shape;
        let problem = if c.dim != d {
            Some(format!(
                "the classifier reads {} channels but the feature map has {d}",
                c.dim
            ))
        } else if self.model.head.kind == OriginalHeadKind::Linear {
            logits.and_then(|logits| {
                let cells = h * w;
                let worst = (0..n)
                    .flat_map(|i| {
                        let ours =
                            c.logits_of_map(&features[i * d * cells..(i + 1) * d * cells], cells);
                        let theirs = logits[i * c.classes..(i + 1) * c.classes].to_vec();
                        ours.into_iter().zip(theirs)
                    })
                    .map(|(a, b)| (a - b).abs() / (1.0 + b.abs()))
                    .fold(0.0f32, f32::max);
                // bf16 arithmetic moves logits by about 1e-2 (relative) on its own.
                let tolerance = match self.engine.1 {
                    Precision::Bf16 => 5e-2,
                    _ => 1e-3,
                };
                (worst > tolerance).then(|| {
                    format!(
                        "the linear layer applied to the average-pooled map misses the graph's \
                         logits by up to {worst:.2e} (relative)"
                    )
                })
            })
        } else {
            None
        };
        if let Some(problem) = problem {
            tracing::warn!("{}: {problem}; ignoring that classifier", self.model.name);
            self.model.head = OriginalHead {
                kind: OriginalHeadKind::Other,
                detail: format!("{problem}; the model's own logits are still cached"),
            };
            self.model.classifier = None;
        }
    }

    /// Runs the session on `batch` images; returns the raw feature shape and data, and the
    /// logits with their shape when the graph has them.
    fn raw_run(&mut self, input: &[f32], batch: usize) -> Result<RawOutput> {
        match &mut self.runner {
            Runner::Ort(session) => onnxruntime::run(session, &self.model, input, batch),
            Runner::OpenVino(runner) => runner.run(&self.model, input, batch),
        }
    }

    /// This backbone as a [`FeatureFn`]: inputs `[n, 3, S, S]` to feature maps, the logits
    /// dropped (what explanations and metrics call).
    pub fn feature_fn(&mut self) -> impl FnMut(&[f32], usize) -> Result<Vec<f32>> + '_ {
        move |input, n| Ok(self.run(input, n)?.features)
    }

    /// Runs `batch` preprocessed images (`[batch, 3, S, S]`, NCHW) through the backbone.
    pub fn run(&mut self, input: &[f32], batch: usize) -> Result<BackboneOutput> {
        let s = self.input_size();
        let per_image = 3 * s * s;
        if batch == 0 || input.len() != batch * per_image {
            return Err(Error::Shape(format!(
                "{}: input holds {} values, expected {batch} images of 3×{s}×{s} = {}",
                self.model.name,
                input.len(),
                batch * per_image
            )));
        }
        if self.one_at_a_time && batch > 1 {
            let mut features = Vec::new();
            let mut logits: Option<Vec<f32>> = None;
            for image in input.chunks(per_image) {
                let out = self.run(image, 1)?;
                features.extend(out.features);
                if let Some(l) = out.logits {
                    logits.get_or_insert_with(Vec::new).extend(l);
                }
            }
            return Ok(BackboneOutput { features, logits });
        }
        let raw = self.raw_run(input, batch)?;
        let features = self.to_nchw(&raw.shape, raw.features, batch)?;
        let logits = match (raw.logits, self.model.original_classes) {
            (Some((shape, l)), Some(c)) => {
                if shape != [batch, c] {
                    return Err(Error::Shape(format!(
                        "{}: logits `{}` are {shape:?} for {batch} images of {c} classes",
                        self.model.name,
                        self.model.logits_output.as_deref().unwrap_or("?")
                    )));
                }
                Some(l)
            }
            _ => None,
        };
        Ok(BackboneOutput { features, logits })
    }

    /// The raw feature output as `[n, D, h, w]`, after checking its shape.
    fn to_nchw(&self, shape: &[usize], raw: Vec<f32>, batch: usize) -> Result<Vec<f32>> {
        let [d, h, w] = self.model.feature_shape;
        let (want, skip) = match self.model.layout {
            FeatureLayout::Nchw => (vec![batch, d, h, w], None),
            FeatureLayout::Nhwc => (vec![batch, h, w, d], Some(0)),
            FeatureLayout::Tokens { skip } => (vec![batch, skip + h * w, d], Some(skip)),
        };
        if shape != want.as_slice() {
            return Err(Error::Shape(format!(
                "{}: feature output `{}` is {shape:?}, expected {want:?}",
                self.model.name, self.model.feature_output
            )));
        }
        Ok(match skip {
            None => raw,
            Some(skip) => tokens_to_nchw(&raw, batch, skip, h * w, d),
        })
    }
}

/// A runner for `model` on a resolved engine: OpenVINO at f32 or bf16, ONNX Runtime at f32.
fn runner(
    model: &PreparedModel,
    engine: Engine,
    precision: Precision,
    threads: usize,
) -> Result<Runner> {
    match (engine, precision) {
        (Engine::Openvino, p) => Ok(Runner::OpenVino(openvino::OpenVinoRunner::new(
            model, p, threads,
        )?)),
        (_, Precision::F32) => Ok(Runner::Ort(session(model, &model.onnx, threads)?)),
        (_, p) => Err(Error::Config(format!(
            "{p:?} on ONNX Runtime is made by quantizing (`--int8`), not by switching engines"
        ))),
    }
}

fn is_square(n: usize) -> bool {
    let side = (n as f64).sqrt().round() as usize;
    side > 0 && side * side == n
}

/// `[n, skip + cells, d]` tokens (or an NHWC map, `skip` 0) to `[n, d, cells]` channel-major
/// maps, dropping the first `skip`.
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
