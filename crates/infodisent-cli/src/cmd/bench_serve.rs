//! `infodisent bench serve`: the viewer's upload latency and memory under load on loopback.

use super::super::Global;
use infodisent_bench::serve::{bench_serve, jpeg_of, ServeBenchOptions};
use std::io::BufRead;
use std::path::PathBuf;

/// Options of `infodisent bench serve`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Trained head folder to serve (by `infodisent serve` in a child process, on a free
    /// loopback port, so its memory is the server's alone).
    #[arg(long, required_unless_present = "url")]
    head: Option<PathBuf>,
    /// Feature cache of `--head` (default: the one its training folder records).
    #[arg(long)]
    cache: Option<PathBuf>,
    /// Measure a viewer already running at this URL instead (its memory is then not read).
    #[arg(long, conflicts_with_all = ["head", "cache"])]
    url: Option<String>,
    /// With `--url`: the server's process id, to read its memory.
    #[arg(long, requires = "url")]
    pid: Option<u32>,
    /// Photo to upload, resized to `--size` and sent as a JPEG (default: the first asset photo).
    #[arg(long)]
    image: Option<PathBuf>,
    /// Width and height of the uploaded JPEG.
    #[arg(long, value_delimiter = 'x', default_value = "500x375")]
    size: Vec<u32>,
    /// Requests before anything is measured.
    #[arg(long, default_value_t = 50)]
    warmup: usize,
    /// Concurrent clients of each timed level.
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    clients: Vec<usize>,
    /// Requests after the warm-up, shared evenly between the levels.
    #[arg(long, default_value_t = 1000)]
    requests: usize,
}

/// Runs the command.
pub fn run(args: Args, global: &Global) -> anyhow::Result<()> {
    let [width, height] = args.size[..] else {
        anyhow::bail!("--size is WIDTHxHEIGHT, e.g. 500x375");
    };
    let photo = match &args.image {
        Some(p) => p.clone(),
        None => {
            let dir = infodisent::assets::asset("photos/imagenet")?;
            let mut photos: Vec<PathBuf> = std::fs::read_dir(&dir)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            photos.sort();
            photos
                .into_iter()
                .next()
                .ok_or_else(|| anyhow::anyhow!("no photo in {}", dir.display()))?
        }
    };
    let jpeg = jpeg_of(&photo, width, height)?;
    let opts = ServeBenchOptions {
        warmup: args.warmup,
        clients: args.clients.clone(),
        requests: args.requests,
        ..ServeBenchOptions::default()
    };
    let report = match (&args.url, &args.head) {
        (Some(url), _) => {
            let url = if url.ends_with('/') {
                url.clone()
            } else {
                format!("{url}/")
            };
            bench_serve(&url, &jpeg, (width, height), args.pid, &opts)?
        }
        (None, Some(head)) => {
            let server = Served::start(head, args.cache.as_deref())?;
            bench_serve(
                &server.url,
                &jpeg,
                (width, height),
                Some(server.child.id()),
                &opts,
            )?
        }
        (None, None) => anyhow::bail!("give --head (served here) or --url"),
    };
    if global.json {
        return super::super::print_json(&report);
    }
    print!("{}", report.table());
    Ok(())
}

/// `infodisent serve` in a child process, stopped when dropped.
struct Served {
    child: std::process::Child,
    url: String,
}

impl Served {
    fn start(head: &std::path::Path, cache: Option<&std::path::Path>) -> anyhow::Result<Served> {
        let mut cmd = std::process::Command::new(std::env::current_exe()?);
        cmd.args(["serve", "--port", "0", "--json", "--head"])
            .arg(head);
        if let Some(cache) = cache {
            cmd.arg("--cache").arg(cache);
        }
        let mut child = cmd
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()?;
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped");
        std::io::BufReader::new(stdout).read_line(&mut line)?;
        let url = serde_json::from_str::<serde_json::Value>(&line)
            .ok()
            .and_then(|v| v["url"].as_str().map(str::to_owned));
        match url {
            Some(url) => Ok(Served { child, url }),
            None => {
                let _ = child.kill();
                anyhow::bail!("the viewer did not start (it printed `{}`)", line.trim())
            }
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
