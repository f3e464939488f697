//! `bench serve`: the viewer's latency and memory under load on loopback. `POST /api/explain`
//! with one JPEG, timed at each client count, then the server's resident memory after a
//! warm-up and after many more requests (a long-running server must not grow).

use infodisent::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// How much load to send.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServeBenchOptions {
    /// Requests before anything is measured.
    pub warmup: usize,
    /// Concurrent clients of each timed level.
    pub clients: Vec<usize>,
    /// Requests after the warm-up, shared evenly between the levels.
    pub requests: usize,
    /// Give up on a request after this long (counted as an error).
    pub timeout: Duration,
}

impl Default for ServeBenchOptions {
    fn default() -> Self {
        ServeBenchOptions {
            warmup: 50,
            clients: vec![1, 8],
            requests: 1000,
            timeout: Duration::from_secs(60),
        }
    }
}

/// One level of concurrency.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServeLevel {
    /// Concurrent clients, each sending its next request when the last is answered.
    pub clients: usize,
    /// Requests sent.
    pub requests: usize,
    /// Answers other than 200, and requests that failed.
    pub errors: usize,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 99th-percentile latency, ms.
    pub p99_ms: f64,
    /// Answered requests per second of wall time.
    pub requests_per_s: f64,
}

/// What `bench serve` measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServeBench {
    /// The processor (figures depend on it).
    pub cpu: String,
    /// The server measured.
    pub url: String,
    /// The uploaded image: width, height, JPEG bytes.
    pub image: (u32, u32, usize),
    /// One entry per client count.
    pub levels: Vec<ServeLevel>,
    /// The server's resident memory after the warm-up, MiB (when its process id is known).
    pub rss_after_warmup_mib: Option<f64>,
    /// The same after every measured request.
    pub rss_after_mib: Option<f64>,
    /// `rss_after / rss_after_warmup − 1`.
    pub rss_growth: Option<f64>,
}

/// Resident memory of process `pid` now (`VmRSS`), in MiB.
pub fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// A `width × height` JPEG (quality 90) of `photo`, stretched to that size: the upload.
pub fn jpeg_of(photo: &std::path::Path, width: u32, height: u32) -> Result<Vec<u8>> {
    let img = infodisent::imageio::load_rgb(photo)?;
    let resized = infodisent::imageio::resize_rgb(&img, width, height, None)?;
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
        .encode_image(&resized)
        .map_err(|e| Error::input(photo, format!("JPEG encoding failed: {e}")))?;
    Ok(out)
}

/// Sends `n` uploads of `jpeg` to `url` from `clients` threads; each latency in ms, and errors.
fn load(
    url: &str,
    jpeg: &[u8],
    clients: usize,
    n: usize,
    timeout: Duration,
) -> (Vec<f64>, usize, f64) {
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .build(),
    );
    let endpoint = format!("{url}api/explain?name=bench.jpg");
    let next = std::sync::atomic::AtomicUsize::new(0);
    let start = Instant::now();
    let per_client: Vec<(Vec<f64>, usize)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..clients.max(1))
            .map(|_| {
                scope.spawn(|| {
                    let (mut times, mut errors) = (Vec::new(), 0);
                    while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < n {
                        let t = Instant::now();
                        let ok = agent
                            .post(&endpoint)
                            .header("Content-Type", "image/jpeg")
                            .send(jpeg)
                            .ok()
                            .and_then(|mut r| {
                                let fine = r.status() == 200;
                                r.body_mut().read_to_vec().ok().filter(|_| fine)
                            })
                            .is_some();
                        if ok {
                            times.push(t.elapsed().as_secs_f64() * 1e3);
                        } else {
                            errors += 1;
                        }
                    }
                    (times, errors)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_default())
            .collect()
    });
    let wall = start.elapsed().as_secs_f64();
    let errors = per_client.iter().map(|c| c.1).sum();
    let times = per_client.into_iter().flat_map(|c| c.0).collect();
    (times, errors, wall)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Measures the viewer at `url` with uploads of `jpeg` (of `size` pixels); its memory too when
/// its process id `server` is known. The warm-up runs at the highest client count, so threads
/// and allocator arenas that concurrency needs exist before memory is first read.
pub fn bench_serve(
    url: &str,
    jpeg: &[u8],
    size: (u32, u32),
    server: Option<u32>,
    opts: &ServeBenchOptions,
) -> Result<ServeBench> {
    let rss = || server.and_then(rss_mib);
    let most = opts.clients.iter().copied().max().unwrap_or(1);
    let (_, warmup_errors, _) = load(url, jpeg, most, opts.warmup, opts.timeout);
    if opts.warmup > 0 && warmup_errors == opts.warmup {
        return Err(Error::Config(format!(
            "every warm-up request to {url}api/explain failed: is it an infodisent viewer with uploads on?"
        )));
    }
    let before = rss();
    let share = opts.requests / opts.clients.len().max(1);
    let levels = opts
        .clients
        .iter()
        .map(|&clients| {
            let (mut times, errors, wall) = load(url, jpeg, clients, share, opts.timeout);
            times.sort_by(f64::total_cmp);
            ServeLevel {
                clients,
                requests: share,
                errors,
                p50_ms: percentile(&times, 50.0),
                p99_ms: percentile(&times, 99.0),
                requests_per_s: times.len() as f64 / wall.max(1e-9),
            }
        })
        .collect();
    let after = rss();
    Ok(ServeBench {
        cpu: infodisent::cpu::Cpu::get().describe(),
        url: url.to_owned(),
        image: (size.0, size.1, jpeg.len()),
        levels,
        rss_after_warmup_mib: before,
        rss_after_mib: after,
        rss_growth: before.zip(after).map(|(b, a)| a / b - 1.0),
    })
}

impl ServeBench {
    /// The figures as a table.
    pub fn table(&self) -> String {
        let mut out = format!(
            "POST /api/explain, {}×{} JPEG ({} bytes), {}\nCPU: {}\n\n| clients | requests | errors | p50 ms | p99 ms | requests/s |\n|---|---|---|---|---|---|\n",
            self.image.0, self.image.1, self.image.2, self.url, self.cpu
        );
        for l in &self.levels {
            out += &format!(
                "| {} | {} | {} | {:.1} | {:.1} | {:.1} |\n",
                l.clients, l.requests, l.errors, l.p50_ms, l.p99_ms, l.requests_per_s
            );
        }
        match (
            self.rss_after_warmup_mib,
            self.rss_after_mib,
            self.rss_growth,
        ) {
            (Some(b), Some(a), Some(g)) => {
                out += &format!("\nserver RSS: {b:.1} MiB after the warm-up, {a:.1} MiB after the rest ({:+.1} %)\n", 100.0 * g);
            }
            _ => out += "\nserver RSS: not measured (give the server's process id)\n",
        }
        out
    }
}
