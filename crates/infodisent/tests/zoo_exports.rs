//! Real architectures as users bring them: torchvision and timm models (seeded random weights)
//! exported by a pinned PyTorch with today's default (dynamo) exporter and the legacy one, one
//! with its batch size baked to 1, three at opset 13 where LayerNorm is written out as ops
//! (`scripts/export-zoo.sh`). Each is loaded by path from another
//! working directory, extracted into a cache through the whole pipeline, and compared with the
//! feature map and logits PyTorch computed for the same photos.

use infodisent::backbone::BackboneSpec;
use infodisent::cache::{FeatureCache, StoreDtype};
use infodisent::dataset::Dataset;
use infodisent::engine::{Engine, Precision};
use infodisent::extract::{extract, ExtractOptions};
use infodisent::onnx::model::OriginalHeadKind;
use infodisent::preprocess::{Normalize, Preprocess, PreprocessChoice};
use std::path::{Path, PathBuf};

/// What detection must find in each architecture's head.
const HEADS: &[(&str, OriginalHeadKind)] = &[
    ("resnet18", OriginalHeadKind::Linear),
    ("densenet121", OriginalHeadKind::Linear),
    ("efficientnet_b0", OriginalHeadKind::Linear),
    ("mobilenet_v3_small", OriginalHeadKind::Other),
    ("regnet_y_400mf", OriginalHeadKind::Linear),
    ("vit_ti16_torchvision", OriginalHeadKind::ClassToken),
    ("convnext_atto", OriginalHeadKind::NormLinear),
    ("vit_tiny_patch16_224", OriginalHeadKind::ClassToken),
    ("deit_tiny_distilled_patch16_224", OriginalHeadKind::Other),
    ("vit_tiny_reg4_gap", OriginalHeadKind::NormLinear),
    ("swin_tiny_patch4_window7_224", OriginalHeadKind::Linear),
];

#[derive(serde::Deserialize)]
struct Export {
    model: String,
    exporter: String,
    side: usize,
    images: String,
}

fn zoo() -> PathBuf {
    let dir = infodisent::assets::assets_dir()
        .expect("asset folder")
        .join("zoo/current");
    assert!(
        dir.is_dir(),
        "{} is missing: run scripts/export-zoo.sh (scripts/test.sh does)",
        dir.display()
    );
    dir.canonicalize().unwrap()
}

/// (shape, values) of an f32 tensor in a safetensors file.
fn read(path: &Path, name: &str) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor(name).unwrap();
    let values = t
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    (t.shape().to_vec(), values)
}

/// ‖a − b‖ / ‖b‖.
fn relative_error(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let diff: f64 = a.iter().zip(b).map(|(x, y)| f64::from(x - y).powi(2)).sum();
    let norm: f64 = b.iter().map(|y| f64::from(*y).powi(2)).sum();
    (diff / norm.max(1e-30)).sqrt()
}

#[test]
fn every_export_matches_pytorch_through_the_cache() {
    let zoo = zoo();
    // Nothing may resolve against the working directory: run from an unrelated folder.
    let cwd = tempfile::tempdir().unwrap();
    std::env::set_current_dir(cwd.path()).unwrap();

    let mut exports: Vec<(PathBuf, Export)> = std::fs::read_dir(&zoo)
        .unwrap()
        .filter_map(|e| {
            let dir = e.unwrap().path();
            let record = std::fs::read(dir.join("export.json")).ok()?;
            Some((dir, serde_json::from_slice(&record).unwrap()))
        })
        .collect();
    exports.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        exports.len(),
        2 * HEADS.len() + 4,
        "every architecture with both exporters, one batch-1 export and three at opset 13"
    );

    let mut failures = Vec::new();
    println!(
        "{:<34} {:<14} {:<12} {:>10} {:>10} {:>10} {:>10}  batch-1",
        "model", "exporter", "head", "features", "logits", "OV feat.", "OV logits"
    );
    for (dir, export) in &exports {
        let want_head = HEADS
            .iter()
            .find(|(m, _)| *m == export.model)
            .unwrap_or_else(|| panic!("no expected head for {}", export.model))
            .1;
        let path = dir.join("model.onnx");
        // The photos are already at the model's side, so only normalisation remains.
        let preprocess = Preprocess::new(export.side, export.side, Normalize::Imagenet);
        let spec = BackboneSpec {
            preprocess: PreprocessChoice {
                resize: Some(export.side),
                crop: Some(export.side),
                normalize: Some(Normalize::Imagenet),
                ..Default::default()
            },
            ..BackboneSpec::new(path.to_str().unwrap(), 2)
        };
        let mut backbone = spec
            .load()
            .unwrap_or_else(|e| panic!("{} ({}): {e}", export.model, export.exporter));
        let model = backbone.model().clone();
        let one_at_a_time = backbone.one_at_a_time();
        // All three photos are compared, so none is held out as a test split.
        let whole = infodisent::dataset::OpenOptions {
            test_fraction: 0.0,
            ..Default::default()
        };
        let folder = zoo.join(&export.images);
        let dataset =
            Dataset::open_with(folder.parent().unwrap().to_str().unwrap(), &whole).unwrap();
        let opts = ExtractOptions {
            dtype: StoreDtype::F32,
            batch: 2,
            ..ExtractOptions::default()
        };
        let cache_dir = tempfile::tempdir().unwrap();
        extract(&mut backbone, &dataset, &opts, cache_dir.path()).unwrap();
        let cache = FeatureCache::open(cache_dir.path()).unwrap();
        let got = cache.read_split("all").unwrap();

        let reference = dir.join("reference.safetensors");
        let (input_shape, input) = read(&reference, "input");
        let (feature_shape, features) = read(&reference, "features");
        let (_, logits) = read(&reference, "logits");
        let ours: Vec<f32> = dataset.splits[0]
            .samples
            .iter()
            .flat_map(|s| preprocess.apply(&s.load().unwrap()).unwrap())
            .collect();
        assert_eq!(input_shape[0], dataset.splits[0].samples.len());
        let input_err = relative_error(&ours, &input);
        let feature_err = relative_error(&got.features, &features);
        let logit_err = relative_error(got.logits.as_deref().unwrap_or(&[]), &logits);
        let head = model.head.kind;
        let name = format!("{} ({})", export.model, export.exporter);

        // The same graph through OpenVINO in f32, into a second cache.
        let (ov_feature_err, ov_logit_err) =
            match backbone.another(Engine::Openvino, Precision::F32) {
                Ok(mut ov) => {
                    let ov_dir = tempfile::tempdir().unwrap();
                    extract(&mut ov, &dataset, &opts, ov_dir.path()).unwrap();
                    let ov_got = FeatureCache::open(ov_dir.path())
                        .unwrap()
                        .read_split("all")
                        .unwrap();
                    (
                        relative_error(&ov_got.features, &features),
                        relative_error(ov_got.logits.as_deref().unwrap_or(&[]), &logits),
                    )
                }
                Err(e) => {
                    failures.push(format!("{name}: OpenVINO: {e}"));
                    (f64::NAN, f64::NAN)
                }
            };
        println!(
            "{:<34} {:<14} {:<12} {:>10.2e} {:>10.2e} {:>10.2e} {:>10.2e}  {}",
            export.model,
            export.exporter,
            format!("{head:?}"),
            feature_err,
            logit_err,
            ov_feature_err,
            ov_logit_err,
            one_at_a_time
        );
        if !(ov_feature_err < 1e-3 && ov_logit_err < 1e-3) {
            failures.push(format!(
                "{name}: through OpenVINO f32, features differ by {ov_feature_err:.2e}, logits by {ov_logit_err:.2e}"
            ));
        }
        if input_err > 1e-5 {
            failures.push(format!(
                "{name}: preprocessed input differs by {input_err:.2e}"
            ));
        }
        if cache.feature_shape().as_slice() != &feature_shape[1..] {
            failures.push(format!(
                "{name}: feature shape {:?}, PyTorch {:?}",
                cache.feature_shape(),
                &feature_shape[1..]
            ));
        } else if feature_err >= 1e-3 {
            failures.push(format!("{name}: features differ by {feature_err:.2e}"));
        }
        if logit_err >= 1e-3 {
            failures.push(format!("{name}: logits differ by {logit_err:.2e}"));
        }
        if head != want_head {
            failures.push(format!("{name}: head {head:?}, expected {want_head:?}"));
        }
        let linear = matches!(
            want_head,
            OriginalHeadKind::Linear | OriginalHeadKind::NormLinear | OriginalHeadKind::ClassToken
        );
        if linear != cache.classifier().unwrap().is_some() {
            failures.push(format!("{name}: classifier presence is wrong"));
        }
        if (export.exporter == "dynamo-static") != one_at_a_time {
            failures.push(format!("{name}: one image at a time = {one_at_a_time}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
