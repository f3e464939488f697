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
    /// [N, T, D] tokens of a ViT: the first `skip` (class/register) tokens are dropped and the
    /// rest reshaped to an `h × w` grid.
    Tokens { skip: usize },
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
    /// Per-image feature map shape [D, h, w] at `preprocess.crop`.
    pub feature_shape: [usize; 3],
    /// Name of the logits output, if the graph ends in a classifier.
    pub logits_output: Option<String>,
    /// The original classifier (global pool + linear) read from the graph, if found.
    pub classifier: Option<LinearClassifier>,
    /// Class names of the original classifier, when known (ImageNet for the built-ins).
    pub class_names: Option<Vec<String>>,
    /// Default preprocessing for this model.
    pub preprocess: Preprocess,
    /// SHA-256 of the serialized model and the feature node: part of every cache fingerprint.
    pub fingerprint: String,
}
