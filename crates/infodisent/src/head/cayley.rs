//! The Cayley parametrization U = (I + S)⁻¹(I − S), S = A − Aᵀ, with its exact gradient.
//!
//! candle has no CPU solver, and a scalar LU at D = 2048 would cost seconds. S is skew, so
//! P = (I − S)(I + S) = I − S² = I + SᵀS is symmetric positive definite with eigenvalues in
//! [1, 1 + ‖S‖₂²]; its inverse comes from Newton–Schulz iterations X ← X(2I − PX), all GEMMs, run
//! until the residual ‖I − PX‖ is at rounding level (quadratic convergence, a handful of steps for
//! a well-conditioned P). Everything is a function of S, so all factors commute and
//! U = (I − S)² P⁻¹ and (I − S)⁻¹ = (I + S) P⁻¹.

use super::linalg::{gemm_into, matmul, norm1, norm2_estimate, real, skew, Real};

/// What the backward pass needs.
#[derive(Debug, Clone)]
pub struct CayleyTape<T> {
    d: usize,
    s: Vec<T>,
    /// P⁻¹ = (I − S²)⁻¹.
    p_inv: Vec<T>,
    u: Vec<T>,
}

/// Newton–Schulz iterations allowed before giving up on convergence.
const MAX_ITERATIONS: usize = 60;

/// Inverse of a symmetric positive definite `p` with eigenvalues in [1, lambda_max].
fn spd_inverse<T: Real>(d: usize, p: &[T], lambda_max: f64) -> Vec<T> {
    // X₀ = αI with α = 2/(1 + λmax) makes ‖I − PX₀‖₂ ≤ (λmax − 1)/(λmax + 1) < 1.
    let alpha: T = real(2.0 / (1.0 + lambda_max));
    let mut x = vec![T::zero(); d * d];
    for i in 0..d {
        x[i * d + i] = alpha;
    }
    let tol = 8.0 * T::unit_roundoff() * (d as f64).sqrt();
    for _ in 0..MAX_ITERATIONS {
        // R = I − P X; X ← X + X R.
        let mut r = vec![T::zero(); d * d];
        gemm_into(d, d, d, p, false, &x, false, &mut r, false, -T::one());
        let mut worst = 0.0f64;
        for i in 0..d {
            r[i * d + i] = r[i * d + i] + T::one();
        }
        for v in &r {
            worst = worst.max(v.abs().to_f64().unwrap_or(f64::INFINITY));
        }
        gemm_into(
            d,
            d,
            d,
            &x.clone(),
            false,
            &r,
            false,
            &mut x,
            true,
            T::one(),
        );
        if worst <= tol {
            break;
        }
    }
    x
}

/// U = (I + S)⁻¹(I − S) for S = A − Aᵀ, and the tape for the backward pass.
pub fn cayley_skew<T: Real>(d: usize, a: &[T]) -> (Vec<T>, CayleyTape<T>) {
    let s = skew(d, a);
    let s2 = matmul(d, &s, false, &s, false);
    // P = I − S²; (I − S)² = I − 2S + S².
    let mut p = vec![T::zero(); d * d];
    let mut n = vec![T::zero(); d * d];
    let two: T = real(2.0);
    for i in 0..d * d {
        p[i] = -s2[i];
        n[i] = s2[i] - two * s[i];
    }
    for i in 0..d {
        p[i * d + i] = p[i * d + i] + T::one();
        n[i * d + i] = n[i * d + i] + T::one();
    }
    // An over-estimate of λmax only slows convergence; an under-estimate could stall it, so the
    // power-iteration estimate gets a margin and is capped by the rigorous 1-norm.
    let sn = (1.25 * norm2_estimate(d, &s, 12)).min(norm1(d, &s));
    let p_inv = spd_inverse(d, &p, 1.0 + sn * sn);
    let u = matmul(d, &n, false, &p_inv, false);
    (u.clone(), CayleyTape { d, s, p_inv, u })
}

impl<T: Real> CayleyTape<T> {
    /// Given G = ∂L/∂U, returns ∂L/∂A.
    ///
    /// dU = −(I + S)⁻¹ dS (I + U), so ∂L/∂S = −(I + S)⁻ᵀ G (I + U)ᵀ with (I + S)⁻ᵀ = (I − S)⁻¹ =
    /// (I + S) P⁻¹.
    pub fn backward_a(&self, grad_u: &[T]) -> Vec<T> {
        let d = self.d;
        let mut i_plus_s = self.s.clone();
        let mut i_plus_u = self.u.clone();
        for i in 0..d {
            i_plus_s[i * d + i] = i_plus_s[i * d + i] + T::one();
            i_plus_u[i * d + i] = i_plus_u[i * d + i] + T::one();
        }
        let left = matmul(d, &i_plus_s, false, &self.p_inv, false);
        let lg = matmul(d, &left, false, grad_u, false);
        let mut gs = vec![T::zero(); d * d];
        gemm_into(
            d,
            d,
            d,
            &lg,
            false,
            &i_plus_u,
            true,
            &mut gs,
            false,
            -T::one(),
        );
        skew(d, &gs)
    }
}
