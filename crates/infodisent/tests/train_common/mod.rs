//! Synthetic feature caches with a known answer for the training tests.

use infodisent::cache::{
    CacheManifest, CacheWriter, FeatureCache, Item, StoreDtype, CACHE_VERSION,
};
use infodisent::classifier::LinearClassifier;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::path::Path;

/// Channels, grid side and classes of the synthetic caches.
pub const DIM: usize = 12;
pub const SIDE: usize = 3;
pub const CLASSES: usize = 3;

/// Writes a cache whose class c shows as one strong activation, at a random cell, in a random
/// channel mixture concentrated on channels 4c..4c+4, over weak noise: the class is decided by a
/// sparse local feature, which is what the sparse pooling is built for.
pub fn write_cache(dir: &Path, train: usize, test: usize, seed: u64) -> FeatureCache {
    let manifest = CacheManifest {
        version: CACHE_VERSION,
        fingerprint: format!("synthetic-{seed}"),
        inputs: Default::default(),
        model: "synthetic".into(),
        feature_node: "features".into(),
        feature_shape: [DIM, SIDE, SIDE],
        dtype: StoreDtype::F32,
        input_size: 224,
        preprocess: infodisent::preprocess::Preprocess::new(
            7,
            7,
            infodisent::preprocess::Normalize::Unit,
        ),
        classes: (0..CLASSES).map(|c| format!("class{c}")).collect(),
        original_classes: Some(CLASSES),
        original_head: None,
        data_root: None,
        held_out: None,
        layout: Default::default(),
        part_names: vec![],
        backbone: None,
        splits: BTreeMap::new(),
    };
    let mut w = CacheWriter::create_or_resume(dir, manifest, false).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let cells = SIDE * SIDE;
    for (split, n) in [("train", train), ("test", test)] {
        let labels: Vec<i64> = (0..n).map(|i| (i % CLASSES) as i64).collect();
        let items: Vec<Item> = labels
            .iter()
            .enumerate()
            .map(|(i, &l)| Item {
                path: format!("img{i}"),
                label: l,
                annotation: None,
            })
            .collect();
        let shard = 16;
        w.begin_split(split, &items, vec![], shard).unwrap();
        for chunk in labels.chunks(shard) {
            let mut feats = vec![0.0f32; chunk.len() * DIM * cells];
            for (b, &l) in chunk.iter().enumerate() {
                let map = &mut feats[b * DIM * cells..(b + 1) * DIM * cells];
                for x in map.iter_mut() {
                    *x = rng.random::<f32>() * 0.3;
                }
                let cell = rng.random_range(0..cells);
                for k in 0..4 {
                    map[(4 * l as usize + k) * cells + cell] += 1.0 + rng.random::<f32>();
                }
            }
            w.write_shard(split, &feats, chunk, None).unwrap();
        }
    }
    // An "original classifier" with the dataset's classes: sums of each class's channels.
    let mut weight = vec![0.0f32; CLASSES * DIM];
    for c in 0..CLASSES {
        for k in 0..4 {
            weight[c * DIM + 4 * c + k] = 1.0;
        }
    }
    w.write_classifier(&LinearClassifier::new(CLASSES, DIM, weight, vec![0.0; CLASSES]).unwrap())
        .unwrap();
    FeatureCache::open(dir).unwrap()
}
