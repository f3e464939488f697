//! The Cayley parametrization U = (I + S)⁻¹(I − S) = 2W − I, W = (I + S)⁻¹, S = A − Aᵀ, with its
//! exact gradient.
//!
//! W comes from the system LAPACK's LU solver when one is loaded (2.7·D³ flops). Without it,
//! candle has no CPU solver and a scalar LU at D = 2048 would cost seconds, so W = (I − S) P⁻¹
//! with P = (I + S)(I − S) = I − S² = I + SᵀS, symmetric positive definite with eigenvalues in
//! [1, 1 + ‖S‖₂²], inverted by Newton–Schulz iterations X ← X(2I − PX), all GEMMs, until the
//! residual ‖I − PX‖ is at rounding level (quadratic convergence, a handful of steps for a
//! well-conditioned P). Everything is a function of S, so all factors commute.
//!
//! As a retraction for the dynamic trivialization ([`cayley_times`]) the map needs one solve,
//! `R(A)·U₀ = 2(I + S)⁻¹U₀ − U₀`, where the exponential needs 4–5 products and then one more.

use super::linalg::{
    gemm_into, identity, matmul, norm1, norm2_estimate, real, skew, solve_identity_plus_skew, Real,
};

/// What the backward pass needs.
#[derive(Debug, Clone)]
pub struct CayleyTape<T> {
    d: usize,
    /// W = (I + S)⁻¹; `None` at A = 0, where W = I.
    w: Option<Vec<T>>,
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

/// W = (I + S)⁻¹ by Newton–Schulz iterations on P = I − S², as `W = (I − S) P⁻¹`: the path
/// without LAPACK, and the reference the LU path is tested against.
pub fn inverse_newton_schulz<T: Real>(d: usize, s: &[T]) -> Vec<T> {
    let mut p = matmul(d, s, false, s, false);
    for x in p.iter_mut() {
        *x = -*x;
    }
    let mut i_minus_s: Vec<T> = s.iter().map(|&x| -x).collect();
    for i in 0..d {
        p[i * d + i] = p[i * d + i] + T::one();
        i_minus_s[i * d + i] = i_minus_s[i * d + i] + T::one();
    }
    // An over-estimate of λmax only slows convergence; an under-estimate could stall it, so the
    // power-iteration estimate gets a margin and is capped by the rigorous 1-norm.
    let sn = (1.25 * norm2_estimate(d, s, 12)).min(norm1(d, s));
    let p_inv = spd_inverse(d, &p, 1.0 + sn * sn);
    matmul(d, &i_minus_s, false, &p_inv, false)
}

/// W = (I + S)⁻¹: LAPACK's LU when loaded, else Newton–Schulz.
fn inverse<T: Real>(d: usize, s: &[T]) -> Vec<T> {
    solve_identity_plus_skew(d, s, None).unwrap_or_else(|| inverse_newton_schulz(d, s))
}

/// `2W − b` in place of `w`, where `b` is the identity when `None`.
fn twice_minus<T: Real>(d: usize, mut w: Vec<T>, b: Option<&[T]>) -> Vec<T> {
    let two: T = real(2.0);
    match b {
        Some(b) => w.iter_mut().zip(b).for_each(|(x, &y)| *x = two * *x - y),
        None => {
            w.iter_mut().for_each(|x| *x = two * *x);
            for i in 0..d {
                w[i * d + i] = w[i * d + i] - T::one();
            }
        }
    }
    w
}

/// U = (I + S)⁻¹(I − S) for S = A − Aᵀ, and the tape for the backward pass. At A = 0 (the
/// dynamic trivialization right after a rebase) U = W = I at no cost.
pub fn cayley_skew<T: Real>(d: usize, a: &[T]) -> (Vec<T>, CayleyTape<T>) {
    if a.iter().all(|&x| x == T::zero()) {
        return (identity(d), CayleyTape { d, w: None });
    }
    let w = inverse(d, &skew(d, a));
    (
        twice_minus(d, w.clone(), None),
        CayleyTape { d, w: Some(w) },
    )
}

/// `R(A) · b` for the Cayley map R and a d×d `b`: one LU solve, `2(I + S)⁻¹b − b`, when LAPACK
/// is loaded; otherwise R(A) and a product.
pub fn cayley_times<T: Real>(d: usize, a: &[T], b: &[T]) -> Vec<T> {
    match solve_identity_plus_skew(d, &skew(d, a), Some(b)) {
        Some(wb) => twice_minus(d, wb, Some(b)),
        None => matmul(d, &cayley_skew(d, a).0, false, b, false),
    }
}

impl<T: Real> CayleyTape<T> {
    /// Given G = ∂L/∂U, returns ∂L/∂A.
    ///
    /// dW = −W dS W and U = 2W − I, so dU = −2 W dS W and ∂L/∂S = −2 Wᵀ G Wᵀ; S = A − Aᵀ turns
    /// it into ∂L/∂A = ∂L/∂S − ∂L/∂Sᵀ.
    pub fn backward_a(&self, grad_u: &[T]) -> Vec<T> {
        let d = self.d;
        let Some(w) = &self.w else {
            let mut ga = skew(d, grad_u);
            ga.iter_mut().for_each(|x| *x = real::<T>(-2.0) * *x);
            return ga;
        };
        let wg = matmul(d, w, true, grad_u, false);
        let mut gs = vec![T::zero(); d * d];
        gemm_into(d, d, d, &wg, false, w, true, &mut gs, false, real(-2.0));
        skew(d, &gs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::head::blas::blas;
    use rand::{Rng, SeedableRng};

    fn random(len: usize, scale: f64, seed: u64) -> Vec<f64> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..len)
            .map(|_| scale * (2.0 * rng.random::<f64>() - 1.0))
            .collect()
    }

    fn max_diff(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).fold(0.0, |m, (x, y)| m.max((x - y).abs()))
    }

    #[test]
    fn lu_and_newton_schulz_give_the_same_inverse() {
        let d = 37;
        let s = skew(d, &random(d * d, 0.3, 1));
        let newton = inverse_newton_schulz(d, &s);
        let mut product = matmul(d, &s, false, &newton, false);
        for (p, w) in product.iter_mut().zip(&newton) {
            *p += w;
        }
        assert!(max_diff(&product, &identity(d)) < 1e-12, "(I + S)·W ≠ I");
        match solve_identity_plus_skew(d, &s, None) {
            Some(lu) => assert!(max_diff(&lu, &newton) < 1e-12),
            None => assert!(
                blas().is_none(),
                "a BLAS is loaded, so the LU path must answer"
            ),
        }
    }

    #[test]
    fn cayley_times_is_the_map_applied_to_the_base() {
        let d = 29;
        let a = random(d * d, 0.2, 2);
        let base = random(d * d, 1.0, 3);
        let (u, _) = cayley_skew(d, &a);
        let expected = matmul(d, &u, false, &base, false);
        assert!(max_diff(&cayley_times(d, &a, &base), &expected) < 1e-12);
        // And in f32, as training uses it.
        let (a32, base32): (Vec<f32>, Vec<f32>) = (
            a.iter().map(|&x| x as f32).collect(),
            base.iter().map(|&x| x as f32).collect(),
        );
        let got = cayley_times(d, &a32, &base32);
        let worst = got
            .iter()
            .zip(&expected)
            .fold(0.0f64, |m, (&x, y)| m.max((f64::from(x) - y).abs()));
        assert!(worst < 1e-5, "f32 differs by {worst}");
    }

    #[test]
    fn the_shortcut_at_zero_is_the_general_backward() {
        let d = 11;
        let g = random(d * d, 1.0, 4);
        let (u, tape) = cayley_skew(d, &vec![0.0; d * d]);
        assert_eq!(u, identity::<f64>(d));
        let general = CayleyTape {
            d,
            w: Some(identity(d)),
        };
        assert!(max_diff(&tape.backward_a(&g), &general.backward_a(&g)) < 1e-15);
    }
}
