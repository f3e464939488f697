//! A system BLAS chosen at run time for the head's GEMMs, with the pure-Rust `gemm` crate as the
//! fallback: OpenBLAS's kernels reach 161–165 GFLOP/s on the 2-core development machine where
//! `gemm` reaches 100–134, and the training step is GEMM-bound. `INFODISENT_BLAS` names the
//! library (`off` disables it); by default `libopenblas.so.0` is looked up where the dynamic
//! loader looks (`scripts/setup-blas.sh` installs Debian's). `cblas_sgemm`/`cblas_dgemm` are
//! used row-major; LAPACK's LU solver `sgesv_`/`dgesv_` (column-major), which OpenBLAS ships,
//! when the library has it: the Cayley rotation's inverse at 2.7·D³ flops instead of the
//! Newton–Schulz iterations' many products.

use libloading::Library;
use std::os::raw::c_int;
use std::sync::OnceLock;

const ROW_MAJOR: c_int = 101;
const NO_TRANS: c_int = 111;
const TRANS: c_int = 112;

/// `cblas_sgemm` (T = f32) and `cblas_dgemm` (T = f64): order, transA, transB, m, n, k, alpha,
/// A, lda, B, ldb, beta, C, ldc.
type Gemm<T> = unsafe extern "C" fn(
    c_int,
    c_int,
    c_int,
    c_int,
    c_int,
    c_int,
    T,
    *const T,
    c_int,
    *const T,
    c_int,
    T,
    *mut T,
    c_int,
);

/// LAPACK's `sgesv_` (T = f32) and `dgesv_` (T = f64), Fortran calling convention: n, nrhs, A,
/// lda, ipiv, B, ldb, info, all by pointer, matrices column-major.
type Gesv<T> = unsafe extern "C" fn(
    *const c_int,
    *const c_int,
    *mut T,
    *const c_int,
    *mut c_int,
    *mut T,
    *const c_int,
    *mut c_int,
);

/// A loaded BLAS.
pub struct Blas {
    /// Where it was loaded from.
    pub name: String,
    sgemm: Gemm<f32>,
    dgemm: Gemm<f64>,
    sgesv: Option<Gesv<f32>>,
    dgesv: Option<Gesv<f64>>,
    set_threads: Option<unsafe extern "C" fn(c_int)>,
    _library: Library,
}

impl std::fmt::Debug for Blas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blas").field("name", &self.name).finish()
    }
}

fn load(name: &str) -> Option<Blas> {
    // SAFETY: loading a shared library runs its initialisers; the names tried are BLAS
    // libraries, and the symbols are checked to exist before use with their CBLAS signatures.
    unsafe {
        let library = Library::new(name).ok()?;
        let sgemm = *library.get::<Gemm<f32>>(b"cblas_sgemm\0").ok()?;
        let dgemm = *library.get::<Gemm<f64>>(b"cblas_dgemm\0").ok()?;
        let sgesv = library.get::<Gesv<f32>>(b"sgesv_\0").ok().map(|f| *f);
        let dgesv = library.get::<Gesv<f64>>(b"dgesv_\0").ok().map(|f| *f);
        let set_threads = library
            .get::<unsafe extern "C" fn(c_int)>(b"openblas_set_num_threads\0")
            .ok()
            .map(|f| *f);
        Some(Blas {
            name: name.to_owned(),
            sgemm,
            dgemm,
            sgesv,
            dgesv,
            set_threads,
            _library: library,
        })
    }
}

/// The BLAS in use, loaded on first call; `None` means the `gemm` crate does the work.
pub fn blas() -> Option<&'static Blas> {
    static BLAS: OnceLock<Option<Blas>> = OnceLock::new();
    BLAS.get_or_init(|| {
        let found = match std::env::var("INFODISENT_BLAS") {
            Ok(v) if v == "off" => None,
            Ok(path) => {
                let found = load(&path);
                if found.is_none() {
                    tracing::warn!(
                        "INFODISENT_BLAS={path} has no cblas_sgemm; using the built-in GEMM"
                    );
                }
                found
            }
            Err(_) => ["libopenblas.so.0", "libopenblas.so"]
                .into_iter()
                .find_map(load),
        };
        if let Some(b) = &found {
            tracing::info!("GEMM through {}", b.name);
        }
        found
    })
    .as_ref()
}

/// Name of the GEMM backend, for benchmark reports.
pub fn backend_name() -> String {
    blas().map_or_else(|| "gemm crate (pure Rust)".to_owned(), |b| b.name.clone())
}

/// The CBLAS arguments of a row-major `op(a)` (m×k) times `op(b)` (k×n) into `c` (m×n):
/// transpose flags and leading dimensions of the stored matrices.
fn layout(m: usize, n: usize, k: usize, ta: bool, tb: bool) -> [c_int; 5] {
    let flag = |t: bool| if t { TRANS } else { NO_TRANS };
    let lda = if ta { m } else { k };
    let ldb = if tb { k } else { n };
    [
        flag(ta),
        flag(tb),
        lda.max(1) as c_int,
        ldb.max(1) as c_int,
        n.max(1) as c_int,
    ]
}

macro_rules! gemm_fn {
    ($name:ident, $t:ty, $field:ident) => {
        /// `c = beta·c + alpha · op(a) · op(b)`, shapes as in [`super::linalg::gemm_into`].
        #[allow(clippy::too_many_arguments)]
        pub fn $name(
            &self,
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
            assert!(
                a.len() >= m * k && b.len() >= k * n && c.len() >= m * n,
                "gemm operands too small"
            );
            assert!(
                [m, n, k].iter().all(|&x| c_int::try_from(x).is_ok()),
                "gemm dimensions exceed the BLAS's int"
            );
            self.use_rayon_threads();
            let [fa, fb, lda, ldb, ldc] = layout(m, n, k, ta, tb);
            // SAFETY: a, b and c hold at least m·k, k·n and m·n values (checked above), which
            // with these leading dimensions is all CBLAS reads or writes.
            unsafe {
                (self.$field)(
                    ROW_MAJOR,
                    fa,
                    fb,
                    m as c_int,
                    n as c_int,
                    k as c_int,
                    alpha,
                    a.as_ptr(),
                    lda,
                    b.as_ptr(),
                    ldb,
                    beta,
                    c.as_mut_ptr(),
                    ldc,
                )
            }
        }
    };
}

macro_rules! gesv_fn {
    ($name:ident, $t:ty, $field:ident) => {
        /// Solves `a · x = b` in place (`b` becomes x) for a column-major n×n `a` (overwritten by
        /// its LU factors) and n×nrhs `b`. `None` when the library has no LAPACK; `Some(info)`
        /// otherwise, LAPACK's status (0: solved; i > 0: U(i, i) is exactly zero).
        pub fn $name(&self, n: usize, nrhs: usize, a: &mut [$t], b: &mut [$t]) -> Option<i32> {
            let solve = self.$field?;
            assert!(
                a.len() >= n * n && b.len() >= n * nrhs,
                "gesv operands too small"
            );
            let (n, nrhs) = (
                c_int::try_from(n).expect("gesv dimension exceeds the LAPACK's int"),
                c_int::try_from(nrhs).expect("gesv dimension exceeds the LAPACK's int"),
            );
            self.use_rayon_threads();
            let mut pivots: Vec<c_int> = vec![0; n.max(1) as usize];
            let (lda, mut info) = (n.max(1), 0);
            // SAFETY: a holds n·n values and b n·nrhs (checked above), the pivot buffer n; with
            // lda = ldb = n that is all LAPACK reads or writes.
            unsafe {
                solve(
                    &n,
                    &nrhs,
                    a.as_mut_ptr(),
                    &lda,
                    pivots.as_mut_ptr(),
                    b.as_mut_ptr(),
                    &lda,
                    &mut info,
                )
            };
            Some(info)
        }
    };
}

impl Blas {
    /// OpenBLAS keeps its own thread pool: size it like rayon's, so `--threads` holds.
    fn use_rayon_threads(&self) {
        if let Some(set) = self.set_threads {
            // SAFETY: openblas_set_num_threads takes a plain int.
            unsafe { set(rayon::current_num_threads() as c_int) };
        }
    }

    gemm_fn!(sgemm, f32, sgemm);
    gemm_fn!(dgemm, f64, dgemm);
    gesv_fn!(sgesv, f32, sgesv);
    gesv_fn!(dgesv, f64, dgesv);
}
