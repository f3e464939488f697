//! The mask module: which feature-map positions the decision needs.
//!
//! Two 3×3 convolutions with a ReLU between, then a sigmoid: `λ ∈ [0, 1]^{h×w}`, one value per
//! position, broadcast over channels. The public implementation uses a full C→C first
//! convolution; at C = 1280 that is 15 M weights, so the hidden width is configurable.

use candle_core::{Module, Result, Tensor};
use candle_nn::{conv2d, Conv2d, Conv2dConfig, VarBuilder};

/// Conv3×3(D→hidden) → ReLU → Conv3×3(hidden→1) → sigmoid.
#[derive(Debug, Clone)]
pub struct MaskModule {
    conv1: Conv2d,
    conv2: Conv2d,
}

impl MaskModule {
    /// Creates (or fetches from `vb`) the two convolutions for `dim` input channels.
    pub fn new(dim: usize, hidden: usize, vb: VarBuilder) -> Result<Self> {
        let same = Conv2dConfig {
            padding: 1,
            ..Default::default()
        };
        Ok(MaskModule {
            conv1: conv2d(dim, hidden, 3, same, vb.pp("conv1"))?,
            conv2: conv2d(hidden, 1, 3, same, vb.pp("conv2"))?,
        })
    }

    /// The mask `[B, 1, h, w]` for feature maps `[B, D, h, w]`.
    pub fn forward(&self, features: &Tensor) -> Result<Tensor> {
        let hidden = self.conv1.forward(features)?.relu()?;
        candle_nn::ops::sigmoid(&self.conv2.forward(&hidden)?)
    }
}
