//! `infodisent._infodisent`: the compiled core of the Python package. Every call goes to the
//! same library functions the CLI uses; the pure-Python package around it (`python/infodisent`)
//! only converts inputs (PIL images, torch tensors) and adds Python conveniences.

mod analysis;
mod backbone;
mod cache;
mod errors;
mod explanation;
mod head;
mod progress;

use pyo3::prelude::*;

/// Threads for the backbone and the math kernels: as given, else one per core.
fn threads(given: Option<usize>) -> usize {
    given.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Loads ONNX Runtime from `path` (the package finds the one its interpreter installed).
#[pyfunction]
fn _use_onnxruntime(path: std::path::PathBuf) {
    infodisent::engine::use_library(path);
}

/// Downloads the built-in models' weights and class names (and Fashion-MNIST) into `dest`
/// (default: the folder the library reads), as `infodisent fetch`; returns the folder.
#[pyfunction]
#[pyo3(signature = (dest=None, models=None, fashion_mnist=true, progress=true))]
fn fetch_assets(
    py: Python<'_>,
    dest: Option<std::path::PathBuf>,
    models: Option<Vec<String>>,
    fashion_mnist: bool,
    progress: bool,
) -> PyResult<String> {
    progress::run(py, progress, || {
        let names: Option<Vec<&str>> = models
            .as_ref()
            .map(|m| m.iter().map(String::as_str).collect());
        // The package runs on its own `onnxruntime` dependency.
        let extras = infodisent::assets::fetch::Extras {
            fashion_mnist,
            onnxruntime: false,
        };
        let (dir, _) =
            infodisent::assets::fetch::fetch_builtins(dest.as_deref(), names.as_deref(), extras)?;
        Ok(dir.to_string_lossy().into_owned())
    })
}

/// Prints the library's warnings on stderr, as the CLI does (`RUST_LOG` chooses others), unless
/// the host program installed a subscriber of its own.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The compiled module.
#[pymodule]
fn _infodisent(m: &Bound<'_, PyModule>) -> PyResult<()> {
    init_logging();
    errors::register(m)?;
    m.add_class::<backbone::Backbone>()?;
    m.add_class::<cache::Cache>()?;
    m.add_class::<cache::Batches>()?;
    m.add_class::<head::Head>()?;
    m.add_class::<explanation::Explanation>()?;
    m.add_function(wrap_pyfunction!(head::train, m)?)?;
    m.add_function(wrap_pyfunction!(_use_onnxruntime, m)?)?;
    m.add_function(wrap_pyfunction!(fetch_assets, m)?)?;
    m.add_function(wrap_pyfunction!(analysis::metrics, m)?)?;
    m.add_function(wrap_pyfunction!(analysis::evaluate, m)?)?;
    m.add_function(wrap_pyfunction!(analysis::prototypes, m)?)?;
    m.add_function(wrap_pyfunction!(analysis::report, m)?)?;
    m.add_function(wrap_pyfunction!(analysis::mi_train, m)?)?;
    m.add_function(wrap_pyfunction!(analysis::mi_explain, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
