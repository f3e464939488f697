//! `infodisent serve`: the live viewer.

use super::Global;
use infodisent::serve::{ServeOptions, Viewer, ViewerSources};
use std::path::PathBuf;
use std::time::Duration;

/// Options of `infodisent serve`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Feature cache the heads were trained on (default: the one the first head's training
    /// folder records).
    #[arg(long)]
    cache: Option<PathBuf>,
    /// InfoDisent training folder (output of `infodisent train`); repeat it to compare heads
    /// side by side.
    #[arg(long = "head", required = true)]
    heads: Vec<PathBuf>,
    #[command(flatten)]
    baseline: super::args::ProbeArg,
    #[command(flatten)]
    model: super::args::ModelArg,
    #[command(flatten)]
    data_root: super::args::DataRoot,
    /// Address to listen on. The default answers this machine only; any other address serves
    /// the dataset's paths and images to whoever reaches it.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port (0: any free one, printed at start).
    #[arg(long, default_value_t = 8000)]
    port: u16,
    /// Largest upload, in bytes or with a unit (`500KB`, `20MB`, `1GB`); larger ones get 413.
    #[arg(long, default_value = "20MB", value_parser = parse_size)]
    max_upload: usize,
    /// Uploads that may wait while one is computed; beyond that the server answers 503 with
    /// Retry-After.
    #[arg(long, default_value_t = 16)]
    queue: usize,
    /// Seconds a client may take to send its headers, or between parts of its body.
    #[arg(long, default_value_t = 10)]
    read_timeout: u64,
    /// Seconds a whole request may take, queueing included (then 408).
    #[arg(long, default_value_t = 60)]
    request_timeout: u64,
    /// A host name to accept in the Host header besides addresses and localhost (the name a
    /// proxy serves the viewer under); repeatable.
    #[arg(long = "allow-host")]
    allow_hosts: Vec<String>,
}

/// `20MB`, `500KB`, `1GB` or plain bytes (decimal units).
fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim().to_ascii_uppercase();
    let (digits, scale) = [
        ("GB", 1_000_000_000),
        ("MB", 1_000_000),
        ("KB", 1_000),
        ("B", 1),
    ]
    .iter()
    .find_map(|(unit, scale)| t.strip_suffix(unit).map(|d| (d.trim().to_owned(), *scale)))
    .unwrap_or((t.clone(), 1));
    digits
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(|v| (v * scale as f64) as usize)
        .ok_or_else(|| format!("`{s}` is not a size (e.g. 20MB, 500KB, 1048576)"))
}

/// Runs the command.
pub fn run(args: Args, global: &Global) -> anyhow::Result<()> {
    let cache = super::cache_of(args.cache.as_deref(), &args.heads[0])?;
    let sources = ViewerSources {
        cache,
        heads: args.heads.clone(),
        probe: args.baseline.probe.clone(),
        model: args.model.model.clone(),
        data_root: args.data_root.data_root.clone(),
        threads: global.threads(),
    };
    let opts = ServeOptions {
        host: args.host.clone(),
        port: args.port,
        max_upload: args.max_upload,
        queue: args.queue,
        read_timeout: Duration::from_secs(args.read_timeout),
        request_timeout: Duration::from_secs(args.request_timeout),
        allow_hosts: args.allow_hosts.clone(),
        threads: 2,
    };
    let loopback = args
        .host
        .parse::<std::net::IpAddr>()
        .map_or(args.host == "localhost", |a| a.is_loopback());
    if !loopback {
        eprintln!(
            "warning: listening on {}: anyone who reaches this address sees the dataset's paths and images and can upload",
            args.host
        );
    }
    let viewer = Viewer::open(&sources)?;
    let json = global.json;
    infodisent::serve::serve(viewer, &opts, |addr| {
        let url = format!("http://{addr}/");
        if json {
            println!("{}", serde_json::json!({ "url": url }));
        } else {
            println!("infodisent viewer at {url} (Ctrl-C stops it)");
        }
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_take_decimal_units() {
        assert_eq!(parse_size("20MB"), Ok(20_000_000));
        assert_eq!(parse_size("500kb"), Ok(500_000));
        assert_eq!(parse_size("1048576"), Ok(1_048_576));
        assert!(parse_size("lots").is_err());
    }
}
