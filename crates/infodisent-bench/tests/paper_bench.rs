//! `bench paper` end to end on the parts benchmark written in CUB-200-2011's layout: the
//! official files are read (split, labels, boxes, part locations), features extracted with the
//! real Lite0, the paper's heads trained, and part purity on the annotated part locations
//! compared with the parts benchmark's own purity for the same head and images.

use infodisent::backbone::BackboneSpec;
use infodisent::cache::FeatureCache;
use infodisent::dataset::{Dataset, Layout, OpenOptions};
use infodisent::head::TrainedHead;
use infodisent::metrics::keypoints::{keypoint_purity, CellRule};
use infodisent::metrics::parts::{parts_score, PartsOptions};
use infodisent::synth::layouts::write_layout;
use infodisent::synth::parts::{asset_backgrounds, generate, PartsConfig};
use infodisent::train::TrainConfig;
use infodisent_bench::paper::{format_markdown, run, PaperRequest};

#[test]
fn bench_paper_reads_cub_and_its_part_purity_agrees_with_the_parts_benchmark() {
    let dir = tempfile::tempdir().unwrap();
    let data = PartsConfig {
        classes: 4,
        train_per_class: 24,
        test_per_class: 8,
        ..PartsConfig::default()
    };
    let parts_root = dir.path().join("parts");
    let truth = generate(&parts_root, &data, &asset_backgrounds().unwrap()).unwrap();
    let cub = dir.path().join("cub");
    write_layout(Layout::Cub, &parts_root, &truth, &cub).unwrap();

    let ds = Dataset::open(cub.to_str().unwrap()).unwrap();
    assert_eq!(ds.layout, Layout::Cub);
    assert_eq!(ds.split("train").unwrap().samples.len(), 4 * 24);
    assert_eq!(ds.split("test").unwrap().class_counts(4), [8; 4]);
    assert_eq!(ds.part_names.len(), 7, "six parts and the distractor");

    let base = TrainConfig {
        epochs: Some(8),
        val_fraction: 0.0,
        batch_size: 32,
        lr: 3e-3,
        seed: 0,
        ..TrainConfig::default()
    };
    let request = |data: &std::path::Path, out: &str| PaperRequest {
        data: data.to_str().unwrap().to_owned(),
        open: OpenOptions::default(),
        models: vec![BackboneSpec::new("efficientnet-lite0", 2)],
        out: dir.path().join(out),
        base: base.clone(),
        limit_per_class: None,
    };
    let rows = run(&request(&cub, "paper")).unwrap();
    println!("{}", format_markdown(&rows));
    let [row] = &rows[..] else {
        panic!("one model, one row")
    };
    assert_eq!(
        (row.layout, row.classes, row.test_images),
        (Layout::Cub, 4, 32)
    );
    assert!(row.paper.is_none(), "the paper has no Lite0 row");
    // The probe, the dense paper head and the default recipe; Lite0's own classifier decides
    // between ImageNet's classes, not these four.
    let names: Vec<_> = row.heads.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert_eq!(names[0], "linear probe (average-pooled)");
    for head in &row.heads {
        let purity = head.part_purity.expect("CUB part locations give purity");
        assert!((0.0..=1.0).contains(&purity), "{}: {purity}", head.name);
        assert!(
            head.top1 > 0.3,
            "{}: top-1 {} (chance 0.25)",
            head.name,
            head.top1
        );
        if head.rotation_from_identity.is_some() {
            let pointing = head.pointing.expect("CUB boxes give the pointing game");
            assert!(pointing > 0.25, "{}: pointing {pointing}", head.name);
        }
    }

    // The same images as an ImageFolder with the parts' boxes: the parts benchmark's purity of
    // the default head, against PIP-Net's purity on the part locations of the CUB copy.
    let default = row.heads.last().unwrap();
    let head = TrainedHead::InfoDisent(infodisent::runs::load_head(&default.folder).unwrap());
    let parts_cache = dir.path().join("parts-cache");
    let mut backbone = BackboneSpec::new("efficientnet-lite0", 2).load().unwrap();
    let folder = Dataset::open(parts_root.to_str().unwrap()).unwrap();
    infodisent::extract::extract(&mut backbone, &folder, &Default::default(), &parts_cache)
        .unwrap();
    let opts = PartsOptions::default();
    let boxes = parts_score(
        &FeatureCache::open(&parts_cache).unwrap(),
        &head,
        &truth,
        &opts,
    )
    .unwrap()
    .purity;
    let cub_cache = FeatureCache::open(default.folder.join("../../cache")).unwrap();
    let purity = |rule: CellRule| {
        let (per_class, k) = (opts.channels_per_class, opts.prototypes);
        let p = keypoint_purity(&cub_cache, &head, per_class, k, rule).unwrap();
        let p = p.unwrap();
        (p.purity, p.purity_of_all)
    };
    // Each location standing for its part (a square of the part's side around it), a cell
    // holds the part covering most of it, as the boxes are matched: the same purity, up to
    // ties between prototypes of equal value. PIP-Net's point-in-cell rule finds a 72-pixel
    // part's centre in one of the nine or so 32-pixel cells on it.
    let covering = CellRule::Covering(f64::from(data.part_size) / 2.0);
    let ((located, located_of_all), (pipnet, _)) =
        (purity(covering), purity(CellRule::PointInCell));
    println!(
        "purity on the parts' boxes {boxes:.3}; on their CUB part locations, each covering its part {located_of_all:.3} (over the images showing the part {located:.3}); PIP-Net's point-in-cell rule {pipnet:.3}"
    );
    assert!(
        (boxes - located_of_all).abs() <= 0.01,
        "boxes {boxes:.3} vs part locations {located_of_all:.3}"
    );
    assert!(pipnet < located);

    // The same images as ImageNet's Kaggle package: the `val` split is measured, the pointing
    // game reads its boxes from the solution files, and there are no part locations.
    let imagenet = dir.path().join("imagenet");
    write_layout(Layout::Imagenet, &parts_root, &truth, &imagenet).unwrap();
    let rows = run(&request(&imagenet, "paper-imagenet")).unwrap();
    println!("{}", format_markdown(&rows));
    let [row] = &rows[..] else {
        panic!("one model, one row")
    };
    assert_eq!(
        (row.layout, row.test_images, row.heads.len()),
        (Layout::Imagenet, 32, 3)
    );
    for head in &row.heads {
        assert!(head.part_purity.is_none(), "{}", head.name);
        if head.rotation_from_identity.is_some() {
            let pointing = head
                .pointing
                .expect("ImageNet's boxes give the pointing game");
            assert!(pointing > 0.25, "{}: pointing {pointing}", head.name);
        }
    }
}
