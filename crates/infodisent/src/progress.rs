//! Progress bars with one look across commands; hidden when stderr is not a terminal or when
//! machine-readable output was asked for. A caller may also watch progress through an
//! [`Observer`] (the Python package draws tqdm bars with one) and ask long loops to stop.

use crate::error::{Error, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::cell::RefCell;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

static QUIET: AtomicBool = AtomicBool::new(false);

thread_local! {
    static OBSERVER: RefCell<Option<Arc<dyn Observer>>> = const { RefCell::new(None) };
}

/// Someone watching the progress of the library's long calls made on one thread.
pub trait Observer: Send + Sync {
    /// A task of `len` units (`unit`) named `what` begins.
    fn start(&self, len: u64, what: &str, unit: &str);
    /// `n` more units are done.
    fn advance(&self, n: u64);
    /// The task ended (done or not).
    fn finish(&self);
    /// Whether the caller wants the work stopped: loops stop at their next safe point (after
    /// a batch, with everything written so far kept) with [`Error::Interrupted`].
    fn stop_requested(&self) -> bool;
}

/// Runs `f` with `observer` watching every progress bar it starts on this thread.
pub fn observed<R>(observer: Arc<dyn Observer>, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Arc<dyn Observer>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            OBSERVER.with(|o| *o.borrow_mut() = self.0.take());
        }
    }
    let _restore = Restore(OBSERVER.with(|o| o.borrow_mut().replace(observer)));
    f()
}

/// A progress bar: the terminal's, and the observer's when one watches.
pub struct Progress {
    bar: ProgressBar,
    observer: Option<Arc<dyn Observer>>,
}

impl Progress {
    /// `n` more units are done.
    pub fn inc(&self, n: u64) {
        self.bar.inc(n);
        if let Some(o) = &self.observer {
            o.advance(n);
        }
    }

    /// Shows `msg` beside the bar (the terminal's only).
    pub fn set_message(&self, msg: String) {
        self.bar.set_message(msg);
    }

    /// Ends the bar and erases it.
    pub fn finish_and_clear(&self) {
        self.bar.finish_and_clear();
        if let Some(o) = &self.observer {
            o.finish();
        }
    }

    /// A safe point to stop at: [`Error::Interrupted`] when the observer asks to stop.
    pub fn check(&self) -> Result<()> {
        match &self.observer {
            Some(o) if o.stop_requested() => Err(Error::Interrupted),
            _ => Ok(()),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        // A loop left early by `?` still ends its observer's bar.
        if !self.bar.is_finished() {
            self.finish_and_clear();
        }
    }
}

/// Hides every progress bar from now on (for `--json` and `--quiet`).
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// A bar over `len` units labelled `what`, showing rate and ETA.
pub fn bar(len: u64, what: &str, unit: &str) -> Progress {
    let pb = ProgressBar::with_draw_target(Some(len), draw_target());
    pb.set_style(
        ProgressStyle::with_template(&format!(
            "{{prefix:>10.bold}} [{{bar:30}}] {{pos}}/{{len}} {unit} {{per_sec}} ETA {{eta}} {{msg}}"
        ))
        .expect("static template")
        .progress_chars("=> "),
    );
    pb.set_prefix(what.to_owned());
    let observer = OBSERVER.with(|o| o.borrow().clone());
    if let Some(o) = &observer {
        o.start(len, what, unit);
    }
    Progress { bar: pb, observer }
}

fn draw_target() -> ProgressDrawTarget {
    if QUIET.load(Ordering::Relaxed) || !std::io::stderr().is_terminal() {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    }
}
