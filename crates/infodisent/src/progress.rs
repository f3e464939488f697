//! Progress bars with one look across commands; hidden when stderr is not a terminal or when
//! machine-readable output was asked for.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

static QUIET: AtomicBool = AtomicBool::new(false);

/// Hides every progress bar from now on (for `--json` and `--quiet`).
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// A bar over `len` units labelled `what`, showing rate and ETA.
pub fn bar(len: u64, what: &str, unit: &str) -> ProgressBar {
    let pb = ProgressBar::with_draw_target(Some(len), draw_target());
    pb.set_style(
        ProgressStyle::with_template(&format!(
            "{{prefix:>10.bold}} [{{bar:30}}] {{pos}}/{{len}} {unit} {{per_sec}} ETA {{eta}} {{msg}}"
        ))
        .expect("static template")
        .progress_chars("=> "),
    );
    pb.set_prefix(what.to_owned());
    pb
}

fn draw_target() -> ProgressDrawTarget {
    if QUIET.load(Ordering::Relaxed) || !std::io::stderr().is_terminal() {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    }
}
