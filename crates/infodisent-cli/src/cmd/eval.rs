//! `infodisent eval`: accuracy, per-class accuracy and confusion matrices of trained heads and the
//! original classifier on a cached split, with a comparison table.

use super::Global;
use infodisent::cache::FeatureCache;
use infodisent::eval::{comparison_table, evaluate_runs, rows_json};
use std::path::PathBuf;

/// Options of `infodisent eval`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Feature cache folder (default: the one the first head's training folder records).
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Split to evaluate (default: test, else val, else the only one).
    #[arg(long)]
    pub split: Option<String>,
    /// Trained head: a training folder (head.safetensors or linear.safetensors inside) or the file
    /// itself; repeat to compare several.
    #[arg(long = "head", required = true)]
    pub heads: Vec<PathBuf>,
    /// Also write one JSON report per head (and the original classifier) into this folder.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Runs the command.
pub fn run(args: Args, global: &Global) -> anyhow::Result<()> {
    let cache = FeatureCache::open(super::cache_of(args.cache.as_deref(), &args.heads[0])?)?;
    let split = super::chosen_split(&cache, args.split.as_deref())?;
    let rows = evaluate_runs(&cache, &split, &args.heads)?;
    if let Some(out) = &args.out {
        for (i, (_, r)) in rows.iter().enumerate() {
            if let Ok(r) = r {
                infodisent::fsutil::write_json_atomic(out.join(format!("eval-{i}.json")), r)?;
            }
        }
    }
    if global.json {
        return super::print_json(&rows_json(&rows));
    }
    print!("{}", comparison_table(&rows));
    Ok(())
}
