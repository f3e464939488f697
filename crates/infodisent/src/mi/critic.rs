//! The critic (infomax estimator): a score `T(z, x)` that is high when the local feature `x`
//! comes from the image whose representation is `z`.
//!
//! `T` is an MLP on `[z ; x]` with two hidden ReLU layers. Both inputs are first projected
//! linearly to a small width (`proj`), which keeps the critic small at D = 1280. Because the first
//! layer is linear in the concatenation, it is computed as `A·proj_z(z) + B·proj_x(x)`: one
//! embedding per representation and one per local feature, added for every pair. Scoring all
//! pairs then costs only the two hidden layers per pair.

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

    /// First-layer contribution of representations `[B, D]` → `[B, hidden]`.
    pub fn embed_z(&self, z: &Tensor) -> Result<Tensor> {
        self.first_z.forward(&self.proj_z.forward(z)?)
    }

    /// Projection of local features `[M, D]` → `[M, proj]` (what a reference bank stores).
    pub fn project_x(&self, x: &Tensor) -> Result<Tensor> {
        self.proj_x.forward(x)
    }

    /// First-layer contribution of projected local features `[M, proj]` → `[M, hidden]`.
    pub fn embed_projected_x(&self, xp: &Tensor) -> Result<Tensor> {
        self.first_x.forward(xp)
    }

    /// First-layer contribution of local features `[M, D]` → `[M, hidden]`.
    pub fn embed_x(&self, x: &Tensor) -> Result<Tensor> {
        self.embed_projected_x(&self.project_x(x)?)
    }

    /// Scores of every pair: `ez` `[B, hidden]` × `ex` `[M, hidden]` → `[B, M]`.
    pub fn scores(&self, ez: &Tensor, ex: &Tensor) -> Result<Tensor> {
        self.score_per_anchor(ez, &ex.unsqueeze(0)?)
    }

    /// Scores of each anchor with its own local features: `ez` `[B, hidden]` × `ex`
    /// `[B, M, hidden]` (or `[1, M, hidden]`, shared) → `[B, M]`.
    pub fn score_per_anchor(&self, ez: &Tensor, ex: &Tensor) -> Result<Tensor> {
        let pre = ez.unsqueeze(1)?.broadcast_add(ex)?.relu()?;
        let h = self.second.forward(&pre)?.relu()?;
        self.out.forward(&h)?.squeeze(2)
    }
}
