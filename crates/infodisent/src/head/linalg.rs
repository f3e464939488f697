//! Dense square-matrix kernels on row-major slices, generic over f32 (training) and f64 (gradient
//! checks): GEMMs go to a system BLAS when one is loaded ([`super::blas`]), else to the `gemm`
//! crate; transposes cost nothing in either (they are strides or flags).

use super::blas::{blas, Blas};
use gemm::Parallelism;

/// The floating-point types the head's kernels run in.
pub trait Real:
    num_traits::Float + num_traits::FromPrimitive + Send + Sync + std::fmt::Debug + 'static
{
    /// Unit roundoff of the type (half the machine epsilon).
    fn unit_roundoff() -> f64;

    /// The system BLAS's GEMM of this type: `c = beta·c + alpha · op(a) · op(b)`.
    #[allow(clippy::too_many_arguments)]
    fn blas_gemm(
        blas: &Blas,
        m: usize,
        n: usize,
        k: usize,
        a: &[Self],
        ta: bool,
        b: &[Self],
        tb: bool,
        c: &mut [Self],
        beta: Self,
        alpha: Self,
    );

    /// The system LAPACK's LU solve of this type (see [`Blas::sgesv`]); `None` without LAPACK.
    fn blas_gesv(blas: &Blas, n: usize, nrhs: usize, a: &mut [Self], b: &mut [Self])
        -> Option<i32>;
}

/// `Real` for a float type: its unit roundoff and the BLAS/LAPACK routines of its precision.
macro_rules! real {
    ($t:ty, $gemm:ident, $gesv:ident) => {
        impl Real for $t {
            fn unit_roundoff() -> f64 {
                f64::from(<$t>::EPSILON) / 2.0
            }

            fn blas_gemm(
                blas: &Blas,
                m: usize,
                n: usize,
                k: usize,
                a: &[$t],
                ta: bool,
                b: &[$t],
                tb: bool,
                c: &mut [$t],
                beta: $t,
                alpha: $t,
            ) {
                blas.$gemm(m, n, k, a, ta, b, tb, c, beta, alpha)
            }

            fn blas_gesv(
                blas: &Blas,
                n: usize,
                nrhs: usize,
                a: &mut [$t],
                b: &mut [$t],
            ) -> Option<i32> {
                blas.$gesv(n, nrhs, a, b)
            }
        }
    };
}

real!(f32, sgemm, sgesv);
real!(f64, dgemm, dgesv);

/// Converts an f64 constant to `T`.
pub fn real<T: Real>(x: f64) -> T {
    T::from_f64(x).expect("f32/f64 represent every f64 constant (possibly rounded)")
}

/// Threads gemm may use: the rayon pool the caller configured, so `--threads 1` is sequential and
/// therefore bit-reproducible.
fn parallelism() -> Parallelism {
    let n = rayon::current_num_threads();
    if n > 1 {
        Parallelism::Rayon(n)
    } else {
        Parallelism::None
    }
}

/// Floating-point operations of every [`gemm_into`] (2·m·n·k each) and
/// [`solve_identity_plus_skew`] so far, read by benchmarks.
static GEMM_FLOPS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Floating-point operations of every GEMM and LU solve of this module since the process
/// started.
pub fn gemm_flops() -> u64 {
    GEMM_FLOPS.load(std::sync::atomic::Ordering::Relaxed)
}

/// `c = keep·c + scale · op(a) · op(b)` with `op(a)` m×k, `op(b)` k×n, `c` m×n, all row-major;
/// `ta`/`tb` say the stored matrix is the transpose of the operand. Both backends check that the
/// slices are long enough.
#[allow(clippy::too_many_arguments)]
pub fn gemm_into<T: Real>(
    m: usize,
    n: usize,
    k: usize,
    a: &[T],
    ta: bool,
    b: &[T],
    tb: bool,
    c: &mut [T],
    accumulate: bool,
    scale: T,
) {
    GEMM_FLOPS.fetch_add(2 * (m * n * k) as u64, std::sync::atomic::Ordering::Relaxed);
    if let Some(system) = blas() {
        let beta = if accumulate { T::one() } else { T::zero() };
        return T::blas_gemm(system, m, n, k, a, ta, b, tb, c, beta, scale);
    }
    gemm_crate(m, n, k, a, ta, b, tb, c, accumulate, scale)
}

/// [`gemm_into`] through the `gemm` crate, whatever BLAS is loaded (the fallback, and the
/// reference the BLAS path is tested against).
#[allow(clippy::too_many_arguments)]
pub fn gemm_crate<T: Real>(
    m: usize,
    n: usize,
    k: usize,
    a: &[T],
    ta: bool,
    b: &[T],
    tb: bool,
    c: &mut [T],
    accumulate: bool,
    scale: T,
) {
    assert!(
        a.len() >= m * k && b.len() >= k * n && c.len() >= m * n,
        "gemm operands too small"
    );
    let (a_rs, a_cs) = if ta { (1, m as isize) } else { (k as isize, 1) };
    let (b_rs, b_cs) = if tb { (1, k as isize) } else { (n as isize, 1) };
    // SAFETY: the assertion above guarantees every index gemm touches lies inside the slices,
    // and `c` is exclusively borrowed.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
            T::one(),
            scale,
            false,
            false,
            false,
            parallelism(),
        )
    }
}

/// `op(a) · op(b)` for square d×d matrices.
pub fn matmul<T: Real>(d: usize, a: &[T], ta: bool, b: &[T], tb: bool) -> Vec<T> {
    let mut c = vec![T::zero(); d * d];
    gemm_into(d, d, d, a, ta, b, tb, &mut c, false, T::one());
    c
}

/// The transpose of a row-major d×d matrix.
pub fn transpose<T: Real>(d: usize, a: &[T]) -> Vec<T> {
    let mut t = vec![T::zero(); d * d];
    transpose::transpose(&a[..d * d], &mut t, d, d);
    t
}

/// `(I + S)⁻¹ · B` for a skew-symmetric d×d `s` by the system LAPACK's LU solver, in 2.7·d³
/// flops; `b = None` is the identity, which gives the inverse. `None` when no LAPACK is loaded
/// or the solver reports a zero pivot, which I + S (eigenvalues 1 + iλ) only has when `s` holds
/// values that are not finite.
pub fn solve_identity_plus_skew<T: Real>(d: usize, s: &[T], b: Option<&[T]>) -> Option<Vec<T>> {
    let system = blas()?;
    // LAPACK reads a row-major buffer as its transpose, and (I ± S)ᵀ = I ∓ S. For the inverse
    // the buffer holds I + S, LAPACK solves (I − S)·Y = I, and Y read back row-major is
    // (I − S)⁻ᵀ = (I + S)⁻¹: no transpose at all. A general B goes in and comes out transposed,
    // against a buffer holding I − S, which LAPACK reads as I + S.
    let sign = if b.is_some() { -T::one() } else { T::one() };
    let mut a: Vec<T> = s[..d * d].iter().map(|&x| sign * x).collect();
    for i in 0..d {
        a[i * d + i] = a[i * d + i] + T::one();
    }
    let mut x = match b {
        Some(b) => transpose(d, b),
        None => identity(d),
    };
    if T::blas_gesv(system, d, d, &mut a, &mut x)? != 0 {
        return None;
    }
    let flops = 2 * d * d * d + (2 * d * d * d) / 3;
    GEMM_FLOPS.fetch_add(flops as u64, std::sync::atomic::Ordering::Relaxed);
    Some(match b {
        Some(_) => transpose(d, &x),
        None => x,
    })
}

/// The identity matrix of size d.
pub fn identity<T: Real>(d: usize) -> Vec<T> {
    let mut m = vec![T::zero(); d * d];
    for i in 0..d {
        m[i * d + i] = T::one();
    }
    m
}

/// `a − aᵀ`: the skew-symmetric matrix the rotation is generated from. The transpose goes
/// through the cache-aware `transpose` crate: a naive strided loop costs tens of ms at D = 2048.
pub fn skew<T: Real>(d: usize, a: &[T]) -> Vec<T> {
    let mut s = transpose(d, a);
    for (x, &y) in s.iter_mut().zip(a) {
        *x = y - *x;
    }
    s
}

/// Induced 1-norm (largest column sum of magnitudes): a cheap, rigorous bound on the 2-norm of a
/// skew-symmetric matrix.
pub fn norm1<T: Real>(d: usize, a: &[T]) -> f64 {
    let mut col = vec![0.0f64; d];
    for row in a.chunks_exact(d) {
        for (c, x) in col.iter_mut().zip(row) {
            *c += x.abs().to_f64().unwrap_or(f64::INFINITY);
        }
    }
    col.into_iter().fold(0.0, f64::max)
}

/// Estimate of the spectral norm ‖s‖₂ by block power iteration on sᵀs.
///
/// For the matrices a rotation is trained from, ‖S‖₂ is often 10–20× below ‖S‖₁, and the number
/// of squarings the exponential needs is log2 of the norm used, so a sharp estimate saves several
/// full matrix products per step. Power iteration converges from below; callers add a margin and
/// check the result (see `expm`).
pub fn norm2_estimate<T: Real>(d: usize, s: &[T], iterations: usize) -> f64 {
    const BLOCK: usize = 4;
    // A fixed, dense start block: deterministic, and with no special structure to be orthogonal to
    // the dominant singular vectors.
    let mut v: Vec<T> = (0..d * BLOCK)
        .map(|i| real(1.0 + ((i * 7919) % 97) as f64 / 97.0))
        .collect();
    let mut est = 0.0;
    for _ in 0..iterations {
        let mut w = vec![T::zero(); d * BLOCK];
        gemm_into(d, BLOCK, d, s, false, &v, false, &mut w, false, T::one());
        let mut z = vec![T::zero(); d * BLOCK];
        gemm_into(d, BLOCK, d, s, true, &w, false, &mut z, false, T::one());
        // Rayleigh quotient of each column; the largest is a lower bound on ‖S‖₂².
        est = 0.0f64;
        for c in 0..BLOCK {
            let (mut vz, mut vv, mut zz) = (0.0f64, 0.0f64, 0.0f64);
            for r in 0..d {
                let (a, b) = (
                    v[r * BLOCK + c].to_f64().unwrap_or(0.0),
                    z[r * BLOCK + c].to_f64().unwrap_or(0.0),
                );
                vz += a * b;
                vv += a * a;
                zz += b * b;
            }
            if vv > 0.0 {
                est = est.max(vz / vv);
            }
            let scale = if zz > 0.0 { 1.0 / zz.sqrt() } else { 0.0 };
            for r in 0..d {
                z[r * BLOCK + c] = z[r * BLOCK + c] * real(scale);
            }
        }
        v = z;
    }
    est.max(0.0).sqrt()
}

/// Relative orthogonality defect ‖UᵀUz − z‖∞/‖z‖∞ on a fixed probe vector: O(D²) instead of the
/// O(D³) full check, enough to catch a truncation that went wrong.
pub fn orthogonality_probe<T: Real>(d: usize, u: &[T]) -> f64 {
    let z: Vec<T> = (0..d).map(|i| real(1.0 + (i % 13) as f64 / 13.0)).collect();
    let mut uz = vec![T::zero(); d];
    gemm_into(d, 1, d, u, false, &z, false, &mut uz, false, T::one());
    let mut utuz = vec![T::zero(); d];
    gemm_into(d, 1, d, u, true, &uz, false, &mut utuz, false, T::one());
    let zmax = z
        .iter()
        .fold(0.0f64, |a, v| a.max(v.to_f64().unwrap_or(0.0).abs()));
    utuz.iter().zip(&z).fold(0.0f64, |a, (p, q)| {
        a.max((*p - *q).to_f64().unwrap_or(f64::INFINITY).abs())
    }) / zmax
}

/// One Newton–Schulz step towards the nearest orthogonal matrix, `U (3I − UᵀU) / 2`: removes
/// the rounding drift of a rotation built by many f32 products (the defect squares per step).
pub fn reorthogonalize<T: Real>(d: usize, u: &[T]) -> Vec<T> {
    let mut m = matmul(d, u, true, u, false);
    let (three, half): (T, T) = (real(3.0), real(0.5));
    for (i, x) in m.iter_mut().enumerate() {
        let eye = if i / d == i % d { three } else { T::zero() };
        *x = (eye - *x) * half;
    }
    matmul(d, u, false, &m, false)
}

/// Largest entry of |UᵀU − I| over `rows` evenly spaced rows, in f64: O(rows·D²) instead of
/// O(D³), and unlike a probe vector it reads on the same scale as [`orthogonality_defect`].
pub fn orthogonality_sample(d: usize, u: &[f32], rows: usize) -> f64 {
    let sampled: Vec<usize> = (0..d).step_by((d / rows.max(1)).max(1)).collect();
    // Row i of UᵀU is Σ_r U[r, i] · U[r, ·]: one pass over U feeds every sampled row.
    let mut acc = vec![0.0f64; sampled.len() * d];
    for row in u.chunks_exact(d) {
        for (&i, acc) in sampled.iter().zip(acc.chunks_exact_mut(d)) {
            let uri = f64::from(row[i]);
            for (a, &x) in acc.iter_mut().zip(row) {
                *a += uri * f64::from(x);
            }
        }
    }
    let mut worst = 0.0f64;
    for (&i, acc) in sampled.iter().zip(acc.chunks_exact(d)) {
        for (j, a) in acc.iter().enumerate() {
            let target = if j == i { 1.0 } else { 0.0 };
            worst = worst.max((a - target).abs());
        }
    }
    worst
}

/// Largest entry of |aᵀa − I|, the orthogonality defect reported for trained rotations.
pub fn orthogonality_defect<T: Real>(d: usize, a: &[T]) -> f64 {
    let ata = matmul(d, a, true, a, false);
    let mut worst = 0.0f64;
    for i in 0..d {
        for j in 0..d {
            let target = if i == j { 1.0 } else { 0.0 };
            worst = worst.max((ata[i * d + j].to_f64().unwrap_or(f64::INFINITY) - target).abs());
        }
    }
    worst
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemm_handles_transposes() {
        // a = [[1,2],[3,4]], b = [[5,6],[7,8]]
        let a = [1.0f64, 2.0, 3.0, 4.0];
        let b = [5.0f64, 6.0, 7.0, 8.0];
        assert_eq!(
            matmul(2, &a, false, &b, false),
            vec![19.0, 22.0, 43.0, 50.0]
        );
        assert_eq!(matmul(2, &a, true, &b, false), vec![26.0, 30.0, 38.0, 44.0]);
        assert_eq!(matmul(2, &a, false, &b, true), vec![17.0, 23.0, 39.0, 53.0]);
    }

    #[test]
    fn blas_and_gemm_crate_agree_on_every_transpose() {
        let (m, n, k) = (7, 5, 9);
        let a: Vec<f32> = (0..m * k)
            .map(|i| ((i * 37 % 11) as f32 - 5.0) / 7.0)
            .collect();
        let b: Vec<f32> = (0..k * n)
            .map(|i| ((i * 53 % 13) as f32 - 6.0) / 5.0)
            .collect();
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            for accumulate in [false, true] {
                let mut c1 = vec![0.5f32; m * n];
                let mut c2 = c1.clone();
                gemm_into(m, n, k, &a, ta, &b, tb, &mut c1, accumulate, 1.5);
                gemm_crate(m, n, k, &a, ta, &b, tb, &mut c2, accumulate, 1.5);
                for (x, y) in c1.iter().zip(&c2) {
                    assert!((x - y).abs() < 1e-5, "{ta} {tb} {accumulate}: {x} vs {y}");
                }
            }
        }
    }

    /// One caller's GEMMs and LU solves under a rayon pool of `threads`.
    fn blas_work(threads: usize, d: usize, s: &[f32], b: &[f32]) -> Vec<Option<Vec<f32>>> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a rayon pool");
        pool.install(|| {
            let mut rectangular = vec![0.0f32; 3 * d * d];
            let tall: Vec<f32> = b.iter().chain(s).chain(b).copied().collect();
            gemm_into(
                3 * d,
                d,
                d,
                &tall,
                false,
                s,
                true,
                &mut rectangular,
                false,
                0.5,
            );
            vec![
                solve_identity_plus_skew(d, s, None),
                solve_identity_plus_skew(d, s, Some(b)),
                Some(matmul(d, s, false, b, true)),
                Some(rectangular),
            ]
        })
    }

    #[test]
    fn blas_calls_from_small_stacks_beside_each_other_match_serial_calls() {
        // OpenBLAS's parallel LU overflowed 2 MiB stacks on AVX-512 CPUs, and its global thread
        // count let one caller's setting change another's bits: four threads with 2 MiB stacks,
        // under pools of 1 and 2 threads, must each get what a lone call gets.
        let d = 192;
        let a: Vec<f32> = (0..d * d)
            .map(|i| ((i * 7919 % 1009) as f32 - 504.0) / 2000.0)
            .collect();
        let b: Vec<f32> = (0..d * d)
            .map(|i| ((i * 104_729 % 997) as f32 - 498.0) / 500.0)
            .collect();
        let s = skew(d, &a);
        let serial = [blas_work(1, d, &s, &b), blas_work(2, d, &s, &b)];
        assert!(
            serial[0][0].is_some() || blas().is_none(),
            "LAPACK loaded but no solve"
        );
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|t| {
                    let (s, b) = (&s, &b);
                    std::thread::Builder::new()
                        .stack_size(2 << 20)
                        .spawn_scoped(scope, move || {
                            (0..3)
                                .map(|_| blas_work(1 + t % 2, d, s, b))
                                .collect::<Vec<_>>()
                        })
                        .expect("a 2 MiB thread")
                })
                .collect();
            for (t, handle) in handles.into_iter().enumerate() {
                for got in handle.join().expect("a BLAS caller crashed") {
                    assert!(
                        got == serial[t % 2],
                        "thread {t} got other bits than a lone call"
                    );
                }
            }
        });
    }

    #[test]
    fn newton_schulz_removes_a_small_defect() {
        let (c, s) = (0.6f64, 0.8f64);
        let drifted: Vec<f64> = [c, -s, s, c].iter().map(|x| x * (1.0 + 1e-4)).collect();
        assert!(orthogonality_defect(2, &drifted) > 1e-4);
        assert!(orthogonality_defect(2, &reorthogonalize(2, &drifted)) < 1e-7);
        assert!(orthogonality_probe(2, &reorthogonalize(2, &drifted)) < 1e-7);
        let drifted32: Vec<f32> = drifted.iter().map(|&x| x as f32).collect();
        let full = orthogonality_defect(2, &drifted32);
        assert!((orthogonality_sample(2, &drifted32, 2) - full).abs() < 1e-6);
    }

    #[test]
    fn norm2_estimate_matches_a_known_spectrum() {
        // Block-diagonal skew matrix with rotation generators of rates 3 and 1: ‖S‖₂ = 3.
        let d = 4;
        let mut s = vec![0.0f64; 16];
        s[1] = 3.0;
        s[4] = -3.0;
        s[2 * d + 3] = 1.0;
        s[3 * d + 2] = -1.0;
        let est = norm2_estimate(d, &s, 30);
        assert!((est - 3.0).abs() < 1e-6, "{est}");
        assert!(norm1(d, &s) + 1e-9 >= est);
    }
}
