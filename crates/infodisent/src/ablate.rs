//! `infodisent ablate`: trains a grid of training recipes on one cache and measures every head
//! the same way (top-1, channels for 95 % under both readings, RV above its null, W's zeros,
//! U's distance from I, training seconds), with three linear probes as baselines: on
//! average-pooled features (signed, and W ≥ 0) and on max-pooled ones. On a parts-benchmark cache ([`crate::synth::parts`]) every
//! row also gets its prototype purity and explanation correctness. Each variant trains into its
//! own folder and a finished one is reused, so an interrupted ablation resumes; a folder trained
//! with other settings is refused.

use crate::cache::FeatureCache;
use crate::checkpoint;
use crate::classifier::Pooling;
use crate::error::{Error, Result};
use crate::head::{Classifies, HeadKind, Loss, Parametrization, TrainedHead};
use crate::metrics::keypoints::{keypoint_purity, CellRule, PIPNET_K};
use crate::metrics::parts::{parts_score, PartsOptions, PartsScore};
use crate::metrics::{cache_metrics, head_metrics, MetricsOptions};
use crate::runs;
use crate::rv::HeadRv;
use crate::synth::parts::PartsTruth;
use crate::train::{train_or_reuse, EpochMetrics, TrainConfig, DEFAULT_KEEP_TOP};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One training recipe of the grid.
#[derive(Debug, Clone)]
pub struct Variant {
    /// Row label.
    pub name: String,
    /// Folder name under the ablation's output.
    pub folder: String,
    /// The recipe.
    pub config: TrainConfig,
}

impl Variant {
    /// Row `name`, trained into `folder`: `from` with one `change`.
    fn changed(
        from: &TrainConfig,
        name: &str,
        folder: &str,
        change: &dyn Fn(&mut TrainConfig),
    ) -> Self {
        let mut config = from.clone();
        change(&mut config);
        Variant {
            name: name.to_owned(),
            folder: folder.to_owned(),
            config,
        }
    }
}

/// The grid on top of `base` (an InfoDisent recipe): the paper's dense cross-entropy head with
/// U frozen at I, that head itself, then one change at a time, then pruning to `base`'s
/// `keep_top` ([`DEFAULT_KEEP_TOP`] if `base` is dense) alone and with each of the two changes
/// that raised purity most, and the last of these with the rotation trained as a frame (the
/// default recipe).
pub fn standard_grid(base: &TrainConfig) -> Vec<Variant> {
    let dense = base.clone().with_kind(HeadKind::InfoDisent).paper();
    let variant = |name: &str, folder: &str, change: &dyn Fn(&mut TrainConfig)| {
        Variant::changed(&dense, name, folder, change)
    };
    let keep = base.keep_top.unwrap_or(DEFAULT_KEEP_TOP);
    let prune = |c: &mut TrainConfig| {
        c.keep_top = Some(keep);
        c.prune_after = base.prune_after;
    };
    vec![
        variant("InfoDisent, U = I (lr-rotation 0)", "frozen-u", &|c| {
            c.lr_rotation = Some(0.0)
        }),
        variant("InfoDisent, dense (the paper's head)", "recipe", &|_| {}),
        variant("+ weight decay 0.05", "weight-decay", &|c| {
            c.weight_decay = 0.05
        }),
        variant("+ dynamic rotation (rebase every step)", "dynamic", &|c| {
            c.head.rebase_every = 1
        }),
        variant("+ Gumbel pooling", "gumbel", &|c| c.head.gumbel = true),
        variant("+ sigmoid loss", "sigmoid", &|c| {
            c.head.loss = Loss::Sigmoid
        }),
        variant(
            &format!("+ keep top {keep} weights per class"),
            &format!("keep-top-{keep}"),
            &prune,
        ),
        variant(
            &format!("+ keep top {keep} + Gumbel pooling"),
            &format!("keep-top-{keep}-gumbel"),
            &|c| {
                prune(c);
                c.head.gumbel = true;
            },
        ),
        variant(
            &format!("+ keep top {keep} + sigmoid loss"),
            &format!("keep-top-{keep}-sigmoid"),
            &|c| {
                prune(c);
                c.head.loss = Loss::Sigmoid;
            },
        ),
        variant(
            &format!("+ keep top {keep} + sigmoid loss, trained as a frame (default)"),
            &format!("keep-top-{keep}-sigmoid-frame"),
            &|c| {
                prune(c);
                c.head.loss = Loss::Sigmoid;
                c.head.rotation = Parametrization::Frame;
            },
        ),
    ]
}

/// The variants of `grid` whose folder `only` names, in the grid's order; all of them when
/// `only` is empty. An unknown name is refused, listing the grid's folders.
pub fn select(grid: Vec<Variant>, only: &[String]) -> Result<Vec<Variant>> {
    if let Some(unknown) = only.iter().find(|o| !grid.iter().any(|v| &v.folder == *o)) {
        let known: Vec<&str> = grid.iter().map(|v| v.folder.as_str()).collect();
        return Err(Error::Config(format!(
            "no recipe `{unknown}` in the grid (have: {})",
            known.join(", ")
        )));
    }
    Ok(grid
        .into_iter()
        .filter(|v| only.is_empty() || only.contains(&v.folder))
        .collect())
}

/// One measured head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AblationRow {
    /// Variant name.
    pub name: String,
    /// Training folder.
    pub folder: PathBuf,
    /// Top-1 accuracy on the measured split.
    pub top1: f64,
    /// Mean channels for 95 %, paper's reading (true class, net total).
    pub channels_paper: f64,
    /// Images whose net total was not positive (left out of `channels_paper`).
    pub paper_undefined: usize,
    /// Mean channels for 95 %, strict reading (predicted class, positive total).
    pub channels_strict: f64,
    /// RV coefficient above its permutation null over the channels' maps (rotated channels; raw
    /// ones for the probe).
    pub rv_excess: f64,
    /// Both readings of the RV (see [`crate::rv`]), over all the row's channels and
    /// over those its decisions use.
    #[serde(default)]
    pub rv: Option<HeadRv>,
    /// Share of exact zeros in W (None for a probe whose W is signed).
    pub zero_share: Option<f64>,
    /// ‖U − I‖_F / √D (None for the probe).
    pub rotation_from_identity: Option<f64>,
    /// Prototype purity and explanation correctness (parts-benchmark caches only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts: Option<PartsScore>,
    /// Prototype purity on the dataset's annotated part locations (CUB caches only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part_purity: Option<f64>,
    /// Pointing game of the positive map on the object boxes (InfoDisent heads on caches with
    /// boxes only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pointing: Option<f64>,
    /// Seconds of training (summed over its epochs, resumed runs included).
    pub train_seconds: f64,
}

impl AblationRow {
    /// A linear classifier's row (a probe, the model's own): accuracy, channels for 95 % and
    /// the RV of its raw channels on `opts.split`; what only some rows measure is left empty.
    pub fn of_linear(
        cache: &FeatureCache,
        model: &dyn Classifies,
        name: String,
        folder: PathBuf,
        opts: &MetricsOptions,
    ) -> Result<Self> {
        let (top1, counts, rv) = head_metrics(cache, model, opts)?;
        Ok(AblationRow {
            name,
            folder,
            top1,
            channels_paper: counts.paper.mean,
            paper_undefined: counts.paper_undefined,
            channels_strict: counts.strict.mean,
            rv_excess: rv.maps.raw.excess(),
            rv: Some(rv.of_head(false)),
            zero_share: None,
            rotation_from_identity: None,
            parts: None,
            part_purity: None,
            pointing: None,
            train_seconds: 0.0,
        })
    }
}

/// The ablation table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AblationReport {
    /// Split measured.
    pub split: String,
    /// Images in it.
    pub images: usize,
    /// The probes first, then one row per variant.
    pub rows: Vec<AblationRow>,
}

/// Trains `config` into `dir` unless that is done; returns the training seconds from its log.
fn train_or_reuse_timed(cache: &FeatureCache, config: &TrainConfig, dir: &Path) -> Result<f64> {
    train_or_reuse(cache, config, dir)?;
    let log: Vec<EpochMetrics> = checkpoint::read_log(&dir.join(runs::METRICS_LOG))?;
    Ok(log.iter().map(|m| m.seconds).sum())
}

/// The three linear probes a grid is measured against, on `base`'s schedule: on
/// average-pooled features (signed, then W ≥ 0) and on max-pooled ones.
pub fn standard_probes(base: &TrainConfig) -> Vec<Variant> {
    let mut plain = base.clone().with_kind(HeadKind::LinearProbe);
    plain.head.nonnegative = false;
    let probe = |name: &str, folder: &str, change: &dyn Fn(&mut TrainConfig)| {
        Variant::changed(&plain, name, folder, change)
    };
    vec![
        probe("linear probe (average-pooled)", "linear-probe", &|_| {}),
        probe(
            "linear probe, W ≥ 0 (average-pooled)",
            "linear-probe-nonnegative",
            &|c| c.head.nonnegative = true,
        ),
        probe("linear probe (max-pooled)", "linear-probe-max", &|c| {
            c.head.pooling = Pooling::Max
        }),
    ]
}

/// What every row is measured with besides the metrics: the parts benchmark's ground truth
/// (purity and correctness) when the cache is one.
struct Marks<'a> {
    cache: &'a FeatureCache,
    parts: Option<&'a PartsTruth>,
    parts_opts: PartsOptions,
}

impl Marks<'_> {
    fn score(&self, model: &TrainedHead) -> Result<Option<PartsScore>> {
        self.parts
            .map(|truth| parts_score(self.cache, model, truth, &self.parts_opts))
            .transpose()
    }

    fn part_purity(&self, model: &TrainedHead) -> Result<Option<f64>> {
        let per_class = self.parts_opts.channels_per_class;
        let measured = keypoint_purity(
            self.cache,
            model,
            per_class,
            PIPNET_K,
            CellRule::PointInCell,
        )?;
        Ok(measured.map(|p| p.purity))
    }
}

/// Trains every row (a probe, or an InfoDisent recipe) into its folder under `out`, then
/// measures each on `opts.split`; with `parts` (the cache's dataset is a parts benchmark)
/// purity and correctness too.
pub fn run(
    cache: &FeatureCache,
    rows: &[Variant],
    out: &Path,
    opts: &MetricsOptions,
    parts: Option<&PartsTruth>,
) -> Result<AblationReport> {
    let marks = Marks {
        cache,
        parts,
        parts_opts: PartsOptions {
            split: opts.split.clone(),
            ..PartsOptions::default()
        },
    };
    let measured = rows
        .iter()
        .map(|v| {
            let dir = out.join(&v.folder);
            let seconds = train_or_reuse_timed(cache, &v.config, &dir)?;
            let row = if v.config.head.kind == HeadKind::LinearProbe {
                probe_row(&marks, v, dir, opts)?
            } else {
                head_row(&marks, v, dir, opts)?
            };
            Ok(AblationRow {
                train_seconds: seconds,
                ..row
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(AblationReport {
        split: opts.split.clone(),
        images: cache.split(&opts.split)?.num_items,
        rows: measured,
    })
}

/// A trained probe's row.
fn probe_row(
    marks: &Marks,
    v: &Variant,
    dir: PathBuf,
    opts: &MetricsOptions,
) -> Result<AblationRow> {
    let linear = runs::load_probe(&dir)?;
    let measured = AblationRow::of_linear(marks.cache, &linear, v.name.clone(), dir, opts)?;
    let weights = &linear.weight;
    let nonnegative = weights.iter().all(|&w| w >= 0.0);
    let zeros = weights.iter().filter(|&&w| w == 0.0).count() as f64 / weights.len() as f64;
    let probe = TrainedHead::Linear(linear);
    Ok(AblationRow {
        zero_share: nonnegative.then_some(zeros),
        parts: marks.score(&probe)?,
        part_purity: marks.part_purity(&probe)?,
        ..measured
    })
}

/// A trained InfoDisent head's row.
fn head_row(
    marks: &Marks,
    v: &Variant,
    dir: PathBuf,
    opts: &MetricsOptions,
) -> Result<AblationRow> {
    let head = runs::load_head(&dir)?;
    let m = cache_metrics(marks.cache, &head, None, None, opts)?;
    let head = TrainedHead::InfoDisent(head);
    Ok(AblationRow {
        name: v.name.clone(),
        folder: dir,
        top1: m.accuracy,
        channels_paper: m.channels_for_95.paper.mean,
        paper_undefined: m.channels_for_95.paper_undefined,
        channels_strict: m.channels_for_95.strict.mean,
        rv_excess: m.rv.maps.infodisent.excess(),
        rv: Some(m.rv.of_head(true)),
        zero_share: Some(m.weights.zero_share),
        rotation_from_identity: Some(m.weights.rotation_from_identity),
        parts: marks.score(&head)?,
        part_purity: marks.part_purity(&head)?,
        pointing: m.pointing.first().map(|p| p.accuracy),
        train_seconds: 0.0,
    })
}

/// The table as text, with the definitions under it.
pub fn format_report(r: &AblationReport) -> String {
    let with_parts = r.rows.iter().any(|row| row.parts.is_some());
    let with_marks = r
        .rows
        .iter()
        .any(|row| row.part_purity.is_some() || row.pointing.is_some());
    let mut out = format!(
        "{:<42} {:>7} {:>7} {:>6} {:>7} {:>8} {:>8} {:>6} {:>7}{}{} {:>8}\n",
        "variant",
        "top-1",
        "paper",
        "undef",
        "strict",
        "RV−null",
        "pooled",
        "zeros",
        "‖U−I‖",
        if with_parts {
            " purity correct chance distr."
        } else {
            ""
        },
        if with_marks { " p.purity pointing" } else { "" },
        "train s"
    );
    let opt = |x: Option<f64>, pct: bool| match x {
        Some(v) if pct => format!("{:.1}%", 100.0 * v),
        Some(v) => format!("{v:.3}"),
        None => "-".to_owned(),
    };
    for row in &r.rows {
        let parts = match (&row.parts, with_parts) {
            (Some(p), _) => format!(
                " {:>5.1}% {:>6.1}% {:>5.1}% {:>5.1}%",
                100.0 * p.purity,
                100.0 * p.correctness,
                100.0 * p.chance,
                100.0 * p.on_distractor
            ),
            (None, true) => format!(" {:>6} {:>7} {:>6} {:>6}", "-", "-", "-", "-"),
            (None, false) => String::new(),
        };
        let marks = match with_marks {
            true => format!(
                " {:>8} {:>8}",
                opt(row.part_purity, true),
                opt(row.pointing, true)
            ),
            false => String::new(),
        };
        out.push_str(&format!(
            "{:<42} {:>6.1}% {:>7.1} {:>6} {:>7.1} {:>8.3} {:>8} {:>6} {:>7}{}{} {:>8.1}\n",
            row.name,
            100.0 * row.top1,
            row.channels_paper,
            row.paper_undefined,
            row.channels_strict,
            row.rv_excess,
            opt(row.rv.map(|r| r.pooled), false),
            opt(row.zero_share, true),
            opt(row.rotation_from_identity, false),
            parts,
            marks,
            row.train_seconds
        ));
    }
    out.push_str(&format!(
        "split `{}`, {} images. paper: mean channels for 95 % of the true class's net total \
         (undef: images whose net total is not positive); strict: for 95 % of the predicted \
         class's positive total; both on gauge-fixed W. RV−null: mean RV coefficient of channel \
         pairs above the same pairs with images permuted, over the channels' maps; pooled: the \
         same over the value per image each classifier reads (the paper's reading).\n",
        r.split, r.images
    ));
    if with_parts {
        out.push_str(
            "purity: share of the top-5 training boxes of each class's 5 largest-weight channels \
             on the channel's most frequent part; correct: share of each test explanation's top-3 \
             channels whose cell is on a part that makes the predicted class (chance: the same \
             for every cell; distr.: share on the distractor every class shares).\n",
        );
    }
    if with_marks {
        out.push_str(&format!(
            "p.purity: PIP-Net's part purity on the annotated part locations (top {PIPNET_K} \
             training images of each class's 5 largest-weight channels; a part counts where its \
             location lies in the channel's cell); pointing: share of test images whose positive \
             map peaks on an object box (within the pointing tolerance).\n"
        ));
    }
    out
}
