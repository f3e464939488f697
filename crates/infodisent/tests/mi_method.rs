//! The mutual-information decomposition on constructed feature maps whose answer is known:
//! one cell holds a class prototype (it decides the label), another holds an image-specific
//! vector that carries no label information (a distractor), the rest is background whose level
//! varies per image.

mod mi_common;

use infodisent::cache::FeatureCache;
use infodisent::mi::{self, MapNegatives, MiConfig, MiModel, Pairing};
use mi_common::{write_cache, SplitData};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

const SHAPE: [usize; 3] = [24, 7, 7];
const CLASSES: usize = 3;

/// Feature maps with the decisive and distractor cells of each image.
struct Constructed {
    split: SplitData,
    decisive: Vec<usize>,
    distractor: Vec<usize>,
}

fn construct(name: &'static str, n: usize, seed: u64) -> Constructed {
    let [d, h, w] = SHAPE;
    let cells = h * w;
    let mut rng = StdRng::seed_from_u64(seed);
    let noise = Normal::new(0.0f32, 0.1).unwrap();
    let spread = Normal::new(0.0f32, 1.5).unwrap();
    let (mut features, mut labels, mut decisive, mut distractor) = (vec![], vec![], vec![], vec![]);
    for i in 0..n {
        let y = i % CLASSES;
        let shade: f32 = rng.random_range(0.5..1.5);
        let dec = rng.random_range(0..cells);
        let dis = loop {
            let c = rng.random_range(0..cells);
            if c != dec {
                break c;
            }
        };
        let own: Vec<f32> = (0..16).map(|_| spread.sample(&mut rng)).collect();
        let mut map = vec![0f32; d * cells];
        for cell in 0..cells {
            for k in 0..d {
                let mut v = noise.sample(&mut rng) + if k < 4 { shade } else { 0.0 };
                if cell == dec && k == 4 + y {
                    v += 3.0;
                }
                if cell == dis && k >= 8 {
                    v += own[k - 8];
                }
                map[k * cells + cell] = v;
            }
        }
        features.extend(map);
        labels.push(y as i64);
        decisive.push(dec);
        distractor.push(dis);
    }
    let paths = (0..n).map(|i| format!("{name}/{i}")).collect();
    Constructed {
        split: SplitData {
            name,
            features,
            labels,
            paths,
        },
        decisive,
        distractor,
    }
}

/// A classifier that reads the prototype channels of the pooled vector.
fn prototype_classifier() -> infodisent::classifier::LinearClassifier {
    let d = SHAPE[0];
    let mut weight = vec![0f32; CLASSES * d];
    for c in 0..CLASSES {
        weight[c * d + 4 + c] = 49.0;
    }
    infodisent::classifier::LinearClassifier::new(CLASSES, d, weight, vec![0.0; CLASSES]).unwrap()
}

fn setup(dir: &std::path::Path) -> (FeatureCache, Constructed) {
    let train = construct("train", 300, 1);
    let test = construct("test", 64, 2);
    write_cache(
        dir,
        SHAPE,
        CLASSES,
        224,
        infodisent::preprocess::Preprocess::new(224, 224, infodisent::preprocess::Normalize::Unit),
        &[train.split, test.split.clone()],
        64,
    );
    (FeatureCache::open(dir).unwrap(), test)
}

/// Every map has one finite value per cell and total = decision-related + redundant.
fn assert_decomposes(maps: &[mi::MiMaps]) {
    for m in maps {
        assert_eq!(m.total.len(), SHAPE[1] * SHAPE[2]);
        for i in 0..m.total.len() {
            assert!(m.total[i].is_finite() && m.decision[i].is_finite());
            assert!((m.total[i] - m.decision[i] - m.redundant[i]).abs() < 1e-5);
        }
    }
}

fn config(epochs: usize) -> MiConfig {
    MiConfig {
        epochs,
        batch: 32,
        mask_hidden: 16,
        proj_dim: 32,
        critic_hidden: 64,
        eval_items: 64,
        lr: 3e-3,
        ..MiConfig::default()
    }
}

#[test]
fn maps_separate_decisive_from_redundant_cells_and_estimates_behave() {
    let tmp = tempfile::tempdir().unwrap();
    let (cache, test) = setup(&tmp.path().join("cache"));
    let classifier = prototype_classifier();
    let out = tmp.path().join("mi");
    let summary = mi::train(&cache, &classifier, "constructed", &config(48), &out, false).unwrap();
    let first = &summary.metrics[0];
    let last = summary.metrics.last().unwrap();
    for m in &summary.metrics {
        eprintln!("{}", serde_json::to_string(m).unwrap());
    }
    assert!(
        last.heldout_dv_raw > first.heldout_dv_raw + 0.5,
        "DV estimate did not rise: {first:?} -> {last:?}"
    );
    assert!(last.heldout_dv_raw >= 0.0, "held-out DV negative: {last:?}");
    assert!(
        last.heldout_masked_accuracy >= 0.9,
        "masked path lost the decision: {last:?}"
    );

    let model = MiModel::load(&out).unwrap();
    let maps = model
        .maps(&test.split.features, test.split.labels.len())
        .unwrap();
    let n = maps.len() as f32;
    let argmax = |v: &[f32]| {
        v.iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap()
            .0
    };
    let decision_hits = maps
        .iter()
        .zip(&test.decisive)
        .filter(|(m, &c)| argmax(&m.decision) == c)
        .count() as f32
        / n;
    let redundant_hits = maps
        .iter()
        .zip(&test.distractor)
        .filter(|(m, &c)| argmax(&m.redundant) == c)
        .count() as f32
        / n;
    eprintln!("decision peak on decisive cell: {decision_hits:.3}, redundant peak on distractor: {redundant_hits:.3}");
    assert!(
        decision_hits >= 0.8,
        "decision-related map peaks on the decisive cell in only {decision_hits}"
    );
    assert!(
        redundant_hits >= 0.8,
        "redundant map peaks on the distractor in only {redundant_hits}"
    );
    assert_decomposes(&maps);
}

#[test]
fn shuffled_pairs_carry_no_information() {
    let tmp = tempfile::tempdir().unwrap();
    let (cache, _) = setup(&tmp.path().join("cache"));
    let cfg = MiConfig {
        pairing: Pairing::Shuffled,
        ..config(6)
    };
    let summary = mi::train(
        &cache,
        &prototype_classifier(),
        "constructed",
        &cfg,
        &tmp.path().join("mi"),
        false,
    )
    .unwrap();
    for m in &summary.metrics {
        eprintln!("{}", serde_json::to_string(m).unwrap());
        assert!(
            m.heldout_dv_raw.abs() < 0.05,
            "independent pairs gave {} nats in epoch {}",
            m.heldout_dv_raw,
            m.epoch
        );
    }
}

#[test]
fn resumed_training_matches_an_unbroken_run() {
    let tmp = tempfile::tempdir().unwrap();
    let (cache, _) = setup(&tmp.path().join("cache"));
    let classifier = prototype_classifier();
    let straight = mi::train(
        &cache,
        &classifier,
        "constructed",
        &config(3),
        &tmp.path().join("a"),
        false,
    )
    .unwrap();
    let first = mi::train(
        &cache,
        &classifier,
        "constructed",
        &config(2),
        &tmp.path().join("b"),
        false,
    )
    .unwrap();
    assert_eq!(first.epochs, 2);
    let resumed = mi::train(
        &cache,
        &classifier,
        "constructed",
        &config(3),
        &tmp.path().join("b"),
        true,
    )
    .unwrap();
    assert_eq!((resumed.epochs, resumed.epochs_run), (3, 1));
    assert_eq!(
        straight.metrics,
        resumed
            .metrics
            .iter()
            .map(|m| infodisent::mi::EpochMetrics {
                seconds: straight.metrics[m.epoch].seconds,
                ..m.clone()
            })
            .collect::<Vec<_>>()
    );
    let a = std::fs::read(tmp.path().join("a/mi.safetensors")).unwrap();
    let b = std::fs::read(tmp.path().join("b/mi.safetensors")).unwrap();
    assert_eq!(a, b, "resumed parameters differ from the unbroken run");
    let err = mi::train(
        &cache,
        &classifier,
        "constructed",
        &config(3),
        &tmp.path().join("b"),
        false,
    )
    .unwrap_err();
    assert!(err.to_string().contains("--resume"), "{err}");
}

#[test]
fn maps_against_local_negatives_decompose_and_stay_finite() {
    let tmp = tempfile::tempdir().unwrap();
    let (cache, test) = setup(&tmp.path().join("cache"));
    let cfg = MiConfig {
        map_negatives: MapNegatives::Locals,
        ..config(4)
    };
    let out = tmp.path().join("mi");
    mi::train(
        &cache,
        &prototype_classifier(),
        "constructed",
        &cfg,
        &out,
        false,
    )
    .unwrap();
    let model = MiModel::load(&out).unwrap();
    assert_eq!(model.meta.config.map_negatives, MapNegatives::Locals);
    let maps = model
        .maps(&test.split.features, test.split.labels.len())
        .unwrap();
    assert_decomposes(&maps);
}
