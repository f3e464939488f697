//! Dataset reading on real Fashion-MNIST IDX files and generated ImageFolder trees.

mod data_common;

use data_common::{assert_names, write_image};
use image::{DynamicImage, ImageFormat, Rgb, RgbImage};
use infodisent::dataset::idx::FASHION_MNIST_CLASSES;
use infodisent::dataset::{Dataset, OpenOptions};
use infodisent::preprocess::Preprocess;
use infodisent::synth::{generate, SynthConfig};
use infodisent::Error;
use std::io::Write;
use std::path::Path;

fn open_err(spec: &Path, opts: &OpenOptions) -> Error {
    match Dataset::open_with(spec.to_str().unwrap(), opts) {
        Ok(d) => panic!("{} opened with {} splits", spec.display(), d.splits.len()),
        Err(e) => e,
    }
}

#[test]
fn fashion_mnist_from_the_assets() {
    let mut ds = Dataset::open("fashion-mnist").unwrap();
    assert_eq!(ds.classes, FASHION_MNIST_CLASSES.map(String::from));
    let train = ds.split("train").unwrap();
    let test = ds.split("test").unwrap();
    assert_eq!((train.samples.len(), test.samples.len()), (60_000, 10_000));
    assert_eq!(train.class_counts(10), vec![6000; 10]);
    assert_eq!(test.class_counts(10), vec![1000; 10]);
    // The first training and test images are both ankle boots.
    assert_eq!(train.samples[0].label, 9);
    assert_eq!(test.samples[0].label, 9);
    assert!(
        train.samples[7]
            .path
            .ends_with("train-images-idx3-ubyte.gz#7"),
        "{}",
        train.samples[7].path
    );

    let img = train.samples[0].load().unwrap();
    assert_eq!(img.dimensions(), (28, 28));
    assert!(
        img.pixels().all(|p| p[0] == p[1] && p[1] == p[2]),
        "grey replicated to RGB"
    );
    // Background corners are black: after upsampling to 224 and (x − 127)/128 the corner of the
    // network input is exactly −127/128.
    assert_eq!(img.get_pixel(0, 0).0, [0, 0, 0]);
    let x = Preprocess::efficientnet_lite(224).apply(&img).unwrap();
    assert_eq!(x.len(), 3 * 224 * 224);
    assert!((x[0] + 127.0 / 128.0).abs() < 1e-6);
    assert!(x.iter().any(|v| *v > 0.5), "the garment is bright");

    let fp = ds.fingerprint();
    ds.limit(Some(3), None);
    let train = ds.split("train").unwrap();
    assert_eq!(train.samples.len(), 30);
    assert_eq!(train.class_counts(10), vec![3; 10]);
    assert_ne!(ds.fingerprint(), fp, "a subset is a different listing");
    let again = {
        let mut d = Dataset::open("fashion-mnist").unwrap();
        d.limit(Some(3), None);
        d
    };
    assert_eq!(
        again.fingerprint(),
        ds.fingerprint(),
        "limits are deterministic"
    );
    let paths: Vec<_> = again
        .split("test")
        .unwrap()
        .samples
        .iter()
        .map(|s| s.path.clone())
        .collect();
    assert_eq!(
        paths,
        ds.split("test")
            .unwrap()
            .samples
            .iter()
            .map(|s| s.path.clone())
            .collect::<Vec<_>>()
    );
}

fn write_idx(path: &Path, rank: u8, dims: &[u32], data: &[u8], gzip: bool) {
    let mut bytes = vec![0, 0, 8, rank];
    for d in dims {
        bytes.extend_from_slice(&d.to_be_bytes());
    }
    bytes.extend_from_slice(data);
    if gzip {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&bytes).unwrap();
        bytes = enc.finish().unwrap();
    }
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn idx_folders_raw_and_gzip_with_checked_headers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // 3 training images of 2×2 (raw files), 2 test images (gzip).
    write_idx(
        &d.join("train-images-idx3-ubyte"),
        3,
        &[3, 2, 2],
        &[0, 50, 100, 150, 1, 2, 3, 4, 9, 9, 9, 9],
        false,
    );
    write_idx(
        &d.join("train-labels-idx1-ubyte"),
        1,
        &[3],
        &[0, 2, 1],
        false,
    );
    write_idx(
        &d.join("t10k-images-idx3-ubyte.gz"),
        3,
        &[2, 2, 2],
        &[7; 8],
        true,
    );
    write_idx(&d.join("t10k-labels-idx1-ubyte.gz"), 1, &[2], &[1, 1], true);
    let ds = Dataset::open(d.to_str().unwrap()).unwrap();
    assert_eq!(ds.classes, ["0", "1", "2"]);
    let train = ds.split("train").unwrap();
    assert_eq!(
        train.samples.iter().map(|s| s.label).collect::<Vec<_>>(),
        [0, 2, 1]
    );
    assert_eq!(
        train.samples[0].load().unwrap().get_pixel(1, 1).0,
        [150, 150, 150]
    );
    assert_eq!(
        ds.split("test").unwrap().samples[1]
            .load()
            .unwrap()
            .get_pixel(0, 0)
            .0,
        [7, 7, 7]
    );

    // Counts that disagree between images and labels.
    write_idx(&d.join("train-labels-idx1-ubyte"), 1, &[2], &[0, 1], false);
    let e = open_err(d, &OpenOptions::default());
    assert_names(
        &e,
        &d.join("train-labels-idx1-ubyte"),
        &["2 labels", "3 images"],
    );

    // A labels file where an images file belongs: wrong magic.
    write_idx(
        &d.join("train-labels-idx1-ubyte"),
        1,
        &[3],
        &[0, 2, 1],
        false,
    );
    write_idx(
        &d.join("train-images-idx3-ubyte"),
        1,
        &[3],
        &[0, 2, 1],
        false,
    );
    let e = open_err(d, &OpenOptions::default());
    assert_names(&e, &d.join("train-images-idx3-ubyte"), &["bad IDX magic"]);

    // A header promising more data than the file holds.
    write_idx(
        &d.join("train-images-idx3-ubyte"),
        3,
        &[3, 2, 2],
        &[1; 7],
        false,
    );
    assert_names(
        &open_err(d, &OpenOptions::default()),
        &d.join("train-images-idx3-ubyte"),
        &["7 data bytes"],
    );

    // A cut-off gzip stream.
    write_idx(
        &d.join("train-images-idx3-ubyte"),
        3,
        &[3, 2, 2],
        &[1; 12],
        false,
    );
    let gz = std::fs::read(d.join("t10k-images-idx3-ubyte.gz")).unwrap();
    std::fs::write(d.join("t10k-images-idx3-ubyte.gz"), &gz[..gz.len() / 2]).unwrap();
    assert_names(
        &open_err(d, &OpenOptions::default()),
        &d.join("t10k-images-idx3-ubyte.gz"),
        &["gzip"],
    );
}

#[test]
fn generated_image_folder_with_splits() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SynthConfig {
        classes: 3,
        train_per_class: 4,
        test_per_class: 2,
        size: 64,
        shape_size: 16,
        ..Default::default()
    };
    generate(dir.path(), &cfg).unwrap();
    // Noise the reader must ignore: hidden files and folders, non-image files.
    std::fs::write(dir.path().join("train/disk/.DS_Store"), b"junk").unwrap();
    std::fs::create_dir_all(dir.path().join("train/.cache")).unwrap();
    std::fs::write(dir.path().join("train/square/readme.txt"), b"notes").unwrap();
    // Nested folders inside a class belong to that class.
    let nested = dir.path().join("train/triangle/more/extra.png");
    write_image(
        &nested,
        &DynamicImage::ImageRgb8(RgbImage::from_pixel(8, 8, Rgb([1, 2, 3]))),
        ImageFormat::Png,
    );

    let ds = Dataset::open(dir.path().to_str().unwrap()).unwrap();
    assert_eq!(
        ds.classes,
        ["disk", "square", "triangle"],
        "sorted folder names"
    );
    assert_eq!(
        ds.splits
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>(),
        ["train", "test"]
    );
    let train = ds.split("train").unwrap();
    assert_eq!(train.class_counts(3), [4, 4, 5]);
    assert_eq!(ds.split("test").unwrap().class_counts(3), [2, 2, 2]);
    assert!(train.samples[0].path.ends_with("train/disk/0000.png"));
    assert!(train
        .samples
        .iter()
        .all(|s| !s.path[dir.path().to_str().unwrap().len()..].contains("/.")));
    let img = train.samples[5].load().unwrap();
    assert_eq!(img.dimensions(), (64, 64));

    // Touching a file changes the fingerprint; re-reading an unchanged tree does not.
    let fp = ds.fingerprint();
    assert_eq!(
        Dataset::open(dir.path().to_str().unwrap())
            .unwrap()
            .fingerprint(),
        fp
    );
    std::fs::write(&nested, b"changed").unwrap();
    assert_ne!(
        Dataset::open(dir.path().to_str().unwrap())
            .unwrap()
            .fingerprint(),
        fp
    );
}

#[test]
fn folder_layout_problems() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for (class, n) in [("cat", 2), ("dog", 1)] {
        for i in 0..n {
            let p = root.join(class).join(format!("{i}.png"));
            write_image(
                &p,
                &DynamicImage::ImageRgb8(RgbImage::new(4, 4)),
                ImageFormat::Png,
            );
        }
    }
    let ds = Dataset::open(root.to_str().unwrap()).unwrap();
    assert_eq!(ds.splits.len(), 1);
    assert_eq!(ds.splits[0].name, "all");
    assert_eq!(ds.splits[0].class_counts(2), [2, 1]);

    // An empty class folder: an error naming it, or a counted skip.
    std::fs::create_dir(root.join("emu")).unwrap();
    std::fs::write(root.join("emu/.hidden.png"), b"").unwrap();
    let e = open_err(root, &OpenOptions::default());
    assert!(matches!(e, Error::Input { .. }));
    assert_names(&e, &root.join("emu"), &["empty class folder"]);
    let lenient = OpenOptions {
        skip_bad: true,
        ..Default::default()
    };
    let ds = Dataset::open_with(root.to_str().unwrap(), &lenient).unwrap();
    assert_eq!(ds.classes, ["cat", "dog"]);
    assert_eq!(ds.splits[0].skipped.len(), 1);
    assert!(ds.splits[0].skipped[0].path.ends_with("emu"));

    // Bad images are listed (they fail when loaded, naming the file).
    std::fs::write(root.join("dog/broken.jpg"), b"").unwrap();
    let ds = Dataset::open_with(root.to_str().unwrap(), &lenient).unwrap();
    let broken = ds.splits[0]
        .samples
        .iter()
        .find(|s| s.path.ends_with("broken.jpg"))
        .unwrap();
    assert!(broken
        .load()
        .unwrap_err()
        .to_string()
        .contains("broken.jpg"));

    let missing = root.join("nope");
    assert_names(
        &open_err(&missing, &OpenOptions::default()),
        &missing,
        &["no such dataset"],
    );
    let file = root.join("cat/0.png");
    assert_names(
        &open_err(&file, &OpenOptions::default()),
        &file,
        &["folder"],
    );
    let empty = tempfile::tempdir().unwrap();
    assert_names(
        &open_err(empty.path(), &OpenOptions::default()),
        empty.path(),
        &["no images found"],
    );
    // Images without class folders are one class: what `--target original` explains.
    let flat = tempfile::tempdir().unwrap();
    for name in ["a.png", "b.png"] {
        std::fs::copy(root.join("cat/0.png"), flat.path().join(name)).unwrap();
    }
    let ds = Dataset::open(flat.path().to_str().unwrap()).unwrap();
    assert_eq!(ds.classes, ["unlabelled"]);
    assert_eq!(ds.splits[0].samples.len(), 2);
}

/// The parts benchmark written in each official layout reads back with the generated splits,
/// classes and object boxes, each layout through its own files and box convention.
#[test]
fn the_parts_benchmark_in_each_official_layout_reads_back_with_its_splits_labels_and_boxes() {
    use infodisent::dataset::Layout;
    use infodisent::synth::layouts::write_layout;
    use infodisent::synth::parts::{asset_backgrounds, generate, PartsConfig};
    let dir = tempfile::tempdir().unwrap();
    let config = PartsConfig {
        classes: 3,
        train_per_class: 4,
        test_per_class: 2,
        ..PartsConfig::default()
    };
    let parts = dir.path().join("parts");
    let truth = generate(&parts, &config, &asset_backgrounds().unwrap()).unwrap();
    // What every layout must give back, per split: (class index, object box), sorted.
    let classes: Vec<&String> = truth.classes.keys().collect();
    let expected = |split: &str| {
        let mut rows: Vec<(usize, [u32; 4])> = truth
            .images
            .iter()
            .filter(|(rel, _)| rel.starts_with(&format!("{split}/")))
            .map(|(_, image)| {
                let class = classes.iter().position(|&c| *c == image.class).unwrap();
                (class, image.object_box())
            })
            .collect();
        rows.sort();
        rows
    };
    for layout in [Layout::Cub, Layout::Cars, Layout::Dogs, Layout::Imagenet] {
        let root = dir.path().join(layout.name());
        write_layout(layout, &parts, &truth, &root).unwrap();
        let ds = Dataset::open(root.to_str().unwrap()).unwrap();
        assert_eq!(ds.layout, layout, "detected from the files");
        assert_eq!(ds.classes.len(), 3, "{layout:?}: {:?}", ds.classes);
        let test = if layout == Layout::Imagenet {
            "val"
        } else {
            "test"
        };
        let names: Vec<&str> = ds.splits.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["train", test], "{layout:?}");
        for (split, generated) in [
            (ds.split("train").unwrap(), "train"),
            (ds.split(test).unwrap(), "test"),
        ] {
            let mut read: Vec<(usize, [u32; 4])> = split
                .samples
                .iter()
                .map(|s| {
                    let boxes = &s
                        .annotation
                        .as_ref()
                        .expect("every image has its box")
                        .boxes;
                    assert_eq!(boxes.len(), 1, "{layout:?} {}", s.path);
                    (s.label, boxes[0])
                })
                .collect();
            read.sort();
            assert_eq!(read, expected(generated), "{layout:?} {generated}");
        }
        let first = &ds.split("train").unwrap().samples[0];
        let img = first.load().unwrap();
        assert_eq!(img.dimensions(), (224, 224), "{layout:?}");
        let parts = first.annotation.as_ref().unwrap().parts.len();
        assert_eq!(
            parts,
            if layout == Layout::Cub { 3 } else { 0 },
            "{layout:?}: two parts and the ring"
        );
    }
}
