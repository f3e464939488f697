//! Stanford Cars as its authors distribute it: the images in `cars_train/` and `cars_test/`, the
//! devkit's `devkit/cars_meta.mat` (the 196 class names) and `devkit/cars_train_annos.mat` (each
//! training image's class and box), and the separately released
//! `cars_test_annos_withlabels.mat` (the same for the test images, in the folder or in
//! `devkit/`: the devkit's own `cars_test_annos.mat` has no classes). The later single-file
//! release, `cars_annos.mat` beside `car_ims/`, is read too.

use super::mat::{Mat, Record};
use super::{Annotation, Dataset, Layout, Sample};
use crate::annotation::inclusive_box;
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// The devkit's training annotations, which mark the devkit layout.
const TRAIN_ANNOS: &str = "devkit/cars_train_annos.mat";
/// The devkit's class names.
const META: &str = "devkit/cars_meta.mat";
/// The labelled test annotations, released after the devkit.
const TEST_ANNOS: &str = "cars_test_annos_withlabels.mat";
/// The single-file release: every image's path, box, class and split, and the class names.
const ALL_ANNOS: &str = "cars_annos.mat";

/// Whether `root` holds Stanford Cars: the devkit's training annotations or `cars_annos.mat`.
pub fn is_cars(root: &Path) -> bool {
    root.join(TRAIN_ANNOS).is_file() || root.join(ALL_ANNOS).is_file()
}

/// Opens the Stanford Cars folder `root` (the devkit layout where both are present).
pub fn open(root: &Path) -> Result<Dataset> {
    let (classes, train, test, sources) = if root.join(TRAIN_ANNOS).is_file() {
        read_devkit(root)?
    } else if root.join(ALL_ANNOS).is_file() {
        read_single_file(root)?
    } else {
        return Err(Error::input(
            root,
            format!("not a Stanford Cars folder: neither {TRAIN_ANNOS} nor {ALL_ANNOS} is there"),
        ));
    };
    let hashes = super::hashes_of(&sources)?;
    let dataset = Dataset::official(
        root,
        root.to_path_buf(),
        Layout::Cars,
        classes,
        [("train", train), ("test", test)],
        hashes,
    );
    Ok(dataset)
}

/// Class names, train and test samples, and the annotation files they came from.
type Read = (Vec<String>, Vec<Sample>, Vec<Sample>, Vec<PathBuf>);

/// Reads the devkit layout.
fn read_devkit(root: &Path) -> Result<Read> {
    let meta = root.join(META);
    let classes = Mat::load(&meta)?.strings("class_names")?;
    let test_annos = [root.join(TEST_ANNOS), root.join("devkit").join(TEST_ANNOS)]
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error::input(
                root,
                format!(
                    "{TEST_ANNOS} is neither here nor in devkit/: the test split's classes are \
                     only in that file (the devkit's cars_test_annos.mat has none)"
                ),
            )
        })?;
    let train_annos = root.join(TRAIN_ANNOS);
    let train = read_annotations(&train_annos, &root.join("cars_train"), classes.len())?;
    let test = read_annotations(&test_annos, &root.join("cars_test"), classes.len())?;
    Ok((classes, train, test, vec![meta, train_annos, test_annos]))
}

/// The samples of a devkit annotation file, whose `fname`s lie in `images`.
fn read_annotations(path: &Path, images: &Path, classes: usize) -> Result<Vec<Sample>> {
    let mat = Mat::load(path)?;
    let records = mat.structs("annotations")?;
    records
        .iter()
        .map(|r| sample(r, images.join(r.string("fname")?), classes))
        .collect()
}

/// Reads the single-file release: `cars_annos.mat` with paths relative to `root`.
fn read_single_file(root: &Path) -> Result<Read> {
    let path = root.join(ALL_ANNOS);
    let mat = Mat::load(&path)?;
    let classes = mat.strings("class_names")?;
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for r in mat.structs("annotations")? {
        let sample = sample(&r, root.join(r.string("relative_im_path")?), classes.len())?;
        match r.whole("test")? {
            0 => train.push(sample),
            1 => test.push(sample),
            other => return Err(r.error("test", format!("is {other}, not 0 or 1"))),
        }
    }
    Ok((classes, train, test, vec![path]))
}

/// The sample of annotation `r` for `image`: its 1-based `class` and its box.
fn sample(r: &Record, image: PathBuf, classes: usize) -> Result<Sample> {
    let class = r.whole("class")?;
    if class == 0 || class > classes {
        return Err(r.error(
            "class",
            format!("{class} is not among classes 1 to {classes} that `class_names` names"),
        ));
    }
    // The boxes name the first and last pixel column and row the car covers, counted from 1
    // and inclusive (MATLAB's convention): 0-based that is columns x1-1 ..= x2-1, so the
    // end-exclusive box is [x1-1, y1-1, x2, y2].
    let corners = ["bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2"].map(|f| r.number(f));
    let [x1, y1, x2, y2] = corners;
    let corners = [x1?, y1?, x2?, y2?];
    let b = inclusive_box(corners, 1.0).ok_or_else(|| {
        r.error(
            "bbox_x2",
            format!("the box {corners:?} ends before it starts"),
        )
    })?;
    Ok(Sample::file(image, class - 1).annotated(Annotation::of_boxes(vec![b])))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::mat::write;
    use crate::dataset::testing::{boxes, error_of, jpeg, open};
    use matrw::{matvar, MatVariable};

    /// One annotation: image, box corners (1-based, inclusive) and 1-based class.
    type Anno = (&'static str, [f64; 4], f64);

    fn annotations(items: &[Anno]) -> MatVariable {
        let records = items
            .iter()
            .map(|&(fname, [x1, y1, x2, y2], class)| {
                matvar!({
                    bbox_x1: x1, bbox_y1: y1, bbox_x2: x2, bbox_y2: y2, class: class, fname: fname
                })
            })
            .collect();
        write::structs(records)
    }

    /// The devkit layout with 3 classes, 3 training and 2 test images; the labelled test
    /// annotations lie in `devkit/`.
    fn devkit(root: &Path) {
        std::fs::create_dir_all(root.join("devkit")).unwrap();
        let names = write::strings(&[
            "AM General Hummer SUV 2000",
            "Acura RL Sedan 2012",
            "Acura TL Sedan 2012",
        ]);
        write::save(&root.join(META), vec![("class_names", names)], false).unwrap();
        let train = [
            ("00001.jpg", [1.0, 1.0, 8.0, 6.0], 3.0),
            ("00002.jpg", [2.0, 3.0, 5.0, 4.0], 1.0),
            ("00003.jpg", [1.0, 1.0, 1.0, 1.0], 2.0),
        ];
        write::save(
            &root.join(TRAIN_ANNOS),
            vec![("annotations", annotations(&train))],
            true,
        )
        .unwrap();
        let test = [
            ("00001.jpg", [3.0, 2.0, 6.0, 5.0], 2.0),
            ("00002.jpg", [1.0, 1.0, 4.0, 4.0], 3.0),
        ];
        let test_annos = root.join("devkit").join(TEST_ANNOS);
        write::save(
            &test_annos,
            vec![("annotations", annotations(&test))],
            false,
        )
        .unwrap();
        for (split, items) in [("cars_train", &train[..]), ("cars_test", &test[..])] {
            for (fname, _, _) in items {
                jpeg(&root.join(split).join(fname));
            }
        }
    }

    #[test]
    fn reads_the_devkit_layout() {
        let dir = tempfile::tempdir().unwrap();
        devkit(dir.path());
        let ds = open(dir.path()).unwrap();
        assert_eq!(ds.layout, Layout::Cars);
        assert_eq!(ds.classes.len(), 3);
        assert_eq!(ds.classes[1], "Acura RL Sedan 2012");
        assert!(ds.part_names.is_empty() && ds.held_out.is_none());
        let (train, test) = (ds.split("train").unwrap(), ds.split("test").unwrap());
        let labels: Vec<usize> = train.samples.iter().map(|s| s.label).collect();
        assert_eq!(labels, [2, 0, 1]);
        assert_eq!(test.samples.len(), 2);
        assert_eq!(ds.key(&train.samples[1]), "cars_train/00002.jpg");
        assert_eq!(ds.key(&test.samples[0]), "cars_test/00001.jpg");
        // 1-based inclusive corners become 0-based end-exclusive boxes.
        assert_eq!(boxes(&train.samples[0]), [[0, 0, 8, 6]]);
        assert_eq!(boxes(&train.samples[1]), [[1, 2, 5, 4]]);
        assert_eq!(boxes(&train.samples[2]), [[0, 0, 1, 1]]);
        assert_eq!(train.source_hashes.len(), 3);
        assert!(train.samples[0].load().is_ok());
    }

    #[test]
    fn reads_the_single_file_release() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let record = |path: &str, test: f64, class: f64| {
            matvar!({
                relative_im_path: path,
                bbox_x1: 2.0, bbox_y1: 2.0, bbox_x2: 7.0, bbox_y2: 5.0,
                class: class,
                test: test
            })
        };
        let annotations = write::structs(vec![
            record("car_ims/000001.jpg", 0.0, 2.0),
            record("car_ims/000002.jpg", 1.0, 1.0),
            record("car_ims/000003.jpg", 0.0, 1.0),
        ]);
        let names = write::strings(&["a", "b"]);
        write::save(
            &root.join(ALL_ANNOS),
            vec![("annotations", annotations), ("class_names", names)],
            false,
        )
        .unwrap();
        let ds = open(root).unwrap();
        assert_eq!(ds.layout, Layout::Cars);
        let (train, test) = (ds.split("train").unwrap(), ds.split("test").unwrap());
        assert_eq!(
            train.samples.iter().map(|s| s.label).collect::<Vec<_>>(),
            [1, 0]
        );
        assert_eq!(ds.key(&test.samples[0]), "car_ims/000002.jpg");
        assert_eq!(boxes(&test.samples[0]), [[1, 1, 7, 5]]);
    }

    #[test]
    fn malformed_annotations_are_errors_that_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        devkit(root);
        let annos = root.join(TRAIN_ANNOS);
        // A class beyond the names, a box that ends before it starts, a missing field.
        let bad = [
            ("00001.jpg", [1.0, 1.0, 8.0, 6.0], 1.0),
            ("00002.jpg", [1.0, 1.0, 4.0, 4.0], 4.0),
        ];
        write::save(&annos, vec![("annotations", annotations(&bad))], false).unwrap();
        let e = error_of(root);
        assert!(
            e.contains("cars_train_annos.mat") && e.contains("annotations(2).class"),
            "{e}"
        );
        let bad = [("00001.jpg", [5.0, 1.0, 4.0, 6.0], 1.0)];
        write::save(&annos, vec![("annotations", annotations(&bad))], false).unwrap();
        assert!(error_of(root).contains("annotations(1).bbox_x2"));
        let no_class = write::structs(vec![
            matvar!({ bbox_x1: 1.0, bbox_y1: 1.0, bbox_x2: 2.0, bbox_y2: 2.0, fname: "00001.jpg" }),
        ]);
        write::save(&annos, vec![("annotations", no_class)], false).unwrap();
        assert!(error_of(root).contains("annotations(1).class: no such field"));
        // A truncated file.
        devkit(root);
        let meta = std::fs::read(root.join(META)).unwrap();
        std::fs::write(root.join(META), &meta[..meta.len() / 2]).unwrap();
        assert!(error_of(root).contains("cars_meta.mat"));
        // Without the labelled test annotations there is no test split to read.
        devkit(root);
        std::fs::remove_file(root.join("devkit").join(TEST_ANNOS)).unwrap();
        assert!(error_of(root).contains(TEST_ANNOS));
    }
}
