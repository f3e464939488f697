//! `infodisent bench`: one subcommand per benchmark, each in its own module.

use super::Global;

/// Benchmarks.
#[derive(clap::Subcommand, Debug)]
pub enum BenchCommand {
    /// A cache with ImageNet's item count and tiny features: time and peak memory to plan it,
    /// open it and stream one shuffled epoch.
    Cache(bench_cache::Args),
    /// Extraction throughput: end-to-end vs engine-only images/s and GFLOP/s vs a GEMM peak.
    Extract(bench_extract::Args),
    /// Training step time at D = 1280 and 2048 vs a dense reference, and peak memory.
    Train(bench_train::Args),
    /// Time to explain one image from its features.
    Explain(bench_explain::Args),
    /// The viewer under load: upload latency (p50/p99) at 1 and 8 clients and its memory after
    /// a warm-up and after 1,000 more uploads.
    Serve(bench_serve::Args),
    /// Prototype purity and explanation correctness of every recipe on generated images whose
    /// classes are made of known parts over real photos (the ablation grid with two more columns).
    Parts(bench_parts::Args),
    /// The paper's table on your own copy of CUB-200-2011, Stanford Cars, Stanford Dogs or
    /// ImageNet: per backbone, the default recipe, the paper's dense head, the linear probes
    /// and the model's own classifier, with the paper's published figures beside them.
    Paper(bench_paper::Args),
    /// Heatmaps beside pytorch-grad-cam and Captum on the same model and images: deletion and
    /// insertion AUC on the model itself, mass on known deciding parts, time per image.
    Faithfulness(bench_faithfulness::Args),
}

/// Runs the chosen benchmark.
pub fn run(cmd: BenchCommand, global: &Global) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Cache(a) => bench_cache::run(a, global),
        BenchCommand::Extract(a) => bench_extract::run(a, global),
        BenchCommand::Train(a) => bench_train::run(a, global),
        BenchCommand::Explain(a) => bench_explain::run(a, global),
        BenchCommand::Parts(a) => bench_parts::run(a, global),
        BenchCommand::Paper(a) => bench_paper::run(a, global),
        BenchCommand::Faithfulness(a) => bench_faithfulness::run(a, global),
        BenchCommand::Serve(a) => bench_serve::run(a, global),
    }
}

#[path = "bench_cache.rs"]
pub mod bench_cache;
#[path = "bench_explain.rs"]
pub mod bench_explain;
#[path = "bench_extract.rs"]
pub mod bench_extract;
#[path = "bench_faithfulness.rs"]
pub mod bench_faithfulness;
#[path = "bench_paper.rs"]
pub mod bench_paper;
#[path = "bench_parts.rs"]
pub mod bench_parts;
#[path = "bench_serve.rs"]
pub mod bench_serve;
#[path = "bench_train.rs"]
pub mod bench_train;
