//! A dataset as CUB ships it: an ImageFolder tree, so the cache is written class by class.
//! Training must not care: the same Fashion-MNIST images extracted from a class-sorted folder
//! reach the test accuracy they reach in IDX order (classes interleaved), within half a point. Small shards make the
//! split many shards long, as a real dataset is, so a shuffle that only mixed neighbouring shards
//! would see one or two classes per batch here.

use infodisent::cache::FeatureCache;
use infodisent::dataset::Dataset;
use infodisent::engine::Backbone;
use infodisent::eval::evaluate;
use infodisent::extract::{extract, ExtractOptions};
use infodisent::head::HeadKind;
use infodisent::runs::load_trained;
use infodisent::train::{train, TrainConfig};
use std::path::Path;

const PER_CLASS: usize = 60;

fn extract_into(backbone: &mut Backbone, dataset: &Dataset, dir: &Path) -> FeatureCache {
    let opts = ExtractOptions {
        shard_size: 32,
        ..ExtractOptions::default()
    };
    extract(backbone, dataset, &opts, dir).unwrap();
    FeatureCache::open(dir).unwrap()
}

/// The same images as `dataset`, written as PNG files into `root/<split>/<class>/`.
fn write_image_folder(dataset: &Dataset, root: &Path) {
    for split in &dataset.splits {
        for (i, s) in split.samples.iter().enumerate() {
            let dir = root.join(&split.name).join(&dataset.classes[s.label]);
            std::fs::create_dir_all(&dir).unwrap();
            s.load()
                .unwrap()
                .save(dir.join(format!("{i:05}.png")))
                .unwrap();
        }
    }
}

fn test_accuracy(cache: &FeatureCache, kind: HeadKind, epochs: usize, out: &Path) -> (f64, f64) {
    let cfg = TrainConfig {
        epochs: Some(epochs),
        val_fraction: 0.0,
        batch_size: 32,
        lr: 3e-3,
        seed: 3,
        ..TrainConfig::default()
    }
    .with_kind(kind);
    let summary = train(cache, &cfg, out, false).unwrap();
    let head = load_trained(out).unwrap();
    let report = evaluate(cache, "test", "head", &head).unwrap();
    (summary.train_acc, report.top1)
}

#[test]
fn a_class_sorted_folder_trains_like_interleaved_data() {
    let mut fm = Dataset::open("fashion-mnist").unwrap();
    fm.limit(Some(PER_CLASS), None);
    let dir = tempfile::tempdir().unwrap();
    write_image_folder(&fm, &dir.path().join("folder"));
    let folder = Dataset::open(dir.path().join("folder").to_str().unwrap()).unwrap();
    let train_labels: Vec<usize> = folder
        .split("train")
        .unwrap()
        .samples
        .iter()
        .map(|s| s.label)
        .collect();
    assert!(
        train_labels.windows(2).all(|w| w[0] <= w[1]),
        "an ImageFolder lists its images class by class"
    );

    let mut backbone = Backbone::load("efficientnet-lite0", None, 2).unwrap();
    let interleaved = extract_into(&mut backbone, &fm, &dir.path().join("idx-cache"));
    let sorted = extract_into(&mut backbone, &folder, &dir.path().join("folder-cache"));

    // Two epochs of the linear probe: long enough to learn, short enough that the order of the
    // last batches shows. Measured: 82.8 % (IDX order) vs 84.2 % (class-sorted); with the
    // previous two-shard shuffle window the class-sorted folder reached only 67.5 %. InfoDisent
    // (8 epochs: 87.3 % vs 85.8 %) takes ten minutes here and its seed noise is that large, so it
    // is not asserted.
    let kind = HeadKind::LinearProbe;
    let (train_a, test_a) = test_accuracy(&interleaved, kind, 2, &dir.path().join("a"));
    let (train_b, test_b) = test_accuracy(&sorted, kind, 2, &dir.path().join("b"));
    println!(
        "{kind:?}: IDX order train {train_a:.3} test {test_a:.3}; class-sorted folder train {train_b:.3} test {test_b:.3}"
    );
    assert!(test_a > 0.6, "the probe learns: {test_a}");
    assert!(
        test_b >= test_a - 0.005 - 1e-9,
        "test accuracy {test_a:.4} (interleaved) vs {test_b:.4} (class-sorted)"
    );
}
