//! Long calls from Python: run without the GIL, with the library's progress drawn as tqdm bars
//! and Ctrl-C honoured at the library's next safe point (after a batch), so a stopped extract
//! or training resumes where it stopped.

use crate::errors::to_py;
use infodisent::progress::{observed, Observer};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Draws tqdm bars (when asked and installed) and watches for Ctrl-C.
struct Tqdm {
    show: bool,
    bar: Mutex<Option<Py<PyAny>>>,
    stop: AtomicBool,
    signal: Mutex<Option<PyErr>>,
}

impl Tqdm {
    /// Runs Python's signal handlers; a raised KeyboardInterrupt is kept for the caller.
    fn poll_signals(&self, py: Python<'_>) {
        if let Err(e) = py.check_signals() {
            *self.signal.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
            self.stop.store(true, Ordering::Relaxed);
        }
    }

    fn with_bar(&self, py: Python<'_>, f: impl FnOnce(&Bound<'_, PyAny>) -> PyResult<()>) {
        let bar = self.bar.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(bar) = bar.as_ref() {
            // A bar that cannot draw must not stop the work it reports on.
            let _ = f(bar.bind(py));
        }
    }
}

impl Observer for Tqdm {
    fn start(&self, len: u64, what: &str, unit: &str) {
        if !self.show {
            return;
        }
        Python::attach(|py| {
            let made = (|| -> PyResult<Py<PyAny>> {
                let tqdm = py.import("tqdm.auto")?.getattr("tqdm")?;
                let kw = PyDict::new(py);
                kw.set_item("total", len)?;
                kw.set_item("desc", what)?;
                kw.set_item("unit", format!(" {unit}"))?;
                kw.set_item("leave", false)?;
                Ok(tqdm.call((), Some(&kw))?.unbind())
            })();
            *self.bar.lock().unwrap_or_else(|p| p.into_inner()) = made.ok();
        });
    }

    fn advance(&self, n: u64) {
        Python::attach(|py| {
            self.with_bar(py, |b| b.call_method1("update", (n,)).map(drop));
            self.poll_signals(py);
        });
    }

    fn finish(&self) {
        Python::attach(|py| {
            self.with_bar(py, |b| b.call_method0("close").map(drop));
            *self.bar.lock().unwrap_or_else(|p| p.into_inner()) = None;
        });
    }

    fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// Runs `work` without the GIL, with tqdm bars when `progress`, raising KeyboardInterrupt when
/// Ctrl-C stopped it and the library's error as its Python exception otherwise.
pub fn run<T: Send>(
    py: Python<'_>,
    progress: bool,
    work: impl FnOnce() -> infodisent::Result<T> + Send,
) -> PyResult<T> {
    let tqdm = Arc::new(Tqdm {
        show: progress,
        bar: Mutex::new(None),
        stop: AtomicBool::new(false),
        signal: Mutex::new(None),
    });
    let observer: Arc<dyn Observer> = tqdm.clone();
    let out = py.detach(|| observed(observer, work));
    match out {
        Ok(v) => Ok(v),
        Err(infodisent::Error::Interrupted) => Err(tqdm
            .signal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .unwrap_or_else(|| pyo3::exceptions::PyKeyboardInterrupt::new_err("interrupted"))),
        Err(e) => {
            // A Ctrl-C that came while the work failed anyway is still the user's answer.
            match tqdm.signal.lock().unwrap_or_else(|p| p.into_inner()).take() {
                Some(signal) => Err(signal),
                None => Err(to_py(e)),
            }
        }
    }
}
