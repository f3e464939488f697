//! Per-channel standardisation of what the mask and the critic read.
//!
//! Backbone channels differ in scale by orders of magnitude, and the pooled vector Z varies far
//! less than a local feature. Adam moves every weight by about the learning rate per step
//! whatever its input's scale, so without standardisation the small-variance channels (where the
//! ring's colour hides in Z) take hundreds of steps to matter. The statistics are fixed before
//! training and saved with the run; the classifier path still sees the raw features.

use candle_core::{Result, Tensor};

/// `(v − shift) · scale` per channel, broadcast over the last axis of `[M, D]` or the channel
/// axis of `[B, D, h, w]`.
#[derive(Debug, Clone)]
pub struct ChannelNorm {
    /// Per-channel mean, `[D]`.
    pub shift: Tensor,
    /// Per-channel inverse standard deviation, `[D]`.
    pub scale: Tensor,
}

/// No channel's spread counts as less than this fraction of the mean spread. A channel that is
/// nearly constant in the sample (dead, or active only for classes the sample lacks) would
/// otherwise be scaled up so far that one unusual image gives the critic scores in the
/// hundreds.
const MIN_STD_FRACTION: f64 = 0.01;

impl ChannelNorm {
    /// The identity on `dim` channels.
    pub fn identity(dim: usize, device: &candle_core::Device) -> Result<Self> {
        Ok(ChannelNorm {
            shift: Tensor::zeros(dim, candle_core::DType::F32, device)?,
            scale: Tensor::ones(dim, candle_core::DType::F32, device)?,
        })
    }

    /// Mean and spread of the rows of `samples` `[M, D]`.
    pub fn fit(samples: &Tensor) -> Result<Self> {
        let shift = samples.mean(0)?;
        let var = samples.broadcast_sub(&shift)?.sqr()?.mean(0)?;
        let std = var.sqrt()?;
        let floor = (std.mean_all()?.to_scalar::<f32>()? as f64 * MIN_STD_FRACTION).max(1e-6);
        let scale = std.maximum(floor)?.recip()?;
        Ok(ChannelNorm { shift, scale })
    }

    /// Standardised rows `[M, D]`.
    pub fn rows(&self, v: &Tensor) -> Result<Tensor> {
        v.broadcast_sub(&self.shift)?.broadcast_mul(&self.scale)
    }

    /// Standardised feature maps `[B, D, h, w]`.
    pub fn maps(&self, f: &Tensor) -> Result<Tensor> {
        let d = self.shift.dim(0)?;
        f.broadcast_sub(&self.shift.reshape((1, d, 1, 1))?)?
            .broadcast_mul(&self.scale.reshape((1, d, 1, 1))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn fitted_rows_have_zero_mean_and_unit_spread_and_constants_stay_finite() {
        let v: Vec<f32> = (0..40)
            .flat_map(|i| [i as f32 * 0.01, 100.0 + (i % 2) as f32 * 10.0, 3.0])
            .collect();
        let x = Tensor::from_vec(v, (40, 3), &Device::Cpu).unwrap();
        let norm = ChannelNorm::fit(&x).unwrap();
        let y = norm.rows(&x).unwrap();
        let mean: Vec<f32> = y.mean(0).unwrap().to_vec1().unwrap();
        let std: Vec<f32> = y
            .sqr()
            .unwrap()
            .mean(0)
            .unwrap()
            .sqrt()
            .unwrap()
            .to_vec1()
            .unwrap();
        for k in 0..2 {
            assert!(
                mean[k].abs() < 1e-4 && (std[k] - 1.0).abs() < 1e-3,
                "{mean:?} {std:?}"
            );
        }
        assert_eq!((mean[2], std[2]), (0.0, 0.0));
        let maps = x.t().unwrap().reshape((1, 3, 5, 8)).unwrap();
        let m = norm
            .maps(&maps)
            .unwrap()
            .reshape((3, 40))
            .unwrap()
            .t()
            .unwrap();
        let diff = (m - y).unwrap().abs().unwrap().max_all().unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-5);
    }
}
