//! One module per subcommand; `Global` holds the options every command shares.

pub mod ablate;
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
use std::path::PathBuf;

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

/// `--cache`, `--head` and `--data-root`: a trained InfoDisent head and the feature cache it
/// reads, shared by `explain`, `metrics`, `report` and `prototypes`.
#[derive(clap::Args, Debug, Clone)]
pub struct HeadArgs {
    /// Feature cache the head was trained on (made by `infodisent extract`; default: the one
    /// the head's training folder records).
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// InfoDisent training folder holding `head.safetensors` (output of `infodisent train`),
    /// or the file itself.
    #[arg(long)]
    pub head: PathBuf,
    #[command(flatten)]
    pub data_root: DataRoot,
}

impl HeadArgs {
    /// The cache, reading its images from `--data-root` when given, labelled as the head was
    /// trained (by the original classifier for a `--target original` head).
    pub fn open_cache(&self) -> infodisent::Result<FeatureCache> {
        let cache = self
            .data_root
            .apply(FeatureCache::open(self.cache_dir()?)?)?;
        infodisent::train::cache_for_head(cache, &self.head)
    }

    /// `--cache`, else the cache the head's training folder records.
    pub fn cache_dir(&self) -> infodisent::Result<PathBuf> {
        cache_of(self.cache.as_deref(), &self.head)
    }

    /// The trained head.
    pub fn load_head(&self) -> infodisent::Result<infodisent::head::params::HeadParams> {
        infodisent::runs::load_head(&self.head)
    }
}

/// The cache folder given, else the one run folder `run` records.
pub use infodisent::runs::cache_of;

/// `--probe`: the baseline a head is compared with.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ProbeArg {
    /// Linear-probe folder (output of `infodisent train --kind linear-probe`) or its file: the
    /// baseline for CAM and the channel counts (default: the original classifier when it has
    /// the dataset's classes).
    #[arg(long)]
    pub probe: Option<PathBuf>,
}

/// `--model`: where the model that made a cache is now, for commands that run it again.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ModelArg {
    /// The model that made the cache, when its file moved since `extract` (default: where the
    /// cache records it). Checked to be the same model; another one is refused.
    #[arg(long)]
    pub model: Option<String>,
}

impl ModelArg {
    /// The backbone that made `cache`, rebuilt as `extract` built it.
    pub fn backbone(
        &self,
        cache: &FeatureCache,
        global: &Global,
    ) -> infodisent::Result<infodisent::engine::Backbone> {
        infodisent::extract::cache_backbone(cache, self.model.as_deref(), global.threads())
    }
}

/// `--data-root`: where the dataset a cache was extracted from lives now.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct DataRoot {
    /// The dataset's folder, when it moved since `extract` (the cache records image paths
    /// relative to the folder it was extracted from).
    #[arg(long)]
    pub data_root: Option<PathBuf>,
}

impl DataRoot {
    /// `cache`, reading its images from the given folder when one was given.
    pub fn apply(&self, cache: FeatureCache) -> infodisent::Result<FeatureCache> {
        match &self.data_root {
            Some(root) => cache.with_data_root(root),
            None => Ok(cache),
        }
    }
}
