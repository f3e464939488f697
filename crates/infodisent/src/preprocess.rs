//! Image preprocessing presets: resize, center crop, normalisation, grey to RGB.

use serde::{Deserialize, Serialize};

/// How pixel values in [0, 255] are mapped to network inputs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Normalize {
    /// `(x/255 − mean) / std` with the ImageNet statistics (torchvision models).
    Imagenet,
    /// `(x − 127) / 128` (TensorFlow-trained EfficientNet-Lite).
    Centered127,
    /// `x / 255`.
    Unit,
    /// `(x/255 − mean) / std` with explicit statistics.
    MeanStd { mean: [f32; 3], std: [f32; 3] },
}

/// Everything that turns a decoded image into the network's input tensor; part of the cache
/// fingerprint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preprocess {
    /// Shorter side is resized to this many pixels (aspect kept), or the image to a square when
    /// `resize == crop`.
    pub resize: usize,
    /// Side of the square center crop fed to the network.
    pub crop: usize,
    /// Value mapping.
    pub normalize: Normalize,
}
