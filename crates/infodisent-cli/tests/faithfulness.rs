//! `bench faithfulness` as a user runs it: the binary drives the real pytorch-grad-cam and
//! Captum in the pinned Python environment (`scripts/setup-python.sh`) on four real photos, and
//! every map is scored by the binary on the ONNX model.

use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn interval(row: &Value, key: &str) -> f64 {
    row[key]["mean"]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} of {row}"))
}

#[test]
fn grad_cam_and_integrated_gradients_are_scored_beside_infodisent_and_above_the_random_floor() {
    let assets = infodisent::assets::assets_dir().unwrap();
    let python = assets.join("python/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run scripts/setup-python.sh (scripts/test.sh does)",
        python.display()
    );
    let tmp = tempfile::tempdir().unwrap();
    let photos = tmp.path().join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    for f in [
        "skimage/chelsea.png",
        "skimage/coffee.png",
        "scenes/dog.jpg",
        "imagenet/imagenet_00_243.jpg",
    ] {
        let src = assets.join("photos").join(f);
        std::fs::copy(&src, photos.join(Path::new(f).file_name().unwrap())).unwrap();
    }
    let out = tmp.path().join("out");
    let run = Command::new(env!("CARGO_BIN_EXE_infodisent"))
        .args(["--json", "bench", "faithfulness", "--photos"])
        .arg(&photos)
        .arg("--python")
        .arg(&python)
        .args([
            "--methods",
            "grad-cam,integrated-gradients",
            "--seeds",
            "1",
            "--steps",
            "8",
        ])
        // A short fit: the test is about the comparison, and the full 300 steps of the
        // model-fitted head's D×D rotation would be most of its time.
        .args(["--val-fraction", "0", "--min-steps", "20", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let report: Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(report["photos"], 4);
    assert!(out.join("faithfulness.md").is_file());
    // The PyTorch module the peers explain is the model the binary scores on.
    assert!(
        report["torch_onnx_max_logit_diff"].as_f64().unwrap() < 1e-4,
        "{report}"
    );
    let rows = report["photo_rows"].as_array().unwrap();
    let row = |name: &str| {
        rows.iter()
            .find(|r| r["method"] == name)
            .unwrap_or_else(|| panic!("no {name} in {report}"))
    };
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
    // For a pooled linear classifier Grad-CAM is CAM: the layer the peers hook is the one
    // infodisent reads, and both pipelines see the same inputs.
    let cam = row("cam");
    for key in ["deletion", "insertion"] {
        assert!(
            (interval(cam, key) - interval(grad_cam, key)).abs() < 0.01,
            "{cam} vs {grad_cam}"
        );
    }
}
