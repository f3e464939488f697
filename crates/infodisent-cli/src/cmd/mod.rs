//! One module per subcommand; `Global` holds the options every command shares.

pub mod ablate;
pub mod args;
pub mod bench;
pub mod cache;
pub mod demo;
pub mod eval;
pub mod explain;
pub mod extract;
pub mod fetch;
pub mod inspect;
pub mod metrics;
pub mod mi;
pub mod predict;
pub mod prototypes;
pub mod report;
pub mod serve;
pub mod train;

use infodisent::cache::FeatureCache;

/// Options shared by every command.
#[derive(clap::Args, Debug, Clone)]
pub struct Global {
    /// Worker threads for ONNX Runtime and the math kernels (default: all cores).
    #[arg(long, global = true, env = "INFODISENT_THREADS")]
    pub threads: Option<usize>,
    /// Print machine-readable JSON on stdout instead of text (progress bars are hidden).
    #[arg(long, global = true)]
    pub json: bool,
    /// Hide progress bars.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// More log output (-v info, -vv debug); RUST_LOG overrides.
    #[arg(long, short, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

impl Global {
    /// Sets up logging, progress visibility and the thread pools.
    pub fn init(&self) {
        let level = match self.verbose {
            0 => "warn",
            1 => "info",
            _ => "debug",
        };
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
        infodisent::progress::set_quiet(self.quiet || self.json);
        if let Some(n) = self.threads {
            let _ = rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build_global();
        }
    }

    /// Threads to use, defaulting to the machine's cores.
    pub fn threads(&self) -> usize {
        self.threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    }
}

/// Prints a value as pretty JSON on stdout.
pub fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// The split a command was asked for, or the cache's evaluation split (`test`, else `val`, else
/// the only one), said on stderr so the user knows which.
pub fn chosen_split(cache: &FeatureCache, asked: Option<&str>) -> infodisent::Result<String> {
    match asked {
        Some(split) => Ok(split.to_owned()),
        None => {
            let split = cache.evaluation_split()?;
            if split != "test" {
                eprintln!("using split `{split}` (the cache has no `test` split)");
            }
            Ok(split)
        }
    }
}

/// The cache folder given, else the one run folder `run` records.
pub use infodisent::runs::cache_of;
