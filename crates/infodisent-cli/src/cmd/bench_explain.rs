//! `infodisent bench explain`: time to explain one image from its features, a 10,000-image
//! test set, and figure rendering.

use super::super::Global;
use infodisent::explain::render::network_view;
use infodisent::explain::session::ExplainSession;
use infodisent_bench::explain::{synthetic, time_explanations, ExplainBench, ExplainBenchOptions};
use std::path::PathBuf;

/// Options of `infodisent bench explain`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Trained head folder; with `--cache`, times real features instead of random ones.
    #[arg(long, requires = "cache")]
    head: Option<PathBuf>,
    /// Feature cache of `--head`.
    #[arg(long, requires = "head")]
    cache: Option<PathBuf>,
    /// Channels of the synthetic runs.
    #[arg(long, default_value_t = 1280)]
    dim: usize,
    /// Grid side of the synthetic runs.
    #[arg(long, default_value_t = 7)]
    grid: usize,
    /// Class counts of the synthetic runs.
    #[arg(long, value_delimiter = ',', default_value = "10,200,1000")]
    classes: Vec<usize>,
    /// Repeats of the single-image timing.
    #[arg(long, default_value_t = 200)]
    repeats: usize,
    /// Images of the batched run.
    #[arg(long, default_value_t = 10_000)]
    images: usize,
    /// Figures rendered to time rendering.
    #[arg(long, default_value_t = 50)]
    render: usize,
}

/// Runs the command.
pub fn run(args: Args, global: &Global) -> anyhow::Result<()> {
    let opts = ExplainBenchOptions {
        repeats: args.repeats,
        images: args.images,
        render: args.render,
    };
    let scratch_dir =
        std::env::temp_dir().join(format!("infodisent-bench-explain-{}", std::process::id()));
    std::fs::create_dir_all(&scratch_dir)?;
    let result = measure(&args, &opts, &scratch_dir);
    let _ = std::fs::remove_dir_all(&scratch_dir);
    let rows = result?;
    if global.json {
        return super::super::print_json(&rows);
    }
    println!("cpu: {}", infodisent::cpu::Cpu::get().describe());
    println!("threads: {}", global.threads());
    for r in &rows {
        println!(
            "D={} C={} grid {}x{}: one image {:.2} ms | {} images in {:.2} s ({:.3} ms/image) | figure {:.1} ms → with figures ≈ {:.0} s",
            r.dim, r.classes, r.grid[0], r.grid[1], r.single_ms, r.images, r.batch_seconds, 1e3 * r.batch_seconds / r.images.max(1) as f64, r.render_ms, r.estimated_seconds_with_figures
        );
    }
    Ok(())
}

/// Runs the timings, with scratch files in `scratch`.
fn measure(
    args: &Args,
    opts: &ExplainBenchOptions,
    scratch: &std::path::Path,
) -> anyhow::Result<Vec<ExplainBench>> {
    let mut rows: Vec<ExplainBench> = Vec::new();
    if let (Some(head), Some(cache)) = (&args.head, &args.cache) {
        let s = ExplainSession::open(cache, head, None, None, 5)?;
        let split = s.cache.evaluation_split()?;
        let shard = s.cache.read_shard(&split, 0)?;
        let path = s.cache.items(&split)?[0].path.clone();
        let view = network_view(s.store.get(&path)?.as_ref(), &s.preprocess)?;
        rows.push(time_explanations(
            &s.explainer,
            &shard.features,
            shard.len,
            Some(&s.prototypes),
            &s.store,
            &s.preprocess,
            &view,
            scratch,
            opts,
        )?);
    } else {
        for &c in &args.classes {
            rows.push(synthetic(args.dim, args.grid, c, scratch, opts)?);
        }
    }
    Ok(rows)
}
