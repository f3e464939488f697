//! `infodisent explain`: why the head decided what it did, for image files or cached items.

use super::Global;
use infodisent::draw::save_png;
use infodisent::explain::render::class_figure;
use infodisent::explain::session::ExplainSession;
use infodisent::explain::{explain_classes, ImageExplanation};
use infodisent::runs::output_stem;
use std::path::PathBuf;

/// Options of `infodisent explain`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    trained: super::args::HeadArgs,
    #[command(flatten)]
    baseline: super::args::ProbeArg,
    #[command(flatten)]
    model: super::args::ModelArg,
    /// Explain this class instead of the predicted one.
    #[arg(long)]
    class: Option<usize>,
    /// Explain cached item N of `--split` (repeatable); needs no backbone run.
    #[arg(long = "item")]
    items: Vec<usize>,
    /// Split of `--item` and of class explanations (default: test, else val, else the only one).
    #[arg(long)]
    split: Option<String>,
    /// Class-level explanations: `all` or a comma-separated list of class indices.
    #[arg(long)]
    classes: Option<String>,
    /// Contributions listed on each side.
    #[arg(long, default_value_t = 5)]
    top: usize,
    /// Prototypes per channel.
    #[arg(long, default_value_t = 5)]
    k: usize,
    /// Prototype JSON to use or create (default: `<head>/prototypes.json`).
    #[arg(long)]
    prototypes: Option<PathBuf>,
    /// Output folder for `<image>.json`, `<image>.png`, `classes.json`, `class_<c>.png`.
    #[arg(long, default_value = "explanations")]
    out: PathBuf,
    /// Image files to explain (runs the backbone once per batch).
    images: Vec<PathBuf>,
}

/// Runs the command.
pub fn run(args: Args, global: &Global) -> anyhow::Result<()> {
    if args.images.is_empty() && args.items.is_empty() && args.classes.is_none() {
        return Err(infodisent::Error::Config(
            "nothing to explain: give image files, --item N or --classes all".into(),
        )
        .into());
    }
    let mut session = ExplainSession::open(
        &args.trained.cache_dir()?,
        &args.trained.head,
        args.baseline.probe.as_deref(),
        args.prototypes.clone(),
        args.k,
    )?;
    session.explainer.top = args.top;
    if let Some(root) = &args.trained.data_root.data_root {
        session = session.with_data_root(root)?;
    }
    let split = super::chosen_split(&session.cache, args.split.as_deref())?;
    let mut explanations: Vec<ImageExplanation> = Vec::new();
    for &i in &args.items {
        explanations.push(session.explain_item(&split, i, args.class)?);
    }
    if !args.images.is_empty() {
        let mut backbone = args.model.backbone(&session.cache, global)?;
        let mut features = backbone.feature_fn();
        explanations.extend(session.explain_files(&args.images, args.class, &mut features)?);
    }
    for (i, ex) in explanations.iter_mut().enumerate() {
        let stem = output_stem(i, &ex.source);
        session.write(ex, &args.out, &stem)?;
    }
    let mut class_list = Vec::new();
    if let Some(spec) = &args.classes {
        let wanted: Option<Vec<usize>> = match spec.as_str() {
            "all" => None,
            list => Some(
                list.split(',')
                    .map(|s| {
                        s.trim().parse::<usize>().map_err(|_| {
                            infodisent::Error::Config(format!(
                                "--classes: `{s}` is not a class index"
                            ))
                            .into()
                        })
                    })
                    .collect::<anyhow::Result<_>>()?,
            ),
        };
        class_list = explain_classes(
            &session.cache,
            &session.explainer,
            &split,
            wanted.as_deref(),
            args.top,
        )?;
        for c in &class_list {
            let fig = class_figure(
                c,
                &session.prototypes,
                &session.store,
                &session.preprocess,
                session.tile,
            )?;
            save_png(&fig, args.out.join(format!("class_{:04}.png", c.class)))?;
        }
        infodisent::fsutil::write_json_atomic(args.out.join("classes.json"), &class_list)?;
    }
    if global.json {
        return super::print_json(
            &serde_json::json!({ "images": explanations, "classes": class_list }),
        );
    }
    let names = &session.cache.manifest().classes;
    for ex in &explanations {
        let name = |c: usize| names.get(c).cloned().unwrap_or_else(|| c.to_string());
        println!("{}", ex.source);
        println!("  predicted {} ({}); explaining {} : logit {:.3} = {:.3} for + {:.3} against + bias {:.3}; p = {:.3}", ex.predicted, name(ex.predicted), name(ex.class), ex.logit, ex.positive_total, ex.negative_total, ex.bias, ex.probability);
        for c in &ex.positive {
            println!(
                "    + channel {:5}  {:8.3}  {:5.1}% of the evidence for  cell {:?}",
                c.channel,
                c.contribution,
                100.0 * c.share,
                c.cell
            );
        }
        for c in &ex.negative {
            println!(
                "    - channel {:5}  {:8.3}  {:5.1}% of the evidence against  cell {:?}",
                c.channel,
                c.contribution,
                100.0 * c.share,
                c.cell
            );
        }
        println!(
            "  {} channels carry 95% of the evidence; figure {}",
            ex.channels_for_95,
            args.out.join(ex.figure.as_deref().unwrap_or("")).display()
        );
    }
    for c in &class_list {
        let chans: Vec<String> = c
            .channels
            .iter()
            .map(|ch| {
                format!(
                    "{} ({:.2}, {:.0}%)",
                    ch.channel,
                    ch.mean_contribution,
                    100.0 * ch.top_frequency
                )
            })
            .collect();
        println!(
            "class {} {}: {}/{} correct; channels (mean contribution, in top-{}): {}",
            c.class,
            c.name.as_deref().unwrap_or(""),
            c.correct,
            c.images,
            args.top,
            chans.join(", ")
        );
    }
    Ok(())
}
