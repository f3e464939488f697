//! `bench paper`: the paper's tables on the user's own copy of CUB-200-2011, Stanford Cars,
//! Stanford Dogs or ImageNet, one row per backbone. Each model's features are extracted
//! (resumable), then the default recipe, the paper's dense head and the linear probes are
//! trained and measured the same way ([`infodisent::ablate`]), beside the model's own classifier
//! where it decides between the dataset's classes; the paper's published figures for the same
//! dataset and backbone stand next to them.

use infodisent::ablate::{self, AblationRow, Variant};
use infodisent::backbone::BackboneSpec;
use infodisent::cache::FeatureCache;
use infodisent::dataset::{Dataset, Layout, OpenOptions};
use infodisent::error::{Error, Result};
use infodisent::extract::{extract, ExtractOptions};
use infodisent::head::TrainedHead;
use infodisent::metrics::keypoints::{keypoint_purity, CellRule, PIPNET_K};
use infodisent::metrics::MetricsOptions;
use infodisent::train::TrainConfig;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// What to run.
#[derive(Debug, Clone)]
pub struct PaperRequest {
    /// The dataset folder.
    pub data: String,
    /// How to open it (layout detected unless named).
    pub open: OpenOptions,
    /// The backbones, one row each.
    pub models: Vec<BackboneSpec>,
    /// Folder for each model's cache and heads (`<model>/cache`, `<model>/heads/...`).
    pub out: PathBuf,
    /// The recipe the heads start from.
    pub base: TrainConfig,
    /// Keep only the first N images of each class of each split (a quick look).
    pub limit_per_class: Option<usize>,
}

/// The paper's published figures for one dataset and backbone (accuracy: its comparison table;
/// RV: its Table 8, ×100 as printed there).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PaperFigures {
    /// Top-1 of the fine-tuned backbone, in %.
    pub baseline_top1: Option<f64>,
    /// Top-1 of InfoDisent on it, in %.
    pub infodisent_top1: Option<f64>,
    /// RV coefficient of InfoDisent's channels (×100).
    pub rv_infodisent: Option<f64>,
    /// RV coefficient of the baseline's channels (×100).
    pub rv_baseline: Option<f64>,
}

/// One backbone's row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaperRow {
    /// The model as given.
    pub model: String,
    /// The dataset's layout.
    pub layout: Layout,
    /// Classes, training and test images.
    pub classes: usize,
    /// Images in the training split.
    pub train_images: usize,
    /// Images in the measured split.
    pub test_images: usize,
    /// Measured heads: the original classifier (when it fits), the linear probe, the dense paper
    /// head and the default recipe.
    pub heads: Vec<AblationRow>,
    /// What the paper reports for this dataset and backbone, when it does.
    pub paper: Option<PaperFigures>,
}

/// The rows the paper published: (layout, backbone key, figures). Keys are matched against the
/// model's name with case and punctuation removed.
const PUBLISHED: [(Layout, &str, [Option<f64>; 4]); 14] = [
    (
        Layout::Cub,
        "resnet34",
        [Some(82.4), Some(83.5), Some(6.5), Some(7.2)],
    ),
    (
        Layout::Cub,
        "resnet50",
        [Some(83.2), Some(83.0), Some(4.9), Some(7.8)],
    ),
    (
        Layout::Cub,
        "densenet121",
        [Some(81.8), Some(82.6), Some(7.2), Some(7.9)],
    ),
    (
        Layout::Cub,
        "convnexttiny",
        [Some(83.8), Some(84.1), Some(5.5), Some(5.5)],
    ),
    (
        Layout::Cars,
        "resnet34",
        [Some(92.6), Some(92.8), Some(6.0), Some(7.1)],
    ),
    (
        Layout::Cars,
        "resnet50",
        [Some(93.1), Some(92.9), Some(6.2), Some(7.6)],
    ),
    (
        Layout::Cars,
        "densenet121",
        [Some(92.1), Some(92.7), Some(6.2), Some(6.9)],
    ),
    (
        Layout::Cars,
        "convnexttiny",
        [Some(91.0), Some(90.2), Some(6.7), Some(6.9)],
    ),
    (
        Layout::Imagenet,
        "convnextlarge",
        [None, None, Some(8.7), Some(3.0)],
    ),
    (
        Layout::Imagenet,
        "densenet121",
        [None, None, Some(8.4), Some(4.5)],
    ),
    (
        Layout::Imagenet,
        "resnet34",
        [None, None, Some(5.2), Some(6.0)],
    ),
    (
        Layout::Imagenet,
        "resnet50",
        [None, None, Some(3.0), Some(6.5)],
    ),
    (
        Layout::Imagenet,
        "swinv2s",
        [None, None, Some(2.5), Some(2.5)],
    ),
    (
        Layout::Imagenet,
        "vitb16",
        [None, None, Some(9.9), Some(9.9)],
    ),
];

/// The paper's figures for `model` on a dataset in `layout`.
pub fn published(layout: Layout, model: &str) -> Option<PaperFigures> {
    let key: String = model
        .to_lowercase()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    PUBLISHED
        .iter()
        .find(|(l, name, _)| *l == layout && key.contains(name))
        .map(|&(_, _, [b, i, rv_i, rv_b])| PaperFigures {
            baseline_top1: b,
            infodisent_top1: i,
            rv_infodisent: rv_i,
            rv_baseline: rv_b,
        })
}

/// The rows the paper's table shows: the linear probe on average-pooled features (the
/// baseline a frozen backbone gives), the paper's dense head and the default recipe.
fn paper_variants(base: &TrainConfig) -> Result<Vec<Variant>> {
    let grid = ablate::standard_grid(base);
    let default = grid.last().map(|v| v.folder.clone()).unwrap_or_default();
    let mut rows: Vec<Variant> = ablate::standard_probes(base).into_iter().take(1).collect();
    rows.extend(ablate::select(grid, &["recipe".to_owned(), default])?);
    Ok(rows)
}

/// A file-system-safe folder name for a model (its file stem, or the built-in name).
fn slug(model: &str) -> String {
    let stem = std::path::Path::new(model)
        .file_stem()
        .map_or(model.to_owned(), |s| s.to_string_lossy().into_owned());
    stem.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The model's own classifier measured like the heads, when it decides between the
/// dataset's classes.
fn original_row(cache: &FeatureCache, opts: &MetricsOptions) -> Result<Option<AblationRow>> {
    let Ok(baseline) = infodisent::baseline::choose(cache, None)? else {
        return Ok(None);
    };
    let name = "original classifier".to_owned();
    let folder = cache.dir().to_path_buf();
    let measured = AblationRow::of_linear(cache, &baseline.classifier, name, folder, opts)?;
    let model = TrainedHead::Linear(baseline.classifier);
    let purity = keypoint_purity(cache, &model, 5, PIPNET_K, CellRule::PointInCell)?;
    Ok(Some(AblationRow {
        part_purity: purity.map(|p| p.purity),
        ..measured
    }))
}

/// Runs every model of `req` and returns one row each; every stage resumes.
pub fn run(req: &PaperRequest) -> Result<Vec<PaperRow>> {
    if req.models.is_empty() {
        return Err(Error::Config(
            "bench paper needs at least one --model".into(),
        ));
    }
    let mut dataset = Dataset::open_with(&req.data, &req.open)?;
    dataset.limit(req.limit_per_class, None);
    let variants = paper_variants(&req.base)?;
    let mut rows = Vec::with_capacity(req.models.len());
    for spec in &req.models {
        let dir = req.out.join(slug(&spec.model));
        let cache_dir = dir.join("cache");
        let mut backbone = spec.load_for(&dataset)?;
        extract(
            &mut backbone,
            &dataset,
            &ExtractOptions::default(),
            &cache_dir,
        )?;
        let cache = FeatureCache::open(&cache_dir)?;
        let measure = MetricsOptions {
            split: cache.evaluation_split()?,
            ..MetricsOptions::default()
        };
        let report = ablate::run(&cache, &variants, &dir.join("heads"), &measure, None)?;
        let mut heads: Vec<AblationRow> = original_row(&cache, &measure)?.into_iter().collect();
        heads.extend(report.rows);
        rows.push(PaperRow {
            model: spec.model.clone(),
            layout: dataset.layout,
            classes: cache.num_classes(),
            train_images: cache.split("train")?.num_items,
            test_images: report.images,
            heads,
            paper: published(dataset.layout, &spec.model),
        });
    }
    Ok(rows)
}

/// The rows as a markdown table, the paper's figures beside the measured ones.
pub fn format_markdown(rows: &[PaperRow]) -> String {
    let mut out = String::from(
        "| model | dataset | head | top-1 | paper top-1 | channels for 95 % (paper / strict) | RV − null, maps | RV − null ×100, pooled | paper RV ×100 | part purity | pointing |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let pct = |x: Option<f64>| x.map_or("–".to_owned(), |v| format!("{:.1} %", 100.0 * v));
    let num = |x: Option<f64>| x.map_or("–".to_owned(), |v| format!("{v:.1}"));
    for row in rows {
        for head in &row.heads {
            let original = head.name == "original classifier";
            let infodisent = head.rotation_from_identity.is_some();
            let paper = row.paper.and_then(|p| match (original, infodisent) {
                (true, _) => Some((p.baseline_top1, p.rv_baseline)),
                (false, true) => Some((p.infodisent_top1, p.rv_infodisent)),
                _ => None,
            });
            let (paper_top1, paper_rv) = paper.unwrap_or((None, None));
            out.push_str(&format!(
                "| {} | {} ({} classes, {} test images) | {} | {:.1} % | {} | {:.1} / {:.1} | {:.3} | {} | {} | {} | {} |\n",
                row.model,
                row.layout,
                row.classes,
                row.test_images,
                head.name,
                100.0 * head.top1,
                paper_top1.map_or("–".to_owned(), |v| format!("{v:.1} %")),
                head.channels_paper,
                head.channels_strict,
                head.rv_excess,
                num(head.rv.map(|r| 100.0 * r.pooled)),
                num(paper_rv),
                pct(head.part_purity),
                pct(head.pointing),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_figures_match_by_backbone_and_dataset() {
        let p = published(Layout::Cub, "/models/ResNet-50_cub.onnx").unwrap();
        assert_eq!(
            (p.baseline_top1, p.infodisent_top1),
            (Some(83.2), Some(83.0))
        );
        assert_eq!(
            published(Layout::Cars, "convnext_tiny")
                .unwrap()
                .rv_infodisent,
            Some(6.7)
        );
        assert!(published(Layout::Dogs, "resnet50").is_none());
        assert!(published(Layout::Cub, "efficientnet-lite0").is_none());
        assert_eq!(slug("/x/ResNet-50 cub.onnx"), "ResNet-50_cub");
    }
}
