//! The rotation as an orthonormal frame: only the m rows of U that the classes can use, trained
//! on the Stiefel manifold, and completed to a full rotation only where one is needed.
//!
//! A decision reads W·v, and after pruning W keeps a few weights per class, so at most
//! `keep_top · C` rows of U ever reach a logit (50 of 1,280 for 10 classes). Training those rows
//! as a frame V (m × D, V Vᵀ = I) costs `B·HW·D·m` per step instead of the `B·HW·D²` rotation and
//! the D×D exponential with its backward pass, which dominate the paper's step. Every update is
//! GEMMs of m × D: the Riemannian gradient ([`project_tangent`]) and the polar retraction
//! ([`retract`], Newton–Schulz). [`complete`] then adds the D − m rows nearest the identity
//! (Löwdin), so the exported head is a full rotation U whose unused channels stay, as far as
//! orthogonality allows, the backbone's own.

use super::linalg::gemm_into;
use crate::error::{Error, Result};

/// `V Aᵀ` (m×m) for m×d row-major `v` and `a`.
fn rows_product(m: usize, d: usize, v: &[f32], a: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0f32; m * m];
    gemm_into(m, m, d, v, false, a, true, &mut out, false, 1.0);
    out
}

/// The Riemannian gradient at the frame `v` (m × d, orthonormal rows) of the Euclidean gradient
/// `g`: its projection onto the tangent space, `g − sym(g Vᵀ) V` (embedded metric).
pub fn project_tangent(m: usize, d: usize, v: &[f32], g: &[f32]) -> Vec<f32> {
    let gv = rows_product(m, d, g, v);
    let mut sym = vec![0.0f32; m * m];
    for i in 0..m {
        for j in 0..m {
            sym[i * m + j] = 0.5 * (gv[i * m + j] + gv[j * m + i]);
        }
    }
    let mut out = g.to_vec();
    gemm_into(m, d, m, &sym, false, v, false, &mut out, true, -1.0);
    out
}

/// Largest entry of |X Xᵀ − I| for m×d `x`.
pub fn defect(m: usize, d: usize, x: &[f32]) -> f64 {
    gram_defect(m, &rows_product(m, d, x, x))
}

/// Largest entry of |G − I| for an m×m `g`.
fn gram_defect(m: usize, g: &[f32]) -> f64 {
    g.iter().enumerate().fold(0.0f64, |worst, (i, &x)| {
        let target = if i / m == i % m { 1.0 } else { 0.0 };
        worst.max((f64::from(x) - target).abs())
    })
}

/// Newton–Schulz iterations allowed before the retraction gives up.
const MAX_ITERATIONS: usize = 40;

/// The polar retraction: the orthonormal-row matrix nearest `p` (m × d, full row rank), by
/// Newton–Schulz iterations `X ← (3X − X Xᵀ X)/2`, which converge quadratically for singular
/// values in (0, √3) and need only GEMMs. `p` is first scaled so its singular values are at
/// most 1 (Gershgorin on `p pᵀ`); scaling does not change the polar factor.
pub fn retract(m: usize, d: usize, p: &[f32]) -> Vec<f32> {
    let mut x = p.to_vec();
    let mut g = rows_product(m, d, &x, &x);
    let bound = g
        .chunks_exact(m)
        .map(|row| row.iter().map(|v| v.abs()).sum::<f32>())
        .fold(0.0f32, f32::max);
    if bound > 1.0 {
        let s = 1.0 / bound.sqrt();
        x.iter_mut().for_each(|v| *v *= s);
        g = rows_product(m, d, &x, &x);
    }
    // f32 rounding of an m×d product is about 1e-7·√d; stop a little above it.
    let tol = 4e-6 * (d as f64 / 1024.0).sqrt().max(1.0);
    for _ in 0..MAX_ITERATIONS {
        if gram_defect(m, &g) <= tol {
            break;
        }
        // X ← X (3I − G)/2 = 1.5 X − 0.5 G X.
        g.iter_mut().for_each(|v| *v *= -0.5);
        let mut next: Vec<f32> = x.iter().map(|v| 1.5 * v).collect();
        gemm_into(m, d, m, &g, false, &x, false, &mut next, true, 1.0);
        x = next;
        g = rows_product(m, d, &x, &x);
    }
    x
}

/// The full rotation U (d × d) whose rows `channels[i]` are the frame's rows `frame[i]` and whose
/// other rows are the orthonormal completion nearest the identity: the unit vectors `e_j` of the
/// other channels, projected off the frame and orthonormalised symmetrically (Löwdin). With
/// `B = V[:, rest]`, the projected rows Y = E_rest − Bᵀ V have Y Yᵀ = I − BᵀB, so
/// `(Y Yᵀ)^{-1/2} Y = Y + Bᵀ K B Y` with `K = h(B Bᵀ)`, `h(λ) = ((1 − λ)^{-1/2} − 1)/λ`: one
/// m×m eigen-decomposition and GEMMs of m × d. At the frame's start (rows of I) U = I exactly.
pub fn complete(d: usize, channels: &[u32], frame: &[f32]) -> Result<Vec<f32>> {
    let m = channels.len();
    if frame.len() != m * d || channels.iter().any(|&c| c as usize >= d) {
        return Err(Error::Shape(format!(
            "a frame of {m} rows must have {m}×{d} entries and channels below {d}"
        )));
    }
    let mut is_frame = vec![false; d];
    for &c in channels {
        if std::mem::replace(&mut is_frame[c as usize], true) {
            return Err(Error::Shape(format!(
                "channel {c} appears twice in the frame"
            )));
        }
    }
    let rest: Vec<usize> = (0..d).filter(|&j| !is_frame[j]).collect();
    let n = rest.len();
    let mut u = vec![0.0f32; d * d];
    for (i, &c) in channels.iter().enumerate() {
        u[c as usize * d..][..d].copy_from_slice(&frame[i * d..(i + 1) * d]);
    }
    if n == 0 {
        return Ok(u);
    }
    // B = V[:, rest] (m × n) and Y = E_rest − Bᵀ V (n × d).
    let b: Vec<f32> = (0..m)
        .flat_map(|i| rest.iter().map(move |&j| frame[i * d + j]))
        .collect();
    let mut y = vec![0.0f32; n * d];
    for (r, &j) in rest.iter().enumerate() {
        y[r * d + j] = 1.0;
    }
    gemm_into(n, d, m, &b, true, frame, false, &mut y, true, -1.0);
    let k = match lowdin_kernel(m, n, &b) {
        Some(k) => k,
        None => return Ok(complete_by_gram_schmidt(d, u, &is_frame, &rest)),
    };
    // Z = Y + Bᵀ (K (B Y)).
    let mut by = vec![0.0f32; m * d];
    gemm_into(m, d, n, &b, false, &y, false, &mut by, false, 1.0);
    let mut kby = vec![0.0f32; m * d];
    gemm_into(m, d, m, &k, false, &by, false, &mut kby, false, 1.0);
    gemm_into(n, d, m, &b, true, &kby, false, &mut y, true, 1.0);
    for (r, &j) in rest.iter().enumerate() {
        u[j * d..][..d].copy_from_slice(&y[r * d..(r + 1) * d]);
    }
    Ok(u)
}

/// `K = h(B Bᵀ)` of [`complete`], or `None` when some direction of the frame lies (nearly)
/// entirely in the other channels' coordinates: the symmetric completion is undefined there, and
/// within 1e-3 of it f32 cancellation would cost it its orthogonality.
fn lowdin_kernel(m: usize, n: usize, b: &[f32]) -> Option<Vec<f32>> {
    let b64: Vec<f64> = b.iter().map(|&x| f64::from(x)).collect();
    let mut gram = vec![0.0f64; m * m];
    gemm_into(m, m, n, &b64, false, &b64, true, &mut gram, false, 1.0);
    let eig = nalgebra::SymmetricEigen::new(nalgebra::DMatrix::from_row_slice(m, m, &gram));
    if eig.eigenvalues.iter().any(|&l| l > 1.0 - 1e-3) {
        return None;
    }
    let h = |l: f64| {
        let l = l.max(0.0);
        if l < 1e-8 {
            0.5 + 0.375 * l
        } else {
            ((1.0 - l).powf(-0.5) - 1.0) / l
        }
    };
    // K = P diag(h(λ)) Pᵀ.
    let p: Vec<f64> = (0..m * m)
        .map(|i| eig.eigenvectors[(i / m, i % m)])
        .collect();
    let ph: Vec<f64> = (0..m * m)
        .map(|i| p[i] * h(eig.eigenvalues[i % m]))
        .collect();
    let mut k = vec![0.0f64; m * m];
    gemm_into(m, m, m, &ph, false, &p, true, &mut k, false, 1.0);
    Some(k.into_iter().map(|x| x as f32).collect())
}

/// The completion when the symmetric one is ill-conditioned: Gram–Schmidt (twice, for f32) of
/// the unit vectors of the other channels, then of the frame's own, keeping the first that stay
/// clear of the rows already there; each candidate costs two products with those rows.
fn complete_by_gram_schmidt(
    d: usize,
    mut u: Vec<f32>,
    is_frame: &[bool],
    rest: &[usize],
) -> Vec<f32> {
    let frame_rows: Vec<usize> = (0..d).filter(|&j| is_frame[j]).collect();
    // The accepted rows, contiguous, so that projecting off them is one GEMV each way.
    let mut basis: Vec<f32> = frame_rows
        .iter()
        .flat_map(|&r| u[r * d..(r + 1) * d].to_vec())
        .collect();
    let mut slots = rest.iter().copied();
    let mut slot = slots.next();
    for &candidate in rest.iter().chain(&frame_rows) {
        let Some(target) = slot else { break };
        let k = basis.len() / d;
        let mut w = vec![0.0f32; d];
        w[candidate] = 1.0;
        let mut c = vec![0.0f32; k];
        for _ in 0..2 {
            gemm_into(k, 1, d, &basis, false, &w, false, &mut c, false, 1.0);
            gemm_into(d, 1, k, &basis, true, &c, false, &mut w, true, -1.0);
        }
        let norm = w.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.1 {
            w.iter_mut().for_each(|x| *x /= norm);
            u[target * d..(target + 1) * d].copy_from_slice(&w);
            basis.extend_from_slice(&w);
            slot = slots.next();
        }
    }
    u
}

/// The frame's candidate channels: per class the `per_class` raw channels whose pooled value
/// (max/min pooling, U = I) best separates that class from the rest, by the difference of means
/// over the pooled standard deviation; their union, sorted. `sums`, `squares` are per class ×
/// channel sums of the pooled values and of their squares over `counts[c]` images.
pub fn candidate_channels(
    dim: usize,
    counts: &[usize],
    sums: &[f64],
    squares: &[f64],
    per_class: usize,
) -> Vec<u32> {
    let classes = counts.len();
    let total: usize = counts.iter().sum();
    let mut chosen = vec![false; dim];
    for c in 0..classes {
        if counts[c] == 0 || counts[c] == total {
            continue;
        }
        let rest_n = (total - counts[c]) as f64;
        let mut scored: Vec<(f64, usize)> = (0..dim)
            .map(|k| {
                let all_sum: f64 = (0..classes).map(|q| sums[q * dim + k]).sum();
                let all_sq: f64 = (0..classes).map(|q| squares[q * dim + k]).sum();
                let mean_c = sums[c * dim + k] / counts[c] as f64;
                let mean_rest = (all_sum - sums[c * dim + k]) / rest_n;
                let mean = all_sum / total as f64;
                let var = (all_sq / total as f64 - mean * mean).max(0.0);
                ((mean_c - mean_rest) / (var.sqrt() + 1e-6), k)
            })
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        for &(_, k) in scored.iter().take(per_class) {
            chosen[k] = true;
        }
    }
    if !chosen.iter().any(|&c| c) {
        chosen
            .iter_mut()
            .take(per_class.max(1))
            .for_each(|c| *c = true);
    }
    (0..dim as u32).filter(|&k| chosen[k as usize]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn random(len: usize, seed: u64) -> Vec<f32> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..len).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect()
    }

    #[test]
    fn retraction_gives_orthonormal_rows_and_keeps_an_orthonormal_frame() {
        let (m, d) = (7, 40);
        let x = retract(m, d, &random(m * d, 1));
        assert!(defect(m, d, &x) < 1e-5, "defect {}", defect(m, d, &x));
        // The polar factor of an orthonormal frame is itself.
        let again = retract(m, d, &x);
        let moved = x
            .iter()
            .zip(&again)
            .fold(0.0f32, |a, (p, q)| a.max((p - q).abs()));
        assert!(moved < 1e-5, "{moved}");
    }

    #[test]
    fn the_tangent_projection_is_tangent_and_idempotent() {
        let (m, d) = (5, 30);
        let v = retract(m, d, &random(m * d, 2));
        let t = project_tangent(m, d, &v, &random(m * d, 3));
        // Tangent at V: V tᵀ + t Vᵀ = 0.
        let vt = rows_product(m, d, &v, &t);
        for i in 0..m {
            for j in 0..m {
                assert!((vt[i * m + j] + vt[j * m + i]).abs() < 1e-5);
            }
        }
        let again = project_tangent(m, d, &v, &t);
        assert!(t.iter().zip(&again).all(|(a, b)| (a - b).abs() < 1e-5));
    }

    #[test]
    fn completion_is_a_rotation_holding_the_frame_and_the_identity_at_the_start() {
        let d = 24;
        let channels = [3u32, 10, 17];
        let mut frame = vec![0.0f32; 3 * d];
        for (i, &c) in channels.iter().enumerate() {
            frame[i * d + c as usize] = 1.0;
        }
        let u = complete(d, &channels, &frame).unwrap();
        let eye = crate::head::linalg::identity::<f32>(d);
        assert!(
            u.iter().zip(&eye).all(|(a, b)| (a - b).abs() < 1e-6),
            "U = I at the start"
        );
        // A frame moved away from its channels.
        let moved = retract(
            3,
            d,
            &frame
                .iter()
                .zip(random(3 * d, 4))
                .map(|(f, r)| f + 0.3 * r)
                .collect::<Vec<_>>(),
        );
        let u = complete(d, &channels, &moved).unwrap();
        assert!(crate::head::linalg::orthogonality_defect(d, &u) < 1e-5);
        for (i, &c) in channels.iter().enumerate() {
            assert_eq!(&u[c as usize * d..][..d], &moved[i * d..(i + 1) * d]);
        }
        // A frame row that lives entirely in another channel's coordinate takes the fallback.
        let mut odd = vec![0.0f32; 3 * d];
        odd[5] = 1.0;
        odd[d + 10] = 1.0;
        odd[2 * d + 17] = 1.0;
        let u = complete(d, &channels, &odd).unwrap();
        assert!(crate::head::linalg::orthogonality_defect(d, &u) < 1e-5);
    }

    #[test]
    fn candidates_are_the_channels_that_separate_each_class() {
        // Two classes, four channels: channel 1 is high for class 0, channel 3 for class 1.
        let counts = [10, 10];
        let mut sums = vec![0.0; 8];
        let mut squares = vec![0.0; 8];
        for (c, k, value) in [(0, 1, 5.0), (1, 3, 4.0)] {
            sums[c * 4 + k] = 10.0 * value;
            squares[c * 4 + k] = 10.0 * value * value;
        }
        for c in 0..2 {
            for k in [0, 2] {
                sums[c * 4 + k] = 10.0;
                squares[c * 4 + k] = 10.0;
            }
        }
        assert_eq!(
            candidate_channels(4, &counts, &sums, &squares, 1),
            vec![1, 3]
        );
    }
}
