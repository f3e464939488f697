//! `bench faithfulness` as a user runs it: the binary drives the real pytorch-grad-cam and
//! Captum in the pinned Python environment (`scripts/setup-python.sh`) on four real photos, and
//! every map is scored by the binary on the ONNX model.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn interval(row: &Value, key: &str) -> f64 {
    row[key]["mean"]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} of {row}"))
}

/// The pinned Python environment holding torch, pytorch-grad-cam and Captum.
fn python() -> PathBuf {
    let python = infodisent::assets::assets_dir()
        .unwrap()
        .join("python/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run scripts/setup-python.sh (scripts/test.sh does)",
        python.display()
    );
    python
}

/// A folder in `root` holding the first `n` of four real photos.
fn photos(root: &Path, n: usize) -> PathBuf {
    let assets = infodisent::assets::asset("photos").unwrap();
    let photos = root.join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    for f in [
        "skimage/chelsea.png",
        "skimage/coffee.png",
        "scenes/dog.jpg",
        "imagenet/imagenet_00_243.jpg",
    ]
    .into_iter()
    .take(n)
    {
        std::fs::copy(
            assets.join(f),
            photos.join(Path::new(f).file_name().unwrap()),
        )
        .unwrap();
    }
    photos
}

/// `bench faithfulness --json` on `photos` with the peers `methods` and `extra` flags, heads
/// fitted briefly: the finished process.
fn run_bench(photos: &Path, methods: &str, extra: &[&str], out: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_infodisent"))
        .args(["--json", "bench", "faithfulness", "--photos"])
        .arg(photos)
        .arg("--python")
        .arg(python())
        .args(["--methods", methods, "--seeds", "1", "--steps", "8"])
        .args(extra)
        // A short fit: the test is about the comparison, and the full 300 steps of the
        // model-fitted head's D×D rotation would be most of its time.
        .args(["--val-fraction", "0", "--min-steps", "20", "--out"])
        .arg(out)
        .output()
        .unwrap()
}

/// [`run_bench`], which must succeed: its report.
fn compare(photos: &Path, methods: &str, extra: &[&str], out: &Path) -> Value {
    let run = run_bench(photos, methods, extra, out);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(out.join("faithfulness.md").is_file());
    let report: Value = serde_json::from_slice(&run.stdout).unwrap();
    // The PyTorch module the peers explain is the model the binary scores on.
    assert!(
        report["torch_onnx_max_logit_diff"].as_f64().unwrap() < 1e-4,
        "{report}"
    );
    report
}

/// The photo row of `method`.
fn row<'a>(report: &'a Value, method: &str) -> &'a Value {
    report["photo_rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["method"] == method)
        .unwrap_or_else(|| panic!("no {method} in {report}"))
}

/// For a pooled linear classifier Grad-CAM is CAM: the layer the peers hook is the one
/// infodisent reads, and both pipelines see the same inputs.
fn assert_cam_is_grad_cam(report: &Value) {
    let (cam, grad_cam) = (row(report, "cam"), row(report, "grad-cam"));
    for key in ["deletion", "insertion"] {
        assert!(
            (interval(cam, key) - interval(grad_cam, key)).abs() < 0.01,
            "{cam} vs {grad_cam}"
        );
    }
}

#[test]
fn grad_cam_and_integrated_gradients_are_scored_beside_infodisent_and_above_the_random_floor() {
    let tmp = tempfile::tempdir().unwrap();
    let photos = photos(tmp.path(), 4);
    let report = compare(
        &photos,
        "grad-cam,integrated-gradients",
        &[],
        &tmp.path().join("out"),
    );
    assert_eq!(report["photos"], 4);
    let rows = report["photo_rows"].as_array().unwrap();
    let row = |name: &str| row(&report, name);
    for r in rows {
        for key in ["deletion", "insertion"] {
            let v = interval(r, key);
            assert!((0.0..=1.0).contains(&v), "{key} {v} of {r}");
        }
    }
    let (grad_cam, ig, random) = (row("grad-cam"), row("integrated-gradients"), row("random"));
    assert_eq!(grad_cam["backward"], true);
    assert!(grad_cam["ms_per_image"].as_f64().unwrap() > 0.0);
    // On four photos one curve can be noisy (integrated gradients' insertion is), so each
    // method is held to its insertion minus its deletion, RISE's two curves in one number.
    let overall = |r: &Value| interval(r, "insertion") - interval(r, "deletion");
    for method in [grad_cam, ig, row("infodisent+")] {
        assert!(overall(method) > overall(random), "{method} vs {random}");
    }
    assert_cam_is_grad_cam(&report);
}

#[test]
fn a_users_own_pytorch_module_is_explained_at_the_layer_infodisent_reads() {
    let zoo = infodisent::assets::assets_dir()
        .unwrap()
        .join("zoo/current/resnet18-legacy/model.onnx");
    assert!(
        zoo.is_file(),
        "{} is missing: run scripts/export-zoo.sh (scripts/test.sh does)",
        zoo.display()
    );
    let tmp = tempfile::tempdir().unwrap();
    // The module the zoo exported, as a user's file builds it: torchvision's ResNet-18 with the
    // export's seeded weights.
    let module = tmp.path().join("my_model.py");
    std::fs::write(
        &module,
        "import torch, torchvision\n\ndef build():\n    torch.manual_seed(0)\n    return torchvision.models.resnet18(weights=None)\n",
    )
    .unwrap();
    let photos = photos(tmp.path(), 2);
    let spec = format!("{}:build", module.display());
    let report = compare(
        &photos,
        "grad-cam",
        &["--model", zoo.to_str().unwrap(), "--torch-module", &spec],
        &tmp.path().join("out"),
    );
    // Found by its output's shape: the last module whose output is the 512×7×7 map.
    assert_eq!(report["torch_layer"], "layer4", "{report}");
    assert_cam_is_grad_cam(&report);
    // A layer that does not output the feature map is refused with what it outputs.
    let run = run_bench(
        &photos,
        "grad-cam",
        &[
            "--model",
            zoo.to_str().unwrap(),
            "--torch-module",
            &spec,
            "--torch-layer",
            "layer3",
        ],
        &tmp.path().join("out-layer3"),
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        !run.status.success() && stderr.contains("layer3") && stderr.contains("[1, 256, 14, 14]"),
        "{stderr}"
    );
}
