//! Fidelity training (`--target original`): a head fitted to the original Lite0 classifier's
//! softmax over its 1000 ImageNet classes, scored by agreement with it, and an unlabelled folder
//! of real photos explained in the original model's classes.

mod explain_common;

use explain_common::fixture;
use infodisent::cache::FeatureCache;
use infodisent::classifier::average_pool;
use infodisent::engine::Backbone;
use infodisent::eval::evaluate;
use infodisent::explain::session::ExplainSession;
use infodisent::extract::{extract, ExtractOptions};
use infodisent::head::params::argmax;
use infodisent::runs::load_head;
use infodisent::train::{cache_for_head, train, Init, Target, TrainConfig};
use std::path::Path;

/// The dynamic trivialization with the Cayley retraction: a fifth of the static rotation's step
/// at D = 1280, and these tests check the fit to the model, not the parametrization.
fn fast(mut cfg: TrainConfig) -> TrainConfig {
    cfg.head.rotation = infodisent::head::Parametrization::Cayley;
    cfg.head.rebase_every = 1;
    cfg
}

#[test]
fn a_head_fitted_to_the_original_classifier_agrees_with_it() {
    let fx = fixture();
    let cache = FeatureCache::open(&fx.cache).unwrap();
    let classifier = cache
        .classifier()
        .unwrap()
        .expect("Lite0 has a linear classifier");
    let out = tempfile::tempdir().unwrap();
    let cfg = fast(
        TrainConfig {
            target: Target::Original,
            epochs: Some(20),
            val_fraction: 0.0,
            batch_size: 32,
            lr: 3e-3,
            seed: 0,
            ..TrainConfig::default()
        }
        .paper(),
    );
    train(&cache, &cfg, out.path(), false).unwrap();
    let head = load_head(out.path()).unwrap();
    assert_eq!(head.classes, 1000, "the original classifier's classes");

    // The original view labels each image by the original model's top class.
    let labelled = cache_for_head(cache.clone(), out.path()).unwrap();
    assert!(labelled.labels_are_original());
    assert_eq!(labelled.manifest().classes[285], "Egyptian cat");
    let test = labelled.read_split("test").unwrap();
    let [d, h, w] = cache.feature_shape();
    let mut original = Vec::new();
    let mut agree = 0;
    for i in 0..test.len {
        let f = &test.features[i * d * h * w..(i + 1) * d * h * w];
        let theirs = argmax(&classifier.logits(&average_pool(f, h * w)));
        assert_eq!(test.labels[i] as usize, theirs);
        agree += usize::from(head.decide(f, h * w).unwrap().predicted == theirs);
        original.push(theirs);
    }
    let items = labelled.items("test").unwrap();
    assert!(items
        .iter()
        .zip(&original)
        .all(|(it, &c)| it.label as usize == c));
    let report = evaluate(&labelled, "test", "fitted", &head).unwrap();
    assert_eq!(report.top1, agree as f64 / test.len as f64);
    // The shapes are no ImageNet class, so the original model spreads them over several.
    let mut counts = std::collections::HashMap::new();
    original
        .iter()
        .for_each(|&c| *counts.entry(c).or_insert(0usize) += 1);
    let majority = *counts.values().max().unwrap() as f64 / test.len as f64;
    println!(
        "agreement {:.3} over {} test images; {} original classes, the most frequent {:.3}",
        report.top1,
        test.len,
        counts.len(),
        majority
    );
    assert!(counts.len() >= 3, "{counts:?}");
    assert!(
        report.top1 >= 0.85 && report.top1 > majority,
        "{}",
        report.top1
    );
    // The dataset's labels are untouched outside the view.
    assert!(!cache.labels_are_original());
    assert_eq!(cache_for_head(cache, &fx.head).unwrap().num_classes(), 3);
}

#[test]
fn an_unlabelled_photo_folder_is_explained_in_the_original_classes() {
    let root = tempfile::tempdir().unwrap();
    let photos = root.path().join("photos");
    std::fs::create_dir(&photos).unwrap();
    let source = infodisent::assets::asset("photos/imagenet").unwrap();
    for entry in std::fs::read_dir(source).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, photos.join(path.file_name().unwrap())).unwrap();
    }
    // Every photo is trained on and explained: this checks the fit, not generalisation.
    let whole = infodisent::dataset::OpenOptions {
        test_fraction: 0.0,
        ..Default::default()
    };
    let dataset =
        infodisent::dataset::Dataset::open_with(photos.to_str().unwrap(), &whole).unwrap();
    assert_eq!(dataset.classes, vec!["unlabelled".to_owned()]);
    let mut backbone = Backbone::load("efficientnet-lite0", None, 2).unwrap();
    let opts = ExtractOptions::default();
    let cache_dir = root.path().join("cache");
    extract(&mut backbone, &dataset, &opts, &cache_dir).unwrap();
    let cache = FeatureCache::open(&cache_dir).unwrap();

    let head_dir = root.path().join("head");
    let labels = TrainConfig {
        split: "all".into(),
        epochs: Some(1),
        val_fraction: 0.0,
        ..TrainConfig::default()
    }
    .paper();
    let err = train(&cache, &labels, &head_dir, false).unwrap_err();
    assert!(err.to_string().contains("--target original"), "{err}");
    let fitted = fast(TrainConfig {
        target: Target::Original,
        epochs: Some(30),
        val_fraction: 0.0,
        batch_size: 8,
        lr: 3e-3,
        ..labels
    });
    train(&cache, &fitted, &head_dir, false).unwrap();
    let session = ExplainSession::open(&cache_dir, &head_dir, None, None, 3).unwrap();
    started_from_the_classifier_agrees_before_training(&cache, &root.path().join("start"));
    assert!(session.cache.labels_are_original());
    let names = &session.cache.manifest().classes;
    assert_eq!(names.len(), 1000);
    let items = session.cache.items("all").unwrap();
    let mut agree = 0;
    for (i, item) in items.iter().enumerate() {
        let ex = session.explain_item("all", i, None).unwrap();
        // The label of an unlabelled photo is the original model's top class.
        assert_eq!(ex.label, Some(item.label as usize));
        assert!(!ex.positive.is_empty());
        agree += usize::from(ex.predicted == item.label as usize);
        println!(
            "{}: original {}, head {} ({})",
            item.path, names[item.label as usize], names[ex.predicted], ex.predicted
        );
    }
    assert!(agree * 4 >= items.len() * 3, "{agree} of {}", items.len());
}

/// A head started from the model's classifier (`init = original`) and not trained (one step
/// at a negligible rate) already agrees with the model on nearly every photo (18 of the 20 when
/// written), where one started at random agrees with it on none but by chance: the start
/// carries the classifier, not the few photos.
fn started_from_the_classifier_agrees_before_training(cache: &FeatureCache, dir: &Path) {
    let agreement = |init: Init, out: &str| {
        let cfg = TrainConfig {
            target: Target::Original,
            split: "all".into(),
            epochs: Some(1),
            batch_size: 64,
            lr: 1e-12,
            val_fraction: 0.0,
            init,
            ..TrainConfig::default()
        }
        .paper();
        let out = dir.join(out);
        train(cache, &cfg, &out, false).unwrap();
        let labelled = cache_for_head(cache.clone(), &out).unwrap();
        let head = load_head(&out).unwrap();
        evaluate(&labelled, "all", out.to_str().unwrap(), &head)
            .unwrap()
            .top1
    };
    let (start, random) = (
        agreement(Init::Original, "original"),
        agreement(Init::Random, "random"),
    );
    println!("agreement before training: {start:.3} from the classifier, {random:.3} at random");
    assert!(start >= 0.85, "{start}");
    assert!(random <= 0.2, "{random}");
}
