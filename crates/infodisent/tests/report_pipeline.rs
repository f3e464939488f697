//! The whole pipeline on generated data (extract → train → evaluate → metrics → MI → report),
//! and the report opened in a real headless browser: it loads, logs no console errors and every
//! image renders.

use infodisent::mi::MiConfig;
use infodisent::pipeline::{run, PipelineConfig};
use infodisent::synth::{generate, SynthConfig};
use std::path::Path;
use std::process::Command;

#[derive(serde::Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
struct BrowserCheck {
    pages: usize,
    images: usize,
    console_errors: Vec<String>,
    failed_requests: Vec<String>,
    broken_images: Vec<String>,
}

fn browser_check(report: &Path) -> BrowserCheck {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let script = root.join("tools/browser-check/check-report.mjs");
    assert!(
        root.join("tools/browser-check/node_modules/playwright-core")
            .exists(),
        "the browser check is not installed: run scripts/install-browser.sh"
    );
    let out = Command::new("node")
        .arg(&script)
        .arg(report)
        .output()
        .expect("node runs");
    assert!(
        out.status.success(),
        "browser check failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("browser check prints JSON")
}

#[test]
fn pipeline_on_generated_data_builds_a_report_that_renders_in_a_browser() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    generate(
        &data,
        &SynthConfig {
            classes: 2,
            train_per_class: 24,
            test_per_class: 8,
            ..SynthConfig::default()
        },
    )
    .unwrap();

    let mut cfg = PipelineConfig::demo(dir.path().join("run"), 2);
    cfg.data = data.to_string_lossy().into_owned();
    cfg.train_per_class = None;
    cfg.test_per_class = None;
    cfg.train.epochs = Some(4);
    cfg.train.batch_size = 16;
    cfg.train.trace_rv = 16;
    cfg.mi = Some(MiConfig {
        epochs: 1,
        batch: 8,
        negatives: 32,
        eval_items: 8,
        reference_items: 4,
        ..MiConfig::default()
    });
    cfg.faithfulness_images = 2;
    cfg.report.sample_images = 4;
    cfg.report.mi_images = 2;
    let summary = run(&cfg).unwrap();

    let accuracy = |name: &str| {
        summary
            .accuracy
            .iter()
            .find(|a| a.0 == name)
            .and_then(|a| a.1)
            .unwrap()
    };
    assert!(accuracy("InfoDisent") >= 0.8, "{:?}", summary.accuracy);
    assert!(accuracy("linear probe") >= 0.8, "{:?}", summary.accuracy);
    assert_eq!(
        summary
            .accuracy
            .iter()
            .find(|a| a.0 == "original classifier")
            .unwrap()
            .1,
        None,
        "ImageNet classes do not match 2 shapes"
    );

    let report = summary.report.parent().unwrap();
    for page in [
        "index.html",
        "classes.html",
        "prototypes.html",
        "images.html",
        "mi.html",
        "classes/class-0000.html",
    ] {
        assert!(report.join(page).is_file(), "{page} missing");
    }
    // The channel-correlation picture and the RV traced along training, shown on the summary.
    let index = std::fs::read_to_string(report.join("index.html")).unwrap();
    for plot in ["plots/correlation.svg", "plots/rv_training.svg"] {
        assert!(report.join(plot).is_file(), "{plot} missing");
        assert!(index.contains(plot), "index.html does not show {plot}");
    }
    let mi_page = std::fs::read_to_string(report.join("mi.html")).unwrap();
    assert!(
        mi_page.contains("decision-related"),
        "MI section lacks its maps"
    );
    let check = browser_check(report);
    assert!(check.pages >= 7, "{check:?}");
    assert!(check.images >= 4 + 2 * 2 + 2, "{check:?}");
    assert!(
        check.console_errors.is_empty(),
        "{:?}",
        check.console_errors
    );
    assert!(
        check.failed_requests.is_empty(),
        "{:?}",
        check.failed_requests
    );
    assert!(check.broken_images.is_empty(), "{:?}", check.broken_images);

    // A second run finds every stage's output on disk and redoes nothing but the report.
    let modified = |p: &Path| std::fs::metadata(p).unwrap().modified().unwrap();
    let head_file = summary.head.join("head.safetensors");
    let shard = summary.cache.join("train/shard-00000.safetensors");
    let before = (modified(&head_file), modified(&shard));
    let again = run(&cfg).unwrap();
    assert_eq!(again.accuracy, summary.accuracy);
    assert_eq!(
        (modified(&head_file), modified(&shard)),
        before,
        "a finished stage was redone"
    );
}
