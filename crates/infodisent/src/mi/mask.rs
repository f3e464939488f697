//! The mask module: which feature-map positions the decision needs.
//!
//! Two 3×3 convolutions with a ReLU between, then a sigmoid: `λ ∈ [0, 1]^{h×w}`, one value per
//! position, broadcast over channels. The public implementation uses a full C→C first
//! convolution; at C = 1280 that is 15 M weights, so the hidden width is configurable.

use candle_core::{Result, Tensor};
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
        let hidden = conv3x3(features, &self.conv1)?.relu()?;
        candle_nn::ops::sigmoid(&conv3x3(&hidden, &self.conv2)?)
    }
}

/// A 3×3 "same" convolution as one matrix product: every tap's weights applied to every
/// position at once (`[9·out, C] × [C, B·h·w]`), then the nine small tap outputs shifted into
/// place and summed. On a 7×7 map with 1280 channels candle's direct kernel, and above all its
/// transposed-convolution backward, took seconds per step; an im2col copy of the input nine
/// times over cost more in memory traffic than the product itself. The shifts here touch only
/// `out`-channel tensors.
fn conv3x3(x: &Tensor, conv: &Conv2d) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let weight = conv.weight();
    let out = weight.dim(0)?;
    let rows = x
        .permute((1, 0, 2, 3))?
        .contiguous()?
        .reshape((c, b * h * w))?;
    // Taps in row-major (dy, dx) order, each an [out, C] block.
    let taps = weight
        .permute((2, 3, 0, 1))?
        .contiguous()?
        .reshape((9 * out, c))?
        .matmul(&rows)?
        .reshape((9, out, b, h, w))?
        .pad_with_zeros(3, 1, 1)?
        .pad_with_zeros(4, 1, 1)?;
    let mut y: Option<Tensor> = None;
    for dy in 0..3 {
        for dx in 0..3 {
            let t = taps.get(dy * 3 + dx)?.narrow(2, dy, h)?.narrow(3, dx, w)?;
            y = Some(match y {
                Some(acc) => (acc + t)?,
                None => t,
            });
        }
    }
    let y = y.expect("nine taps").permute((1, 0, 2, 3))?;
    match conv.bias() {
        Some(bias) => y.broadcast_add(&bias.reshape((1, out, 1, 1))?),
        None => y.contiguous(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Module};
    use candle_nn::VarMap;

    #[test]
    fn tap_convolution_matches_candles_kernel() {
        let map = VarMap::new();
        let vb = VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
        let mask = MaskModule::new(5, 4, vb).unwrap();
        let x = Tensor::randn(0f32, 1.0, (2, 5, 4, 3), &Device::Cpu).unwrap();
        let hidden = Tensor::randn(0f32, 1.0, (2, 4, 4, 3), &Device::Cpu).unwrap();
        for (conv, input) in [(&mask.conv1, &x), (&mask.conv2, &hidden)] {
            let direct = conv.forward(input).unwrap();
            let ours = conv3x3(input, conv).unwrap();
            assert_eq!(ours.dims(), direct.dims());
            let diff = (direct - ours)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(diff < 1e-5, "tap convolution differs by {diff}");
        }
    }
}
