//! `infodisent train`: train an InfoDisent head or a linear probe on a feature cache.

use super::Global;
use infodisent::cache::FeatureCache;
use infodisent::head::HeadKind;
use infodisent::train::{TrainConfig, TrainOverrides};
use std::path::PathBuf;

/// Options of `infodisent train`. Flags override the TOML config, which overrides the defaults.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Feature cache folder (made by `infodisent extract`).
    #[arg(long)]
    pub cache: PathBuf,
    /// Output folder: config.json, checkpoint.safetensors, metrics.jsonl and the final head.
    #[arg(long)]
    pub out: PathBuf,
    /// Continue the run in --out from its last checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Head to train.
    #[arg(long, value_enum)]
    pub kind: Option<HeadKind>,
    #[command(flatten)]
    pub recipe: TrainOverrides,
}

impl Args {
    /// The effective configuration.
    pub fn config(&self) -> anyhow::Result<TrainConfig> {
        let cfg = self.recipe.config(self.kind)?;
        cfg.validate()?;
        Ok(cfg)
    }
}

/// Runs the command.
pub fn run(args: Args, global: &Global) -> anyhow::Result<()> {
    let cfg = args.config()?;
    let cache = FeatureCache::open(&args.cache)?;
    let started = std::time::Instant::now();
    let summary =
        infodisent::train::train_announcing(&cache, &cfg, &args.out, args.resume, |schedule| {
            if !global.json {
                eprintln!("{}", schedule.describe());
            }
        })?;
    if global.json {
        return super::print_json(&summary);
    }
    println!(
        "trained {} epochs ({} steps, {:.0} s): train loss {:.4}, train accuracy {:.2}%{}{}",
        summary.epochs,
        summary.steps,
        started.elapsed().as_secs_f64(),
        summary.train_loss,
        100.0 * summary.train_acc,
        summary.kept_val_acc.map_or(String::new(), |a| format!(
            ", kept epoch {} at validation accuracy {:.2}% (best {:.2}%)",
            summary.best_epoch.unwrap_or(0),
            100.0 * a,
            100.0 * summary.best_val_acc.unwrap_or(a)
        )),
        if summary.stopped_early {
            ", stopped early"
        } else {
            ""
        },
    );
    println!("head: {}", summary.head_file.display());
    Ok(())
}
