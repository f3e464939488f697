//! A system BLAS chosen at run time for the head's GEMMs, with the pure-Rust `gemm` crate as the
//! fallback: OpenBLAS's kernels reach 161–165 GFLOP/s on the 2-core development machine where
//! `gemm` reaches 100–134, and the training step is GEMM-bound. `INFODISENT_BLAS` names the
//! library (`off` disables it); by default `libopenblas.so.0` is looked up where the dynamic
//! loader looks (`scripts/setup-blas.sh` installs Debian's). `cblas_sgemm`/`cblas_dgemm` are
//! used row-major; LAPACK's LU solver `sgesv_`/`dgesv_` (column-major), which OpenBLAS ships,
//! when the library has it: the Cayley rotation's inverse at 2.7·D³ flops instead of the
//! Newton–Schulz iterations' many products.
//!
//! OpenBLAS picks its kernels by CPU model, and a model newer than the library falls back to its
//! generic SSE3 kernels (`Prescott`): Debian's 0.3.21 does so on Emerald Rapids (model 207),
//! where they reach 35 GFLOP/s against the `gemm` crate's 164 with AVX-512. Such a library is
//! left unused on a CPU with AVX2 and FMA unless `INFODISENT_BLAS` names it.
//!
//! Every call runs on one thread of this module's, whatever thread asks: OpenBLAS's parallel LU
//! (`dgetrf_parallel`) keeps per-thread job tables on the caller's stack and overflows the 2 MiB
//! stacks of Rust test threads, rayon and tokio workers and Python threads with the SkylakeX
//! kernels of AVX-512 CPUs; and OpenBLAS's thread count is process-global, so a count set by one
//! caller while another's call runs would change the other's blocking, and its bits. The calls
//! are queued to that thread, which sets each caller's count before its call; the hand-off is
//! small against the head's GEMMs (`bench train` steps were no slower with it).

use libloading::Library;
use std::cell::Cell;
use std::ffi::CStr;
use std::os::raw::{c_char, c_int};
use std::sync::OnceLock;

/// Stack of the thread BLAS runs on. `RUST_MIN_STACK=32 MiB` was measured to suffice for
/// Debian's OpenBLAS 0.3.21 on Sapphire Rapids; twice that costs only address space.
const BLAS_STACK_BYTES: usize = 64 << 20;

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
    /// What the library says of its build and kernels (OpenBLAS's `openblas_get_config` and
    /// `openblas_get_corename`), when it says.
    pub config: Option<String>,
    /// The CPU its kernels were chosen for (OpenBLAS's `openblas_get_corename`), when it says.
    pub core: Option<String>,
    _library: Library,
}

/// OpenBLAS kernel sets written for AVX2 with FMA or wider; any other set on a CPU that has
/// them is a fallback the `gemm` crate beats.
const VECTOR_CORES: [&str; 5] = ["haswell", "zen", "skylakex", "cooperlake", "sapphirerapids"];

impl Blas {
    /// Whether the library runs generic kernels on a CPU with AVX2 and FMA (why not, in words).
    fn generic_kernels(&self) -> Option<String> {
        let core = self.core.as_deref()?;
        #[cfg(target_arch = "x86_64")]
        let vector_cpu = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
        #[cfg(not(target_arch = "x86_64"))]
        let vector_cpu = false;
        (vector_cpu && !VECTOR_CORES.contains(&core.to_ascii_lowercase().as_str())).then(|| {
            format!(
                "{} chose its generic {core} kernels for this CPU (a model it does not know)",
                self.name
            )
        })
    }
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
        let text = |symbol: &[u8]| -> Option<String> {
            let f = *library
                .get::<unsafe extern "C" fn() -> *const c_char>(symbol)
                .ok()?;
            let p = f();
            (!p.is_null()).then(|| CStr::from_ptr(p).to_string_lossy().trim().to_owned())
        };
        let core = text(b"openblas_get_corename\0");
        let config = match (text(b"openblas_get_config\0"), core.clone()) {
            (Some(c), Some(core)) => Some(format!("{c}, kernels for {core}")),
            (c, core) => c.or(core),
        };
        Some(Blas {
            name: name.to_owned(),
            sgemm,
            dgemm,
            sgesv,
            dgesv,
            set_threads,
            config,
            core,
            _library: library,
        })
    }
}

/// The one thread every call into the library runs on (see the module's doc).
fn blas_thread() -> &'static rayon::ThreadPool {
    static THREAD: OnceLock<rayon::ThreadPool> = OnceLock::new();
    THREAD.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .stack_size(BLAS_STACK_BYTES)
            .thread_name(|_| "infodisent-blas".to_owned())
            .build()
            .expect("the BLAS thread could not be started")
    })
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
                .find_map(load)
                .filter(|b| match b.generic_kernels() {
                    Some(why) => {
                        tracing::info!("{why}: the built-in gemm (AVX2/AVX-512) does the GEMMs");
                        false
                    }
                    None => true,
                }),
        };
        if let Some(b) = &found {
            tracing::info!("GEMM through {}", b.name);
            tracing::debug!(
                "BLAS {}: {}; CPU {}",
                b.name,
                b.config.as_deref().unwrap_or("no build information"),
                crate::cpu::Cpu::get().describe()
            );
        }
        found
    })
    .as_ref()
}

/// Name of the GEMM backend with its build and kernels, for benchmark reports.
pub fn backend_name() -> String {
    match blas() {
        None => "gemm crate (pure Rust)".to_owned(),
        Some(b) => match &b.config {
            Some(config) => format!("{} ({config})", b.name),
            None => b.name.clone(),
        },
    }
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
            let [fa, fb, lda, ldb, ldc] = layout(m, n, k, ta, tb);
            let gemm = self.$field;
            // SAFETY: a, b and c hold at least m·k, k·n and m·n values (checked above), which
            // with these leading dimensions is all CBLAS reads or writes.
            self.on_blas_thread(|| unsafe {
                gemm(
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
            })
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
            let mut pivots: Vec<c_int> = vec![0; n.max(1) as usize];
            let (lda, mut info) = (n.max(1), 0);
            // SAFETY: a holds n·n values and b n·nrhs (checked above), the pivot buffer n; with
            // lda = ldb = n that is all LAPACK reads or writes.
            self.on_blas_thread(|| unsafe {
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
            });
            Some(info)
        }
    };
}

impl Blas {
    /// Runs `call` on the BLAS thread with OpenBLAS's pool sized like the caller's rayon pool,
    /// so `--threads` holds and a caller's bits do not depend on its neighbours' settings.
    fn on_blas_thread<R: Send>(&self, call: impl FnOnce() -> R + Send) -> R {
        thread_local!(static THREADS_SET: Cell<c_int> = const { Cell::new(0) });
        let threads = rayon::current_num_threads() as c_int;
        blas_thread().install(|| {
            if let Some(set) = self.set_threads {
                if THREADS_SET.get() != threads {
                    // SAFETY: openblas_set_num_threads takes a plain int; only this thread
                    // calls into the library, so no call of another caller is running.
                    unsafe { set(threads) };
                    THREADS_SET.set(threads);
                }
            }
            call()
        })
    }

    gemm_fn!(sgemm, f32, sgemm);
    gemm_fn!(dgemm, f64, dgemm);
    gesv_fn!(sgesv, f32, sgesv);
    gesv_fn!(dgesv, f64, dgesv);
}
