//! The critic (infomax estimator): a score `T(z, x)` that is high when the local feature `x`
//! comes from the image whose representation is `z`.
//!
//! `T` is an MLP on `[z ; x]` with two hidden ReLU layers. Both inputs are first projected
//! linearly to a small width (`proj`), which keeps the critic small at D = 1280. Because the first
//! layer is linear in the concatenation, it is computed as `A·proj_z(z) + B·proj_x(x)`: one
//! embedding per representation and one per local feature, added for every pair. Scoring all
//! pairs then costs only the two hidden layers per pair.
//!
//! The score also adds the scaled inner product of the two projections, `proj_z(z)·proj_x(x)/√proj`.
//! A ReLU MLP on a concatenation has to assemble "does x match z" out of many hidden units and
//! learns it slowly; the inner product expresses it directly (the separable critic of
//! contrastive estimators), so image-specific details such as the colour of a ring that the
//! representation shares with one position are picked up in hundreds of steps, not thousands.
//! An embedding is therefore the first-layer contribution followed by the projection.

use candle_core::{Module, Result, Tensor};
use candle_nn::{linear, linear_no_bias, Linear, VarBuilder};

/// The shared critic of the raw and the masked terms.
#[derive(Debug, Clone)]
pub struct Critic {
    proj_z: Linear,
    proj_x: Linear,
    first_z: Linear,
    first_x: Linear,
    second: Linear,
    out: Linear,
}

impl Critic {
    /// Creates (or fetches from `vb`) a critic for D-dimensional `z` and `x`.
    pub fn new(dim: usize, proj: usize, hidden: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Critic {
            proj_z: linear(dim, proj, vb.pp("proj_z"))?,
            proj_x: linear(dim, proj, vb.pp("proj_x"))?,
            first_z: linear(proj, hidden, vb.pp("first_z"))?,
            first_x: linear_no_bias(proj, hidden, vb.pp("first_x"))?,
            second: linear(hidden, hidden, vb.pp("second"))?,
            out: linear(hidden, 1, vb.pp("out"))?,
        })
    }

    /// Embedding of representations `[B, D]` → `[B, hidden + proj]`.
    pub fn embed_z(&self, z: &Tensor) -> Result<Tensor> {
        let p = self.proj_z.forward(z)?;
        Tensor::cat(&[&self.first_z.forward(&p)?, &p], 1)
    }

    /// Projection of local features `[M, D]` → `[M, proj]` (what a reference bank stores).
    pub fn project_x(&self, x: &Tensor) -> Result<Tensor> {
        self.proj_x.forward(x)
    }

    /// Embedding of projected local features `[M, proj]` → `[M, hidden + proj]`.
    pub fn embed_projected_x(&self, xp: &Tensor) -> Result<Tensor> {
        Tensor::cat(&[&self.first_x.forward(xp)?, xp], 1)
    }

    /// Embedding of local features `[M, D]` → `[M, hidden + proj]`.
    pub fn embed_x(&self, x: &Tensor) -> Result<Tensor> {
        self.embed_projected_x(&self.project_x(x)?)
    }

    /// Scores of every pair: `ez` `[B, hidden + proj]` × `ex` `[M, hidden + proj]` → `[B, M]`.
    pub fn scores(&self, ez: &Tensor, ex: &Tensor) -> Result<Tensor> {
        self.score_per_anchor(ez, &ex.unsqueeze(0)?)
    }

    /// Scores of each anchor with its own local features: `ez` `[B, hidden + proj]` × `ex`
    /// `[B, M, hidden + proj]` (or `[1, M, hidden + proj]`, shared) → `[B, M]`.
    pub fn score_per_anchor(&self, ez: &Tensor, ex: &Tensor) -> Result<Tensor> {
        let hidden = self.second.weight().dim(0)?;
        let proj = ez.dim(1)? - hidden;
        let (hz, pz) = (ez.narrow(1, 0, hidden)?, ez.narrow(1, hidden, proj)?);
        let (hx, px) = (ex.narrow(2, 0, hidden)?, ex.narrow(2, hidden, proj)?);
        let pre = hz.unsqueeze(1)?.broadcast_add(&hx)?.relu()?;
        let h = self.second.forward(&pre)?.relu()?;
        let mlp = self.out.forward(&h)?.squeeze(2)?;
        // [B, 1, proj] × [B or 1, proj, M] → [B, 1, M].
        let px_t = px.transpose(1, 2)?.contiguous()?;
        let inner = if px_t.dim(0)? == 1 {
            pz.matmul(&px_t.squeeze(0)?)?
        } else {
            pz.unsqueeze(1)?.contiguous()?.matmul(&px_t)?.squeeze(1)?
        };
        mlp + (inner / (proj as f64).sqrt())?
    }
}
