//! A user's own model and folder, end to end, with nothing but the README's commands: a
//! ResNet-18 exported by the pinned PyTorch (`scripts/export-zoo.sh`) and a folder of two class
//! folders without splits, every command run from an unrelated working directory. Then the
//! model moves (found again with `--model`), another model is refused, and caches made with a
//! non-default resize or crop and with `--int8` are explained from image files exactly as they
//! were cached.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs the binary in `cwd`; panics with its stderr unless it exits with `expected`.
fn run(cwd: &Path, args: &[&str], expected: i32) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_infodisent"))
        .args(args)
        .current_dir(cwd)
        .env("INFODISENT_THREADS", "2")
        .output()
        .expect("the binary runs");
    let code = out.status.code().expect("exited normally");
    assert_eq!(
        code,
        expected,
        "infodisent {}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The zoo's ResNet-18 (dynamo export), copied with its external weights into `dir`.
fn copy_resnet18(dir: &Path) -> PathBuf {
    let zoo = infodisent::assets::assets_dir()
        .unwrap()
        .join("zoo/current/resnet18-dynamo");
    assert!(
        zoo.join("model.onnx").is_file(),
        "{} is missing: run scripts/export-zoo.sh (scripts/test.sh does)",
        zoo.display()
    );
    std::fs::create_dir_all(dir).unwrap();
    for entry in std::fs::read_dir(&zoo).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if name.starts_with("model.onnx") {
            std::fs::copy(&path, dir.join(name)).unwrap();
        }
    }
    dir.join("model.onnx")
}

/// Two class folders of eight photos each, no split folders.
fn class_folder(root: &Path) {
    let photos = infodisent::assets::asset("photos/imagenet").unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(photos)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for (i, file) in files.iter().take(16).enumerate() {
        let class = root.join(if i < 8 { "alpha" } else { "beta" });
        std::fs::create_dir_all(&class).unwrap();
        std::fs::copy(file, class.join(file.file_name().unwrap())).unwrap();
    }
}

/// The `logits` of the one explanation JSON `explain` wrote into `dir`.
fn logits_in(dir: &Path) -> Vec<f64> {
    let json = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.extension().is_some_and(|x| x == "json") && p.file_name().unwrap() != "classes.json"
        })
        .expect("an explanation JSON");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(json).unwrap()).unwrap();
    v["logits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// Explains test item 0 from the cache and the same image from its file (which runs the
/// backbone the cache records): the logits agree to the f16 storage's precision only when the
/// backbone was rebuilt exactly (model, preprocessing, int8 calibration).
fn file_explanation_matches_cache(cwd: &Path, cache: &Path, head: &Path, extra: &[&str]) {
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cache.join("manifest.json")).unwrap()).unwrap();
    let root = PathBuf::from(manifest["data_root"].as_str().unwrap());
    let items: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cache.join("test/items.json")).unwrap()).unwrap();
    let image = root.join(items[0]["path"].as_str().unwrap());
    let (cached, filed) = (cwd.join("from-cache"), cwd.join("from-file"));
    for dir in [&cached, &filed] {
        let _ = std::fs::remove_dir_all(dir);
    }
    let base = ["explain", "--cache", s(cache), "--head", s(head)];
    run(
        cwd,
        &[&base[..], &["--item", "0", "--out", s(&cached)]].concat(),
        0,
    );
    run(
        cwd,
        &[&base[..], extra, &["--out", s(&filed), s(&image)]].concat(),
        0,
    );
    let (a, b) = (logits_in(&cached), logits_in(&filed));
    let scale = a.iter().fold(1e-3f64, |m, x| m.max(x.abs()));
    let worst = a
        .iter()
        .zip(&b)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
    assert!(
        worst < 0.02 * scale,
        "{}: file logits differ from the cached item's by {worst} (scale {scale})",
        cache.display()
    );
}

#[test]
fn your_own_model_and_folder_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path().canonicalize().unwrap();
    let cwd = t.join("elsewhere");
    std::fs::create_dir_all(&cwd).unwrap();
    let model = copy_resnet18(&t.join("models/resnet18"));
    let data = t.join("photos");
    class_folder(&data);
    let (cache, head, probe) = (t.join("cache"), t.join("head"), t.join("probe"));

    // A folder without splits gets a held-out test split of 20 % of each class.
    let out = run(
        &cwd,
        &[
            "extract",
            "--model",
            s(&model),
            "--data",
            s(&data),
            "--cache",
            s(&cache),
        ],
        0,
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("holding out 20 %"));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cache.join("manifest.json")).unwrap()).unwrap();
    let info: serde_json::Value =
        serde_json::from_slice(&run(&cwd, &["cache", "info", s(&cache), "--json"], 0).stdout)
            .unwrap();
    let items: Vec<(&str, u64)> = info["splits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap(),
                s["items_done"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(items, [("test", 4), ("train", 12)]);
    assert_eq!(
        manifest["backbone"]["model"],
        "../models/resnet18/model.onnx"
    );

    run(&cwd, &["train", "--cache", s(&cache), "--out", s(&head)], 0);
    run(
        &cwd,
        &[
            "train",
            "--cache",
            s(&cache),
            "--out",
            s(&probe),
            "--kind",
            "linear-probe",
        ],
        0,
    );
    let out = run(
        &cwd,
        &[
            "eval",
            "--cache",
            s(&cache),
            "--head",
            s(&head),
            "--head",
            s(&probe),
        ],
        0,
    );
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("using split"),
        "eval measured on the held-out test split without being told"
    );
    let photo = data.join("beta").join(
        std::fs::read_dir(data.join("beta"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .file_name(),
    );
    let hp = ["--cache", s(&cache), "--head", s(&head)];
    run(
        &cwd,
        &[&["explain"][..], &hp, &["--out", "explained", s(&photo)]].concat(),
        0,
    );
    run(
        &cwd,
        &[&["metrics"][..], &hp, &["--probe", s(&probe)]].concat(),
        0,
    );
    let mi = t.join("mi");
    run(
        &cwd,
        &[
            "mi",
            "train",
            "--cache",
            s(&cache),
            "--classifier",
            s(&probe),
            "--out",
            s(&mi),
        ],
        0,
    );
    run(
        &cwd,
        &[
            "mi",
            "explain",
            "--mi",
            s(&mi),
            "--cache",
            s(&cache),
            "--out",
            "mi-maps",
            s(&photo),
        ],
        0,
    );
    let report = t.join("report");
    run(
        &cwd,
        &[
            &["report"][..],
            &hp,
            &["--probe", s(&probe), "--out", s(&report)],
        ]
        .concat(),
        0,
    );
    assert!(report.join("index.html").is_file());
    // The run folders alone find their cache.
    run(
        &cwd,
        &["explain", "--head", s(&head), "--out", "by-run", s(&photo)],
        0,
    );
    file_explanation_matches_cache(&cwd, &cache, &head, &[]);

    // The model moves: named in the error, found again with --model.
    std::fs::rename(t.join("models"), t.join("moved")).unwrap();
    let moved = t.join("moved/resnet18/model.onnx");
    let out = run(
        &cwd,
        &[&["explain"][..], &hp, &["--out", "x", s(&photo)]].concat(),
        4,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no longer there") && err.contains("--model"),
        "{err}"
    );
    file_explanation_matches_cache(&cwd, &cache, &head, &["--model", s(&moved)]);
    // Another model is refused, naming both.
    let out = run(
        &cwd,
        &[
            &["explain"][..],
            &hp,
            &["--model", "efficientnet-lite0", "--out", "x", s(&photo)],
        ]
        .concat(),
        4,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is not the model that made cache") && err.contains("resnet18"),
        "{err}"
    );

    // Non-default preprocessing and an int8 cache are rebuilt as they were made. The export's
    // input is fixed at 224, so its resize changes; the built-in Lite0 takes another crop.
    let cases = [
        ("resize", s(&moved), &["--resize", "288"][..]),
        ("int8", s(&moved), &["--int8"][..]),
        ("crop", "efficientnet-lite0", &["--crop", "192"][..]),
    ];
    for (name, model, flags) in cases {
        let (cache, head) = (
            t.join(format!("cache-{name}")),
            t.join(format!("head-{name}")),
        );
        let args = [
            &[
                "extract",
                "--model",
                model,
                "--data",
                s(&data),
                "--cache",
                s(&cache),
            ][..],
            flags,
        ]
        .concat();
        run(&cwd, &args, 0);
        // Two epochs are enough to compare explanations; the default schedule is tested above.
        run(
            &cwd,
            &[
                "train",
                "--cache",
                s(&cache),
                "--out",
                s(&head),
                "--epochs",
                "2",
            ],
            0,
        );
        file_explanation_matches_cache(&cwd, &cache, &head, &[]);
    }
}
