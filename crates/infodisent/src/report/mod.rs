//! The report: a static HTML folder that opens from disk with no server and no network. A
//! summary with accuracies and metrics, a page per class, a prototype gallery, per-image
//! explanations for a sample of images and, when a mutual-information run is given, its maps
//! beside InfoDisent's heatmaps.

pub mod page;
pub mod plots;

use crate::cache::FeatureCache;
use crate::dataset::ImageStore;
use crate::draw::{save_png, BLUE, RED};
use crate::error::{Error, Result};
use crate::explain::render::{
    class_figure, image_figure, network_view, overlay, write_prototype_images,
};
use crate::explain::Polarity;
use crate::explain::{
    dense, explain_classes, find_prototypes, ClassExplanation, Grid, Heatmap, ImageExplainer,
    ImageExplanation, Prototypes,
};
use crate::fsutil::{write_atomic, write_json_atomic};
use crate::metrics::concentration::ConcentrationStats;
use crate::metrics::correlation::{channel_correlation, ChannelCorrelation};
use crate::metrics::{cache_metrics, MetricsOptions, MetricsReport};
use crate::mi::maps::{explain_cached_item, MiExplanation};
use crate::mi::model::MiModel;
use crate::rv::{RvReport, RvStat};
use maud::{html, Markup};
use page::{
    class_channels, class_name, classes_table, image_card, num, page, pct, proto_strip, Links,
};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// What goes into the report and how much of it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReportOptions {
    /// Split the summary, classes and sample images come from.
    pub split: String,
    /// Split prototypes are searched in (falls back to `split` when absent).
    pub prototype_split: String,
    /// Images with a full explanation page entry.
    pub sample_images: usize,
    /// Of those, how many also get mutual-information maps.
    pub mi_images: usize,
    /// Channels listed per class.
    pub class_channels: usize,
    /// Prototypes per channel.
    pub prototypes: usize,
    /// Side of each picture tile in figures, in pixels.
    pub tile: u32,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            split: "test".into(),
            prototype_split: "train".into(),
            sample_images: 24,
            mi_images: 8,
            class_channels: 5,
            prototypes: 5,
            tile: 96,
        }
    }
}

/// Where the report's inputs live.
#[derive(Debug, Clone)]
pub struct ReportSources<'a> {
    /// The feature cache the head was trained on.
    pub cache: &'a FeatureCache,
    /// Output folder of `infodisent train` for the InfoDisent head.
    pub head_dir: &'a Path,
    /// Output folder of `infodisent train --kind linear-probe`, the baseline.
    pub probe_dir: Option<&'a Path>,
    /// Output folder of `infodisent mi train`.
    pub mi_dir: Option<&'a Path>,
    /// Metrics already computed by `infodisent metrics` (computed here from the cache if absent).
    pub metrics: Option<MetricsReport>,
}

/// What was built.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReportSummary {
    /// The report folder.
    pub dir: PathBuf,
    /// Entry page.
    pub index: PathBuf,
    /// HTML pages written.
    pub pages: usize,
    /// Images of the split summarised.
    pub images: usize,
    /// The metrics shown.
    pub metrics: MetricsReport,
}

/// Everything the pages are made from.
struct Content<'a> {
    cache: &'a FeatureCache,
    opts: &'a ReportOptions,
    metrics: MetricsReport,
    classes: Vec<ClassExplanation>,
    prototypes: Prototypes,
    gallery: Vec<usize>,
    samples: Vec<ImageExplanation>,
    mi: Vec<(MiExplanation, String)>,
    training: Curves,
    rv_training: Curves,
    correlation: ChannelCorrelation,
    class_names: Vec<String>,
}

/// Builds the report into `out` (created if needed; files are replaced atomically).
pub fn build(src: &ReportSources, opts: &ReportOptions, out: &Path) -> Result<ReportSummary> {
    let cache = src.cache;
    let head = crate::runs::load_head(src.head_dir)?;
    let grid = Grid::from_shape(cache.feature_shape());
    let pre = cache.manifest().preprocess.clone();
    let class_names = cache.manifest().classes.clone();
    let baseline = crate::baseline::choose_or_warn(cache, src.probe_dir)?;

    let metrics = match &src.metrics {
        Some(m) => m.clone(),
        None => cache_metrics(
            cache,
            &head,
            baseline.as_ref(),
            None,
            &MetricsOptions {
                split: opts.split.clone(),
                ..Default::default()
            },
        )?,
    };
    let explainer = ImageExplainer::new(
        head.clone(),
        baseline.clone().map(|b| b.classifier),
        grid,
        cache.manifest().input_size,
        class_names.clone(),
    )?;
    let classes = explain_classes(cache, &explainer, &opts.split, None, opts.class_channels)?;
    let proto_split = if cache.manifest().splits.contains_key(&opts.prototype_split) {
        opts.prototype_split.as_str()
    } else {
        opts.split.as_str()
    };
    let prototypes = find_prototypes(cache, &head, proto_split, opts.prototypes)?;
    prototypes.save(out.join(crate::runs::PROTOTYPES_FILE))?;

    let store = ImageStore::default();
    let samples = explain_samples(cache, &explainer, &opts.split, opts.sample_images)?;
    let gallery: Vec<usize> = classes
        .iter()
        .flat_map(|c| c.channels.iter().map(|ch| ch.channel))
        .chain(
            samples
                .iter()
                .flat_map(|s| s.positive.iter().chain(&s.negative).map(|c| c.channel)),
        )
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    write_prototype_images(
        &prototypes,
        &gallery,
        &out.join("prototypes"),
        &store,
        &pre,
        opts.tile,
    )?;
    classes.par_iter().try_for_each(|class| {
        let fig = class_figure(class, &prototypes, &store, &pre, opts.tile)?;
        save_png(
            &fig,
            out.join("classes")
                .join(format!("class-{:04}.png", class.class)),
        )
    })?;
    let mut samples = samples;
    samples.par_iter_mut().try_for_each(|s| -> Result<()> {
        let view = network_view(store.get(&s.source)?.as_ref(), &pre)?;
        let fig = image_figure(&view, s, Some(&prototypes), &store, &pre, opts.tile)?;
        let name = format!("item-{:06}.png", s.item.unwrap_or(0));
        save_png(&fig, out.join("images").join(&name))?;
        s.figure = Some(name);
        write_json_atomic(
            out.join("images")
                .join(format!("item-{:06}.json", s.item.unwrap_or(0))),
            s,
        )
    })?;
    let mi = match src.mi_dir {
        Some(dir) => mi_section(
            dir,
            cache,
            &opts.split,
            &samples[..samples.len().min(opts.mi_images)],
            &store,
            &pre,
            out,
        )?,
        None => Vec::new(),
    };
    let content = Content {
        cache,
        opts,
        metrics,
        classes,
        prototypes,
        gallery,
        samples,
        mi,
        training: accuracy_curves(src.head_dir, src.probe_dir)?,
        rv_training: rv_curves(src.head_dir, src.probe_dir)?,
        correlation: channel_correlation(cache, &opts.split, &head)?,
        class_names,
    };
    let pages = write_pages(&content, out)?;
    write_json_atomic(out.join(crate::runs::METRICS_FILE), &content.metrics)?;
    Ok(ReportSummary {
        dir: out.to_path_buf(),
        index: out.join("index.html"),
        pages,
        images: content.metrics.images,
        metrics: content.metrics,
    })
}

/// Explains `n` images spread evenly over the split, reading only the shards they live in.
fn explain_samples(
    cache: &FeatureCache,
    explainer: &ImageExplainer,
    split: &str,
    n: usize,
) -> Result<Vec<ImageExplanation>> {
    let items = cache.items(split)?;
    // The same classes get the same share whatever order the cache was written in.
    let picks = crate::cache::balanced_sample(&items, n, 0);
    let len = explainer.grid.len();
    let rows = cache.read_items(split, &picks)?;
    let mut out = Vec::with_capacity(picks.len());
    for (row, &i) in picks.iter().enumerate() {
        let mut ex = explainer.explain(
            &rows.features[row * len..(row + 1) * len],
            None,
            &items[i].path,
        )?;
        ex.item = Some(i);
        ex.label = usize::try_from(items[i].label).ok();
        out.push(ex);
    }
    Ok(out)
}

/// Mutual-information maps for the sampled images, each with InfoDisent's overlays beside it.
fn mi_section(
    mi_dir: &Path,
    cache: &FeatureCache,
    split: &str,
    samples: &[ImageExplanation],
    store: &ImageStore,
    pre: &crate::preprocess::Preprocess,
    out: &Path,
) -> Result<Vec<(MiExplanation, String)>> {
    let model = MiModel::load(mi_dir)?;
    let dir = out.join("mi");
    let mut result = Vec::with_capacity(samples.len());
    for s in samples {
        let item = s.item.unwrap_or(0);
        let mut ex = explain_cached_item(&model, cache, split, item, &dir, store)?;
        for f in [
            &mut ex.files.total,
            &mut ex.files.decision,
            &mut ex.files.redundant,
            &mut ex.files.panel,
            &mut ex.files.json,
        ] {
            *f = f
                .strip_prefix(out)
                .map(Path::to_path_buf)
                .unwrap_or_else(|_| f.clone());
        }
        let view = network_view(store.get(&s.source)?.as_ref(), pre)?;
        let hm = &s.heatmaps;
        let (positive, negative) = (hm.get(dense::POSITIVE), hm.get(dense::NEGATIVE));
        let shared = positive
            .map_or(0.0, Heatmap::max)
            .max(negative.map_or(0.0, Heatmap::max));
        let mut side = view;
        for (map, colour) in [(positive, RED), (negative, BLUE)] {
            if let Some(map) = map {
                side = overlay(&side, map, colour, shared);
            }
        }
        let name = format!("mi/item-{item:06}_infodisent.png");
        save_png(&side, out.join(&name))?;
        result.push((ex, name));
    }
    Ok(result)
}

/// Named (epoch, value) series.
type Curves = Vec<(String, Vec<(f64, f64)>)>;

/// Series from the `metrics.jsonl` training logs of the head and the probe: the values `pick`
/// finds in each epoch's line, by name.
fn training_curves(
    head_dir: &Path,
    probe_dir: Option<&Path>,
    pick: impl Fn(&serde_json::Value) -> Vec<(String, f64)>,
) -> Result<Curves> {
    let mut series: Curves = Vec::new();
    for (who, dir) in [("infodisent", Some(head_dir)), ("probe", probe_dir)] {
        let Some(dir) = dir else { continue };
        let path = dir.join(crate::runs::METRICS_LOG);
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let v: serde_json::Value = serde_json::from_str(line)
                .map_err(|e| Error::cache(&path, format!("bad JSON line: {e}")))?;
            let Some(epoch) = v.get("epoch").and_then(|e| e.as_f64()) else {
                continue;
            };
            for (k, y) in pick(&v) {
                let name = format!("{who} {k}");
                match series.iter_mut().find(|s| s.0 == name) {
                    Some(s) => s.1.push((epoch, y)),
                    None => series.push((name, vec![(epoch, y)])),
                }
            }
        }
    }
    Ok(series)
}

/// The numeric fields of `object` whose names `keep` accepts.
fn fields(object: Option<&serde_json::Value>, keep: impl Fn(&str) -> bool) -> Vec<(String, f64)> {
    object
        .and_then(|o| o.as_object())
        .into_iter()
        .flatten()
        .filter(|(k, _)| keep(k))
        .filter_map(|(k, v)| Some((k.clone(), v.as_f64()?)))
        .collect()
}

/// Accuracies along training.
fn accuracy_curves(head_dir: &Path, probe_dir: Option<&Path>) -> Result<Curves> {
    training_curves(head_dir, probe_dir, |v| {
        fields(Some(v), |k| k.ends_with("acc") || k.ends_with("accuracy"))
    })
}

/// RV above its null along training (runs trained with `trace_rv`), over all channels and over
/// those the decisions use; the raw channels' level once, from the head's log.
fn rv_curves(head_dir: &Path, probe_dir: Option<&Path>) -> Result<Curves> {
    let mut curves = training_curves(head_dir, probe_dir, |v| {
        fields(v.get("rv"), |k| {
            matches!(k, "maps" | "pooled" | "maps_used" | "pooled_used") || k.starts_with("raw")
        })
    })?;
    curves.retain(|(name, _)| !(name.starts_with("probe raw")));
    for (name, _) in &mut curves {
        *name = name.replace("infodisent raw", "raw");
    }
    Ok(curves)
}

fn write_page(out: &Path, rel: &str, title: &str, depth: usize, body: Markup) -> Result<()> {
    write_atomic(out.join(rel), page(title, depth, body).as_bytes())
}

/// The report's files: prototypes under `prototypes/`, class pages under `classes/`, linked from
/// a page `depth` folders below the root.
struct ReportLinks {
    up: String,
}

impl ReportLinks {
    fn at_depth(depth: usize) -> Self {
        ReportLinks {
            up: "../".repeat(depth),
        }
    }
}

impl Links for ReportLinks {
    fn class_page(&self, class: usize) -> String {
        format!("{}classes/class-{class:04}.html", self.up)
    }
    fn channel_page(&self, _: usize) -> Option<String> {
        None
    }
    fn prototype(&self, channel: usize, polarity: Polarity, rank: usize, full: bool) -> String {
        let tag = polarity.pick("pos", "neg");
        let kind = if full { "full" } else { "crop" };
        format!(
            "{}prototypes/ch{channel:04}_{tag}{rank}_{kind}.png",
            self.up
        )
    }
}

fn concentration_row(name: &str, c: &crate::metrics::concentration::ChannelCounts) -> Markup {
    html! { tr { td { (name) }
    td { (num(c.paper.mean, 2)) " / " (num(c.paper.median, 1)) }
    td { (num(c.strict.mean, 2)) " / " (num(c.strict.median, 1)) }
    td { (c.strict.images) @if c.paper_undefined > 0 { " (" (c.paper_undefined) " with a non-positive net total left out of the paper's reading)" } } } }
}

/// One row of the RV table: a set of channels in both readings (maps, pooled).
fn rv_row(name: &str, maps: Option<RvStat>, pooled: Option<RvStat>) -> Markup {
    let cells = |r: Option<RvStat>| match r {
        Some(r) => {
            html! { td { (num(r.mean, 4)) } td { (num(r.null, 4)) } td { (num(r.excess(), 4)) } }
        }
        None => html! { td { "-" } td { "-" } td { "-" } },
    };
    html! { tr { td { (name) } (cells(maps)) (cells(pooled)) } }
}

fn rv_table(rv: &RvReport, baseline: &str) -> Markup {
    let pooled = rv.pooled.as_ref();
    html! {
        table {
            tr { th { "channels" } th { "maps: RV" } th { "null" } th { "RV − null" } th { "pooled: RV" } th { "null" } th { "RV − null" } }
            (rv_row("InfoDisent, all (after U)", Some(rv.maps.infodisent), pooled.map(|p| p.infodisent)))
            (rv_row("raw backbone, all (U = I)", Some(rv.maps.raw), pooled.map(|p| p.raw)))
            (rv_row("InfoDisent, used by its decisions", rv.maps.infodisent_used, pooled.and_then(|p| p.infodisent_used)))
            (rv_row(&format!("{baseline}, used by its decisions"), rv.maps.baseline_used, pooled.and_then(|p| p.baseline_used)))
            (rv_row("InfoDisent, each class's own, within the class", rv.maps.infodisent_within, pooled.and_then(|p| p.infodisent_within)))
            (rv_row(&format!("{baseline}, each class's own, within the class"), rv.maps.baseline_within, pooled.and_then(|p| p.baseline_within)))
        }
    }
}

fn write_pages(c: &Content, out: &Path) -> Result<usize> {
    let m = &c.metrics;
    let manifest = c.cache.manifest();
    let hist = |s: &ConcentrationStats| -> Vec<(String, f64)> {
        s.histogram
            .iter()
            .filter(|b| b.count > 0 || b.upto <= 5)
            .map(|b| (format!("≤{}", b.upto), b.count as f64))
            .collect()
    };
    plots::bar_chart(
        &out.join("plots/channels95_infodisent.svg"),
        "Channels for 95% — InfoDisent",
        "channels",
        "images",
        &hist(&m.channels_for_95.strict),
    )?;
    if let Some(b) = &m.baseline_channels_for_95 {
        plots::bar_chart(
            &out.join("plots/channels95_baseline.svg"),
            "Channels for 95% — baseline",
            "channels",
            "images",
            &hist(&b.strict),
        )?;
    }
    if !c.training.is_empty() {
        plots::line_chart(
            &out.join("plots/training.svg"),
            "Accuracy during training",
            "epoch",
            &c.training,
        )?;
    }
    if !c.rv_training.is_empty() {
        plots::line_chart(
            &out.join("plots/rv_training.svg"),
            "RV − null during training",
            "epoch",
            &c.rv_training,
        )?;
    }
    write_atomic(
        out.join("plots/correlation.svg"),
        plots::correlation_svg(&c.correlation)?.as_bytes(),
    )?;
    let summary = html! {
        div.card {
            p { "Model " b { (manifest.model) } ", features from " code { (manifest.feature_node) } " of shape "
                (format!("{}×{}×{}", manifest.feature_shape[0], manifest.feature_shape[1], manifest.feature_shape[2]))
                " at " (manifest.input_size) " px; " (manifest.classes.len()) " classes." }
            p.muted { @for (name, s) in &manifest.splits { (name) ": " (s.num_items) " images" @if !s.skipped.is_empty() { " (" (s.skipped.len()) " skipped)" } ". " } }
        }
        h2 { "Accuracy on " (m.split) " (" (m.images) " images)" }
        table {
            tr { th { "head" } th { "top-1" } }
            tr { td { "InfoDisent" } td { (pct(m.accuracy)) } }
            @if let (Some(name), Some(acc)) = (&m.baseline, m.baseline_accuracy) { tr { td { (name) } td { (pct(acc)) } } }
        }
        h2 { "How many channels decide (channels for 95%)" }
        p.muted { "Paper's reading: the true class, 95% of the net total of its contributions (negatives included). "
            "Strict reading: the predicted class, 95% of its positive contributions. "
            "Both on gauge-fixed weights (InfoDisent W − min over classes, baseline W − mean over classes), "
            "since a row shared by every class decides nothing. Histograms: strict reading." }
        table {
            tr { th { "head" } th { "paper: mean / median" } th { "strict: mean / median" } th { "images" } }
            (concentration_row("InfoDisent", &m.channels_for_95))
            @if let Some(b) = &m.baseline_channels_for_95 { (concentration_row(m.baseline.as_deref().unwrap_or("baseline"), b)) }
        }
        div.gallery {
            img src="plots/channels95_infodisent.svg" alt="channels for 95% histogram, InfoDisent";
            @if m.baseline_channels_for_95.is_some() { img src="plots/channels95_baseline.svg" alt="channels for 95% histogram, baseline"; }
        }
        h2 { "Disentanglement (RV coefficient, lower is more disentangled)" }
        (rv_table(&m.rv, m.baseline.as_deref().unwrap_or("baseline")))
        div.gallery {
            img src="plots/correlation.svg" alt="|correlation| of the deciding channels, rotated and raw";
            @if !c.rv_training.is_empty() { img src="plots/rv_training.svg" alt="RV − null during training"; }
        }
        p.muted { "The picture: |correlation| over " (c.correlation.images) " images between the pooled values of the " (c.correlation.channels.len()) " channels the decisions use, grouped by class; left rotated by U, right the backbone's own channels of the same numbers (where the rotation started). "
            "Disentangled channels leave the left one white off the diagonal." }
        p.muted { (m.rv.pairs) " channel pairs over " (m.rv.images) " images sampled across the classes. Maps: each channel's spatial maps stacked over the images. Pooled: the one number per image the classifier reads (InfoDisent's max − min of a rotated channel, a raw channel's average), where RV is the squared correlation. "
            "Used: each class's " (crate::rv::USED_PER_CLASS) " largest gauge-fixed weights. The null pairs each channel with another image's: the RV that unrelated channels reach with this many images. "
            "W: " (pct(m.weights.zero_share)) " of the weights are exactly zero; ‖U − I‖/√D = " (num(m.weights.rotation_from_identity, 3)) "." }
        @if !m.faithfulness.is_empty() {
            h2 { "Faithfulness of heatmaps" }
            table {
                tr { th { "method" } th { "deletion AUC ↓" } th { "insertion AUC ↑" } th { "images" } }
                @for f in &m.faithfulness { tr { td { (f.method) } td { (num(f.deletion_auc, 3)) } td { (num(f.insertion_auc, 3)) } td { (f.images) } } }
            }
        }
        @if !m.pointing.is_empty() {
            h2 { "Pointing game" }
            table {
                tr { th { "method" } th { "hits" } th { "accuracy" } }
                @for p in m.pointing.iter().chain(&m.counter_pointing) { tr { td { (p.method) } td { (p.hits) "/" (p.total) } td { (pct(p.accuracy)) } } }
            }
        }
        @if !c.training.is_empty() { h2 { "Training" } img src="plots/training.svg" alt="accuracy per epoch"; }
    };
    write_page(out, "index.html", "InfoDisent report", 0, summary)?;

    let (top, below) = (ReportLinks::at_depth(0), ReportLinks::at_depth(1));
    let classes = html! {
        p.muted { "Ranked by accuracy on " (m.split) ", best first." }
        (classes_table(&top, &c.classes, &c.class_names))
    };
    write_page(out, "classes.html", "Classes", 0, classes)?;
    for cl in &c.classes {
        let body = html! {
            p { (cl.images) " images, " (cl.correct) " classified correctly; mean logit " (num(cl.mean_logit as f64, 2)) "." }
            img src=(format!("class-{:04}.png", cl.class)) alt=(format!("prototypes of class {}", cl.class));
            (class_channels(&below, cl, &c.prototypes, &c.class_names, c.opts.tile))
        };
        write_page(
            out,
            &format!("classes/class-{:04}.html", cl.class),
            &class_name(&c.class_names, cl.class),
            1,
            body,
        )?;
    }

    let gallery = html! {
        p.muted { "Each channel's strongest training images (" (c.prototypes.split) " split), with the deciding cell boxed in yellow. Click a crop for the full image." }
        @for &ch in &c.gallery {
            div.card {
                b { "channel " (ch) }
                p.pos { "positive prototypes" } (proto_strip(&top, &c.prototypes, &c.class_names, ch, Polarity::Positive, c.opts.tile))
                p.neg { "negative prototypes" } (proto_strip(&top, &c.prototypes, &c.class_names, ch, Polarity::Negative, c.opts.tile))
            }
        }
    };
    write_page(out, "prototypes.html", "Prototype gallery", 0, gallery)?;

    let images = html! {
        p.muted { "Top row: the image, positive evidence (red), negative evidence (blue)" @if c.samples.iter().any(|s| s.heatmaps.get(crate::explain::cam::NAME).is_some()) { ", CAM of the baseline" } ". Below: the strongest channels for and against, each with its prototypes." }
        @for s in &c.samples {
            (image_card(&top, s, &c.class_names, s.figure.as_ref().map(|f| format!("images/{f}")).as_deref()))
        }
    };
    write_page(out, "images.html", "Explained images", 0, images)?;

    let mi = html! {
        @if c.mi.is_empty() {
            p.muted { "No mutual-information run was given (build the report with " code { "--mi DIR" } " after " code { "infodisent mi train" } ")." }
        } @else {
            p.muted { "Per image: InfoDisent's positive (red) and negative (blue) evidence, then the information the representation holds about each position (total), the part the decision uses (decision-related) and the rest (redundant)." }
            @for (ex, side) in &c.mi {
                div.card {
                    p { b title=(ex.source) { (page::short_source(&ex.source)) } " — masked path predicts " (ex.masked_prediction_name) }
                    div.gallery {
                        figure { img src=(side) width="224" alt="InfoDisent evidence"; figcaption { "InfoDisent ±" } }
                        figure { img src=(ex.files.panel.to_string_lossy()) alt="total, decision-related and redundant information"; figcaption { "image · total · decision-related · redundant" } }
                    }
                }
            }
        }
    };
    write_page(out, "mi.html", "Information maps", 0, mi)?;
    Ok(5 + c.classes.len())
}
