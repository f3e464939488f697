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

/// Running per-channel sums, so the statistics of many feature maps never need them in memory
/// at once (1024 maps of 1280×7×7 are 256 MB, and a tensor fit copies them three times more).
#[derive(Debug, Clone)]
pub struct Moments {
    count: Vec<f64>,
    sum: Vec<f64>,
    sum_sq: Vec<f64>,
}

impl Moments {
    /// Empty sums over `dim` channels.
    pub fn new(dim: usize) -> Self {
        Moments {
            count: vec![0.0; dim],
            sum: vec![0.0; dim],
            sum_sq: vec![0.0; dim],
        }
    }

    /// Adds observations of channel `k`.
    pub fn add(&mut self, k: usize, values: &[f32]) {
        self.count[k] += values.len() as f64;
        for &v in values {
            self.sum[k] += f64::from(v);
            self.sum_sq[k] += f64::from(v) * f64::from(v);
        }
    }
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

    /// Mean and spread per channel of what `moments` accumulated.
    pub fn fit(moments: &Moments) -> Result<Self> {
        let (mean, std): (Vec<f32>, Vec<f64>) = (0..moments.count.len())
            .map(|k| {
                let n = moments.count[k].max(1.0);
                let mean = moments.sum[k] / n;
                let var = (moments.sum_sq[k] / n - mean * mean).max(0.0);
                (mean as f32, var.sqrt())
            })
            .unzip();
        let mean_std = std.iter().sum::<f64>() / std.len().max(1) as f64;
        let floor = (mean_std * MIN_STD_FRACTION).max(1e-6);
        let scale: Vec<f32> = std.iter().map(|s| (1.0 / s.max(floor)) as f32).collect();
        let device = candle_core::Device::Cpu;
        Ok(ChannelNorm {
            shift: Tensor::new(mean, &device)?,
            scale: Tensor::new(scale, &device)?,
        })
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
        let mut moments = Moments::new(3);
        for row in v.chunks_exact(3) {
            for (k, value) in row.iter().enumerate() {
                moments.add(k, std::slice::from_ref(value));
            }
        }
        let norm = ChannelNorm::fit(&moments).unwrap();
        let x = Tensor::from_vec(v, (40, 3), &Device::Cpu).unwrap();
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
