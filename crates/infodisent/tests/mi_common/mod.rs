//! Helpers shared by the mutual-information tests: writing feature caches, fitting a linear
//! probe, locating the known boxes on the feature grid.

#![allow(dead_code)]

use infodisent::cache::{CacheManifest, CacheWriter, Item, StoreDtype, CACHE_VERSION};
use infodisent::classifier::LinearClassifier;
use std::collections::BTreeMap;
use std::path::Path;

/// One split to write: features [n, D, h, w], labels, item paths.
#[derive(Clone)]
pub struct SplitData {
    pub name: &'static str,
    pub features: Vec<f32>,
    pub labels: Vec<i64>,
    pub paths: Vec<String>,
}

/// Writes a feature cache with f32 features, shards of `shard` items.
pub fn write_cache(
    dir: &Path,
    shape: [usize; 3],
    classes: usize,
    input_size: usize,
    preprocess: infodisent::preprocess::Preprocess,
    splits: &[SplitData],
    shard: usize,
) {
    let manifest = CacheManifest {
        version: CACHE_VERSION,
        fingerprint: "mi-test".into(),
        inputs: Default::default(),
        model: "test".into(),
        feature_node: "test".into(),
        feature_shape: shape,
        dtype: StoreDtype::F32,
        input_size,
        preprocess,
        classes: (0..classes).map(|c| format!("class{c}")).collect(),
        original_classes: None,
        original_head: None,
        data_root: None,
        held_out: None,
        layout: Default::default(),
        part_names: vec![],
        backbone: None,
        splits: BTreeMap::new(),
    };
    let mut w = CacheWriter::create_or_resume(dir, manifest, false).unwrap();
    let per = shape.iter().product::<usize>();
    for s in splits {
        let items: Vec<Item> = s
            .paths
            .iter()
            .zip(&s.labels)
            .map(|(p, &l)| Item {
                path: p.clone(),
                label: l,
                annotation: None,
            })
            .collect();
        w.begin_split(s.name, &items, vec![], shard).unwrap();
        for start in (0..items.len()).step_by(shard) {
            let end = (start + shard).min(items.len());
            w.write_shard(
                s.name,
                &s.features[start * per..end * per],
                &s.labels[start..end],
                None,
            )
            .unwrap();
        }
    }
}

/// Average-pooled vectors [n, D] of feature maps [n, D, h, w].
pub fn pool(features: &[f32], shape: [usize; 3]) -> Vec<Vec<f32>> {
    let cells = shape[1] * shape[2];
    features
        .chunks_exact(shape[0] * cells)
        .map(|m| {
            m.chunks_exact(cells)
                .map(|c| c.iter().sum::<f32>() / cells as f32)
                .collect()
        })
        .collect()
}

/// A multinomial logistic-regression probe on pooled features, fitted by full-batch gradient
/// descent on standardised inputs and folded back to raw-input weights.
pub fn fit_probe(
    features: &[f32],
    labels: &[i64],
    shape: [usize; 3],
    classes: usize,
) -> LinearClassifier {
    let x = pool(features, shape);
    let d = shape[0];
    let n = x.len() as f32;
    let mean: Vec<f32> = (0..d)
        .map(|k| x.iter().map(|v| v[k]).sum::<f32>() / n)
        .collect();
    let std: Vec<f32> = (0..d)
        .map(|k| {
            (x.iter().map(|v| (v[k] - mean[k]).powi(2)).sum::<f32>() / n)
                .sqrt()
                .max(1e-6)
        })
        .collect();
    let xs: Vec<Vec<f32>> = x
        .iter()
        .map(|v| (0..d).map(|k| (v[k] - mean[k]) / std[k]).collect())
        .collect();
    let mut w = vec![0f32; classes * d];
    let mut b = vec![0f32; classes];
    for _ in 0..300 {
        let mut gw = vec![0f32; classes * d];
        let mut gb = vec![0f32; classes];
        for (v, &y) in xs.iter().zip(labels) {
            let logits: Vec<f32> = (0..classes)
                .map(|c| {
                    w[c * d..(c + 1) * d]
                        .iter()
                        .zip(v)
                        .map(|(a, b)| a * b)
                        .sum::<f32>()
                        + b[c]
                })
                .collect();
            let m = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            let e: Vec<f32> = logits.iter().map(|l| (l - m).exp()).collect();
            let s: f32 = e.iter().sum();
            for c in 0..classes {
                let g = e[c] / s - if c as i64 == y { 1.0 } else { 0.0 };
                gb[c] += g / n;
                for k in 0..d {
                    gw[c * d + k] += g * v[k] / n;
                }
            }
        }
        for (a, g) in w.iter_mut().zip(&gw) {
            *a -= 0.5 * (g + 1e-3 * *a);
        }
        for (a, g) in b.iter_mut().zip(&gb) {
            *a -= 0.5 * g;
        }
    }
    let weight: Vec<f32> = (0..classes * d).map(|i| w[i] / std[i % d]).collect();
    let bias: Vec<f32> = (0..classes)
        .map(|c| b[c] - (0..d).map(|k| w[c * d + k] * mean[k] / std[k]).sum::<f32>())
        .collect();
    LinearClassifier::new(classes, d, weight, bias).unwrap()
}

/// Accuracy of a classifier on pooled features.
pub fn probe_accuracy(
    c: &LinearClassifier,
    features: &[f32],
    labels: &[i64],
    shape: [usize; 3],
) -> f32 {
    let x = pool(features, shape);
    let hits = x.iter().zip(labels).filter(|(v, &y)| {
        let l = c.logits(v);
        l.iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap()
            .0 as i64
            == y
    });
    hits.count() as f32 / labels.len() as f32
}

/// Whether grid cell (row, col) of an `h × w` grid over a `size`-pixel image touches the
/// pixel box [x0, y0, x1, y1).
pub fn cell_touches(cell: (usize, usize), h: usize, w: usize, size: u32, b: [u32; 4]) -> bool {
    let (ch, cw) = (size as f32 / h as f32, size as f32 / w as f32);
    let (y0, y1) = (cell.0 as f32 * ch, (cell.0 + 1) as f32 * ch);
    let (x0, x1) = (cell.1 as f32 * cw, (cell.1 + 1) as f32 * cw);
    x0 <= b[2] as f32 && (b[0] as f32) <= x1 && y0 <= b[3] as f32 && (b[1] as f32) <= y1
}

/// Fraction of grid cell (row, col) of an `h × w` grid over a `size`-pixel image that the
/// pixel box [x0, y0, x1, y1) covers.
pub fn cell_coverage(cell: (usize, usize), h: usize, w: usize, size: u32, b: [u32; 4]) -> f32 {
    let (ch, cw) = (size as f32 / h as f32, size as f32 / w as f32);
    let (y0, y1) = (cell.0 as f32 * ch, (cell.0 + 1) as f32 * ch);
    let (x0, x1) = (cell.1 as f32 * cw, (cell.1 + 1) as f32 * cw);
    let ix = (x1.min(b[2] as f32) - x0.max(b[0] as f32)).max(0.0);
    let iy = (y1.min(b[3] as f32) - y0.max(b[1] as f32)).max(0.0);
    ix * iy / (cw * ch)
}
