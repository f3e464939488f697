//! `infodisent metrics`: channels for 95%, RV coefficients, pointing game, deletion/insertion.

use super::Global;
use infodisent::engine::Backbone;
use infodisent::metrics::{measure, MetricsOptions};
use std::path::PathBuf;

/// Options of `infodisent metrics`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    trained: super::args::HeadArgs,
    #[command(flatten)]
    baseline: super::args::ProbeArg,
    #[command(flatten)]
    model: super::args::ModelArg,
    /// Split to measure (default: test, else val, else the only one).
    #[arg(long)]
    split: Option<String>,
    /// Images for deletion/insertion (re-runs the backbone; 0 skips it).
    #[arg(long, default_value_t = 16)]
    deletion: usize,
    /// Steps per deletion/insertion curve.
    #[arg(long, default_value_t = 16)]
    steps: usize,
    /// Images stacked for the RV coefficient, sampled across the classes (its null level falls
    /// with more images).
    #[arg(long, default_value_t = 1024)]
    rv_images: usize,
    /// Channel pairs sampled for the RV coefficient.
    #[arg(long, default_value_t = 2000)]
    rv_pairs: usize,
    /// Ground-truth boxes for the pointing game (default: `annotations.json` of a generated
    /// dataset the cache was extracted from, else the object boxes of a CUB, Stanford Cars,
    /// Stanford Dogs or ImageNet cache).
    #[arg(long)]
    annotations: Option<PathBuf>,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Runs the command.
pub fn run(args: Args, global: &Global) -> anyhow::Result<()> {
    let cache = args.trained.open_cache()?;
    let head = args.trained.load_head()?;
    let baseline = infodisent::baseline::choose_or_warn(&cache, args.baseline.probe.as_deref())?;
    let split = super::chosen_split(&cache, args.split.as_deref())?;
    let opts = MetricsOptions {
        split: split.clone(),
        rv_images: args.rv_images,
        rv_pairs: args.rv_pairs,
        deletion_images: args.deletion,
        steps: args.steps,
        ..MetricsOptions::default()
    };
    let mut backbone = match args.deletion {
        0 => None,
        _ => Some(args.model.backbone(&cache, global)?),
    };
    let mut features = backbone.as_mut().map(Backbone::feature_fn);
    let report = measure(
        &cache,
        &head,
        baseline.as_ref(),
        args.annotations.as_deref(),
        features
            .as_mut()
            .map(|f| f as &mut infodisent::engine::FeatureFn<'_>),
        &opts,
    )?;
    if let Some(out) = &args.out {
        infodisent::fsutil::write_json_atomic(out, &report)?;
    }
    if global.json {
        return super::print_json(&report);
    }
    println!(
        "split `{}`: {} images, InfoDisent accuracy {:.2}%",
        report.split,
        report.images,
        100.0 * report.accuracy
    );
    let counts =
        |name: &str, c: &infodisent::metrics::concentration::ChannelCounts, extra: String| {
            println!(
                "  {name:<18} paper {:.1} / {:.1}   strict {:.1} / {:.1}{extra}",
                c.paper.mean, c.paper.median, c.strict.mean, c.strict.median
            );
        };
    println!("channels for 95%   mean / median; paper: true class, net total; strict: predicted class, positive total; gauge-fixed W");
    counts("InfoDisent", &report.channels_for_95, String::new());
    if let (Some(name), Some(b), Some(acc)) = (
        &report.baseline,
        &report.baseline_channels_for_95,
        report.baseline_accuracy,
    ) {
        counts(name, b, format!("   (accuracy {:.2}%)", 100.0 * acc));
    }
    let bars: Vec<String> = report
        .channels_for_95
        .strict
        .histogram
        .iter()
        .map(|b| format!("≤{}:{}", b.upto, b.count))
        .collect();
    println!("  histogram (InfoDisent, strict): {}", bars.join("  "));
    let rv = &report.rv;
    println!(
        "RV coefficient     {} images, {} pairs; constant channels left out: {} / {}",
        rv.images, rv.pairs, rv.maps.infodisent.constant_channels, rv.maps.raw.constant_channels
    );
    let stat = |stat: Option<&infodisent::rv::RvStat>| {
        stat.map_or("-".to_owned(), |s| {
            format!("{:.4} − null {:.4} = {:.4}", s.mean, s.null, s.excess())
        })
    };
    let baseline = report.baseline.as_deref().unwrap_or("baseline");
    for (reading, set) in [("maps", Some(&rv.maps)), ("pooled", rv.pooled.as_ref())] {
        let Some(set) = set else { continue };
        println!(
            "  {reading:<7} all channels: InfoDisent {}; raw {}",
            stat(Some(&set.infodisent)),
            stat(Some(&set.raw))
        );
        println!(
            "  {reading:<7} used channels: InfoDisent {}; {baseline} {} (each class's {} largest gauge-fixed weights)",
            stat(set.infodisent_used.as_ref()),
            stat(set.baseline_used.as_ref()),
            infodisent::rv::USED_PER_CLASS
        );
        println!(
            "  {reading:<7} within each class: InfoDisent {}; {baseline} {} (each class's own channels over its own images)",
            stat(set.infodisent_within.as_ref()),
            stat(set.baseline_within.as_ref()),
        );
    }
    println!(
        "weights            {:.1}% of W exactly zero; ‖U − I‖/√D = {:.3}",
        100.0 * report.weights.zero_share,
        report.weights.rotation_from_identity
    );
    for p in &report.pointing {
        println!(
            "pointing game      {:20} {:.1}% ({}/{})",
            p.method,
            100.0 * p.accuracy,
            p.hits,
            p.total
        );
    }
    for p in &report.counter_pointing {
        println!(
            "counter-evidence   {:20} {:.1}% ({}/{})",
            p.method,
            100.0 * p.accuracy,
            p.hits,
            p.total
        );
    }
    if let Some(p) = &report.part_purity {
        println!(
            "part purity        {:.1}% over {} channels ({} per class, top {} training images each, part locations inside the channel's cell)",
            100.0 * p.purity,
            p.channels.len(),
            p.channels_per_class,
            p.k
        );
    }
    for f in &report.faithfulness {
        println!("deletion/insertion {:20} deletion AUC {:.3} (lower is better), insertion AUC {:.3} (higher is better), {} images", f.method, f.deletion_auc, f.insertion_auc, f.images);
    }
    Ok(())
}
