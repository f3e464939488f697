//! A cache does not depend on the folder `extract` ran in, and follows a dataset that moved:
//! items are recorded relative to the dataset's root, `--data-root` (`with_data_root`)
//! re-points them, and extracting the moved dataset again resumes instead of refusing.

use image::{Rgb, RgbImage};
use infodisent::cache::FeatureCache;
use infodisent::dataset::Dataset;
use infodisent::dataset::ImageStore;
use infodisent::engine::Backbone;
use infodisent::extract::{extract, ExtractOptions};
use std::path::Path;

fn write_folder(root: &Path) {
    for (split, n) in [("train", 3), ("test", 2)] {
        for (class, colour) in [("red", [200, 30, 30]), ("blue", [30, 30, 200])] {
            let dir = root.join(split).join(class);
            std::fs::create_dir_all(&dir).unwrap();
            for i in 0..n {
                let img = RgbImage::from_fn(40, 30, |x, y| {
                    if (x + y + i) % 7 == 0 {
                        Rgb([255, 255, 255])
                    } else {
                        Rgb(colour)
                    }
                });
                img.save(dir.join(format!("{i}.png"))).unwrap();
            }
        }
    }
}

#[test]
fn caches_work_from_any_folder_and_follow_a_moved_dataset() {
    let base = tempfile::tempdir().unwrap();
    let base = base.path().canonicalize().unwrap();
    write_folder(&base.join("data"));
    let mut backbone = Backbone::load("efficientnet-lite0", None, 2).unwrap();
    let opts = ExtractOptions::default();

    // Extract with relative paths, as a user typing `--data data --cache cache` would.
    std::env::set_current_dir(&base).unwrap();
    let dataset = Dataset::open("data").unwrap();
    extract(&mut backbone, &dataset, &opts, Path::new("cache")).unwrap();
    let cache_dir = base.join("cache");

    // Read it from somewhere else: every image is found.
    let elsewhere = tempfile::tempdir().unwrap();
    std::env::set_current_dir(elsewhere.path()).unwrap();
    let cache = FeatureCache::open(&cache_dir).unwrap();
    assert_eq!(
        cache.manifest().data_root.as_deref(),
        Some(base.join("data").as_path())
    );
    let recorded = std::fs::read_to_string(cache_dir.join("train/items.json")).unwrap();
    assert!(
        recorded.contains("\"train/blue/0.png\""),
        "items are recorded relative to the dataset root: {recorded}"
    );
    let store = ImageStore::default();
    for split in ["train", "test"] {
        for item in cache.items(split).unwrap() {
            assert!(Path::new(&item.path).is_absolute(), "{}", item.path);
            store.get(&item.path).unwrap();
        }
    }

    // Move the dataset: the recorded root no longer holds it, the new one does.
    let before = dataset.fingerprint();
    std::fs::rename(base.join("data"), base.join("moved")).unwrap();
    let stale = cache.items("train").unwrap();
    assert!(!Path::new(&stale[0].path).exists());
    let cache = FeatureCache::open(&cache_dir)
        .unwrap()
        .with_data_root(&base.join("moved"))
        .unwrap();
    for item in cache.items("train").unwrap() {
        assert!(item.path.starts_with(base.join("moved").to_str().unwrap()));
        ImageStore::default().get(&item.path).unwrap();
    }

    // The moved dataset is the same data: extracting it again finds the cache complete.
    let moved = Dataset::open(base.join("moved").to_str().unwrap()).unwrap();
    assert_eq!(moved.fingerprint(), before);
    let again = extract(&mut backbone, &moved, &opts, &cache_dir).unwrap();
    assert!(again.complete);
    assert_eq!(again.images, 0, "nothing re-extracted");
}
