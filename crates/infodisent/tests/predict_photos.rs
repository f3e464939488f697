//! Top-5 predictions of the original EfficientNet-Lite0 on real photos.

use infodisent::engine::Backbone;
use infodisent::predict::predict_files;
use std::path::PathBuf;

fn photo(rel: &str) -> PathBuf {
    infodisent::assets::asset(rel).unwrap()
}

#[test]
fn chelsea_is_an_egyptian_cat_and_the_json_has_the_documented_shape() {
    let mut backbone = Backbone::load("efficientnet-lite0", None, 2).unwrap();
    let pre = backbone.model().preprocess.clone();
    let paths = [
        photo("photos/skimage/chelsea.png"),
        photo("photos/skimage/coffee.png"),
    ];
    let (predictions, skipped) = predict_files(&mut backbone, &paths, &pre, 5, false).unwrap();
    assert!(skipped.is_empty());
    let chelsea = &predictions[0];
    assert_eq!(chelsea.top.len(), 5);
    assert_eq!(
        (chelsea.top[0].class, chelsea.top[0].label.as_str()),
        (285, "Egyptian cat")
    );
    assert!(
        (chelsea.top[0].prob - 0.79).abs() < 0.05,
        "p = {}",
        chelsea.top[0].prob
    );
    assert!(chelsea.top.windows(2).all(|w| w[0].prob >= w[1].prob));
    assert_eq!(
        predictions[1].top[0].class, 967,
        "coffee.png is an espresso"
    );

    let json = serde_json::to_value(&predictions).unwrap();
    let first = &json[0];
    assert_eq!(first["path"], paths[0].display().to_string());
    assert_eq!(first["top"][0]["class"], 285);
    assert_eq!(first["top"][0]["label"], "Egyptian cat");
    assert!(first["top"][0]["prob"].as_f64().unwrap() > 0.7);
    assert_eq!(first.as_object().unwrap().len(), 2);
    assert_eq!(first["top"][0].as_object().unwrap().len(), 3);
}

#[test]
fn bad_images_fail_naming_the_file_or_are_skipped() {
    let mut backbone = Backbone::load("efficientnet-lite0", None, 1).unwrap();
    let pre = backbone.model().preprocess.clone();
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("photo.jpg");
    std::fs::write(&bad, b"\xff\xd8\xff\xe0 and then nothing useful").unwrap();
    let paths = [bad.clone(), photo("photos/skimage/chelsea.png")];

    let e = predict_files(&mut backbone, &paths, &pre, 5, false).unwrap_err();
    assert_eq!(e.exit_code(), 3);
    assert!(e.to_string().contains("photo.jpg"), "{e}");

    let (predictions, skipped) = predict_files(&mut backbone, &paths, &pre, 3, true).unwrap();
    assert_eq!(predictions.len(), 1);
    assert_eq!(predictions[0].top.len(), 3);
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].path, bad.display().to_string());
}
