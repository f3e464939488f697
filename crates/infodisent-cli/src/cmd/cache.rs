//! `infodisent cache`: what a feature cache holds, part by part, and a digest to compare two.

use super::Global;
use infodisent::cache::{CacheInfo, FeatureCache};
use std::path::PathBuf;

/// Subcommands of `infodisent cache`.
#[derive(clap::Subcommand, Debug)]
pub enum CacheCommand {
    /// Show a cache's splits, each part's finished shards, what is missing, and its
    /// content_digest (equal for caches holding the same features, however many tasks made
    /// them). Exits 5 when the cache is incomplete.
    Info(InfoArgs),
}

/// Options of `infodisent cache info`.
#[derive(clap::Args, Debug)]
pub struct InfoArgs {
    /// The cache folder.
    pub cache: PathBuf,
    /// Read every shard file again and check it against the digest its part recorded (reads
    /// the whole cache; without it the recorded digests are combined).
    #[arg(long)]
    pub verify: bool,
}

/// Runs the command.
pub fn run(command: CacheCommand, global: &Global) -> anyhow::Result<()> {
    let CacheCommand::Info(args) = command;
    let info = FeatureCache::open(&args.cache)?.info(args.verify)?;
    if global.json {
        super::print_json(&info)?;
    } else {
        print_info(&info);
    }
    if !info.complete {
        let missing: Vec<String> = info
            .splits
            .iter()
            .filter(|s| !s.missing_parts.is_empty())
            .map(|s| {
                let parts: Vec<String> = s.missing_parts.iter().map(|p| p.to_string()).collect();
                format!("`{}` lacks part(s) {}", s.name, parts.join(", "))
            })
            .collect();
        return Err(infodisent::Error::cache(
            &args.cache,
            format!("incomplete: {}", missing.join("; ")),
        )
        .into());
    }
    Ok(())
}

fn print_info(info: &CacheInfo) {
    let [d, h, w] = info.feature_shape;
    println!(
        "cache    {} (format {})",
        info.cache.display(),
        info.version
    );
    println!("model    {} ([{d}, {h}, {w}])", info.model);
    for split in &info.splits {
        println!(
            "split    {:<6} {}/{} images in {}/{} shards, {} skipped, {} part(s)",
            split.name,
            split.items_done,
            split.listed,
            split.shards_done,
            split.shards,
            split.skipped,
            split.parts.len()
        );
        if split.parts.len() > 1 {
            for p in &split.parts {
                let state = if p.shards_done == p.shards {
                    "done"
                } else {
                    "missing shards"
                };
                println!(
                    "  part   {:<7} {}/{} shards, {} images  {state}",
                    p.part.to_string(),
                    p.shards_done,
                    p.shards,
                    p.items_done
                );
            }
        }
    }
    match &info.content_digest {
        Some(d) => println!(
            "digest   {d}{}",
            if info.verified {
                " (every shard read and checked)"
            } else {
                ""
            }
        ),
        None => println!("digest   none: the cache is incomplete"),
    }
}
