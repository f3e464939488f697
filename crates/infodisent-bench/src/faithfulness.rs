//! `bench faithfulness`: infodisent's heatmaps beside the explainers people already use,
//! pytorch-grad-cam (Grad-CAM, Grad-CAM++, Score-CAM, EigenCAM) and Captum (Occlusion,
//! Integrated Gradients), on the same model and the same network inputs, every map scored by
//! one implementation: deletion and insertion AUC on the original model (through ONNX Runtime),
//! and on generated images whose deciding parts are known, the share of each map's mass on
//! those parts and the pointing game. A random map and a center prior are the floors.
//!
//! The peers run in the pinned Python environment on the PyTorch module of the same weights
//! ([`PEERS_SCRIPT`]); they receive infodisent's preprocessed inputs and the classes to explain,
//! and return maps, so no method is favoured by its own preprocessing or metric code.

use infodisent::backbone::BackboneSpec;
use infodisent::cache::FeatureCache;
use infodisent::classifier::{LinearClassifier, Pooling};
use infodisent::dataset::{Dataset, OpenOptions, Sample};
use infodisent::engine::Backbone;
use infodisent::error::{Error, Result};
use infodisent::explain::{
    CenterPrior, Explainer, Grid, Heatmap, ImageGeometry, InfoDisentMap, Polarity, RandomMap,
    SparseInfoDisentMap, Subject,
};
use infodisent::extract::{extract, ExtractOptions};
use infodisent::head::params::{argmax, HeadParams};
use infodisent::head::HeadKind;
use infodisent::metrics::faithfulness::{input_and_blurred, score_map};
use infodisent::synth::parts::{asset_backgrounds, generate, PartsConfig, PartsTruth};
use infodisent::train::{train_or_reuse, Target, TrainConfig, TrainOverrides};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The peers' driver, shipped inside the binary so the benchmark runs from any folder.
pub const PEERS_SCRIPT: &str = include_str!("../python/faithfulness_peers.py");

/// Every peer the driver knows, with the package it comes from and whether it needs gradients.
pub const PEERS: [(&str, &str, bool); 6] = [
    ("grad-cam", "pytorch-grad-cam 1.5.7", true),
    ("grad-cam++", "pytorch-grad-cam 1.5.7", true),
    ("score-cam", "pytorch-grad-cam 1.5.7", false),
    ("eigen-cam", "pytorch-grad-cam 1.5.7", false),
    ("occlusion", "Captum 0.9.0", false),
    ("integrated-gradients", "Captum 0.9.0", true),
];

/// A user's own PyTorch module for the peers: the model the ONNX file was exported from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TorchModule {
    /// A Python file defining `function`.
    pub file: PathBuf,
    /// A function of no arguments returning the `nn.Module`, weights loaded.
    pub function: String,
    /// The submodule whose output is the feature map infodisent reads; `None`: the last one
    /// whose output has its shape.
    pub layer: Option<String>,
}

impl TorchModule {
    /// Reads `FILE.py:FUNCTION`, with the feature layer `layer` when named.
    pub fn parse(spec: &str, layer: Option<String>) -> Result<Self> {
        let (file, function) = spec.rsplit_once(':').ok_or_else(|| {
            Error::Config(format!(
                "--torch-module takes FILE.py:FUNCTION, got `{spec}`"
            ))
        })?;
        let file = PathBuf::from(file);
        if !file.is_file() {
            return Err(Error::input(&file, "no such Python file (--torch-module)"));
        }
        if function.is_empty() || !function.chars().all(|c| c.is_alphanumeric() || c == '_') {
            return Err(Error::Config(format!(
                "--torch-module: `{function}` is not a Python function name"
            )));
        }
        Ok(TorchModule {
            file: std::path::absolute(&file).map_err(|e| Error::io(&file, e))?,
            function: function.to_owned(),
            layer,
        })
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct FaithfulnessRequest {
    /// The backbone; its PyTorch module is built from the same weights for the peers.
    pub model: BackboneSpec,
    /// The PyTorch module the peers explain when the model is not a built-in one.
    pub torch_module: Option<TorchModule>,
    /// A folder of photos, explained for the model's own decision (no labels needed).
    pub photos: Option<PathBuf>,
    /// Test images per class of the generated parts benchmark (0: no parts leg).
    pub parts_per_class: usize,
    /// Python of the environment holding torch, pytorch-grad-cam and Captum (none: no peers).
    pub python: Option<PathBuf>,
    /// Peers on the photos.
    pub methods: Vec<String>,
    /// Peers on the parts images (Score-CAM and Occlusion cost minutes an image on a laptop).
    pub parts_methods: Vec<String>,
    /// Head seeds: each seed trains one InfoDisent head per leg.
    pub seeds: usize,
    /// Steps of each deletion/insertion curve.
    pub steps: usize,
    /// Images per batch, for infodisent's backbone runs and for the peers.
    pub batch: usize,
    /// Explain only the first N photos.
    pub limit: Option<usize>,
    /// Folder for caches, heads, the peers' maps and the report; every stage resumes.
    pub out: PathBuf,
    /// The photos' heads: fitted to the model's own decisions ([`recipes`]).
    pub photo_recipe: TrainConfig,
    /// The parts images' heads, trained on their classes, and the probe the peers explain.
    pub parts_recipe: TrainConfig,
}

/// The two legs' recipes from the user's overrides: the photos' heads fitted to the model's
/// own decisions (`--target original`, with its defaults), without a validation hold-out unless
/// one is asked for, since a few dozen photos of a thousand classes leave no class a second
/// image to hold out; the parts' heads as given.
pub fn recipes(overrides: &TrainOverrides) -> Result<(TrainConfig, TrainConfig)> {
    let mut photo = overrides.clone();
    photo.target = Some(Target::Original);
    photo.val_fraction = photo.val_fraction.or(Some(0.0));
    let (photo, parts) = (photo.config(None)?, overrides.config(None)?);
    photo.validate()?;
    parts.validate()?;
    Ok((photo, parts))
}

/// A mean with its 95 % interval (normal approximation, mean ± 1.96 standard errors).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Mean.
    pub mean: f64,
    /// Lower end.
    pub low: f64,
    /// Upper end.
    pub high: f64,
    /// Samples.
    pub n: usize,
}

impl Interval {
    /// The interval of `values`.
    pub fn of(values: &[f64]) -> Option<Self> {
        let n = values.len();
        if n == 0 {
            return None;
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n.max(2) - 1) as f64;
        let half = 1.96 * (var / n as f64).sqrt();
        Some(Interval {
            mean,
            low: mean - half,
            high: mean + half,
            n,
        })
    }
}

/// One method's scores on one leg.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MethodRow {
    /// Method name.
    pub method: String,
    /// Where it comes from (`infodisent`, `pytorch-grad-cam 1.5.7`, `Captum 0.9.0`, `floor`).
    pub source: String,
    /// Whether it needs a backward pass.
    pub backward: bool,
    /// Deletion AUC (lower is better), over images (and head seeds for infodisent's maps).
    pub deletion: Option<Interval>,
    /// Insertion AUC (higher is better).
    pub insertion: Option<Interval>,
    /// Share of the map's positive mass on the class's deciding parts (parts images).
    pub part_mass: Option<Interval>,
    /// Share of maps whose peak lies on a deciding part (parts images).
    pub pointing: Option<f64>,
    /// Wall-clock milliseconds per explained image, the backbone run included.
    pub ms_per_image: Option<f64>,
    /// For infodisent's maps: the lowest and highest per-seed mean of the leg's main score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed_range: Option<[f64; 2]>,
}

/// Everything the benchmark measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaithfulnessReport {
    /// The model as given.
    pub model: String,
    /// The processor.
    pub cpu: String,
    /// Threads of ONNX Runtime and of torch.
    pub threads: usize,
    /// Images per batch.
    pub batch: usize,
    /// Steps of each curve.
    pub steps: usize,
    /// Head seeds.
    pub seeds: usize,
    /// How the maps were scored.
    pub scoring: String,
    /// Largest |logit| difference between the PyTorch module and the ONNX model on the photos.
    pub torch_onnx_max_logit_diff: Option<f64>,
    /// The PyTorch module's layer the CAM methods hooked, when the peers ran.
    #[serde(default)]
    pub torch_layer: Option<String>,
    /// Photos explained.
    pub photos: usize,
    /// Share of photos where the InfoDisent heads agree with the original model's top class.
    pub head_agreement: Option<f64>,
    /// Scores on the photos.
    pub photo_rows: Vec<MethodRow>,
    /// Parts images explained.
    pub parts_images: usize,
    /// Scores on the parts images.
    pub parts_rows: Vec<MethodRow>,
}

/// The network inputs of a list of images with what the backbone says about them.
struct Inputs {
    /// `[n, 3, S, S]`.
    inputs: Vec<f32>,
    /// Blurred inputs, where insertion starts.
    blurred: Vec<f32>,
    /// Feature maps `[n, D, h, w]`.
    features: Vec<f32>,
    /// Original logits `[n, C]`, when the model has a classifier.
    logits: Option<Vec<f32>>,
    /// Milliseconds per image of the backbone run.
    backbone_ms: f64,
    /// Geometry of each image's input.
    geometry: Vec<ImageGeometry>,
}

/// Loads and preprocesses `samples`, then runs the backbone on them in batches (timed).
fn run_inputs(
    backbone: &mut Backbone,
    pre: &infodisent::preprocess::Preprocess,
    samples: &[&Sample],
    batch: usize,
) -> Result<Inputs> {
    let (mut inputs, mut blurred, mut geometry) = (Vec::new(), Vec::new(), Vec::new());
    for s in samples {
        let img = s.load()?;
        let (i, b) = input_and_blurred(&img, pre)?;
        inputs.extend(i);
        blurred.extend(b);
        geometry.push(ImageGeometry::new(pre, img.width(), img.height()));
    }
    let per = pre.input_len();
    let (mut features, mut logits) = (Vec::new(), Vec::new());
    let started = Instant::now();
    for chunk in inputs.chunks(per * batch.max(1)) {
        let out = backbone.run(chunk, chunk.len() / per)?;
        features.extend(out.features);
        logits.extend(out.logits.unwrap_or_default());
    }
    let backbone_ms = started.elapsed().as_secs_f64() * 1e3 / samples.len().max(1) as f64;
    let logits = (!logits.is_empty()).then_some(logits);
    Ok(Inputs {
        inputs,
        blurred,
        features,
        logits,
        backbone_ms,
        geometry,
    })
}

/// One method's maps for every image (and seed), with the milliseconds each took.
struct Maps {
    name: String,
    source: String,
    backward: bool,
    /// `maps[seed][image]`.
    maps: Vec<Vec<Heatmap>>,
    ms_per_image: Option<f64>,
}

/// One leg's images as every method sees them: their inputs and features, the class each map
/// explains, and the InfoDisent heads of every seed.
struct Leg {
    inputs: Inputs,
    grid: Grid,
    /// Network input side S.
    size: usize,
    classes: Vec<usize>,
    heads: Vec<HeadParams>,
    /// Where the peers' inputs and maps are kept.
    dir: PathBuf,
}

impl Leg {
    /// Maps of a grid explainer for every image, with `head`'s decisions, timed.
    fn explainer_maps(
        &self,
        explainer: &dyn Explainer,
        head: &HeadParams,
    ) -> Result<(Vec<Heatmap>, f64)> {
        let (grid, started) = (self.grid, Instant::now());
        let maps = self
            .classes
            .iter()
            .enumerate()
            .map(|(i, &class)| {
                let features = &self.inputs.features[i * grid.len()..(i + 1) * grid.len()];
                let decision = head.decide(features, grid.cells())?;
                let subject = Subject {
                    features,
                    grid,
                    decision: &decision,
                };
                explainer.heatmap(&subject, class)
            })
            .collect::<Result<Vec<_>>>()?;
        let ms = started.elapsed().as_secs_f64() * 1e3 / self.classes.len().max(1) as f64;
        Ok((maps, ms))
    }

    /// The maps of the explainer `make` builds for each head, and the mean milliseconds an
    /// image over the heads.
    fn per_head<'h, E: Explainer + 'h>(
        &'h self,
        make: impl Fn(&'h HeadParams) -> E,
    ) -> Result<(Vec<Vec<Heatmap>>, f64)> {
        let (mut maps, mut ms) = (Vec::new(), 0.0);
        for head in &self.heads {
            let (m, t) = self.explainer_maps(&make(head), head)?;
            maps.push(m);
            ms += t;
        }
        Ok((maps, ms / self.heads.len().max(1) as f64))
    }

    /// infodisent's own maps, timed with the backbone run: the positive maps (dense and
    /// sparse) of every head, and the CAM of `classifier` (the model's own, or the probe the
    /// peers explain), which is what Grad-CAM computes analytically for a pooled linear head.
    fn infodisent_maps(&self, classifier: &LinearClassifier) -> Result<Vec<Maps>> {
        let named = |name: &str, maps, ms: f64| Maps {
            name: name.to_owned(),
            source: "infodisent".into(),
            backward: false,
            maps,
            ms_per_image: Some(self.inputs.backbone_ms + ms),
        };
        let (dense, dense_ms) = self.per_head(|h| InfoDisentMap::new(h, Polarity::Positive, 1))?;
        let (sparse, sparse_ms) =
            self.per_head(|h| SparseInfoDisentMap::new(h, Polarity::Positive))?;
        let mut all = vec![
            named(infodisent::explain::dense::POSITIVE, dense, dense_ms),
            named(infodisent::explain::sparse::POSITIVE, sparse, sparse_ms),
        ];
        let (cam, ms) =
            self.explainer_maps(&infodisent::explain::Cam::new(classifier), &self.heads[0])?;
        all.push(named(infodisent::explain::cam::NAME, vec![cam], ms));
        Ok(all)
    }

    /// The random and center-prior floors.
    fn floor_maps(&self, seed: u64) -> Result<Vec<Maps>> {
        let random = RandomMap::new(seed, 1);
        let floors: [&dyn Explainer; 2] = [&random, &CenterPrior];
        floors
            .iter()
            .map(|e| {
                Ok(Maps {
                    name: e.name().to_owned(),
                    source: "floor".into(),
                    backward: false,
                    maps: vec![self.explainer_maps(*e, &self.heads[0])?.0],
                    ms_per_image: None,
                })
            })
            .collect()
    }

    /// Share of (head, image) pairs where the head's top class is the image's class.
    fn agreement(&self) -> f64 {
        let grid = self.grid;
        let agree: usize = self
            .heads
            .iter()
            .map(|h| {
                (0..self.classes.len())
                    .filter(|&i| {
                        let features = &self.inputs.features[i * grid.len()..(i + 1) * grid.len()];
                        h.decide(features, grid.cells())
                            .is_ok_and(|d| d.predicted == self.classes[i])
                    })
                    .count()
            })
            .sum();
        agree as f64 / (self.heads.len() * self.classes.len()).max(1) as f64
    }

    /// Every method's maps: infodisent's (with the CAM of `classifier`), the peers' when `req`
    /// names a Python (explaining the model with `probe` as its classifier when given), and
    /// the floors; with the PyTorch module's logits and hooked layer when the peers ran.
    fn maps(
        &self,
        req: &FaithfulnessRequest,
        backbone: &Backbone,
        classifier: &LinearClassifier,
        probe: Option<&LinearClassifier>,
        methods: &[String],
        seed: u64,
    ) -> Result<(Vec<Maps>, Option<PeerRun>)> {
        let mut maps = self.infodisent_maps(classifier)?;
        let mut peer_run = None;
        if let Some(python) = &req.python {
            let (peers, run) = peer_maps(&Peers::of(req, python, backbone)?, self, probe, methods)?;
            maps.extend(peers);
            peer_run = Some(run);
        }
        maps.extend(self.floor_maps(seed)?);
        Ok((maps, peer_run))
    }
}

/// What made a file of peer maps, and how long each method took then.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct PeerStamp {
    inputs_sha256: String,
    spec: String,
    /// The user's module file, when the peers run on one.
    #[serde(default)]
    module_sha256: Option<String>,
    methods: Vec<String>,
    threads: usize,
    batch: usize,
    seconds: BTreeMap<String, f64>,
    /// The feature layer the peers hooked.
    #[serde(default)]
    layer: String,
}

impl PeerStamp {
    /// Whether `other` describes the same run (what it measured aside).
    fn same_run(&self, other: &PeerStamp) -> bool {
        let made = |s: &PeerStamp| PeerStamp {
            seconds: BTreeMap::new(),
            layer: String::new(),
            ..s.clone()
        };
        made(self) == made(other)
    }
}

/// How the peers are run: which Python, on which PyTorch module, with how many threads.
struct Peers<'a> {
    python: &'a Path,
    /// `efficientnet-lite0:<weights>` or `module:<file>:<function>:<layer>`.
    spec: String,
    module_sha256: Option<String>,
    /// `D,h,w` of the feature map, which the module's feature layer must output.
    features: String,
    threads: usize,
    batch: usize,
}

impl<'a> Peers<'a> {
    /// The peers of `req` under `python`, on as many threads as `backbone` uses.
    fn of(req: &FaithfulnessRequest, python: &'a Path, backbone: &Backbone) -> Result<Self> {
        let (spec, module_sha256) = match &req.torch_module {
            Some(m) => (
                format!(
                    "module:{}:{}:{}",
                    m.file.display(),
                    m.function,
                    m.layer.as_deref().unwrap_or_default()
                ),
                Some(infodisent::fsutil::sha256_file(&m.file)?),
            ),
            None => (torch_spec(&req.model.model)?, None),
        };
        let [d, h, w] = backbone.model().feature_shape;
        Ok(Peers {
            python,
            spec,
            module_sha256,
            features: format!("{d},{h},{w}"),
            threads: backbone.threads(),
            batch: req.batch,
        })
    }
}

/// What the peers' run gives besides maps: the module's logits and the layer it hooked.
struct PeerRun {
    logits: Vec<f32>,
    layer: String,
}

/// Runs the peers on the leg's inputs for its classes (their inputs and maps kept in the leg's
/// folder); returns their maps and the module's logits.
fn peer_maps(
    peers: &Peers<'_>,
    leg: &Leg,
    probe: Option<&LinearClassifier>,
    methods: &[String],
) -> Result<(Vec<Maps>, PeerRun)> {
    for m in methods {
        if !PEERS.iter().any(|p| p.0 == m) {
            let known: Vec<&str> = PEERS.iter().map(|p| p.0).collect();
            return Err(Error::Config(format!(
                "no peer method `{m}` (have: {})",
                known.join(", ")
            )));
        }
    }
    let (n, size, dir) = (leg.classes.len(), leg.size, &leg.dir);
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    // Class indices travel as f32, exact far beyond any class count, so the file is plain f32.
    let targets: Vec<f32> = leg.classes.iter().map(|&c| c as f32).collect();
    let mut tensors: Vec<(&str, Vec<usize>, &[f32])> = vec![
        ("inputs", vec![n, 3, size, size], &leg.inputs.inputs),
        ("targets", vec![n], &targets),
    ];
    if let Some(p) = probe {
        tensors.push(("fc_weight", vec![p.classes, p.dim], &p.weight));
        tensors.push(("fc_bias", vec![p.classes], &p.bias));
    }
    let input_path = dir.join("peer-inputs.safetensors");
    infodisent::fsutil::write_f32_tensors(&input_path, &tensors, None)?;
    let maps_path = dir.join("peer-maps.safetensors");
    // The peers take minutes an image (Score-CAM, Occlusion): their maps are kept with a stamp
    // naming exactly what made them, and reused only when all of it is the same again.
    let stamp = PeerStamp {
        inputs_sha256: infodisent::fsutil::sha256_file(&input_path)?,
        spec: peers.spec.clone(),
        module_sha256: peers.module_sha256.clone(),
        methods: methods.to_vec(),
        threads: peers.threads,
        batch: peers.batch,
        seconds: BTreeMap::new(),
        layer: String::new(),
    };
    let stamp_path = dir.join("peer-maps.json");
    let done = infodisent::fsutil::read_json::<PeerStamp>(&stamp_path)
        .ok()
        .filter(|s| s.same_run(&stamp) && maps_path.is_file());
    let stamp = match done {
        Some(s) => s,
        None => {
            let args = [
                peers.spec.clone(),
                input_path.display().to_string(),
                maps_path.display().to_string(),
                methods.join(","),
                peers.threads.to_string(),
                peers.batch.to_string(),
                peers.features.clone(),
            ];
            let (report, _) =
                super::run_python_json(peers.python, "faithfulness_peers.py", PEERS_SCRIPT, &args)?;
            let seconds: BTreeMap<String, f64> = serde_json::from_value(report["seconds"].clone())
                .map_err(|e| Error::Config(format!("the peers reported `{report}`: {e}")))?;
            let made = PeerStamp {
                seconds,
                layer: report["layer"].as_str().unwrap_or_default().to_owned(),
                ..stamp
            };
            infodisent::fsutil::write_json_atomic(&stamp_path, &made)?;
            made
        }
    };
    let seconds = &stamp.seconds;
    let names: Vec<String> = std::iter::once("logits".to_owned())
        .chain(methods.iter().map(|m| format!("map/{m}")))
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut read = infodisent::fsutil::read_f32_tensors(&maps_path, &names)?.into_iter();
    let (_, logits) = read.next().unwrap_or_default();
    let mut out = Vec::new();
    for (m, (shape, values)) in methods.iter().zip(read) {
        if shape != [n, size, size] {
            return Err(Error::input(
                &maps_path,
                format!("map/{m} is {shape:?}, expected [{n}, {size}, {size}]"),
            ));
        }
        let maps = values
            .chunks_exact(size * size)
            .map(|v| Heatmap {
                h: size,
                w: size,
                values: v.to_vec(),
            })
            .collect();
        let (_, source, backward) = PEERS
            .iter()
            .find(|p| p.0 == m)
            .copied()
            .unwrap_or(("", "", false));
        out.push(Maps {
            name: m.clone(),
            source: source.into(),
            backward,
            maps: vec![maps],
            ms_per_image: seconds.get(m).map(|s| s * 1e3 / n.max(1) as f64),
        });
    }
    Ok((
        out,
        PeerRun {
            logits,
            layer: stamp.layer,
        },
    ))
}

/// A row with only the method's identity and time filled in.
fn row_of(m: &Maps) -> MethodRow {
    MethodRow {
        method: m.name.clone(),
        source: m.source.clone(),
        backward: m.backward,
        deletion: None,
        insertion: None,
        part_mass: None,
        pointing: None,
        ms_per_image: m.ms_per_image,
        seed_range: None,
    }
}

/// The lowest and highest per-seed mean, when there are several seeds.
fn seed_range(per_seed: &[Vec<f64>]) -> Option<[f64; 2]> {
    let means: Vec<f64> = per_seed
        .iter()
        .map(|v| v.iter().sum::<f64>() / v.len().max(1) as f64)
        .collect();
    (means.len() > 1).then(|| {
        [
            means.iter().copied().fold(f64::INFINITY, f64::min),
            means.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        ]
    })
}

/// Deletion and insertion AUC of every map on the original model, whose probability of each
/// image's class is tracked.
fn score_rows(
    all: &[Maps],
    leg: &Leg,
    steps: usize,
    backbone: &mut Backbone,
) -> Result<Vec<MethodRow>> {
    let mut model = |batch: &[f32], n: usize| -> Result<Vec<f32>> {
        backbone.run(batch, n)?.logits.ok_or_else(|| Error::Config("deletion and insertion are scored on the model's own classifier, and this model has none".into()))
    };
    let per = 3 * leg.size * leg.size;
    let total: usize = all.iter().map(|m| m.maps.len() * leg.classes.len()).sum();
    let bar = infodisent::progress::bar(total as u64, "deletion/insertion", "map");
    let mut rows = Vec::with_capacity(all.len());
    for m in all {
        let (mut del, mut ins) = (Vec::new(), Vec::new());
        for maps in &m.maps {
            let (mut d, mut s) = (Vec::new(), Vec::new());
            for (i, map) in maps.iter().enumerate() {
                let range = i * per..(i + 1) * per;
                let (a, b) = score_map(
                    &leg.inputs.inputs[range.clone()],
                    &leg.inputs.blurred[range],
                    leg.classes[i],
                    map,
                    leg.size,
                    steps,
                    &mut model,
                )?;
                d.push(a);
                s.push(b);
                bar.inc(1);
                bar.check()?;
            }
            del.push(d);
            ins.push(s);
        }
        rows.push(MethodRow {
            deletion: Interval::of(&del.concat()),
            insertion: Interval::of(&ins.concat()),
            seed_range: seed_range(&ins),
            ..row_of(m)
        });
    }
    bar.finish_and_clear();
    Ok(rows)
}

/// Share of a map's positive mass inside `boxes` (image pixels), and whether its peak is there.
pub fn mass_on_boxes(
    map: &Heatmap,
    geometry: &ImageGeometry,
    size: usize,
    boxes: &[infodisent::explain::PixelBox],
) -> (f64, bool) {
    let (width, _) = geometry.image_size();
    let values = map.on_image(geometry, size);
    let inside = |i: usize| {
        let (x, y) = ((i % width as usize) as u32, (i / width as usize) as u32);
        boxes
            .iter()
            .any(|b| x >= b[0] && x < b[2] && y >= b[1] && y < b[3])
    };
    let (mut on, mut all) = (0.0f64, 0.0f64);
    for (i, &v) in values.iter().enumerate() {
        let v = f64::from(v.max(0.0));
        all += v;
        if inside(i) {
            on += v;
        }
    }
    let peak = argmax(&values);
    (if all > 0.0 { on / all } else { 0.0 }, inside(peak))
}

/// Part mass and pointing of every map on the parts images.
fn part_rows(
    all: &[Maps],
    leg: &Leg,
    boxes: &[Vec<infodisent::explain::PixelBox>],
) -> Vec<MethodRow> {
    all.iter()
        .map(|m| {
            let mut per_seed = Vec::new();
            let mut hits = 0usize;
            for maps in &m.maps {
                let mut masses = Vec::new();
                for (i, map) in maps.iter().enumerate() {
                    let (mass, hit) =
                        mass_on_boxes(map, &leg.inputs.geometry[i], leg.size, &boxes[i]);
                    masses.push(mass);
                    hits += usize::from(hit);
                }
                per_seed.push(masses);
            }
            let all = per_seed.concat();
            MethodRow {
                part_mass: Interval::of(&all),
                pointing: (!all.is_empty()).then(|| hits as f64 / all.len() as f64),
                seed_range: seed_range(&per_seed),
                ..row_of(m)
            }
        })
        .collect()
}

/// Trains (or reuses) one head per seed into `dir/seed-<k>`.
fn heads(
    cache: &FeatureCache,
    base: &TrainConfig,
    seeds: usize,
    dir: &Path,
) -> Result<Vec<HeadParams>> {
    (0..seeds.max(1) as u64)
        .map(|seed| {
            let folder = dir.join(format!("seed-{seed}"));
            let config = TrainConfig {
                seed,
                ..base.clone()
            };
            train_or_reuse(cache, &config, &folder)?;
            infodisent::runs::load_head(&folder)
        })
        .collect()
}

/// The PyTorch module's name and weights for the peers: the built-in EfficientNet-Lite models.
fn torch_spec(model: &str) -> Result<String> {
    if !matches!(
        model,
        "efficientnet-lite0" | "efficientnet-lite1" | "efficientnet-lite2"
    ) {
        return Err(Error::Config(format!(
            "the peers run on the model's PyTorch module: infodisent builds it for the built-in efficientnet-lite0/1/2; for `{model}` name yours with --torch-module FILE.py:FUNCTION (or run without --python for infodisent's maps and the floors)"
        )));
    }
    let weights = infodisent::assets::asset(format!("weights/{model}.pth"))?;
    Ok(format!("{model}:{}", weights.display()))
}

/// Extracts `data` into `dir/cache` (resumable) and opens the cache.
fn cached(backbone: &mut Backbone, dataset: &Dataset, dir: &Path) -> Result<FeatureCache> {
    let cache_dir = dir.join("cache");
    extract(backbone, dataset, &ExtractOptions::default(), &cache_dir)?;
    FeatureCache::open(&cache_dir)
}

fn utf8(path: &Path) -> Result<&str> {
    path.to_str()
        .ok_or_else(|| Error::input(path, "the folder's name must be valid UTF-8"))
}

/// The photos leg: heads fitted to the model's own decisions, every map scored by deletion
/// and insertion on the original model, into `report`'s rows, photo count, the heads'
/// agreement with the model and the PyTorch/ONNX logit difference.
fn photo_leg(
    req: &FaithfulnessRequest,
    photos: &Path,
    backbone: &mut Backbone,
    report: &mut FaithfulnessReport,
) -> Result<()> {
    let dir = req.out.join("photos");
    let dataset = Dataset::open_with(utf8(photos)?, &OpenOptions::default())?;
    let cache = cached(backbone, &dataset, &dir)?;
    let mut recipe = req.photo_recipe.clone();
    // A folder of a few photos is too small to hold any out: its one split is the training set.
    if let [only] = &cache.manifest().splits.keys().collect::<Vec<_>>()[..] {
        recipe.split = only.to_string();
    }
    let heads = heads(&cache, &recipe, req.seeds, &dir.join("heads"))?;
    let original = cache.classifier()?.ok_or_else(|| {
        Error::Config(format!(
            "{} has no classifier of its own to explain",
            req.model.model
        ))
    })?;
    let mut samples: Vec<&Sample> = dataset.splits.iter().flat_map(|s| &s.samples).collect();
    samples.sort_by(|a, b| a.path.cmp(&b.path));
    samples.truncate(req.limit.unwrap_or(usize::MAX));
    let pre = &cache.manifest().preprocess;
    let inputs = run_inputs(backbone, pre, &samples, req.batch)?;
    let classes = inputs
        .logits
        .as_deref()
        .unwrap_or_default()
        .chunks_exact(original.classes)
        .map(argmax)
        .collect();
    let leg = Leg {
        classes,
        inputs,
        grid: Grid::from_shape(cache.feature_shape()),
        size: pre.crop,
        heads,
        dir,
    };
    let agreement = leg.agreement();
    let (maps, peer_run) = leg.maps(
        req,
        backbone,
        &original,
        None,
        &req.methods,
        req.photo_recipe.seed,
    )?;
    if let Some(run) = peer_run {
        let diff = run
            .logits
            .iter()
            .zip(leg.inputs.logits.as_deref().unwrap_or_default())
            .map(|(a, b)| f64::from((a - b).abs()))
            .fold(0.0, f64::max);
        report.torch_onnx_max_logit_diff = Some(diff);
        report.torch_layer = Some(run.layer);
    }
    report.photo_rows = score_rows(&maps, &leg, req.steps, backbone)?;
    report.photos = samples.len();
    report.head_agreement = Some(agreement);
    Ok(())
}

/// The parts leg: heads trained on the generated classes, the peers explaining the model with
/// a linear probe on the same features as its classifier; maps judged by their mass on the
/// class's deciding parts, into `report`'s parts rows.
fn parts_leg(
    req: &FaithfulnessRequest,
    backbone: &mut Backbone,
    report: &mut FaithfulnessReport,
) -> Result<()> {
    let dir = req.out.join("parts");
    let cfg = PartsConfig {
        test_per_class: req.parts_per_class,
        ..PartsConfig::default()
    };
    let root = dir.join("data");
    let truth: PartsTruth = generate(&root, &cfg, &asset_backgrounds()?)?;
    let dataset = Dataset::open(utf8(&root)?)?;
    let cache = cached(backbone, &dataset, &dir)?;
    let heads = heads(&cache, &req.parts_recipe, req.seeds, &dir.join("heads"))?;
    let probe_dir = dir.join("probe");
    train_or_reuse(
        &cache,
        &req.parts_recipe.clone().with_kind(HeadKind::LinearProbe),
        &probe_dir,
    )?;
    let probe = infodisent::runs::load_probe(&probe_dir)?;
    if probe.pooling != Pooling::Average {
        return Err(Error::Config(
            "the peers explain a probe on average-pooled features; train it with --pooling average"
                .into(),
        ));
    }
    let samples: Vec<&Sample> = dataset.split("test")?.samples.iter().collect();
    let boxes = samples
        .iter()
        .map(|s| {
            let image = truth.images.get(&dataset.key(s)).ok_or_else(|| {
                Error::input(
                    &root,
                    format!("{} is not in the parts ground truth", s.path),
                )
            })?;
            Ok(image
                .parts
                .iter()
                .filter(|p| truth.defines(&image.class, &p.part))
                .map(|p| p.bbox)
                .collect())
        })
        .collect::<Result<Vec<Vec<_>>>>()?;
    let pre = &cache.manifest().preprocess;
    let leg = Leg {
        inputs: run_inputs(backbone, pre, &samples, req.batch)?,
        grid: Grid::from_shape(cache.feature_shape()),
        size: pre.crop,
        classes: samples.iter().map(|s| s.label).collect(),
        heads,
        dir,
    };
    let (maps, peer_run) = leg.maps(
        req,
        backbone,
        &probe,
        Some(&probe),
        &req.parts_methods,
        req.parts_recipe.seed,
    )?;
    if let Some(run) = peer_run {
        report.torch_layer = Some(run.layer);
    }
    report.parts_rows = part_rows(&maps, &leg, &boxes);
    report.parts_images = samples.len();
    Ok(())
}

/// Runs both legs of `req`; every stage resumes.
pub fn run(req: &FaithfulnessRequest) -> Result<FaithfulnessReport> {
    if req.photos.is_none() && req.parts_per_class == 0 {
        return Err(Error::Config(
            "nothing to compare: give --photos DIR, --parts-per-class N or both".into(),
        ));
    }
    let mut backbone = req.model.load()?;
    let mut report = FaithfulnessReport {
        model: req.model.model.clone(),
        cpu: infodisent::cpu::Cpu::get().describe(),
        threads: backbone.threads(),
        batch: req.batch,
        steps: req.steps,
        seeds: req.seeds,
        scoring: format!(
            "the original model through ONNX Runtime (f32): deletion sets pixels to 0 after normalisation, insertion reveals them into a blur of σ = input/20, {} steps",
            req.steps
        ),
        torch_onnx_max_logit_diff: None,
        torch_layer: None,
        photos: 0,
        head_agreement: None,
        photo_rows: Vec::new(),
        parts_images: 0,
        parts_rows: Vec::new(),
    };
    if let Some(photos) = &req.photos {
        infodisent::progress::stage("photos: extract, fit heads to the model, explain, score");
        photo_leg(req, photos, &mut backbone, &mut report)?;
    }
    if req.parts_per_class > 0 {
        infodisent::progress::stage("parts: generate, extract, train, explain");
        parts_leg(req, &mut backbone, &mut report)?;
    }
    Ok(report)
}

/// The report as markdown tables: one row per method, the photos' then the parts'.
pub fn format_markdown(r: &FaithfulnessReport) -> String {
    let iv = |x: &Option<Interval>| {
        x.map_or("–".to_owned(), |i| {
            format!("{:.3} [{:.3}, {:.3}]", i.mean, i.low, i.high)
        })
    };
    let ms = |x: Option<f64>| x.map_or("–".to_owned(), |v| format!("{v:.1}"));
    let mut out = String::new();
    if !r.photo_rows.is_empty() {
        out.push_str(&format!(
            "{} photos, {}; {} head seeds\n\n| method | from | backward | deletion AUC ↓ | insertion AUC ↑ | ms / image |\n|---|---|---|---|---|---|\n",
            r.photos, r.model, r.seeds
        ));
        for row in &r.photo_rows {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                row.method,
                row.source,
                if row.backward { "yes" } else { "no" },
                iv(&row.deletion),
                iv(&row.insertion),
                ms(row.ms_per_image)
            ));
        }
    }
    if !r.parts_rows.is_empty() {
        out.push_str(&format!(
            "\n{} parts images; {} head seeds\n\n| method | from | mass on the deciding parts ↑ | pointing ↑ | ms / image |\n|---|---|---|---|---|\n",
            r.parts_images, r.seeds
        ));
        for row in &r.parts_rows {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                row.method,
                row.source,
                iv(&row.part_mass),
                row.pointing
                    .map_or("–".to_owned(), |p| format!("{:.1} %", 100.0 * p)),
                ms(row.ms_per_image)
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mass_counts_the_positive_part_inside_the_boxes() {
        let map = Heatmap {
            h: 2,
            w: 2,
            values: vec![3.0, 1.0, -5.0, 0.0],
        };
        let geometry = ImageGeometry::identity(4);
        let (mass, hit) = mass_on_boxes(&map, &geometry, 4, &[[0, 0, 2, 2]]);
        assert!(hit);
        assert!(mass > 0.5 && mass < 1.0, "{mass}");
        let (none, miss) = mass_on_boxes(&map, &geometry, 4, &[[2, 2, 4, 4]]);
        assert!(!miss && none < mass);
        let i = Interval::of(&[1.0, 2.0, 3.0]).unwrap();
        assert_eq!(i.mean, 2.0);
        assert!(i.low < 2.0 && i.high > 2.0);
    }
}
