//! Disentanglement on features entangled by construction: in the synthetic cache each class
//! fires four raw channels at the same cell, noisy copies of one part detector, and the model's
//! own classifier reads exactly those four. The rotated channels an InfoDisent decision reads
//! must be measurably less alike than those raw copies, in both readings of the RV coefficient.

mod train_common;

use infodisent::baseline::choose;
use infodisent::metrics::{cache_metrics, MetricsOptions};
use infodisent::runs::load_head;
use infodisent::train::{train, RotationInit, TrainConfig};
use train_common::write_cache;

/// RV − null of the raw copies minus that of the rotated channels a decision uses: at least this.
const MARGIN: f64 = 0.1;

#[test]
fn the_rotation_separates_noisy_copies_of_one_part_detector() {
    let dir = tempfile::tempdir().unwrap();
    let cache = write_cache(&dir.path().join("cache"), 300, 120, 3);
    let cfg = TrainConfig {
        epochs: Some(4),
        seed: 1,
        rotation_init: RotationInit::Principal,
        decorrelation: 1.0,
        ..TrainConfig::default()
    };
    let out = dir.path().join("head");
    train(&cache, &cfg, &out, false).unwrap();
    let head = load_head(&out).unwrap();
    let original = choose(&cache, None).unwrap().unwrap();
    let opts = MetricsOptions {
        rv_images: 120,
        rv_pairs: 500,
        deletion_images: 0,
        ..MetricsOptions::default()
    };
    let r = cache_metrics(&cache, &head, Some(&original), None, &opts).unwrap();
    assert!(r.accuracy > 0.9, "accuracy {}", r.accuracy);
    let pooled = r.rv.pooled.expect("the pooled reading");
    let readings = [("maps", r.rv.maps), ("pooled", pooled)].map(|(reading, set)| {
        let raw = set.baseline_used.unwrap().excess();
        let rotated = set.infodisent_used.unwrap().excess();
        println!("{reading}: raw copies {raw:.3}, rotated {rotated:.3}");
        (reading, raw, rotated)
    });
    for (reading, raw, rotated) in readings {
        assert!(
            rotated < raw - MARGIN,
            "{reading}: rotated channels {rotated:.3}, raw copies {raw:.3}"
        );
    }
}
