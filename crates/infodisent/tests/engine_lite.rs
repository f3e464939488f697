//! Golden checks of the built-in EfficientNet-Lite models on real photos (needs the assets).

use infodisent::assets::asset;
use infodisent::engine::Backbone;
use infodisent::imageio::load_rgb;
use std::path::Path;

fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.iter().map(|v| (v - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.iter().map(|v| v / sum).collect()
}

/// Class indices sorted by decreasing logit.
fn ranking(logits: &[f32]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..logits.len()).collect();
    idx.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    idx
}

/// Preprocessed inputs for `paths`, stacked as one batch.
fn batch(backbone: &Backbone, paths: &[&Path]) -> Vec<f32> {
    let pre = &backbone.model().preprocess;
    paths
        .iter()
        .flat_map(|p| pre.apply(&load_rgb(p).unwrap()).unwrap())
        .collect()
}

#[test]
fn lite0_classifies_the_skimage_photos() {
    let mut net = Backbone::load("efficientnet-lite0", None, 2).unwrap();
    assert_eq!(net.model().feature_shape, [1280, 7, 7]);
    assert_eq!(net.model().feature_node, "head_relu6");
    let paths = [
        asset("photos/skimage/chelsea.png").unwrap(),
        asset("photos/skimage/coffee.png").unwrap(),
    ];
    let input = batch(&net, &[&paths[0], &paths[1]]);
    let out = net.run(&input, 2).unwrap();
    let logits = out.logits.unwrap();
    let classifier = net.model().classifier.clone().unwrap();
    for (i, (want, p_want)) in [(285usize, 0.79f32), (967, 0.90)].into_iter().enumerate() {
        let row = &logits[i * 1000..(i + 1) * 1000];
        let p = softmax(row);
        let top = ranking(row)[0];
        eprintln!("{}: top-1 {top} p={:.4}", paths[i].display(), p[want]);
        assert_eq!(top, want, "{}", paths[i].display());
        assert!(
            (p[want] - p_want).abs() < 0.05,
            "{}: p = {}",
            paths[i].display(),
            p[want]
        );
        // The extracted classifier on average-pooled features reproduces the graph's logits.
        let fmap = &out.features[i * 1280 * 49..(i + 1) * 1280 * 49];
        let pooled: Vec<f32> = fmap
            .chunks(49)
            .map(|c| c.iter().sum::<f32>() / 49.0)
            .collect();
        let again = classifier.logits(&pooled);
        let err = again
            .iter()
            .zip(row)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(
            err < 1e-3,
            "classifier(avgpool(features)) differs from the logits by {err}"
        );
    }
}

#[test]
fn lite0_ranks_the_foolbox_imagenet_photos() {
    let mut net = Backbone::load("efficientnet-lite0", None, 2).unwrap();
    let dir = asset("photos/imagenet").unwrap();
    let mut photos: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    photos.sort();
    assert_eq!(photos.len(), 20);
    let labels: Vec<usize> = photos
        .iter()
        .map(|p| {
            p.file_stem()
                .unwrap()
                .to_str()
                .unwrap()
                .rsplit('_')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    let refs: Vec<&Path> = photos.iter().map(|p| p.as_path()).collect();
    let input = batch(&net, &refs);
    let logits = net.run(&input, 20).unwrap().logits.unwrap();
    let (mut top1, mut top5) = (0, 0);
    for (i, &label) in labels.iter().enumerate() {
        let rank = ranking(&logits[i * 1000..(i + 1) * 1000]);
        top1 += usize::from(rank[0] == label);
        top5 += usize::from(rank[..5].contains(&label));
    }
    eprintln!("efficientnet-lite0 on 20 foolbox photos: top-1 {top1}/20, top-5 {top5}/20");
    assert_eq!(top5, 20);
    assert!(top1 >= 16, "top-1 {top1}/20");
}

#[test]
fn lite0_runs_at_another_input_size() {
    let mut model = infodisent::models::load("efficientnet-lite0", None).unwrap();
    model.preprocess = infodisent::preprocess::Preprocess::efficientnet_lite(160);
    model.feature_shape = [0; 3];
    let mut net = Backbone::from_prepared(model, 2).unwrap();
    assert_eq!(net.model().feature_shape, [1280, 5, 5]);
    let chelsea = asset("photos/skimage/chelsea.png").unwrap();
    let input = batch(&net, &[&chelsea]);
    let out = net.run(&input, 1).unwrap();
    assert_eq!(out.features.len(), 1280 * 25);
    let logits = out.logits.unwrap();
    assert!(
        ranking(&logits)[..5].contains(&285),
        "Egyptian cat not in the top-5 at 160 px"
    );
}

#[test]
fn lite1_and_lite2_classify_the_cat() {
    for (name, side) in [("efficientnet-lite1", 8), ("efficientnet-lite2", 9)] {
        let start = std::time::Instant::now();
        let mut net = Backbone::load(name, None, 2).unwrap();
        eprintln!(
            "{name}: built and loaded in {:.2} s",
            start.elapsed().as_secs_f64()
        );
        assert_eq!(net.model().feature_shape, [1280, side, side]);
        let chelsea = asset("photos/skimage/chelsea.png").unwrap();
        let input = batch(&net, &[&chelsea]);
        let logits = net.run(&input, 1).unwrap().logits.unwrap();
        let p = softmax(&logits);
        eprintln!(
            "{name}: chelsea top-1 {} p(285)={:.4}",
            ranking(&logits)[0],
            p[285]
        );
        assert_eq!(ranking(&logits)[0], 285, "{name}");
    }
}
