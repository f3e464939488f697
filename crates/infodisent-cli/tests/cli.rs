//! The binary as users run it: help, documented exit codes, `--json` output, and `inspect` on a
//! real export.

use std::process::{Command, Output};

fn infodisent(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_infodisent"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exited normally")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn help_teaches_the_commands_and_exit_codes() {
    let out = infodisent(&["--help"]);
    assert_eq!(code(&out), 0);
    let text = String::from_utf8_lossy(&out.stdout);
    for word in [
        "inspect",
        "extract",
        "train",
        "explain",
        "metrics",
        "report",
        "ablate",
        "Exit codes",
    ] {
        assert!(text.contains(word), "--help lacks `{word}`:\n{text}");
    }
    let out = infodisent(&["extract", "--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("--preset") && text.contains("--crop-pct"),
        "{text}"
    );
}

#[test]
fn an_offline_machine_without_the_built_in_weights_gets_exit_6_naming_the_file() {
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_infodisent"))
        .args(["predict", "some.png"])
        .env("INFODISENT_ASSETS", empty.path())
        .env("INFODISENT_OFFLINE", "1")
        .output()
        .expect("the binary runs");
    assert_eq!(code(&out), 6, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("weights/efficientnet-lite0.pth")
            && stderr(&out).contains("infodisent fetch"),
        "{}",
        stderr(&out)
    );
    let nothing: Vec<_> = std::fs::read_dir(empty.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name() != ".fetch.lock")
        .collect();
    assert!(nothing.is_empty(), "an offline run wrote {nothing:?}");
}

#[test]
fn exit_codes_say_what_went_wrong() {
    let dir = tempfile::tempdir().unwrap();
    // 2: invalid options.
    assert_eq!(code(&infodisent(&["train", "--no-such-flag"])), 2);
    // Enum flags are parsed once, from the library's own spellings, and list them when wrong.
    let out = infodisent(&["train", "--cache", "c", "--out", "o", "--kind", "linear"]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("linear-probe") && stderr(&out).contains("infodisent"),
        "{}",
        stderr(&out)
    );
    let out = infodisent(&["extract", "--data", "d", "--cache", "c", "--normalize", "x"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("centered127"), "{}", stderr(&out));
    let out = infodisent(&["explain", "--cache", "c", "--head", "h"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("nothing to explain"));
    // The default recipe prunes after half the epochs, so one epoch is refused with the way out;
    // the probe has nothing to prune and takes no pruning from the default.
    let out = infodisent(&["train", "--cache", "c", "--out", "o", "--epochs", "1"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("--keep-top 0"), "{}", stderr(&out));
    let probe = [
        "train",
        "--cache",
        "no-cache",
        "--out",
        "o",
        "--epochs",
        "1",
        "--kind",
        "linear-probe",
    ];
    let out = infodisent(&probe);
    assert_eq!(
        code(&out),
        5,
        "passes validation, fails on the cache: {}",
        stderr(&out)
    );
    let out = infodisent(&[&probe[..], &["--keep-top", "5"]].concat());
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("linear probe"), "{}", stderr(&out));
    // 3: unreadable input, named.
    let missing = dir.path().join("no-such-folder");
    let cache = dir.path().join("cache");
    let out = infodisent(&[
        "extract",
        "--data",
        missing.to_str().unwrap(),
        "--cache",
        cache.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(stderr(&out).contains("no-such-folder"));
    // 4: an unusable model, named.
    let bogus = dir.path().join("bogus.onnx");
    std::fs::write(&bogus, b"not a model").unwrap();
    let out = infodisent(&["inspect", bogus.to_str().unwrap()]);
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    assert!(stderr(&out).contains("bogus.onnx"));
    // 5: a folder that is not a cache.
    std::fs::create_dir(&cache).unwrap();
    std::fs::write(cache.join("manifest.json"), b"{").unwrap();
    let out = infodisent(&[
        "metrics",
        "--cache",
        cache.to_str().unwrap(),
        "--head",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 5, "{}", stderr(&out));
}

#[test]
fn inspect_json_describes_the_model() {
    let out = infodisent(&["--json", "inspect", "efficientnet-lite0"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["feature_shape"], serde_json::json!([1280, 7, 7]));
    assert_eq!(v["head"]["kind"], "linear");
    assert_eq!(v["classifier"], serde_json::json!([1000, 1280]));
    assert_eq!(v["original_classes"], 1000);
    assert!(v["reason"].as_str().unwrap().contains("GlobalAveragePool"));
}

#[test]
fn inspect_explains_a_real_export_with_its_preset() {
    let zoo = infodisent::assets::assets_dir()
        .unwrap()
        .join("zoo/current/convnext_atto-dynamo/model.onnx");
    assert!(
        zoo.is_file(),
        "{} is missing: run scripts/export-zoo.sh",
        zoo.display()
    );
    let out = infodisent(&[
        "inspect",
        zoo.to_str().unwrap(),
        "--preset",
        "timm",
        "--crop-pct",
        "0.95",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "LayerNorm + linear",
        "applied per pixel",
        "320 × 7 × 7",
        "timm: shorter side 235, center crop 224",
        "external data in",
    ] {
        assert!(text.contains(want), "inspect lacks `{want}`:\n{text}");
    }
}

#[test]
fn bench_extract_runs_on_generated_jpegs_and_reports_json() {
    let dir = tempfile::tempdir().unwrap();
    let jpegs = dir.path().join("jpegs");
    let args = [
        "--json",
        "--threads",
        "2",
        "bench",
        "extract",
        "--jpegs",
        jpegs.to_str().unwrap(),
        "--images",
        "6",
        "--batch",
        "4",
        "--repeats",
        "1",
    ];
    let out = infodisent(&args);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["images"], 6);
    assert!(v["end_to_end_images_per_sec"].as_f64().unwrap() > 0.0);
    assert!(v["torch"].is_null(), "no PyTorch was asked for");
    let files: Vec<_> = std::fs::read_dir(&jpegs).unwrap().collect();
    assert_eq!(files.len(), 6);
    for f in files {
        let path = f.unwrap().path();
        let img = image::open(&path).unwrap();
        assert_eq!(
            (img.width(), img.height()),
            (500, 375),
            "{}",
            path.display()
        );
    }
    // int8: timed after calibrating on the first 2 images, compared with f32 on the other 4.
    let mut int8 = args.to_vec();
    int8.extend(["--int8", "2"]);
    let out = infodisent(&int8);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["model"], "efficientnet-lite0 int8");
    assert_eq!(v["int8"]["calibration_images"], 2);
    assert_eq!(v["int8"]["compared_images"], 4);
    let err = v["int8"]["feature_relative_error"].as_f64().unwrap();
    assert!(err > 0.0 && err < 0.5, "feature error {err}");
    // The same flag on `extract` records the int8 model in the cache.
    let cache = dir.path().join("cache");
    let out = infodisent(&[
        "--json",
        "extract",
        "--data",
        jpegs.to_str().unwrap(),
        "--cache",
        cache.to_str().unwrap(),
        "--int8",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["model"], "efficientnet-lite0 int8");
    assert_eq!(v["complete"], true);

    // A run without the Python it names fails with the path, not a panic.
    let mut with_torch = args.to_vec();
    with_torch.extend(["--torch-python", "/nonexistent/python"]);
    let out = infodisent(&with_torch);
    assert_ne!(code(&out), 0);
    assert!(
        stderr(&out).contains("/nonexistent/python"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_engine_that_cannot_run_says_why() {
    let photo = infodisent::assets::asset("photos/imagenet/imagenet_00_243.jpg").unwrap();
    let photo = photo.to_str().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_infodisent"))
        .args(["predict", "--engine", "openvino", photo])
        .env("OPENVINO_LIB_PATH", "/nonexistent/openvino")
        .output()
        .unwrap();
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("OpenVINO engine is unavailable")
            && stderr(&out).contains("OPENVINO_LIB_PATH=/nonexistent/openvino"),
        "{}",
        stderr(&out)
    );
    let out = infodisent(&["predict", "--engine", "ort", "--precision", "bf16", photo]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--engine openvino"),
        "{}",
        stderr(&out)
    );
    // The same photo through OpenVINO in f32 and bf16 gets the same top class as ONNX Runtime.
    let top = |extra: &[&str]| -> serde_json::Value {
        let mut args = vec!["predict", "--json", photo];
        args.extend_from_slice(extra);
        let out = infodisent(&args);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()[0]["top"][0]["class"]
            .clone()
    };
    let reference = top(&[]);
    assert_eq!(top(&["--engine", "openvino"]), reference);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    if cpuinfo.contains("amx_bf16") || cpuinfo.contains("avx512_bf16") {
        assert_eq!(top(&["--precision", "bf16"]), reference);
    } else {
        // Without bf16 units, bf16 would be no faster: refused, naming the CPU.
        let out = infodisent(&["predict", "--precision", "bf16", photo]);
        assert_eq!(code(&out), 2, "{}", stderr(&out));
        assert!(
            stderr(&out).contains("neither AMX nor AVX512-BF16"),
            "{}",
            stderr(&out)
        );
    }
}

/// A CUB-200-2011 folder of four small photos in two classes, as its authors ship it.
fn tiny_cub(root: &std::path::Path) {
    let cub = root.join("CUB_200_2011");
    for (i, name) in [
        "001.Albatross/a1.jpg",
        "001.Albatross/a2.jpg",
        "002.Auklet/b1.jpg",
        "002.Auklet/b2.jpg",
    ]
    .iter()
    .enumerate()
    {
        let path = cub.join("images").join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let img = image::RgbImage::from_fn(80, 60, |x, y| {
            image::Rgb([(x * 3) as u8, (y * 4) as u8, (i * 60) as u8])
        });
        img.save(&path).unwrap();
    }
    let files = [
        ("classes.txt", "1 001.Albatross\n2 002.Auklet\n"),
        ("images.txt", "1 001.Albatross/a1.jpg\n2 001.Albatross/a2.jpg\n3 002.Auklet/b1.jpg\n4 002.Auklet/b2.jpg\n"),
        ("image_class_labels.txt", "1 1\n2 1\n3 2\n4 2\n"),
        ("train_test_split.txt", "1 1\n2 0\n3 1\n4 0\n"),
        ("bounding_boxes.txt", "1 10.0 5.0 40.0 30.0\n2 0.0 0.0 80.0 60.0\n3 5.0 5.0 20.0 20.0\n4 1.0 1.0 2.0 2.0\n"),
        ("parts/parts.txt", "1 beak\n2 left eye\n"),
        ("parts/part_locs.txt", "1 1 12.0 22.0 1\n1 2 0.0 0.0 0\n3 2 5.0 6.0 1\n"),
    ];
    for (name, text) in files {
        let path = cub.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

#[test]
fn extract_recognises_cub_and_names_a_malformed_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("cub");
    tiny_cub(&data);
    let cache = dir.path().join("cache");
    let (data, cache) = (data.to_str().unwrap(), cache.to_str().unwrap());
    let out = infodisent(&[
        "--json",
        "--threads",
        "2",
        "extract",
        "--data",
        data,
        "--cache",
        cache,
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["layout"], "cub");
    assert_eq!(
        v["annotated"],
        serde_json::json!([4, 2]),
        "four boxes, two images with visible parts"
    );
    let splits: Vec<_> = v["splits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                s["items"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        splits,
        [("train".to_owned(), 2), ("test".to_owned(), 2)],
        "the official split"
    );
    let items =
        std::fs::read_to_string(std::path::Path::new(cache).join("train/items.json")).unwrap();
    assert!(
        items.contains("\"boxes\"") && items.contains("\"parts\""),
        "{items}"
    );

    // Named as another layout, the folder is refused for lacking that layout's files.
    let other = dir.path().join("other");
    let out = infodisent(&[
        "extract",
        "--data",
        data,
        "--cache",
        other.to_str().unwrap(),
        "--layout",
        "cars",
    ]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(stderr(&out).contains("Stanford Cars"), "{}", stderr(&out));
    // A malformed line is named with its file and line number.
    let extract_other = || {
        infodisent(&[
            "extract",
            "--data",
            data,
            "--cache",
            other.to_str().unwrap(),
        ])
    };
    let labels = std::path::Path::new(data).join("CUB_200_2011/image_class_labels.txt");
    std::fs::write(&labels, "1 1\n2 one\n3 2\n4 2\n").unwrap();
    let out = extract_other();
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("image_class_labels.txt") && err.contains("line 2"),
        "{err}"
    );
    std::fs::write(&labels, "1 1\n2 1\n3 2\n4 2\n").unwrap();
    // A part location off its 80×60 image is refused at its line, before anything is written.
    let locs = std::path::Path::new(data).join("CUB_200_2011/parts/part_locs.txt");
    std::fs::write(&locs, "1 1 12.0 22.0 1\n3 2 5.0 70.0 1\n").unwrap();
    let out = extract_other();
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("part_locs.txt: line 2") && err.contains("outside"),
        "{err}"
    );
    assert!(!other.exists(), "a refused dataset leaves no cache behind");
}
