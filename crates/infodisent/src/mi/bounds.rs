//! Lower bounds on mutual information computed from critic scores, one value per position.
//!
//! Every bound sees, for anchor representation `z_b`, the scores of its own local features
//! (`positives`, one per position) and the scores of local features from other images
//! (`negatives`, samples of the product of marginals). Averaging a bound's per-position values
//! over positions and images gives the estimate of `I(Z; X_i)`.

use candle_core::{Result, Tensor, D};
use serde::{Deserialize, Serialize};

/// Which lower bound turns critic scores into mutual information.
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Bound {
    /// Donsker–Varadhan: `T⁺ − log mean exp T⁻` (nats; unbounded above, high variance).
    #[default]
    Dv,
    /// Jensen–Shannon: `−softplus(−T⁺) − mean softplus(T⁻)` (a divergence score, not nats;
    /// the most stable to train).
    Js,
    /// InfoNCE: `T⁺ − log((exp T⁺ + Σ exp T⁻) / (K + 1))` (nats, at most `log(K + 1)`).
    #[cfg_attr(feature = "clap", value(name = "infonce"))]
    InfoNce,
}

impl Bound {
    /// Name as used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Bound::Dv => "dv",
            Bound::Js => "js",
            Bound::InfoNce => "infonce",
        }
    }

    /// Unit of the values this bound produces.
    pub fn unit(self) -> &'static str {
        match self {
            Bound::Dv | Bound::InfoNce => "nats",
            Bound::Js => "js-score",
        }
    }

    /// Per-position bound values `[B, N]`.
    ///
    /// `positives` is `[B, N]`; `negatives` is `[B, M]`; `valid` (0/1, `[B, M]`) marks which
    /// negatives count for each anchor (in-batch negatives exclude the anchor's own image), or
    /// `None` when all do.
    pub fn per_position(
        self,
        positives: &Tensor,
        negatives: &Tensor,
        valid: Option<&Tensor>,
    ) -> Result<Tensor> {
        let m = negatives.dim(1)?;
        let count = match valid {
            Some(v) => v.sum_keepdim(1)?,
            None => Tensor::full(m as f32, (negatives.dim(0)?, 1), negatives.device())?,
        };
        match self {
            Bound::Dv => {
                let lme = log_sum_exp_valid(negatives, valid)?.sub(&count.log()?)?;
                positives.broadcast_sub(&lme)
            }
            Bound::InfoNce => {
                let lse_neg = log_sum_exp_valid(negatives, valid)?;
                let all = log_add_exp(positives, &lse_neg.broadcast_as(positives.shape())?)?;
                positives.sub(&all)?.broadcast_add(&(count + 1.0)?.log()?)
            }
            Bound::Js => {
                let sp_neg = softplus(negatives)?;
                let sp_neg = match valid {
                    Some(v) => sp_neg.mul(v)?,
                    None => sp_neg,
                };
                let mean_neg = sp_neg.sum_keepdim(1)?.div(&count)?;
                softplus(&positives.neg()?)?.neg()?.broadcast_sub(&mean_neg)
            }
        }
    }
}

/// Entries masked out by `valid` are pushed this far down before exponentiating: far enough
/// that `exp` underflows to zero, small enough to stay finite in f32.
const MASK_PENALTY: f64 = 1e9;

/// `log Σ_valid exp(s)` over the last dimension, `[B, 1]`.
fn log_sum_exp_valid(scores: &Tensor, valid: Option<&Tensor>) -> Result<Tensor> {
    let s = match valid {
        Some(v) => scores.add(&((v - 1.0)? * MASK_PENALTY)?)?,
        None => scores.clone(),
    };
    s.log_sum_exp(D::Minus1)?.unsqueeze(1)
}

/// `log(exp a + exp b)` elementwise, stable for large values.
fn log_add_exp(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let max = a.maximum(b)?;
    let sum = (a.sub(&max)?.exp()? + b.sub(&max)?.exp()?)?;
    sum.log()?.add(&max)
}

/// `log(1 + exp x)` without overflow: `relu(x) + log(1 + exp(−|x|))`.
pub fn softplus(x: &Tensor) -> Result<Tensor> {
    x.relu()?.add(&(x.abs()?.neg()?.exp()? + 1.0)?.log()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn t(v: &[f32], shape: (usize, usize)) -> Tensor {
        Tensor::from_slice(v, shape, &Device::Cpu).unwrap()
    }

    #[test]
    fn dv_is_zero_when_positives_score_like_negatives() {
        let pos = t(&[0.3, 0.3], (1, 2));
        let neg = t(&[0.3, 0.3, 0.3], (1, 3));
        let v = Bound::Dv
            .per_position(&pos, &neg, None)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        assert!(v[0].iter().all(|x| x.abs() < 1e-6), "{v:?}");
    }

    #[test]
    fn dv_excludes_masked_negatives() {
        let pos = t(&[2.0], (1, 1));
        let neg = t(&[0.0, 50.0], (1, 2));
        let valid = t(&[1.0, 0.0], (1, 2));
        let v = Bound::Dv
            .per_position(&pos, &neg, Some(&valid))
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        assert!((v[0][0] - 2.0).abs() < 1e-5, "{v:?}");
    }

    #[test]
    fn infonce_never_exceeds_log_k_plus_one() {
        let pos = t(&[100.0], (1, 1));
        let neg = t(&[0.0, 0.0, 0.0], (1, 3));
        let v = Bound::InfoNce
            .per_position(&pos, &neg, None)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        assert!((v[0][0] - 4f32.ln()).abs() < 1e-4, "{v:?}");
    }

    #[test]
    fn js_is_largest_for_separated_scores() {
        let neg = t(&[-5.0, -5.0], (1, 2));
        let good = Bound::Js
            .per_position(&t(&[5.0], (1, 1)), &neg, None)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        let bad = Bound::Js
            .per_position(&t(&[-5.0], (1, 1)), &neg, None)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        assert!(
            good[0][0] > bad[0][0] && good[0][0] > -0.02,
            "{good:?} {bad:?}"
        );
    }
}
