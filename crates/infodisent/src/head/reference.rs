//! The dense reference implementation of the InfoDisent forward pass, differentiated by candle's
//! autograd: the textbook Taylor-12 scaling-and-squaring exponential (scaled until ‖X‖₁ ≤ 1),
//! a full `F Uᵀ` product, and max pooling whose backward builds dense masks over every pixel.
//! It exists to check the structured implementation's gradients and to measure its speed-up.

use super::linalg::{norm1, skew};
use crate::error::Result;
use candle_core::{Tensor, D};

/// Taylor degree of the reference exponential.
pub const REFERENCE_DEGREE: usize = 12;

/// Squarings the reference uses for A: the smallest s with ‖(A − Aᵀ)/2^s‖₁ ≤ 1.
pub fn reference_squarings(a: &Tensor) -> Result<usize> {
    let d = a.dims()[0];
    let vals = a
        .to_dtype(candle_core::DType::F64)?
        .flatten_all()?
        .to_vec1::<f64>()?;
    let n = norm1(d, &skew(d, &vals));
    Ok(if n <= 1.0 {
        0
    } else {
        n.log2().ceil() as usize
    })
}

/// U = expm(A − Aᵀ) by Horner-evaluated Taylor-12 and repeated squaring, all on the autograd graph.
pub fn expm_autograd(a: &Tensor) -> Result<Tensor> {
    let d = a.dims()[0];
    let s = reference_squarings(a)?;
    let eye = Tensor::eye(d, a.dtype(), a.device())?;
    let x = ((a - a.t()?)? / 2f64.powi(s as i32))?;
    let mut p = eye.clone();
    for k in (1..=REFERENCE_DEGREE).rev() {
        p = (&eye + (x.matmul(&p)? / k as f64)?)?;
    }
    for _ in 0..s {
        p = p.matmul(&p)?;
    }
    Ok(p)
}

/// Pooled values v [n, D] from U and pixels [n·cells, D] with the dense max.
pub fn rotate_pool_dense(u: &Tensor, pixels: &Tensor, n: usize, cells: usize) -> Result<Tensor> {
    let d = u.dims()[0];
    let j = pixels.matmul(&u.t()?)?.reshape((n, cells, d))?;
    let pos = j.relu()?.max(1)?;
    let neg = j.neg()?.relu()?.max(1)?;
    Ok((pos - neg)?)
}

/// Logits of the dense reference head: ReLU(W_raw) v + b.
pub fn logits_dense(
    a: &Tensor,
    w_raw: &Tensor,
    bias: &Tensor,
    pixels: &Tensor,
    n: usize,
    cells: usize,
) -> Result<Tensor> {
    let u = expm_autograd(a)?;
    let v = rotate_pool_dense(&u, pixels, n, cells)?;
    Ok(v.matmul(&w_raw.relu()?.t()?)?.broadcast_add(bias)?)
}

/// Mean cross-entropy, written out so it works in f64 too.
pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let logp = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let picked = logp.gather(&labels.unsqueeze(1)?, 1)?;
    Ok(picked.neg()?.mean_all()?)
}
