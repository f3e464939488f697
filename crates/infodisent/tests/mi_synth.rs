//! Acceptance test of the mutual-information maps on real EfficientNet-Lite0 features of
//! generated images: the label depends only on a shape at a known place, a ring elsewhere carries
//! no label information. The decision-related map must peak on the shape and the redundant map
//! on the ring.

mod mi_common;

use infodisent::cache::FeatureCache;
use infodisent::engine::Backbone;
use infodisent::explain::render::ImageStore;
use infodisent::extract::{extract, ExtractOptions};
use infodisent::head::HeadKind;
use infodisent::metrics::pointing::AnnotationIndex;
use infodisent::mi::{self, MiConfig, MiModel};
use infodisent::synth::{self, SynthConfig};
use infodisent::train::{train, TrainConfig};
use mi_common::cell_touches;
use std::path::{Path, PathBuf};

/// Generated images: the shape decides the class, the ring's colour is drawn per image and
/// independently of the label, the background is one grey everywhere.
fn synth_config() -> SynthConfig {
    SynthConfig {
        classes: 3,
        train_per_class: 200,
        test_per_class: 20,
        distractor: true,
        distractor_colors: true,
        fixed_background: true,
        counter_fraction: 0.0,
        seed: 5,
        ..SynthConfig::default()
    }
}

/// Builds (once per target folder) the images, their Lite0 feature cache and a linear probe:
/// the backbone pass is the slow part and never changes, so later runs reuse it.
fn fixture() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("mi-synth-fixture-v1");
    if root.join("complete").exists() {
        return root;
    }
    let _ = std::fs::remove_dir_all(&root);
    let data = root.join("shapes");
    synth::generate(&data, &synth_config()).unwrap();
    let mut backbone = Backbone::load("efficientnet-lite0", None, 2).unwrap();
    let dataset = infodisent::dataset::Dataset::open(data.to_str().unwrap()).unwrap();
    let mut opts = ExtractOptions::new(backbone.model().preprocess.clone());
    opts.shard_size = 64;
    extract(&mut backbone, &dataset, &opts, &root.join("cache")).unwrap();
    let cache = FeatureCache::open(root.join("cache")).unwrap();
    let mut cfg = TrainConfig {
        epochs: 30,
        batch_size: 32,
        lr: 3e-3,
        ..TrainConfig::default()
    };
    cfg.head.kind = HeadKind::LinearProbe;
    train(&cache, &cfg, &root.join("probe"), false).unwrap();
    std::fs::write(root.join("complete"), b"").unwrap();
    root
}

fn probe(root: &Path) -> infodisent::classifier::LinearClassifier {
    let cache = FeatureCache::open(root.join("cache")).unwrap();
    mi::resolve_classifier(&cache, &mi::ClassifierChoice::Probe(root.join("probe")))
        .unwrap()
        .0
}

#[test]
#[ignore = "acceptance not met yet: after 240 steps (~4 min on 2 shared cores) the decision map peaks on the shape in 50% of images and the redundant map on the ring in 17%; λ itself peaks on the shape in 27/42, but the total map peaks on plain background in 30/42 (every cell feeds the pooled Z, so every cell carries information about it)"]
fn decision_map_finds_the_shape_and_redundant_map_the_ring() {
    let root = fixture();
    let cache = FeatureCache::open(root.join("cache")).unwrap();
    let probe = probe(&root);
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("mi");
    let cfg = MiConfig {
        epochs: 40,
        eval_items: 60,
        ..MiConfig::default()
    };
    let summary = mi::train(&cache, &probe, "probe", &cfg, &out, false).unwrap();
    for m in &summary.metrics {
        eprintln!("{}", serde_json::to_string(m).unwrap());
    }
    let (first, last) = (&summary.metrics[0], summary.metrics.last().unwrap());
    assert!(
        last.heldout_dv_raw > first.heldout_dv_raw && last.heldout_dv_raw >= 0.0,
        "DV estimate: {first:?} -> {last:?}"
    );

    let annotations = synth::load_annotations(root.join("shapes")).unwrap();
    let index = AnnotationIndex::new(&annotations);
    let test = cache.read_split("test").unwrap();
    let items = cache.items("test").unwrap();
    let model = MiModel::load(&out).unwrap();
    let maps = model.maps(&test.features, test.len).unwrap();
    let [_, h, w] = cache.feature_shape();
    let size = synth_config().size;
    let (mut decision_hits, mut redundant_hits) = (0, 0);
    let (mut lambda_hits, mut total_on_shape, mut total_on_ring) = (0, 0, 0);
    for (m, item) in maps.iter().zip(&items) {
        let a = index.get(&item.path).expect("a generated image");
        let on = |values: &[f32], b| {
            usize::from(cell_touches(
                mi::maps::argmax_cell(values, w),
                h,
                w,
                size,
                b,
            ))
        };
        lambda_hits += on(&m.lambda, a.decisive);
        total_on_shape += on(&m.total, a.decisive);
        total_on_ring += on(&m.total, a.distractor.unwrap());
        decision_hits += on(&m.decision, a.decisive);
        redundant_hits += on(&m.redundant, a.distractor.unwrap());
    }
    let n = maps.len() as f32;
    let (dec, red) = (decision_hits as f32 / n, redundant_hits as f32 / n);
    eprintln!("decision-related peak on the shape: {dec:.3}; redundant peak on the ring: {red:.3} ({n} test images)");
    eprintln!("λ peak on the shape: {lambda_hits}; total peak on the shape {total_on_shape}, on the ring {total_on_ring}");
    assert!(
        dec >= 0.8,
        "decision-related map peaks on the deciding shape in only {dec}"
    );
    assert!(red >= 0.8, "redundant map peaks on the ring in only {red}");

    let ex = mi::explain_cached_item(
        &model,
        &cache,
        "test",
        3,
        &tmp.path().join("ex"),
        &ImageStore::default(),
    )
    .unwrap();
    for f in [
        &ex.files.total,
        &ex.files.decision,
        &ex.files.redundant,
        &ex.files.panel,
    ] {
        let img = image::open(f).unwrap();
        assert!(
            img.width() >= size && img.height() == size,
            "{}",
            f.display()
        );
    }
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&ex.files.json).unwrap()).unwrap();
    assert_eq!(json["maps"]["total"].as_array().unwrap().len(), h * w);
}
