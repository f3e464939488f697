//! `infodisent eval`: accuracy, per-class accuracy and confusion matrices of trained heads and the
//! original classifier on a cached split, with a comparison table.

use super::Global;
use infodisent::cache::FeatureCache;
use infodisent::eval::{comparison_table, evaluate, evaluate_original, EvalReport, Evaluated};
use infodisent::head::TrainedHead;
use infodisent::runs;
use std::path::{Path, PathBuf};

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

fn load(path: &Path) -> anyhow::Result<(String, Evaluated)> {
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    Ok(match runs::load_trained(path)? {
        TrainedHead::InfoDisent(h) => (format!("{name} (InfoDisent)"), Evaluated::InfoDisent(h)),
        TrainedHead::Linear(l) => (format!("{name} (linear probe)"), Evaluated::Linear(l)),
    })
}

/// Runs the command.
pub fn run(args: Args, global: &Global) -> anyhow::Result<()> {
    let cache = FeatureCache::open(super::cache_of(args.cache.as_deref(), &args.heads[0])?)?;
    let split = super::chosen_split(&cache, args.split.as_deref())?;
    let mut rows: Vec<(String, Result<EvalReport, String>)> = Vec::new();
    for path in &args.heads {
        let (mut name, head) = load(path)?;
        // A head fitted to the original classifier is scored by agreement with it.
        let labelled = infodisent::train::cache_for_head(cache.clone(), path)?;
        if labelled.labels_are_original() {
            name.push_str(", agreement with the original");
        }
        let report = evaluate(&labelled, &split, &name, &head)?;
        rows.push((name, Ok(report)));
    }
    rows.push((
        "original classifier".into(),
        evaluate_original(&cache, &split)?,
    ));
    if let Some(out) = &args.out {
        for (i, (_, r)) in rows.iter().enumerate() {
            if let Ok(r) = r {
                infodisent::fsutil::write_json_atomic(out.join(format!("eval-{i}.json")), r)?;
            }
        }
    }
    if global.json {
        let json: Vec<serde_json::Value> = rows
            .iter()
            .map(|(name, r)| match r {
                Ok(r) => serde_json::to_value(r).unwrap_or_default(),
                Err(why) => serde_json::json!({ "name": name, "not_applicable": why }),
            })
            .collect();
        return super::print_json(&json);
    }
    print!("{}", comparison_table(&rows));
    Ok(())
}
