//! `infodisent mi`: train the mask and critic, then draw total, decision-related and redundant
//! information maps.

use super::Global;
use infodisent::cache::FeatureCache;
use infodisent::engine::Backbone;
use infodisent::mi::{self, Bound, ClassifierChoice, MapNegatives, MiConfig, MiModel, Pairing};
use std::path::PathBuf;

/// Mutual-information subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum MiCommand {
    /// Train the mask and critic on cached features (backbone and classifier frozen).
    Train(TrainArgs),
    /// Draw total, decision-related and redundant maps for images or cached items.
    Explain(ExplainArgs),
}

/// Options of `infodisent mi train`.
#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// Feature cache from `infodisent extract`.
    #[arg(long)]
    cache: PathBuf,
    /// Frozen classifier: `original` (the model's own, when its classes are the dataset's) or a
    /// linear-probe folder from `infodisent train --kind linear-probe` (or its `linear.safetensors`).
    #[arg(long, default_value = "original")]
    classifier: String,
    /// Output folder (checkpoints, metrics.jsonl, final parameters).
    #[arg(long)]
    out: PathBuf,
    /// Passes over the training items.
    #[arg(long, default_value_t = MiConfig::default().epochs)]
    epochs: usize,
    /// Images per step.
    #[arg(long, default_value_t = MiConfig::default().batch)]
    batch: usize,
    /// Adam learning rate of the critic.
    #[arg(long, default_value_t = MiConfig::default().lr)]
    lr: f64,
    /// Adam learning rate of the mask.
    #[arg(long, default_value_t = MiConfig::default().mask_lr)]
    mask_lr: f64,
    /// Seed of initialisation, item order and negatives.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Mutual-information bound: Donsker–Varadhan, Jensen–Shannon or InfoNCE.
    #[arg(long, value_enum, default_value_t = Bound::Dv)]
    bound: Bound,
    /// Hidden channels of the mask's first 3×3 convolution.
    #[arg(long, default_value_t = MiConfig::default().mask_hidden)]
    mask_hidden: usize,
    /// Width the critic projects z and x to.
    #[arg(long, default_value_t = MiConfig::default().proj_dim)]
    proj_dim: usize,
    /// Hidden width of the critic MLP.
    #[arg(long, default_value_t = MiConfig::default().critic_hidden)]
    critic_hidden: usize,
    /// Negatives per representation, drawn from other images of the batch.
    #[arg(long, default_value_t = MiConfig::default().negatives)]
    negatives: usize,
    /// Weight of mean(λ) in the loss.
    #[arg(long, default_value_t = MiConfig::default().sparsity)]
    sparsity: f64,
    /// Let the masked MI term train the mask too (off: only CE and sparsity shape λ).
    #[arg(long)]
    mask_from_mi: bool,
    /// Control run: pair each image's local features with another image's representation.
    #[arg(long)]
    shuffled_pairs: bool,
    /// What each cell's score is compared with in the maps: `representations` (the cell's
    /// feature scored with other images' representations; cancels what the critic learned
    /// about a feature alone) or `locals` (other images' cells scored with this image's
    /// representation, the training bound's form).
    #[arg(long, value_enum, default_value_t = MapNegatives::Representations)]
    map_negatives: MapNegatives,
    /// Use at most this many training items per epoch.
    #[arg(long)]
    max_items: Option<usize>,
    /// Held-out items evaluated after each epoch.
    #[arg(long, default_value_t = MiConfig::default().eval_items)]
    eval_items: usize,
    /// Training split.
    #[arg(long, default_value = "train")]
    train_split: String,
    /// Held-out split.
    #[arg(long, default_value = "test")]
    eval_split: String,
    /// Continue the run in --out from its last finished epoch.
    #[arg(long)]
    resume: bool,
}

/// Options of `infodisent mi explain`.
#[derive(clap::Args, Debug)]
pub struct ExplainArgs {
    /// Output folder of `infodisent mi train`.
    #[arg(long)]
    mi: PathBuf,
    /// The feature cache the run was trained on (grid, preprocessing, classes, model; default:
    /// the one the mi run records).
    #[arg(long)]
    cache: Option<PathBuf>,
    /// Explain cached item N of --split (repeatable); needs no backbone run.
    #[arg(long = "item")]
    items: Vec<usize>,
    /// Split of --item (default: test, else val, else the only one).
    #[arg(long)]
    split: Option<String>,
    #[command(flatten)]
    data_root: super::args::DataRoot,
    #[command(flatten)]
    model: super::args::ModelArg,
    /// Output folder for `<name>_{total,decision,redundant,panel}.png` and `<name>.json`.
    #[arg(long, default_value = "mi-explanations")]
    out: PathBuf,
    /// Image files to explain (runs the backbone).
    images: Vec<PathBuf>,
}

/// Runs the command.
pub fn run(cmd: MiCommand, global: &Global) -> anyhow::Result<()> {
    match cmd {
        MiCommand::Train(a) => train(a, global),
        MiCommand::Explain(a) => explain(a, global),
    }
}

fn train(a: TrainArgs, global: &Global) -> anyhow::Result<()> {
    let cfg = MiConfig {
        bound: a.bound,
        map_negatives: a.map_negatives,
        epochs: a.epochs,
        batch: a.batch,
        negatives: a.negatives,
        mask_from_mi: a.mask_from_mi,
        lr: a.lr,
        mask_lr: a.mask_lr,
        seed: a.seed,
        mask_hidden: a.mask_hidden,
        proj_dim: a.proj_dim,
        critic_hidden: a.critic_hidden,
        sparsity: a.sparsity,
        pairing: if a.shuffled_pairs {
            Pairing::Shuffled
        } else {
            Pairing::Joint
        },
        train_split: a.train_split,
        eval_split: a.eval_split,
        max_train_items: a.max_items,
        eval_items: a.eval_items,
        ..MiConfig::default()
    };
    let cache = FeatureCache::open(&a.cache)?;
    let choice = ClassifierChoice::from_arg(&a.classifier);
    let (classifier, source) = mi::resolve_classifier(&cache, &choice)?;
    let summary = mi::train(&cache, &classifier, &source, &cfg, &a.out, a.resume)?;
    if global.json {
        return super::print_json(&summary);
    }
    println!("epoch  held-out DV total  DV masked  masked acc  mean λ");
    for m in &summary.metrics {
        println!(
            "{:5}  {:17.4}  {:9.4}  {:10.3}  {:6.3}",
            m.epoch,
            m.heldout_dv_raw,
            m.heldout_dv_masked,
            m.heldout_masked_accuracy,
            m.heldout_mean_lambda
        );
    }
    println!(
        "{} epochs ({} this run); model in {}",
        summary.epochs,
        summary.epochs_run,
        a.out.display()
    );
    Ok(())
}

fn explain(a: ExplainArgs, global: &Global) -> anyhow::Result<()> {
    let model = MiModel::load(&a.mi)?;
    let cache_dir = super::cache_of(a.cache.as_deref(), &a.mi)?;
    let cache = a.data_root.apply(FeatureCache::open(&cache_dir)?)?;
    let split = super::chosen_split(&cache, a.split.as_deref())?;
    let mut backbone = match a.images.is_empty() {
        true => None,
        false => Some(a.model.backbone(&cache, global)?),
    };
    let mut features = backbone.as_mut().map(Backbone::feature_fn);
    let explanations = mi::explain_all(
        &model,
        &cache,
        &split,
        &a.items,
        &a.images,
        features
            .as_mut()
            .map(|f| f as &mut infodisent::engine::FeatureFn<'_>),
        &a.out,
    )?;
    if global.json {
        return super::print_json(&explanations);
    }
    let cell = |c: (usize, usize)| format!("({}, {})", c.0, c.1);
    for ex in &explanations {
        println!("{}", ex.source);
        println!(
            "  masked path predicts {}; peaks: total {}, decision-related {}, redundant {}; panel {}",
            ex.masked_prediction_name,
            cell(ex.total_peak),
            cell(ex.decision_peak),
            cell(ex.redundant_peak),
            ex.files.panel.display()
        );
    }
    Ok(())
}
