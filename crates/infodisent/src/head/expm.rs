//! U = expm(A − Aᵀ) with an exact gradient.
//!
//! Algorithm (why this one): scaling and squaring around a truncated Taylor polynomial evaluated by
//! Paterson–Stockmeyer, differentiated by hand in reverse mode through the very operations the
//! forward pass performed.
//! * Exactness: the backward pass is the exact derivative of the computed function (no second
//!   approximation as with a separately truncated Fréchet series), and the computed function equals
//!   expm to the working precision because the degree and the number of squarings are chosen from
//!   a truncation bound at the unit roundoff.
//! * Cost: all work is D×D GEMMs. The forward pass needs `cost(m) + s` products, the backward pass
//!   exactly twice that; the Fréchet block trick (expm of a 2D×2D matrix) costs ~8× a forward
//!   pass, and autograd through a textbook Taylor-12 Horner scheme scaled by the 1-norm needs
//!   12 + s products forward (s ≈ 5 for trained heads at D = 2048) and twice that backward.
//!   Paterson–Stockmeyer reaches degree 16 with 6 products, and the scaling uses a power-iteration
//!   estimate of ‖S‖₂ (typically 10–20× below ‖S‖₁ here), so a trained head usually needs 0–2
//!   squarings instead of ~5. A cheap orthogonality probe after the forward pass falls back to the
//!   rigorous 1-norm if the estimate ever was too optimistic.
//! * Skew-symmetry of S makes U orthogonal in exact arithmetic; the f32 defect ‖UᵀU − I‖ stays at
//!   rounding level (checked in tests and reported by `bench train` at D = 2048).

use super::linalg::{
    gemm_into, matmul, norm1, norm2_estimate, orthogonality_probe, real, skew, Real,
};

/// (degree m, block size q) pairs with m = q·r, so the evaluation costs (q − 1) + (r − 1)
/// products; degrees 1 and 2 are the trivial cases.
const SCHEMES: [(usize, usize); 9] = [
    (1, 1),
    (2, 2),
    (4, 2),
    (6, 3),
    (9, 3),
    (12, 4),
    (16, 4),
    (20, 5),
    (25, 5),
];

/// Matrix products the forward polynomial of a scheme costs.
fn scheme_cost(m: usize, q: usize) -> usize {
    if m <= 1 {
        0
    } else {
        (q - 1) + (m / q - 1)
    }
}

/// Largest θ such that the Taylor remainder of degree m is below `tol` for every ‖X‖ ≤ θ:
/// Σ_{i>m} θ^i/i! ≤ θ^{m+1}/(m+1)! · 1/(1 − θ/(m+2)).
fn theta(m: usize, tol: f64) -> f64 {
    let bound = |t: f64| {
        let mut term = 1.0;
        for i in 1..=m + 1 {
            term *= t / i as f64;
        }
        let ratio = t / (m + 2) as f64;
        if ratio >= 1.0 {
            f64::INFINITY
        } else {
            term / (1.0 - ratio)
        }
    };
    let (mut lo, mut hi) = (0.0f64, 64.0f64);
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if bound(mid) <= tol {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

/// The cheapest (degree, block, squarings) reaching the unit roundoff for a matrix of norm `norm`.
pub fn choose_plan(norm: f64, unit_roundoff: f64) -> Plan {
    let mut best: Option<Plan> = None;
    for &(m, q) in &SCHEMES {
        let t = theta(m, unit_roundoff);
        let s = if norm <= t {
            0
        } else {
            (norm / t).log2().ceil() as usize
        };
        let plan = Plan {
            degree: m,
            block: q,
            squarings: s,
        };
        let cost = scheme_cost(m, q) + s;
        if best.is_none_or(|b| cost <= scheme_cost(b.degree, b.block) + b.squarings) {
            best = Some(plan);
        }
    }
    best.expect("SCHEMES is not empty")
}

/// How the exponential is evaluated: Taylor degree, Paterson–Stockmeyer block, squarings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Taylor degree m.
    pub degree: usize,
    /// Paterson–Stockmeyer block size q (m is a multiple of q).
    pub block: usize,
    /// Number of squarings s (the argument is scaled by 2^-s).
    pub squarings: usize,
}

impl Plan {
    /// Matrix products of the forward pass.
    pub fn forward_products(&self) -> usize {
        scheme_cost(self.degree, self.block) + self.squarings
    }
}

/// Everything the backward pass needs: the powers, the Horner partials and the squaring chain.
#[derive(Debug, Clone)]
pub struct ExpmTape<T> {
    d: usize,
    plan: Plan,
    /// X, X², …, X^q (index i holds X^{i+1}).
    powers: Vec<Vec<T>>,
    /// Horner partials H_{j+1} that were multiplied by X^q, for j = r−2 … 0.
    horner: Vec<Vec<T>>,
    /// Y_0 … Y_{s−1}, each squared to give the next.
    squares: Vec<Vec<T>>,
}

fn inv_factorial(i: usize) -> f64 {
    (1..=i).fold(1.0, |acc, k| acc / k as f64)
}

/// Taylor polynomial of degree m of X by Paterson–Stockmeyer; records what the backward pass needs.
fn taylor<T: Real>(d: usize, x: Vec<T>, m: usize, q: usize) -> (Vec<T>, Vec<Vec<T>>, Vec<Vec<T>>) {
    let mut powers = vec![x];
    for _ in 1..q {
        let next = matmul(
            d,
            powers.last().expect("non-empty"),
            false,
            &powers[0],
            false,
        );
        powers.push(next);
    }
    let r = m / q;
    // B_j = Σ_{i<q} c_{qj+i} X^i; the last block B_r = c_m I.
    let block = |j: usize| -> Vec<T> {
        let mut b = vec![T::zero(); d * d];
        let c0: T = real(inv_factorial(q * j));
        for i in 0..d {
            b[i * d + i] = c0;
        }
        for i in 1..q {
            let c: T = real(inv_factorial(q * j + i));
            for (bv, pv) in b.iter_mut().zip(&powers[i - 1]) {
                *bv = *bv + c * *pv;
            }
        }
        b
    };
    // H_{r−1} = B_{r−1} + c_m X^q needs no product.
    let cm: T = real(inv_factorial(m));
    let mut h = block(r - 1);
    for (hv, pv) in h.iter_mut().zip(&powers[q - 1]) {
        *hv = *hv + cm * *pv;
    }
    let mut horner = Vec::with_capacity(r.saturating_sub(1));
    for j in (0..r - 1).rev() {
        let mut next = block(j);
        gemm_into(
            d,
            d,
            d,
            &powers[q - 1],
            false,
            &h,
            false,
            &mut next,
            true,
            T::one(),
        );
        horner.push(std::mem::replace(&mut h, next));
    }
    (h, powers, horner)
}

/// expm(S) for a d×d matrix S with the given plan; returns U and the tape for the backward pass.
pub fn expm_with_plan<T: Real>(d: usize, s: &[T], plan: Plan) -> (Vec<T>, ExpmTape<T>) {
    let scale: T = real(0.5f64.powi(plan.squarings as i32));
    let x: Vec<T> = s.iter().map(|&v| v * scale).collect();
    let (mut y, powers, horner) = taylor(d, x, plan.degree, plan.block);
    let mut squares = Vec::with_capacity(plan.squarings);
    for _ in 0..plan.squarings {
        let next = matmul(d, &y, false, &y, false);
        squares.push(std::mem::replace(&mut y, next));
    }
    (
        y,
        ExpmTape {
            d,
            plan,
            powers,
            horner,
            squares,
        },
    )
}

/// U = expm(A − Aᵀ) with the cheapest plan that is accurate to the working precision.
pub fn expm_skew<T: Real>(d: usize, a: &[T]) -> (Vec<T>, ExpmTape<T>) {
    let s = skew(d, a);
    let u = T::unit_roundoff();
    let rigorous = norm1(d, &s);
    if rigorous == 0.0 {
        // A = 0 (every step of the dynamic trivialization): U = I, no estimate needed.
        return expm_with_plan(d, &s, choose_plan(0.0, u));
    }
    // 10% margin over the power-iteration estimate (which converges from below), never above the
    // rigorous bound; the probe below catches an estimate that was still too low.
    let estimate = (1.1 * norm2_estimate(d, &s, 16)).min(rigorous);
    let (out, tape) = expm_with_plan(d, &s, choose_plan(estimate, u));
    // Rounding alone gives a defect of a few hundred u; a failed truncation shows far above that.
    if orthogonality_probe(d, &out) <= 1e4 * u * (d as f64).sqrt() || estimate >= rigorous {
        return (out, tape);
    }
    expm_with_plan(d, &s, choose_plan(rigorous, u))
}

impl<T: Real> ExpmTape<T> {
    /// The plan the forward pass used.
    pub fn plan(&self) -> Plan {
        self.plan
    }

    /// Given G = ∂L/∂U, returns ∂L/∂S (S the matrix that was exponentiated).
    pub fn backward_s(&self, grad_u: &[T]) -> Vec<T> {
        let d = self.d;
        let Plan {
            degree: m,
            block: q,
            squarings,
        } = self.plan;
        let mut g = grad_u.to_vec();
        // Y_{i+1} = Y_i²  ⇒  ∂L/∂Y_i = G Y_iᵀ + Y_iᵀ G.
        for y in self.squares.iter().rev() {
            let mut next = matmul(d, &g, false, y, true);
            gemm_into(d, d, d, y, true, &g, false, &mut next, true, T::one());
            g = next;
        }
        // g is now ∂L/∂p(X). Collect ∂L/∂X^i for i = 1..q in gp[i−1].
        let mut gp: Vec<Vec<T>> = vec![vec![T::zero(); d * d]; q];
        let r = m / q;
        // Walk the Horner chain backwards: H_j = B_j + X^q H_{j+1}; gh = ∂L/∂H_j.
        let mut gh = g;
        for (step, j) in (0..r - 1).enumerate() {
            let h_next = &self.horner[self.horner.len() - 1 - step];
            add_block_grad(&mut gp, &gh, q, j);
            gemm_into(
                d,
                d,
                d,
                &gh,
                false,
                h_next,
                true,
                &mut gp[q - 1],
                true,
                T::one(),
            );
            gh = matmul(d, &self.powers[q - 1], true, &gh, false);
        }
        // H_{r−1} = B_{r−1} + c_m X^q.
        add_block_grad(&mut gp, &gh, q, r - 1);
        let cm: T = real(inv_factorial(m));
        for (a, b) in gp[q - 1].iter_mut().zip(&gh) {
            *a = *a + cm * *b;
        }
        // X^{i+1} = X^i · X  ⇒  ∂X^i += G Xᵀ, ∂X += (X^i)ᵀ G, from the top power down.
        let x = &self.powers[0];
        for i in (1..q).rev() {
            let gi = std::mem::take(&mut gp[i]);
            gemm_into(
                d,
                d,
                d,
                &self.powers[i - 1],
                true,
                &gi,
                false,
                &mut gp[0],
                true,
                T::one(),
            );
            gemm_into(d, d, d, &gi, false, x, true, &mut gp[i - 1], true, T::one());
        }
        let scale: T = real(0.5f64.powi(squarings as i32));
        gp.swap_remove(0).into_iter().map(|v| v * scale).collect()
    }

    /// Given G = ∂L/∂U, returns ∂L/∂A for U = expm(A − Aᵀ).
    pub fn backward_a(&self, grad_u: &[T]) -> Vec<T> {
        let d = self.d;
        let gs = self.backward_s(grad_u);
        skew(d, &gs)
    }
}

/// ∂L/∂B_j = gh spreads to the powers: ∂X^i += c_{qj+i} gh for 1 ≤ i < q.
fn add_block_grad<T: Real>(gp: &mut [Vec<T>], gh: &[T], q: usize, j: usize) {
    for i in 1..q {
        let c: T = real(inv_factorial(q * j + i));
        for (a, b) in gp[i - 1].iter_mut().zip(gh) {
            *a = *a + c * *b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random(d: usize, scale: f64, seed: u64) -> Vec<f64> {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..d * d)
            .map(|_| scale * (rng.random::<f64>() - 0.5))
            .collect()
    }

    #[test]
    fn every_scheme_agrees_with_a_long_series() {
        let d = 6;
        let s = skew(d, &random(d, 1.0, 1));
        // Reference: degree 25 after 6 squarings, far below the unit roundoff in f64.
        let (reference, _) = expm_with_plan(
            d,
            &s,
            Plan {
                degree: 25,
                block: 5,
                squarings: 6,
            },
        );
        for &(m, q) in &SCHEMES[3..] {
            // Enough squarings that every degree is far below the unit roundoff.
            let squarings = (norm1(d, &s) / 0.05).log2().ceil() as usize;
            let forced = Plan {
                degree: m,
                block: q,
                squarings,
            };
            let (u, _) = expm_with_plan(d, &s, forced);
            let err = u
                .iter()
                .zip(&reference)
                .fold(0.0f64, |a, (x, y)| a.max((x - y).abs()));
            assert!(err < 1e-11, "scheme ({m},{q}) error {err}");
        }
    }

    #[test]
    fn plans_get_cheaper_for_small_norms() {
        let u = f32::EPSILON as f64 / 2.0;
        assert_eq!(choose_plan(0.0, u).forward_products(), 0);
        assert!(choose_plan(0.1, u).forward_products() < choose_plan(10.0, u).forward_products());
    }
}
