//! Metrics on generated images with known deciding shapes: the pointing game must favour the
//! InfoDisent maps over chance, the channel counts and RV coefficients must be well-formed,
//! and deletion must hurt the class sooner along the InfoDisent map than along a random one.

mod explain_common;

use explain_common::fixture;
use infodisent::baseline::choose;
use infodisent::cache::FeatureCache;
use infodisent::engine::Backbone;
use infodisent::metrics::{cache_metrics, faithfulness_metrics, MetricsOptions};
use infodisent::runs::load_head;

#[test]
fn pointing_game_channel_counts_and_rv_from_the_cache() {
    let fx = fixture();
    let cache = FeatureCache::open(&fx.cache).unwrap();
    let head = load_head(&fx.head).unwrap();
    let baseline = choose(&cache, Some(&fx.probe)).unwrap().unwrap();
    let opts = MetricsOptions {
        rv_images: 60,
        rv_pairs: 300,
        ..MetricsOptions::default()
    };
    let r = cache_metrics(&cache, &head, Some(&baseline), Some(&fx.annotations), &opts).unwrap();
    println!("{}", serde_json::to_string_pretty(&r).unwrap());
    assert_eq!(r.images, 60);
    // Half the test images carry a second class's shape as counter-evidence: chance is 1/3.
    assert!(r.accuracy >= 0.6, "head accuracy {}", r.accuracy);
    let score = |name: &str| {
        r.pointing
            .iter()
            .find(|p| p.method == name)
            .unwrap_or_else(|| panic!("no pointing score for {name}"))
            .accuracy
    };
    assert!(
        score("infodisent+") >= 0.9,
        "pointing game {}",
        score("infodisent+")
    );
    assert!(score("infodisent+") > score("random") + 0.3);
    assert!(r.pointing.iter().any(|p| p.method == "cam"));
    let planted = fx
        .annotations
        .iter()
        .filter(|(k, a)| k.starts_with("test/") && a.counter.is_some())
        .count();
    assert_eq!(r.counter_pointing[0].total, planted);
    let c = &r.channels_for_95.strict;
    assert!(c.mean >= 1.0 && c.median >= 1.0 && c.mean <= head.dim as f64);
    assert_eq!(c.histogram.iter().map(|b| b.count).sum::<usize>(), 60);
    let paper = &r.channels_for_95;
    assert_eq!(paper.paper.images + paper.paper_undefined, 60);
    let b = r.baseline_channels_for_95.as_ref().unwrap();
    assert_eq!(b.strict.images, 60);
    assert!(r.rv.images == 60 && r.rv.pairs <= 300);
    let pooled = r.rv.pooled.unwrap();
    for stat in [
        r.rv.maps.infodisent,
        r.rv.maps.raw,
        pooled.infodisent,
        pooled.raw,
    ] {
        assert!((0.0..=1.0).contains(&stat.mean) && (0.0..=1.0).contains(&stat.null));
    }
    assert!((0.0..=1.0).contains(&r.weights.zero_share));
}

#[test]
fn deletion_follows_the_infodisent_map_faster_than_a_random_one() {
    let fx = fixture();
    let cache = FeatureCache::open(&fx.cache).unwrap();
    let head = load_head(&fx.head).unwrap();
    let baseline = choose(&cache, Some(&fx.probe))
        .unwrap()
        .ok()
        .map(|b| b.classifier);
    let mut backbone = Backbone::load("efficientnet-lite0", None, 2).unwrap();
    let mut features = backbone.feature_fn();
    let opts = MetricsOptions {
        deletion_images: 6,
        steps: 8,
        ..MetricsOptions::default()
    };
    let scores =
        faithfulness_metrics(&cache, &head, baseline.as_ref(), &mut features, &opts).unwrap();
    println!("{}", serde_json::to_string_pretty(&scores).unwrap());
    let names: Vec<&str> = scores.iter().map(|s| s.method.as_str()).collect();
    assert_eq!(
        names,
        ["infodisent+", "infodisent-sparse+", "cam", "random"]
    );
    for s in &scores {
        assert_eq!(s.images, 6);
        assert!(
            (0.0..=1.0).contains(&s.deletion_auc) && (0.0..=1.0).contains(&s.insertion_auc),
            "{s:?}"
        );
    }
    assert!(
        scores[0].deletion_auc < scores[3].deletion_auc,
        "InfoDisent deletion AUC {} vs random {}",
        scores[0].deletion_auc,
        scores[3].deletion_auc
    );
}
