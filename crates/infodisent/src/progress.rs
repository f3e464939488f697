//! Progress bars with one look across commands. Where stderr is not a terminal (a log file, a
//! pipe, a batch job) a bar becomes plain lines instead: one every [`LINE_EVERY`] while it runs
//! and one when a stage that took over a second ends. Nothing is drawn when machine-readable
//! output was asked for. A caller may also watch progress through an [`Observer`] (the Python
//! package draws tqdm bars with one) and ask long loops to stop.

use crate::error::{Error, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::cell::RefCell;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often a bar prints a line where stderr is not a terminal.
pub const LINE_EVERY: Duration = Duration::from_secs(30);

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

/// A progress bar: the terminal's (or its plain lines), and the observer's when one watches.
pub struct Progress {
    bar: ProgressBar,
    observer: Option<Arc<dyn Observer>>,
    lines: Option<Lines>,
}

/// The plain-line form of a bar, for a stderr that is not a terminal.
struct Lines {
    what: String,
    unit: String,
    start: Instant,
    last: Mutex<Instant>,
}

impl Lines {
    fn line(&self, bar: &ProgressBar, ending: bool) {
        let (pos, secs) = (bar.position(), self.start.elapsed().as_secs_f64());
        let of = bar.length().filter(|&l| l > 0);
        let mut text = format!("{}: {pos}", self.what);
        if let Some(len) = of {
            text += &format!("/{len}");
        }
        text += &format!(" {} in {secs:.0} s", self.unit);
        if ending {
            text += ", done";
        } else if let Some(len) = of.filter(|_| pos > 0) {
            let eta = secs * (len.saturating_sub(pos)) as f64 / pos as f64;
            text += &format!(
                " ({:.0} %, about {eta:.0} s left)",
                100.0 * pos as f64 / len as f64
            );
        }
        eprintln!("{text}");
    }
}

impl Progress {
    /// `n` more units are done.
    pub fn inc(&self, n: u64) {
        self.bar.inc(n);
        if let Some(o) = &self.observer {
            o.advance(n);
        }
        if let Some(lines) = &self.lines {
            let mut last = lines.last.lock().unwrap_or_else(|p| p.into_inner());
            if last.elapsed() >= LINE_EVERY {
                *last = Instant::now();
                lines.line(&self.bar, false);
            }
        }
    }

    /// Shows `msg` beside the bar (the terminal's only).
    pub fn set_message(&self, msg: String) {
        self.bar.set_message(msg);
    }

    /// Ends the bar and erases it (in plain lines: says the stage ended, if it took a second).
    pub fn finish_and_clear(&self) {
        if let Some(lines) = self.lines.as_ref().filter(|_| !self.bar.is_finished()) {
            if lines.start.elapsed() >= Duration::from_secs(1) {
                lines.line(&self.bar, true);
            }
        }
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

/// One line on stderr saying where a long job is (a stage started or ended), unless progress is
/// hidden; what a log file shows of a job between its bars.
pub fn stage(line: &str) {
    if !QUIET.load(Ordering::Relaxed) {
        eprintln!("{line}");
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
    // An observer draws its own bars (tqdm in a notebook), so plain lines would repeat them.
    let plain = observer.is_none() && !QUIET.load(Ordering::Relaxed) && !stderr_is_terminal();
    let lines = plain.then(|| Lines {
        what: what.to_owned(),
        unit: unit.to_owned(),
        start: Instant::now(),
        last: Mutex::new(Instant::now()),
    });
    Progress {
        bar: pb,
        observer,
        lines,
    }
}

fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

fn draw_target() -> ProgressDrawTarget {
    if QUIET.load(Ordering::Relaxed) || !stderr_is_terminal() {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    }
}
