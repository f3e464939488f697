//! The exception hierarchy, mirroring the CLI's exit codes: `InfoDisentError` with `ModelError`,
//! `CacheError` and `InvalidInputError` (also a `ValueError`) below it; a missing file is
//! `FileNotFoundError`. The message is the CLI's.

use infodisent::Error;
use pyo3::exceptions::{PyException, PyFileNotFoundError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{IntoPyDict, PyTuple};

pyo3::create_exception!(
    infodisent,
    InfoDisentError,
    PyException,
    "Anything infodisent reports."
);
pyo3::create_exception!(
    infodisent,
    ModelError,
    InfoDisentError,
    "A model file is missing, malformed, or does not fit what was asked of it."
);
pyo3::create_exception!(
    infodisent,
    CacheError,
    InfoDisentError,
    "A feature cache or run folder is corrupt, incomplete, or was made with other settings."
);

/// `InvalidInputError(InfoDisentError, ValueError)`: made at import, since a class with two
/// bases cannot be declared by `create_exception!`.
static INVALID_INPUT: pyo3::sync::PyOnceLock<Py<pyo3::types::PyType>> =
    pyo3::sync::PyOnceLock::new();

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("InfoDisentError", py.get_type::<InfoDisentError>())?;
    m.add("ModelError", py.get_type::<ModelError>())?;
    m.add("CacheError", py.get_type::<CacheError>())?;
    let bases = PyTuple::new(
        py,
        [
            py.get_type::<InfoDisentError>(),
            py.get_type::<PyValueError>(),
        ],
    )?;
    let invalid = py
        .import("builtins")?
        .getattr("type")?
        .call1((
            "InvalidInputError",
            bases,
            [
                ("__module__", "infodisent"),
                (
                    "__doc__",
                    "An input image, array or option is unusable (corrupt, wrong shape, NaN, out of range).",
                ),
            ]
            .into_py_dict(py)?,
        ))?
        .cast_into::<pyo3::types::PyType>()?;
    m.add("InvalidInputError", &invalid)?;
    let _ = INVALID_INPUT.set(py, invalid.unbind());
    Ok(())
}

/// An `InvalidInputError` saying `msg`.
pub fn invalid(msg: impl Into<String>) -> PyErr {
    let msg = msg.into();
    Python::attach(|py| match INVALID_INPUT.get(py) {
        Some(t) => PyErr::from_type(t.bind(py).clone(), msg),
        None => PyValueError::new_err(msg),
    })
}

/// The Python exception for a library error.
pub fn to_py(e: Error) -> PyErr {
    let msg = e.to_string();
    match e {
        Error::Io { ref source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            PyFileNotFoundError::new_err(msg)
        }
        Error::Input { .. } | Error::Config(_) | Error::Shape(_) => invalid(msg),
        Error::Model { .. } | Error::Runtime(_) => ModelError::new_err(msg),
        Error::Cache { .. } => CacheError::new_err(msg),
        _ => InfoDisentError::new_err(msg),
    }
}

/// `Result` of the library, as Python sees it.
pub trait OrRaise<T> {
    /// The value, or the matching Python exception.
    fn or_raise(self) -> PyResult<T>;
}

impl<T> OrRaise<T> for infodisent::Result<T> {
    fn or_raise(self) -> PyResult<T> {
        self.map_err(to_py)
    }
}
