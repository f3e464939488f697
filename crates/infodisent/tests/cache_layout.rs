//! The cache layout on generated features whose values encode their item: shards written by
//! parts in any order with images skipped (a whole shard of them too) read back in item order,
//! a version 1 cache (one writer, progress in the manifest) still opens and reads the same, and
//! a shard changed after it was written is caught by `info --verify`.

use infodisent::cache::plan::SkippedItem;
use infodisent::cache::{
    CacheManifest, CacheWriter, FeatureCache, Item, Part, ShardData, StoreDtype, CACHE_VERSION,
};
use infodisent::preprocess::Preprocess;
use std::path::Path;

const SHARD: usize = 4;
const ITEMS: usize = 14;

fn manifest() -> CacheManifest {
    CacheManifest {
        version: CACHE_VERSION,
        fingerprint: "layout-test".into(),
        inputs: Default::default(),
        model: "generated".into(),
        feature_node: "generated".into(),
        feature_shape: [2, 1, 1],
        dtype: StoreDtype::F32,
        input_size: 224,
        preprocess: Preprocess::torchvision(224),
        classes: vec!["a".into(), "b".into()],
        original_classes: None,
        original_head: None,
        data_root: None,
        held_out: None,
        layout: Default::default(),
        part_names: vec![],
        backbone: None,
        splits: Default::default(),
    }
}

fn items() -> Vec<Item> {
    (0..ITEMS)
        .map(|i| Item {
            path: format!("class/{i}.jpg"),
            label: (i % 2) as i64,
            annotation: None,
        })
        .collect()
}

/// Items 5 and 8..12 (all of shard 2) are unreadable; every kept item `i` has features [i, -i].
fn skipped(i: usize) -> bool {
    i == 5 || (8..12).contains(&i)
}

/// Writes the split as three parts would, shards in reverse order.
fn write(dir: &Path) {
    let mut w = CacheWriter::create_or_resume(dir, manifest(), false).unwrap();
    let plan = w
        .plan_split("train", &items(), vec![], SHARD, Some(3))
        .unwrap();
    for part in Part::all(3).collect::<Vec<_>>().into_iter().rev() {
        for shard in w.shards_todo("train", part).unwrap().into_iter().rev() {
            let range = plan.shard_items(shard);
            let kept: Vec<usize> = range.clone().filter(|&i| !skipped(i)).collect();
            let features: Vec<f32> = kept.iter().flat_map(|&i| [i as f32, -(i as f32)]).collect();
            let labels: Vec<i64> = kept.iter().map(|&i| (i % 2) as i64).collect();
            let listed: Vec<i64> = kept.iter().map(|&i| i as i64).collect();
            let bad = range
                .filter(|&i| skipped(i))
                .map(|i| SkippedItem {
                    item: i,
                    path: format!("class/{i}.jpg"),
                    reason: "unreadable".into(),
                })
                .collect();
            let data = ShardData {
                features: &features,
                labels: &labels,
                logits: None,
                listed: &listed,
            };
            w.write_shard_rows("train", shard, &data, bad).unwrap();
        }
    }
}

fn kept() -> Vec<usize> {
    (0..ITEMS).filter(|&i| !skipped(i)).collect()
}

#[test]
fn parts_written_in_any_order_with_skips_read_back_in_item_order() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path());
    let cache = FeatureCache::open(dir.path()).unwrap();
    let kept = kept();
    let items = cache.items("train").unwrap();
    let paths: Vec<String> = kept.iter().map(|i| format!("class/{i}.jpg")).collect();
    assert_eq!(
        items.iter().map(|i| i.path.clone()).collect::<Vec<_>>(),
        paths
    );
    assert_eq!(cache.manifest().splits["train"].skipped.len(), 5);

    let all = cache.read_split("train").unwrap();
    let firsts: Vec<f32> = all.features.chunks(2).map(|c| c[0]).collect();
    assert_eq!(firsts, kept.iter().map(|&i| i as f32).collect::<Vec<_>>());
    assert_eq!(all.index, (0..kept.len() as i64).collect::<Vec<_>>());

    // Random access by item index, across the empty shard.
    let order = [8, 0, 5, 6, 3];
    let some = cache.read_items("train", &order).unwrap();
    let got: Vec<f32> = some.features.chunks(2).map(|c| c[0]).collect();
    assert_eq!(
        got,
        order.iter().map(|&k| kept[k] as f32).collect::<Vec<_>>()
    );

    let info = cache.info(true).unwrap();
    assert!(info.complete && info.verified);
    assert_eq!(info.splits[0].parts.len(), 3);
    assert_eq!(
        info.content_digest,
        cache.info(false).unwrap().content_digest
    );
}

#[test]
fn a_version_1_cache_still_opens_and_reads_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let w = CacheWriter::create_or_resume(dir.path(), manifest(), false);
    let mut w = w.unwrap();
    let items = items();
    w.begin_split("train", &items, vec![], SHARD).unwrap();
    let n_shards = ITEMS.div_ceil(SHARD);
    for s in 0..n_shards {
        let range = s * SHARD..((s + 1) * SHARD).min(ITEMS);
        let features: Vec<f32> = range
            .clone()
            .flat_map(|i| [i as f32, -(i as f32)])
            .collect();
        let labels: Vec<i64> = range.map(|i| (i % 2) as i64).collect();
        w.write_shard("train", &features, &labels, None).unwrap();
    }
    let v2 = FeatureCache::open(dir.path())
        .unwrap()
        .read_split("train")
        .unwrap();

    // Rewrite it as version 1 wrote it: progress in the manifest, no plan or part files.
    let path = dir.path().join("manifest.json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    m["version"] = 1.into();
    m.as_object_mut().unwrap().remove("inputs");
    let shards: Vec<String> = (0..n_shards)
        .map(|s| format!("shard-{s:05}.safetensors"))
        .collect();
    m["splits"] = serde_json::json!({"train": {"num_items": ITEMS, "shard_size": SHARD, "shards": shards, "skipped": []}});
    std::fs::write(&path, serde_json::to_vec(&m).unwrap()).unwrap();
    std::fs::remove_file(dir.path().join("train/plan.json")).unwrap();
    std::fs::remove_file(dir.path().join("train/part-00000-of-00001.json")).unwrap();

    let v1 = FeatureCache::open(dir.path()).unwrap();
    assert_eq!(v1.manifest().version, 1);
    let read = v1.read_split("train").unwrap();
    assert_eq!((read.features, read.index), (v2.features, v2.index));
    assert_eq!(v1.items("train").unwrap(), items);
    let info = v1.info(false).unwrap();
    assert!(info.complete && info.verified && info.content_digest.is_some());
}

#[test]
fn a_shard_changed_after_it_was_written_fails_verification() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path());
    let victim = dir.path().join("train/shard-00001.safetensors");
    let mut bytes = std::fs::read(&victim).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(&victim, bytes).unwrap();
    let cache = FeatureCache::open(dir.path()).unwrap();
    assert!(
        cache.info(false).is_ok(),
        "the recorded digests alone do not read the shards"
    );
    let e = cache.info(true).unwrap_err();
    assert_eq!(e.exit_code(), 5);
    assert!(e.to_string().contains("shard-00001"), "{e}");
}
