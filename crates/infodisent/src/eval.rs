//! Evaluating heads on a cached split: top-1, top-5, per-class accuracy and the confusion matrix,
//! and a comparison table of InfoDisent, the linear probe and the original classifier.

use crate::cache::FeatureCache;
use crate::error::{Error, Result};
use crate::head::Classifies;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Accuracy of one class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassAccuracy {
    /// Class index.
    pub class: usize,
    /// Class name.
    pub name: String,
    /// Test images of the class.
    pub count: usize,
    /// Fraction classified correctly.
    pub accuracy: f64,
}

/// The evaluation of one head on one split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// What was evaluated.
    pub name: String,
    /// The split.
    pub split: String,
    /// Images evaluated.
    pub count: usize,
    /// Top-1 accuracy.
    pub top1: f64,
    /// Top-5 accuracy (top-C when there are fewer than 5 classes).
    pub top5: f64,
    /// Per-class accuracy.
    pub per_class: Vec<ClassAccuracy>,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<u64>>,
}

/// Accumulates predictions into an [`EvalReport`].
struct Tally {
    classes: usize,
    confusion: Vec<Vec<u64>>,
    top5: usize,
    count: usize,
}

impl Tally {
    fn new(classes: usize) -> Self {
        Tally {
            classes,
            confusion: vec![vec![0; classes]; classes],
            top5: 0,
            count: 0,
        }
    }

    fn add(&mut self, logits: &[f32], label: usize) {
        let mut pred = 0;
        let mut higher = 0;
        for (c, &x) in logits.iter().enumerate() {
            if x > logits[pred] {
                pred = c;
            }
            if x > logits[label] {
                higher += 1;
            }
        }
        self.confusion[label][pred] += 1;
        if higher < 5 {
            self.top5 += 1;
        }
        self.count += 1;
    }

    fn report(self, name: &str, split: &str, names: &[String]) -> EvalReport {
        let correct: u64 = (0..self.classes).map(|c| self.confusion[c][c]).sum();
        let per_class = (0..self.classes)
            .map(|c| {
                let n: u64 = self.confusion[c].iter().sum();
                ClassAccuracy {
                    class: c,
                    name: names[c].clone(),
                    count: n as usize,
                    accuracy: if n == 0 {
                        0.0
                    } else {
                        self.confusion[c][c] as f64 / n as f64
                    },
                }
            })
            .collect();
        EvalReport {
            name: name.to_owned(),
            split: split.to_owned(),
            count: self.count,
            top1: correct as f64 / self.count.max(1) as f64,
            top5: self.top5 as f64 / self.count.max(1) as f64,
            per_class,
            confusion: self.confusion,
        }
    }
}

/// Evaluates a head on every image of `split`, streaming the shards.
pub fn evaluate(
    cache: &FeatureCache,
    split: &str,
    name: &str,
    head: &dyn Classifies,
) -> Result<EvalReport> {
    let [dim, h, w] = cache.feature_shape();
    let classes = cache.num_classes();
    let (hd, hc) = (head.dim(), head.classes());
    if hd != dim || hc != classes {
        return Err(Error::Shape(format!("{name} expects {hd} channels and {hc} classes; the cache has {dim} channels and {classes} classes")));
    }
    let mut tally = Tally::new(classes);
    for shard in cache.shards(split)? {
        let shard = shard?;
        let labels: Vec<u32> = shard.labels.iter().map(|&l| l as u32).collect();
        if let Some(bad) = shard
            .labels
            .iter()
            .find(|&&l| l < 0 || l as usize >= classes)
        {
            return Err(Error::cache(
                cache.dir(),
                format!("split `{split}` has label {bad}, outside 0..{classes}"),
            ));
        }
        for (read, &y) in head
            .decide(&shard.features, shard.len, h * w)?
            .iter()
            .zip(&labels)
        {
            tally.add(&read.logits, y as usize);
        }
    }
    Ok(tally.report(name, split, &cache.manifest().classes))
}

/// Evaluates the original classifier as is, or says why that is not applicable: it must exist
/// and have exactly the dataset's classes. Stored per-image logits are used when present.
pub fn evaluate_original(
    cache: &FeatureCache,
    split: &str,
) -> Result<std::result::Result<EvalReport, String>> {
    let classes = cache.num_classes();
    let orig = cache.manifest().original_classes;
    match orig {
        None => return Ok(Err("the model has no classifier".into())),
        Some(c) if c != classes => {
            return Ok(Err(format!(
                "its {c} classes are not the dataset's {classes}"
            )));
        }
        Some(_) => {}
    }
    let classifier = cache.classifier()?;
    let [_, h, w] = cache.feature_shape();
    let mut tally = Tally::new(classes);
    for shard in cache.shards(split)? {
        let shard = shard?;
        let rows: Vec<Vec<f32>> = match (&shard.logits, &classifier) {
            (Some(l), _) => l.chunks_exact(classes).map(<[f32]>::to_vec).collect(),
            (None, Some(c)) => c.logits_of_maps(&shard.features, h * w),
            (None, None) => {
                return Ok(Err(
                    "neither stored logits nor classifier weights are in the cache".into(),
                ))
            }
        };
        for (row, &y) in rows.iter().zip(&shard.labels) {
            tally.add(row, y as usize);
        }
    }
    Ok(Ok(tally.report(
        "original classifier",
        split,
        &cache.manifest().classes,
    )))
}

/// One row of a comparison: a head's name and its report, or why it does not apply.
pub type EvalRow = (String, std::result::Result<EvalReport, String>);

/// Evaluates the runs (or head files) `heads` on `split`, then the original classifier: the
/// rows of `infodisent eval`. A head fitted to the original classifier is scored by agreement
/// with it.
pub fn evaluate_runs(cache: &FeatureCache, split: &str, heads: &[PathBuf]) -> Result<Vec<EvalRow>> {
    let mut rows = Vec::with_capacity(heads.len() + 1);
    for path in heads {
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let head = crate::runs::load_trained(path)?;
        let mut name = format!("{name} ({})", head.label());
        let labelled = crate::train::cache_for_head(cache.clone(), path)?;
        if labelled.labels_are_original() {
            name.push_str(", agreement with the original");
        }
        let report = evaluate(&labelled, split, &name, &head)?;
        rows.push((name, Ok(report)));
    }
    rows.push((
        "original classifier".into(),
        evaluate_original(cache, split)?,
    ));
    Ok(rows)
}

/// The rows as `eval --json` prints them: each report, or its name and why it does not apply.
pub fn rows_json(rows: &[EvalRow]) -> serde_json::Value {
    rows.iter()
        .map(|(name, r)| match r {
            Ok(r) => serde_json::to_value(r).unwrap_or_default(),
            Err(why) => serde_json::json!({ "name": name, "not_applicable": why }),
        })
        .collect()
}

/// A plain-text table comparing heads; rows that are not applicable show the reason.
pub fn comparison_table(rows: &[EvalRow]) -> String {
    let width = rows
        .iter()
        .map(|(name, _)| name.chars().count())
        .fold(24, usize::max);
    let mut out = format!(
        "{:<width$} {:>8} {:>8} {:>8}\n",
        "head", "top-1 %", "top-5 %", "images"
    );
    for (name, r) in rows {
        match r {
            Ok(r) => out.push_str(&format!(
                "{:<width$} {:>8.2} {:>8.2} {:>8}\n",
                name,
                100.0 * r.top1,
                100.0 * r.top5,
                r.count
            )),
            Err(why) => out.push_str(&format!(
                "{:<width$} {:>8} {:>8} {:>8}   not applicable: {why}\n",
                name, "-", "-", "-"
            )),
        }
    }
    out
}
