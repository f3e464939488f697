//! Benchmarks that print figures (never timed tests): extraction, training, explanation, the
//! faithfulness of heatmaps beside pytorch-grad-cam and Captum, the
//! viewer under load, and the parts benchmark's purity and correctness.

pub mod cache;
pub mod explain;
pub mod extract;
pub mod faithfulness;
pub mod paper;
pub mod parts;
#[cfg(feature = "serve")]
pub mod serve;
pub mod train;

/// Starts a new peak-memory window: Linux resets `VmHWM` to the current resident size when
/// told to (`clear_refs` 5); elsewhere the peak stays the process's.
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Peak resident memory of this process in bytes (`VmHWM`), when the OS reports it.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Runs `script` (shipped inside the binary, so it runs from any folder) under `python` with
/// `args` and parses the JSON object on its last line of output: how the PyTorch references
/// are timed in the same run. Returns the object and the line.
pub(crate) fn run_python_json(
    python: &std::path::Path,
    name: &str,
    script: &str,
    args: &[String],
) -> infodisent::error::Result<(serde_json::Value, String)> {
    use infodisent::error::Error;
    let dir = std::env::temp_dir().join(format!("infodisent-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let path = dir.join(name);
    std::fs::write(&path, script).map_err(|e| Error::io(&path, e))?;
    let out = std::process::Command::new(python)
        .arg(&path)
        .args(args)
        .output()
        .map_err(|e| Error::io(python, e));
    let _ = std::fs::remove_dir_all(&dir);
    let out = out?;
    if !out.status.success() {
        return Err(Error::Config(format!(
            "the PyTorch reference failed under {}: {}",
            python.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.trim().lines().last().unwrap_or_default().to_owned();
    let value = serde_json::from_str(&line)
        .map_err(|e| Error::Config(format!("the PyTorch reference printed `{line}`: {e}")))?;
    Ok((value, line))
}
