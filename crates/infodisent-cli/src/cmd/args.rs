//! Flag groups that several commands share, each defined once.

use super::{cache_of, Global};
use infodisent::backbone::BackboneSpec;
use infodisent::cache::FeatureCache;
use infodisent::engine::{Engine, Precision};
use infodisent::preprocess::{Interpolation, Normalize, PreprocessChoice, Preset};
use std::path::PathBuf;

/// A preprocessing preset, or overrides of the model's default.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct PreprocessArgs {
    /// Preprocessing convention of where the model came from: torchvision (resize 256, crop
    /// 224, ImageNet mean/std, bilinear), timm (resize size/crop_pct, bicubic) or tflite
    /// (squash, (x-127)/128). Default: the model's own (tflite for the built-ins, torchvision
    /// for .onnx files).
    #[arg(long, value_enum)]
    pub preset: Option<Preset>,
    /// timm's crop_pct from the model's pretrained config (e.g. 0.9 for ViT/DeiT/Swin, 0.95 for
    /// ConvNeXt): resize = crop / crop_pct.
    #[arg(long)]
    pub crop_pct: Option<f64>,
    /// Resampling filter (timm's pretrained config says which).
    #[arg(long, value_enum)]
    pub interpolation: Option<Interpolation>,
    /// Resize the shorter side to this many pixels (default: the model's preset; equal to
    /// --crop squashes the whole image to a square).
    #[arg(long)]
    pub resize: Option<usize>,
    /// Side of the center crop fed to the network (default: the model's preset).
    #[arg(long)]
    pub crop: Option<usize>,
    /// Pixel normalisation (default: the model's preset).
    #[arg(long, value_enum)]
    pub normalize: Option<Normalize>,
    /// Per-channel mean of x/255 to normalise with, as timm's pretrained config gives it
    /// (e.g. 0.5,0.5,0.5 for many ViTs); needs --std.
    #[arg(long, value_name = "R,G,B", value_parser = rgb, requires = "std", conflicts_with = "normalize")]
    pub mean: Option<[f32; 3]>,
    /// Per-channel standard deviation of x/255 to normalise with; needs --mean.
    #[arg(long, value_name = "R,G,B", value_parser = rgb, requires = "mean")]
    pub std: Option<[f32; 3]>,
}

/// Three comma-separated numbers, one per colour channel.
fn rgb(s: &str) -> Result<[f32; 3], String> {
    let values = s
        .split(',')
        .map(|v| v.trim().parse::<f32>().map_err(|e| format!("`{v}`: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    <[f32; 3]>::try_from(values).map_err(|v| format!("{} values; give three: R,G,B", v.len()))
}

impl PreprocessArgs {
    /// The backbone `model` (features at `feature_node`, default detected) with this
    /// preprocessing, on ONNX Runtime in f32 until [`EngineArgs::apply`] says otherwise.
    pub fn spec(&self, model: &str, feature_node: Option<&str>, global: &Global) -> BackboneSpec {
        let normalize = match (self.mean, self.std) {
            (Some(mean), Some(std)) => Some(Normalize::MeanStd { mean, std }),
            _ => self.normalize,
        };
        BackboneSpec {
            feature_node: feature_node.map(str::to_owned),
            preprocess: PreprocessChoice {
                preset: self.preset,
                crop_pct: self.crop_pct,
                interpolation: self.interpolation,
                resize: self.resize,
                crop: self.crop,
                normalize,
            },
            ..BackboneSpec::new(model, global.threads())
        }
    }
}

/// The inference engine and its arithmetic.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct EngineArgs {
    /// Inference engine: `ort` (ONNX Runtime), `openvino` (its CPU plugin, from
    /// scripts/fetch-assets.sh or $OPENVINO_LIB_PATH), or `auto`: OpenVINO for bf16, ONNX
    /// Runtime for f32 and int8. f32 features agree across engines to about 1e-6.
    #[arg(long, value_enum, default_value_t = Engine::Auto)]
    pub engine: Engine,
    /// Arithmetic of the backbone: f32 (exact), bf16 (OpenVINO on CPUs with AMX or
    /// AVX512-BF16: about 5× f32 for ResNet-50, at about 1e-2 relative error) or int8 (the
    /// same as --int8). Recorded in the cache and its fingerprint.
    #[arg(long, value_enum, default_value_t = Precision::F32)]
    pub precision: Precision,
    /// Run the backbone in int8 (CNNs only): its layers before the feature map are quantized,
    /// activation ranges calibrated on N images (default 64; `extract` spreads them over the
    /// training split, `bench extract` takes its first N and compares the rest with f32).
    /// Faster on CPUs, at a cost in feature accuracy that `bench extract --int8` measures.
    #[arg(long, value_name = "N", num_args = 0..=1, default_missing_value = "64")]
    pub int8: Option<usize>,
}

impl EngineArgs {
    /// `spec` on this engine, arithmetic and int8 calibration.
    pub fn apply(&self, spec: BackboneSpec) -> BackboneSpec {
        BackboneSpec {
            engine: self.engine,
            precision: self.precision,
            int8: self.int8,
            ..spec
        }
    }
}

/// `--probe`: the baseline a head is compared with.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ProbeArg {
    /// Linear-probe folder (output of `infodisent train --kind linear-probe`) or its file: the
    /// baseline for CAM and the channel counts (default: the original classifier when it has
    /// the dataset's classes).
    #[arg(long)]
    pub probe: Option<PathBuf>,
}

/// `--model`: where the model that made a cache is now, for commands that run it again.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ModelArg {
    /// The model that made the cache, when its file moved since `extract` (default: where the
    /// cache records it). Checked to be the same model; another one is refused.
    #[arg(long)]
    pub model: Option<String>,
}

impl ModelArg {
    /// The backbone that made `cache`, rebuilt as `extract` built it.
    pub fn backbone(
        &self,
        cache: &FeatureCache,
        global: &Global,
    ) -> infodisent::Result<infodisent::engine::Backbone> {
        infodisent::backbone::from_cache(cache, self.model.as_deref(), global.threads())
    }
}

/// `--data-root`: where the dataset a cache was extracted from lives now.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct DataRoot {
    /// The dataset's folder, when it moved since `extract` (the cache records image paths
    /// relative to the folder it was extracted from).
    #[arg(long)]
    pub data_root: Option<PathBuf>,
}

impl DataRoot {
    /// `cache`, reading its images from the given folder when one was given.
    pub fn apply(&self, cache: FeatureCache) -> infodisent::Result<FeatureCache> {
        match &self.data_root {
            Some(root) => cache.with_data_root(root),
            None => Ok(cache),
        }
    }
}

/// `--cache`, `--head` and `--data-root`: a trained InfoDisent head and the feature cache it
/// reads, shared by `explain`, `metrics`, `report` and `prototypes`.
#[derive(clap::Args, Debug, Clone)]
pub struct HeadArgs {
    /// Feature cache the head was trained on (made by `infodisent extract`; default: the one
    /// the head's training folder records).
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// InfoDisent training folder holding `head.safetensors` (output of `infodisent train`),
    /// or the file itself.
    #[arg(long)]
    pub head: PathBuf,
    #[command(flatten)]
    pub data_root: DataRoot,
}

impl HeadArgs {
    /// The cache, reading its images from `--data-root` when given, labelled as the head was
    /// trained (by the original classifier for a `--target original` head).
    pub fn open_cache(&self) -> infodisent::Result<FeatureCache> {
        let cache = self
            .data_root
            .apply(FeatureCache::open(self.cache_dir()?)?)?;
        infodisent::train::cache_for_head(cache, &self.head)
    }

    /// `--cache`, else the cache the head's training folder records.
    pub fn cache_dir(&self) -> infodisent::Result<PathBuf> {
        cache_of(self.cache.as_deref(), &self.head)
    }

    /// The trained head.
    pub fn load_head(&self) -> infodisent::Result<infodisent::head::params::HeadParams> {
        infodisent::runs::load_head(&self.head)
    }
}
