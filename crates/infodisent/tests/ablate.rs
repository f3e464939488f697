//! The ablation grid on a synthetic cache whose class is decided by a sparse local feature:
//! one row per recipe plus the probe, measured the same way; finished variants are reused and a
//! folder trained with other settings is refused.

mod train_common;

use infodisent::ablate::{run, select, standard_grid, standard_probes};
use infodisent::metrics::MetricsOptions;
use infodisent::train::TrainConfig;
use train_common::write_cache;

#[test]
fn every_recipe_gets_one_measured_row_and_reruns_reuse_the_heads() {
    let dir = tempfile::tempdir().unwrap();
    let cache = write_cache(&dir.path().join("cache"), 120, 60, 11);
    let mut base = TrainConfig {
        epochs: Some(3),
        val_fraction: 0.0,
        batch_size: 20,
        lr: 0.05,
        seed: 3,
        ..TrainConfig::default()
    };
    base.head.w_init = 0.1;
    let grid = standard_grid(&base);
    let opts = MetricsOptions {
        split: "test".into(),
        rv_images: 60,
        rv_pairs: 30,
        ..MetricsOptions::default()
    };
    let out = dir.path().join("ablation");
    let rows = [standard_probes(&base), grid.clone()].concat();
    let report = run(&cache, &rows, &out, &opts, None).unwrap();
    assert_eq!(
        report.rows.len(),
        grid.len() + 3,
        "three probes and the grid"
    );
    assert_eq!(report.images, 60);
    let probe = &report.rows[0];
    assert!(probe.name.contains("probe") && probe.zero_share.is_none());
    for row in &report.rows {
        assert!((0.0..=1.0).contains(&row.top1), "{row:?}");
        assert!(
            row.channels_strict >= 1.0 && row.channels_strict <= 12.0,
            "{row:?}"
        );
        assert!(row.train_seconds > 0.0);
    }
    let by_folder = |f: &str| {
        report
            .rows
            .iter()
            .find(|r| r.folder.ends_with(f))
            .unwrap_or_else(|| panic!("no row for {f}"))
    };
    // The W ≥ 0 probe has only nonnegative weights, some of them exactly zero.
    let nonnegative = by_folder("linear-probe-nonnegative");
    assert!(nonnegative.name.contains("W ≥ 0"));
    assert!(nonnegative.zero_share.unwrap() > 0.0, "{nonnegative:?}");
    let probe = infodisent::runs::load_probe(out.join("linear-probe-nonnegative")).unwrap();
    assert!(probe.weight.iter().all(|&w| w >= 0.0));
    // The max-pooled probe is saved as one and learns.
    let max = by_folder("linear-probe-max");
    assert!(max.name.contains("max-pooled") && max.top1 > 0.5, "{max:?}");
    let probe = infodisent::runs::load_probe(out.join("linear-probe-max")).unwrap();
    assert_eq!(probe.pooling, infodisent::classifier::Pooling::Max);
    // lr-rotation 0 keeps U at the identity; the recipe moves it.
    assert_eq!(by_folder("frozen-u").rotation_from_identity, Some(0.0));
    assert!(by_folder("recipe").rotation_from_identity.unwrap() > 0.0);
    // Keeping 5 weights of 12 per class leaves at least 7/12 of W at zero.
    assert!(by_folder("keep-top-5").zero_share.unwrap() >= 7.0 / 12.0 - 1e-9);
    assert!(by_folder("recipe").top1 > 0.8, "{:?}", by_folder("recipe"));
    // The default recipe, trained as a frame: as sparse, and it learns.
    let frame = by_folder("keep-top-5-sigmoid-frame");
    assert!(frame.name.contains("frame") && frame.name.contains("default"));
    assert!(
        frame.zero_share.unwrap() >= 7.0 / 12.0 - 1e-9 && frame.top1 > 0.8,
        "{frame:?}"
    );

    // A second run trains nothing: same rows, same logs.
    let log = std::fs::read(out.join("recipe").join("metrics.jsonl")).unwrap();
    let again = run(&cache, &rows, &out, &opts, None).unwrap();
    assert_eq!(again, report);
    assert_eq!(
        std::fs::read(out.join("recipe").join("metrics.jsonl")).unwrap(),
        log
    );

    // Other settings in the same folder are refused, not silently reused.
    let mut other = base.clone();
    other.epochs = Some(4);
    let others = [standard_probes(&other), standard_grid(&other)].concat();
    let err = run(&cache, &others, &out, &opts, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("other settings"), "{err}");

    // `--only`: the named rows in the grid's order, reusing what is trained; a wrong name lists the grid.
    let only = ["keep-top-5-sigmoid".to_string(), "recipe".to_string()];
    let picked = select(standard_grid(&base), &only).unwrap();
    let folders: Vec<&str> = picked.iter().map(|v| v.folder.as_str()).collect();
    assert_eq!(folders, ["recipe", "keep-top-5-sigmoid"]);
    let picked = [standard_probes(&base), picked].concat();
    let again = run(&cache, &picked, &out, &opts, None).unwrap();
    assert_eq!(again.rows.len(), 5, "three probes and the two rows");
    assert_eq!(&again.rows[4], by_folder("keep-top-5-sigmoid"));
    let err = select(standard_grid(&base), &["defualt".to_string()])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("defualt") && err.contains("keep-top-5-sigmoid"),
        "{err}"
    );
}
