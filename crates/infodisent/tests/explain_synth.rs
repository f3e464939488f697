//! Explanations on generated images whose deciding shape, distractor and counter-evidence
//! boxes are known: prototypes and heatmaps must find the shape, contributions must add up to
//! the logit, and the negative map must find planted counter-evidence.

mod explain_common;

use explain_common::fixture;
use infodisent::cache::FeatureCache;
use infodisent::explain::session::ExplainSession;
use infodisent::explain::{
    explain_classes, find_prototypes, top_weighted_channels, Grid, ImageExplainer, ImageExplanation,
};
use infodisent::geometry::boxes_overlap;
use infodisent::head::params::sparse_pool;
use infodisent::metrics::pointing::AnnotationIndex;
use infodisent::runs::load_head;

/// Explanations of every test image for its true class, with every contribution listed.
fn explain_test_split(cache: &FeatureCache) -> Vec<(ImageExplanation, String)> {
    let fx = fixture();
    let head = load_head(&fx.head).unwrap();
    let grid = Grid::from_shape(cache.feature_shape());
    let mut ex = ImageExplainer::new(
        head,
        None,
        grid,
        cache.manifest().input_size,
        cache.manifest().classes.clone(),
    )
    .unwrap();
    ex.top = grid.dim;
    let items = cache.items("test").unwrap();
    let shard = cache.read_split("test").unwrap();
    let labels: Vec<usize> = shard.labels.iter().map(|&l| l as usize).collect();
    let paths: Vec<String> = items.iter().map(|i| i.path.clone()).collect();
    let all = ex
        .explain_batch(&shard.features, shard.len, Some(&labels), &paths)
        .unwrap();
    all.into_iter().zip(paths).collect()
}

#[test]
fn contributions_add_up_to_the_logit() {
    let fx = fixture();
    let cache = FeatureCache::open(&fx.cache).unwrap();
    let head = load_head(&fx.head).unwrap();
    let shard = cache.read_split("test").unwrap();
    let grid = Grid::from_shape(cache.feature_shape());
    let j = head
        .rotate(&shard.features, shard.len, grid.cells())
        .unwrap();
    for (i, (ex, _)) in explain_test_split(&cache).iter().enumerate() {
        let logits = head.logits(
            &sparse_pool(
                &j[i * grid.len()..(i + 1) * grid.len()],
                grid.dim,
                grid.cells(),
            )
            .v,
        );
        let sum: f32 = ex
            .positive
            .iter()
            .chain(&ex.negative)
            .map(|c| c.contribution)
            .sum();
        assert!(
            (sum + ex.bias - logits[ex.class]).abs() <= 1e-4,
            "image {i}: Σa + b = {} but logit = {}",
            sum + ex.bias,
            logits[ex.class]
        );
        assert_eq!(ex.logits, logits);
    }
}

#[test]
fn top_prototypes_sit_on_the_deciding_shape() {
    let fx = fixture();
    let cache = FeatureCache::open(&fx.cache).unwrap();
    let head = load_head(&fx.head).unwrap();
    let protos = find_prototypes(&cache, &head, "train", 5).unwrap();
    let index = AnnotationIndex::new(&fx.annotations);
    // The channels that matter for a class: its two largest mean contributions on its own
    // training images.
    let grid = Grid::from_shape(cache.feature_shape());
    let explainer = ImageExplainer::new(
        head.clone(),
        None,
        grid,
        cache.manifest().input_size,
        vec![],
    )
    .unwrap();
    let mut channels: Vec<usize> = explain_classes(&cache, &explainer, "train", None, 2)
        .unwrap()
        .iter()
        .flat_map(|c| c.channels.iter().map(|ch| ch.channel))
        .collect();
    channels.sort_unstable();
    channels.dedup();
    println!(
        "weight-ranked channels {:?}, contribution-ranked {channels:?}",
        top_weighted_channels(&head, 2)
    );
    let (mut on, mut on_distractor, mut total) = (0, 0, 0);
    for ch in channels {
        for p in &protos.channels[ch].positive {
            let ann = index
                .get(&p.path)
                .expect("prototype comes from the generated training set");
            total += 1;
            if boxes_overlap(&p.input_box, &ann.decisive) {
                on += 1;
            } else if ann
                .distractor
                .is_some_and(|d| boxes_overlap(&p.input_box, &d))
            {
                on_distractor += 1;
            }
        }
    }
    let rate = on as f64 / total as f64;
    println!(
        "prototype boxes on the deciding shape: {on}/{total} = {rate:.3}; on the distractor: {on_distractor}"
    );
    assert!(
        on_distractor * 10 <= total,
        "{on_distractor} of {total} prototype boxes lie on the label-free distractor"
    );
    assert!(total >= 10, "too few prototypes to judge: {total}");
    // Gallery prototypes are the best images over the whole training set, and some channels
    // peak one cell beside the shape (the misses are adjacent cells, never the distractor):
    // measured 80% and 97% for heads trained on this small set. Three times chance (a shape
    // box covers ~1/4 of an image's cells) is the bar; the per-image boxes
    // (top_contribution_boxes_sit_on_the_deciding_shape) carry the 90%.
    assert!(
        rate >= 0.75,
        "only {on} of {total} prototype boxes lie on the deciding shape"
    );
}

#[test]
fn top_contribution_boxes_sit_on_the_deciding_shape() {
    // What a user sees on an explained image: the part that matched each of the top channels'
    // prototypes, boxed at the channel's argmax cell.
    let fx = fixture();
    let cache = FeatureCache::open(&fx.cache).unwrap();
    let index = AnnotationIndex::new(&fx.annotations);
    let (mut first, mut top3, mut boxes, mut total) = (0, 0, 0, 0);
    for (ex, path) in explain_test_split(&cache) {
        let ann = index.get(&path).unwrap();
        let hits: Vec<bool> = ex
            .positive
            .iter()
            .take(3)
            .map(|c| boxes_overlap(&c.input_box, &ann.decisive))
            .collect();
        first += usize::from(hits[0]);
        top3 += hits.iter().filter(|&&h| h).count();
        boxes += hits.len();
        total += 1;
    }
    println!("top part box on the deciding shape: {first}/{total}; top-3 boxes {top3}/{boxes}");
    assert!(
        first as f64 >= 0.9 * total as f64,
        "the top contribution's box lay on the shape in only {first} of {total} images"
    );
    // Second and third channels often hold context next to the shape (measured 85%).
    assert!(
        top3 as f64 >= 0.8 * boxes as f64,
        "only {top3} of {boxes} top-3 contribution boxes lay on the shape"
    );
}

#[test]
fn positive_heatmap_peaks_on_the_deciding_shape() {
    let fx = fixture();
    let cache = FeatureCache::open(&fx.cache).unwrap();
    let index = AnnotationIndex::new(&fx.annotations);
    let grid = Grid::from_shape(cache.feature_shape());
    let size = cache.manifest().input_size;
    let (mut dense, mut sparse, mut total) = (0, 0, 0);
    for (ex, path) in explain_test_split(&cache) {
        let ann = index.get(&path).unwrap();
        let hit = |m: &infodisent::explain::Heatmap| {
            boxes_overlap(&grid.cell_box(m.argmax(), size), &ann.decisive)
        };
        dense += usize::from(hit(ex
            .heatmaps
            .get(infodisent::explain::dense::POSITIVE)
            .unwrap()));
        sparse += usize::from(hit(ex
            .heatmaps
            .get(infodisent::explain::sparse::POSITIVE)
            .unwrap()));
        total += 1;
    }
    println!("H+ peaks on the deciding shape: dense {dense}/{total}, sparse {sparse}/{total}");
    assert!(
        dense as f64 >= 0.9 * total as f64,
        "dense H+ peaked on the shape in only {dense} of {total} images"
    );
    // The sparse map keeps one cell per channel, so its peak moves with the training draw:
    // 53, 54 and 53 of 60 for seed 0 and 1 with the gemm crate and seed 1 with OpenBLAS (whose
    // kernels, and so the draw, depend on the CPU). The bar sits under that spread, far above
    // chance (a random map: 12 of 60).
    assert!(
        sparse as f64 >= 0.85 * total as f64,
        "sparse H+ peaked on the shape in only {sparse} of {total} images"
    );
}

#[test]
fn negative_heatmap_lights_up_the_counter_evidence() {
    let fx = fixture();
    let cache = FeatureCache::open(&fx.cache).unwrap();
    let index = AnnotationIndex::new(&fx.annotations);
    let grid = Grid::from_shape(cache.feature_shape());
    let size = cache.manifest().input_size;
    let (mut peaks, mut brighter, mut total) = (0, 0, 0);
    for (ex, path) in explain_test_split(&cache) {
        let ann = index.get(&path).unwrap();
        let Some((_, counter)) = ann.counter else {
            continue;
        };
        let neg = ex
            .heatmaps
            .get(infodisent::explain::dense::NEGATIVE)
            .unwrap();
        peaks += usize::from(boxes_overlap(&grid.cell_box(neg.argmax(), size), &counter));
        let (mut inside, mut n_in, mut outside, mut n_out) = (0.0, 0, 0.0, 0);
        for (cell, &v) in neg.values.iter().enumerate() {
            if boxes_overlap(&grid.cell_box(cell, size), &counter) {
                inside += v;
                n_in += 1;
            } else {
                outside += v;
                n_out += 1;
            }
        }
        brighter += usize::from(inside / n_in as f32 > outside / n_out as f32);
        total += 1;
    }
    println!(
        "H- on the counter shape: peak {peaks}/{total}, brighter than elsewhere {brighter}/{total}"
    );
    assert!(total >= 10, "too few images with counter-evidence: {total}");
    assert!(
        brighter as f64 >= 0.9 * total as f64,
        "H- was brighter on the counter shape in only {brighter} of {total} images"
    );
    // A 32-px cell grid puts a 56-px shape under 4–9 of 49 cells, so chance is about 12%.
    assert!(
        peaks as f64 >= 0.4 * total as f64,
        "H- peaked on the counter shape in only {peaks} of {total} images"
    );
}

#[test]
fn session_writes_a_figure_and_json_per_image_and_class_summaries() {
    let fx = fixture();
    let out = tempfile::tempdir().unwrap();
    let session = ExplainSession::open(
        &fx.cache,
        &fx.head,
        Some(&fx.probe),
        Some(out.path().join("prototypes.json")),
        5,
    )
    .unwrap();
    let mut ex = session.explain_item("test", 3, None).unwrap();
    assert_eq!(ex.item, Some(3));
    assert!(
        ex.heatmaps.get(infodisent::explain::cam::NAME).is_some(),
        "the probe has the dataset's classes, so CAM is drawn"
    );
    session.write(&mut ex, out.path(), "item3").unwrap();
    let png = image::open(out.path().join("item3.png")).unwrap();
    assert!(
        png.width() >= 4 * 160 && png.height() >= 2 * 160,
        "figure is {}×{}",
        png.width(),
        png.height()
    );
    let back: ImageExplanation =
        infodisent::fsutil::read_json(out.path().join("item3.json")).unwrap();
    assert_eq!(back, ex);
    assert!(out.path().join("prototypes.json").exists());

    let classes = explain_classes(&session.cache, &session.explainer, "test", None, 5).unwrap();
    assert_eq!(classes.len(), 3);
    for c in &classes {
        assert_eq!(c.images, 20);
        // Half the test images also carry another class's shape, so chance is 1/3 and the
        // ceiling is below 1.
        assert!(
            3 * c.correct > c.images,
            "class {}: {} of {} correct",
            c.class,
            c.correct,
            c.images
        );
        assert!(c.channels[0].mean_contribution > 0.0 && c.channels[0].top_frequency > 0.5);
    }
}
