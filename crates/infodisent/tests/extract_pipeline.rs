//! Feature extraction end to end with the real EfficientNet-Lite0 backbone on Fashion-MNIST and
//! generated folders: cache contents against direct backbone runs, resume after a kill, stale
//! caches, bad images.

use infodisent::backbone::BackboneSpec;
use infodisent::cache::{FeatureCache, StoreDtype};
use infodisent::dataset::{Dataset, OpenOptions};
use infodisent::engine::Backbone;
use infodisent::extract::{extract, ExtractOptions};
use infodisent::preprocess::{Normalize, PreprocessChoice};
use infodisent::Error;
use std::path::Path;

fn lite0() -> Backbone {
    Backbone::load("efficientnet-lite0", None, 1).unwrap()
}

/// The first `per_class` test images of each Fashion-MNIST class.
fn fashion_subset(per_class: usize) -> Dataset {
    let mut ds = Dataset::open("fashion-mnist").unwrap();
    ds.limit(Some(per_class), None);
    ds
}

fn options() -> ExtractOptions {
    ExtractOptions {
        splits: vec!["test".into()],
        batch: 4,
        shard_size: 8,
        ..ExtractOptions::default()
    }
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn cache_matches_a_direct_backbone_run() {
    let mut backbone = lite0();
    let ds = fashion_subset(2);
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options();
    opts.dtype = StoreDtype::F32;
    let summary = extract(&mut backbone, &ds, &opts, dir.path()).unwrap();
    assert!(summary.complete);
    assert_eq!(summary.images, 20);
    assert_eq!(summary.splits[0].shards, 3);

    let cache = FeatureCache::open(dir.path()).unwrap();
    assert_eq!(cache.feature_shape(), [1280, 7, 7]);
    assert_eq!(cache.manifest().classes.len(), 10);
    assert_eq!(cache.manifest().original_classes, Some(1000));
    let items = cache.items("test").unwrap();
    let samples = &ds.split("test").unwrap().samples;
    assert_eq!(items.len(), 20);
    assert!(items
        .iter()
        .zip(samples)
        .all(|(i, s)| i.path == s.path && i.label == s.label as i64));
    let all = cache.read_split("test").unwrap();
    assert_eq!(
        all.labels,
        samples.iter().map(|s| s.label as i64).collect::<Vec<_>>()
    );

    // The same images run directly, one batch, match what the cache holds.
    let pre = &backbone.model().preprocess.clone();
    let input: Vec<f32> = samples
        .iter()
        .flat_map(|s| pre.apply(&s.load().unwrap()).unwrap())
        .collect();
    let direct = backbone.run(&input, samples.len()).unwrap();
    assert!(max_abs_diff(&direct.features, &all.features) < 1e-3);
    let logits = all.logits.as_ref().unwrap();
    assert!(max_abs_diff(direct.logits.as_ref().unwrap(), logits) < 1e-3);

    // The stored classifier on the average-pooled features reproduces the stored logits.
    let classifier = cache.classifier().unwrap().expect("Lite0 has a classifier");
    assert_eq!((classifier.classes, classifier.dim), (1000, 1280));
    let first: Vec<f32> = all.features[..1280 * 49]
        .chunks(49)
        .map(|c| c.iter().sum::<f32>() / 49.0)
        .collect();
    assert!(max_abs_diff(&classifier.logits(&first), &logits[..1000]) < 1e-3);
}

fn shard_bytes(dir: &Path, split: &str) -> Vec<Vec<u8>> {
    let cache = FeatureCache::open(dir).unwrap();
    let info = cache.split(split).unwrap();
    (0..info.num_shards())
        .map(|s| std::fs::read(dir.join(split).join(format!("shard-{s:05}.safetensors"))).unwrap())
        .collect()
}

#[test]
fn a_killed_run_resumes_to_identical_shards() {
    let mut backbone = lite0();
    let ds = fashion_subset(2);
    let opts = options();

    let whole = tempfile::tempdir().unwrap();
    assert!(
        extract(&mut backbone, &ds, &opts, whole.path())
            .unwrap()
            .complete
    );

    // Stop after one shard, as a killed run would, and leave the debris a kill can leave: a
    // staging file and a shard file that the manifest does not record.
    let cut = tempfile::tempdir().unwrap();
    let first = extract(
        &mut backbone,
        &ds,
        &ExtractOptions {
            max_shards: Some(1),
            ..opts.clone()
        },
        cut.path(),
    )
    .unwrap();
    assert!(!first.complete);
    assert_eq!((first.splits[0].shards_written, first.images), (1, 8));
    let e = FeatureCache::open(cut.path())
        .unwrap()
        .split("test")
        .unwrap_err();
    assert!(
        matches!(e, Error::Cache { .. }) && e.to_string().contains("incomplete"),
        "{e}"
    );
    std::fs::write(
        cut.path().join("test/shard-00001.safetensors"),
        b"half a shard",
    )
    .unwrap();
    std::fs::write(
        cut.path().join("test/shard-00002.safetensors.999.tmp"),
        b"staging",
    )
    .unwrap();

    let second = extract(&mut backbone, &ds, &opts, cut.path()).unwrap();
    assert!(second.complete);
    assert_eq!(
        (
            second.splits[0].shards_resumed,
            second.splits[0].shards_written,
            second.images
        ),
        (1, 2, 12)
    );
    assert_eq!(
        shard_bytes(cut.path(), "test"),
        shard_bytes(whole.path(), "test")
    );

    // Running again finds nothing to do.
    let third = extract(&mut backbone, &ds, &opts, cut.path()).unwrap();
    assert_eq!((third.images, third.splits[0].shards_resumed), (0, 3));
}

#[test]
fn a_cache_made_with_other_settings_is_refused() {
    let mut backbone = lite0();
    let ds = fashion_subset(1);
    let opts = options();
    let dir = tempfile::tempdir().unwrap();
    let made = extract(&mut backbone, &ds, &opts, dir.path()).unwrap();

    // The same model preprocessed otherwise.
    let mut unit = BackboneSpec {
        preprocess: PreprocessChoice {
            normalize: Some(Normalize::Unit),
            ..PreprocessChoice::default()
        },
        ..BackboneSpec::new("efficientnet-lite0", 1)
    }
    .load()
    .unwrap();
    let mut other = opts.clone();
    let e = extract(&mut unit, &ds, &other, dir.path()).unwrap_err();
    assert!(matches!(e, Error::Cache { .. }), "{e}");
    assert_eq!(e.exit_code(), 5);
    assert!(e.to_string().contains("--overwrite"), "{e}");
    let e = FeatureCache::open_expecting(dir.path(), "another fingerprint").unwrap_err();
    assert_eq!(e.exit_code(), 5);

    // A different dataset listing is stale too.
    let e = extract(&mut backbone, &fashion_subset(2), &opts, dir.path()).unwrap_err();
    assert_eq!(e.exit_code(), 5);

    other.overwrite = true;
    let replaced = extract(&mut unit, &ds, &other, dir.path()).unwrap();
    assert!(replaced.complete);
    assert_ne!(replaced.fingerprint, made.fingerprint);
    let cache = FeatureCache::open_expecting(dir.path(), &replaced.fingerprint).unwrap();
    assert_eq!(cache.manifest().preprocess.normalize, Normalize::Unit);
}

#[test]
fn bad_images_stop_extraction_or_are_counted_with_skip_bad() {
    use image::{DynamicImage, ImageFormat, Rgb, RgbImage};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    for (class, colour) in [("blue", [0, 0, 255]), ("red", [255, 0, 0])] {
        for i in 0..3 {
            let path = root.join(class).join(format!("{i}.png"));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            DynamicImage::ImageRgb8(RgbImage::from_pixel(32, 24, Rgb(colour)))
                .save_with_format(&path, ImageFormat::Png)
                .unwrap();
        }
    }
    let good_png = std::fs::read(root.join("red/0.png")).unwrap();
    std::fs::write(root.join("blue/0-empty.png"), b"").unwrap();
    std::fs::write(root.join("red/1-text.jpg"), b"not a jpeg at all").unwrap();
    std::fs::write(root.join("red/2-cut.png"), &good_png[..good_png.len() / 2]).unwrap();
    std::fs::create_dir(root.join("zebra")).unwrap();

    let mut backbone = lite0();
    let mut opts = ExtractOptions {
        shard_size: 4,
        ..ExtractOptions::default()
    };
    let spec = root.to_str().unwrap();

    let e = Dataset::open(spec).unwrap_err();
    assert!(
        e.to_string().contains("zebra") && e.to_string().contains("empty class folder"),
        "{e}"
    );

    std::fs::write(root.join("zebra/0.png"), &good_png).unwrap();
    let strict = Dataset::open(spec).unwrap();
    let e = extract(&mut backbone, &strict, &opts, &dir.path().join("strict")).unwrap_err();
    assert!(matches!(e, Error::Input { .. }), "{e}");
    assert!(
        e.to_string().contains("0-empty.png"),
        "the first bad image is named: {e}"
    );
    std::fs::remove_file(root.join("zebra/0.png")).unwrap();

    let whole = OpenOptions {
        skip_bad: true,
        test_fraction: 0.0,
        ..Default::default()
    };
    let lenient = Dataset::open_with(spec, &whole).unwrap();
    opts.skip_bad = true;
    let summary = extract(&mut backbone, &lenient, &opts, &dir.path().join("lenient")).unwrap();
    assert!(summary.complete);
    assert_eq!((summary.splits[0].items, summary.splits[0].skipped), (6, 4));
    let cache = FeatureCache::open(dir.path().join("lenient")).unwrap();
    let skipped = &cache.manifest().splits["all"].skipped;
    let names: Vec<_> = skipped
        .iter()
        .map(|s| {
            Path::new(&s.path)
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(names, ["zebra", "0-empty.png", "1-text.jpg", "2-cut.png"]);
    assert!(
        skipped[2].reason.contains("not an image"),
        "{}",
        skipped[2].reason
    );
    let shard = cache.read_split("all").unwrap();
    assert_eq!(shard.labels, [0, 0, 0, 1, 1, 1]);
}

#[test]
fn an_f32_cache_resumes_on_either_engine_and_a_bf16_cache_rebuilds_its_engine() {
    use infodisent::engine::{Engine, Precision};
    let ds = fashion_subset(2);
    let opts = options();
    let dir = tempfile::tempdir().unwrap();

    // f32 through OpenVINO, resumed (and finished) through ONNX Runtime: one fingerprint.
    let mut ov = lite0().on(Engine::Openvino, Precision::F32).unwrap();
    let first = extract(
        &mut ov,
        &ds,
        &ExtractOptions {
            max_shards: Some(1),
            ..opts.clone()
        },
        dir.path(),
    )
    .unwrap();
    let rest = extract(&mut lite0(), &ds, &opts, dir.path()).unwrap();
    assert_eq!(first.fingerprint, rest.fingerprint);
    assert!(rest.complete && rest.splits[0].shards_resumed == 1);

    let cpu = infodisent::cpu::Cpu::get();
    if !cpu
        .features
        .iter()
        .any(|f| f == "amx_bf16" || f == "avx512_bf16")
    {
        let e = lite0().on(Engine::Auto, Precision::Bf16).unwrap_err();
        assert!(e.to_string().contains("neither AMX nor AVX512-BF16"), "{e}");
        return;
    }
    // bf16 is another cache: refused in the f32 one, naming the difference.
    let mut bf16 = lite0().on(Engine::Auto, Precision::Bf16).unwrap();
    assert_eq!(bf16.engine(), (Engine::Openvino, Precision::Bf16));
    let e = extract(&mut bf16, &ds, &opts, dir.path()).unwrap_err();
    assert!(e.to_string().contains("--precision"), "{e}");
    let bf_dir = tempfile::tempdir().unwrap();
    extract(&mut bf16, &ds, &opts, bf_dir.path()).unwrap();
    let cache = FeatureCache::open(bf_dir.path()).unwrap();
    let rebuilt = infodisent::backbone::from_cache(&cache, None, 1).unwrap();
    assert_eq!(rebuilt.engine(), (Engine::Openvino, Precision::Bf16));
    // Its features are the f32 ones to within bf16's error.
    let f32_features = FeatureCache::open(dir.path())
        .unwrap()
        .read_split("test")
        .unwrap();
    let bf16_features = cache.read_split("test").unwrap();
    let (num, den) = f32_features
        .features
        .iter()
        .zip(&bf16_features.features)
        .fold((0.0f64, 0.0f64), |(n, d), (&a, &b)| {
            (n + f64::from(a - b).powi(2), d + f64::from(a).powi(2))
        });
    let relative = (num / den).sqrt();
    assert!(
        relative > 0.0 && relative < 0.15,
        "bf16 features differ from f32 by {relative:.2e}"
    );
}
