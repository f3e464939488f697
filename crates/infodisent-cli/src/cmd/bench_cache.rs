//! `infodisent bench cache`: plan, open and one epoch of a cache with ImageNet's item count.

use super::super::Global;
use infodisent_bench::cache::{bench_cache, CacheBench, CacheBenchOptions, Phase};
use std::path::PathBuf;

/// Options of `infodisent bench cache`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Items in the synthetic split (ImageNet's training set has 1,281,167).
    #[arg(long, default_value_t = 1_280_000)]
    items: usize,
    /// Classes the items are spread over.
    #[arg(long, default_value_t = 1000)]
    classes: usize,
    /// Items per shard.
    #[arg(long, default_value_t = infodisent::extract::DEFAULT_SHARD_SIZE)]
    shard_size: usize,
    /// Parts the shards are written as (one progress file each).
    #[arg(long, default_value_t = 16)]
    parts: usize,
    /// Channels of each (1×1) feature map: tiny, so the item count is what is timed.
    #[arg(long, default_value_t = 4)]
    dim: usize,
    /// Items per batch of the epoch.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Folder to build the cache in (default: a temporary one, removed after).
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// Runs the command.
pub fn run(args: Args, global: &Global) -> anyhow::Result<()> {
    let opts = CacheBenchOptions {
        items: args.items,
        classes: args.classes,
        shard_size: args.shard_size,
        parts: args.parts,
        feature_shape: [args.dim, 1, 1],
        batch: args.batch,
    };
    let scratch =
        std::env::temp_dir().join(format!("infodisent-bench-cache-{}", std::process::id()));
    let dir = args.dir.clone().unwrap_or_else(|| scratch.clone());
    let result = bench_cache(&opts, &dir);
    let _ = std::fs::remove_dir_all(&scratch);
    let result = result?;
    if global.json {
        return super::super::print_json(&result);
    }
    print(&result);
    Ok(())
}

fn print(r: &CacheBench) {
    let o = &r.options;
    println!("cpu: {}", r.cpu);
    println!(
        "{} items, {} classes, {}-item shards in {} parts, features [{}, 1, 1] f16; {:.1} MB on disk",
        o.items, o.classes, o.shard_size, o.parts, o.feature_shape[0], r.disk_bytes as f64 / 1e6
    );
    let line = |what: &str, p: &Phase| {
        let rss = p.peak_rss_bytes.map_or("unknown".to_owned(), |b| {
            format!("{:.0} MB", b as f64 / 1e6)
        });
        println!("{what:<32} {:>8.2} s   peak RSS {rss}", p.seconds);
    };
    line("plan (items.json, plan.json)", &r.plan);
    line("write every shard", &r.write);
    line("open + read the item list", &r.open);
    line("one shuffled epoch", &r.epoch);
    println!(
        "epoch: {:.0} items/s in batches of {}",
        r.epoch_items_per_sec, o.batch
    );
}
