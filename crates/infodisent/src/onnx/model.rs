//! A backbone ready to run: an ONNX graph that outputs both its last spatial feature map and its
//! original logits, with what is known about its input and its classifier.

use crate::classifier::LinearClassifier;
use crate::preprocess::Preprocess;
use serde::{Deserialize, Serialize};

/// How the feature output is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureLayout {
    /// [N, D, h, w] (CNNs).
    Nchw,
    /// [N, h, w, D] (timm's Swin, or a map normalised per pixel for a head's LayerNorm).
    Nhwc,
    /// [N, T, D] tokens of a ViT: the first `skip` (class/register) tokens are dropped and the
    /// rest reshaped to an `h × w` grid.
    Tokens {
        /// Leading tokens that are not image patches.
        skip: usize,
    },
}

/// What the model does with its pooled feature vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OriginalHeadKind {
    /// One linear layer: logits = W · avgpool(F) + b, so CAM is exact.
    Linear,
    /// One linear layer on the class token (ViTs): CAM over the patch tokens is the usual ViT
    /// approximation.
    ClassToken,
    /// A LayerNorm, then one linear layer (ConvNeXt, Swin, mean-pooled ViTs): the exposed map has
    /// the norm applied per pixel, so the linear layer reads it as the method defines it.
    NormLinear,
    /// Anything else (an MLP, two averaged heads): only the graph's own logits are available.
    Other,
    /// The graph has no pooled classifier.
    Missing,
}

/// The model's head as detected, with a sentence saying what was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OriginalHead {
    /// Its kind.
    pub kind: OriginalHeadKind,
    /// What was found, or why no linear classifier is available.
    pub detail: String,
}

/// A backbone prepared for feature extraction.
#[derive(Debug, Clone)]
pub struct PreparedModel {
    /// Display name (`efficientnet-lite0`, or the file name).
    pub name: String,
    /// Serialized ONNX model with the feature map exposed as an extra graph output.
    pub onnx: Vec<u8>,
    /// Name of the image input.
    pub input_name: String,
    /// Name of the graph output holding the feature map.
    pub feature_output: String,
    /// The node or value name the features were taken from (for `--feature-node`).
    pub feature_node: String,
    /// Layout of the feature output.
    pub layout: FeatureLayout,
    /// Why this feature map was chosen.
    pub reason: String,
    /// What follows the pool in the original model.
    pub head: OriginalHead,
    /// Per-image feature map shape [D, h, w] at `preprocess.crop`.
    pub feature_shape: [usize; 3],
    /// Name of the output holding the model's own logits `[N, C]`, if it has one.
    pub logits_output: Option<String>,
    /// Number of classes the model's logits cover (known after the first run).
    pub original_classes: Option<usize>,
    /// The original classifier (global pool + linear) read from the graph, if found.
    pub classifier: Option<LinearClassifier>,
    /// Class names of the original classifier, when known (ImageNet for the built-ins).
    pub class_names: Option<Vec<String>>,
    /// Default preprocessing for this model.
    pub preprocess: Preprocess,
    /// Where tensors stored beside the model file are read from, if the model has any.
    pub external: Option<super::external::ExternalData>,
    /// SHA-256 of the serialized model, its external data and the feature node: part of every
    /// cache fingerprint.
    pub fingerprint: String,
}
