//! A system BLAS chosen at run time for the head's GEMMs, with the pure-Rust `gemm` crate as the
//! fallback: OpenBLAS's kernels reach 161–165 GFLOP/s on the 2-core development machine where
//! `gemm` reaches 100–134, and the training step is GEMM-bound. `INFODISENT_BLAS` names the
//! library (`off` disables it); by default `libopenblas.so.0` is looked up where the dynamic
//! loader looks (`scripts/setup-blas.sh` installs Debian's). Only `cblas_sgemm`/`cblas_dgemm`
//! are used, row-major.

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

/// A loaded BLAS.
pub struct Blas {
    /// Where it was loaded from.
    pub name: String,
    sgemm: Gemm<f32>,
    dgemm: Gemm<f64>,
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
        let set_threads = library
            .get::<unsafe extern "C" fn(c_int)>(b"openblas_set_num_threads\0")
            .ok()
            .map(|f| *f);
        Some(Blas {
            name: name.to_owned(),
            sgemm,
            dgemm,
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
}
