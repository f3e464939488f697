//! ImageNet (ILSVRC-2012 classification and localisation) in its two official shapes:
//! - Kaggle's package: `ILSVRC/Data/CLS-LOC/train/<wnid>/<wnid>_<n>.JPEG`, a flat
//!   `ILSVRC/Data/CLS-LOC/val/`, `LOC_val_solution.csv` (each validation image's boxes as
//!   `wnid x0 y0 x1 y1 ...`, hence its class), `LOC_synset_mapping.txt` (the 1000 wnids) and,
//!   optionally, `LOC_train_solution.csv` (the boxes of part of the training images);
//! - the original archives: `train/<wnid>/`, a flat `val/`, and the devkit's
//!   `ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt` (line i: the
//!   ILSVRC2012_ID of validation image i) with `meta.mat` (the wnid of each id).
//!
//! Both may keep `train/` and `val/` in the folder itself; where the LOC files are present,
//! `val/` may also be in class folders (without them such a tree is an ImageFolder). The classes
//! are the wnids of the train folders, sorted: the class order of torchvision's and timm's
//! ImageNet models, so with all 1000 folders a label is the model's output index.

use super::mat::Mat;
use super::table::{line_error, Table};
use super::{Annotation, Dataset, Layout, Sample};
use crate::annotation::inclusive_box;
use crate::error::{Error, Result};
use crate::geometry::PixelBox;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// Where Kaggle's package keeps `train/` and `val/`.
const KAGGLE_DIR: &str = "ILSVRC/Data/CLS-LOC";
/// Kaggle's validation boxes and classes.
const VAL_SOLUTION: &str = "LOC_val_solution.csv";
/// Kaggle's boxes of part of the training images.
const TRAIN_SOLUTION: &str = "LOC_train_solution.csv";
/// Kaggle's list of the 1000 wnids with their names.
const SYNSETS: &str = "LOC_synset_mapping.txt";
/// The devkit's validation classes, one ILSVRC2012_ID per line.
const GROUND_TRUTH: &str = "ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt";
/// The devkit's synsets: the wnid of each ILSVRC2012_ID.
const META: &str = "ILSVRC2012_devkit_t12/data/meta.mat";
/// ILSVRC2012_IDs 1 to 1000 are the classes (the leaves); the rest are their ancestors.
const LEAF_SYNSETS: usize = 1000;

/// The folder holding `train/` and `val/`: Kaggle's `ILSVRC/Data/CLS-LOC/`, else `root`.
fn image_dir(root: &Path) -> PathBuf {
    let kaggle = root.join(KAGGLE_DIR);
    if kaggle.is_dir() {
        kaggle
    } else {
        root.to_path_buf()
    }
}

/// Whether `root` holds ImageNet: `train/` and `val/` with Kaggle's validation solution, or
/// with the devkit's ground truth and a flat `val/`.
pub fn is_imagenet(root: &Path) -> bool {
    let dir = image_dir(root);
    if !dir.join("train").is_dir() || !dir.join("val").is_dir() {
        return false;
    }
    let holds_images = || {
        std::fs::read_dir(dir.join("val"))
            .into_iter()
            .flatten()
            .flatten()
            .any(|entry| is_image(&entry.path()))
    };
    root.join(VAL_SOLUTION).is_file()
        || (root.join(GROUND_TRUTH).is_file() && root.join(META).is_file() && holds_images())
}

/// Opens the ImageNet folder `root`.
pub fn open(root: &Path) -> Result<Dataset> {
    let dir = image_dir(root);
    let train_dir = dir.join("train");
    let (classes, mut train) = read_train(&train_dir)?;
    let (val, sources) = if root.join(VAL_SOLUTION).is_file() {
        read_kaggle(root, &dir, &classes, &mut train)?
    } else {
        read_devkit(root, &dir, &classes)?
    };
    let hashes = super::hashes_of(&sources)?;
    let dataset = Dataset::official(
        root,
        root.to_path_buf(),
        Layout::Imagenet,
        classes,
        [("train", train), ("val", val)],
        hashes,
    );
    Ok(dataset)
}

/// Whether `path` is an image file by its extension (a broken link counts, so reading it
/// later fails with its name).
fn is_image(path: &Path) -> bool {
    !path.is_dir() && super::folder::has_image_extension(path)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
}

/// The class folders of `train/` (sorted, the classes) and their images, class by class and
/// in name order within each: the training samples are thus in path order.
fn read_train(train_dir: &Path) -> Result<(Vec<String>, Vec<Sample>)> {
    let mut classes = Vec::new();
    let mut samples = Vec::new();
    for class_dir in super::folder::list(train_dir)?
        .into_iter()
        .filter(|p| p.is_dir())
    {
        for image in super::folder::list(&class_dir)?
            .into_iter()
            .filter(|p| is_image(p))
        {
            samples.push(Sample::file(image, classes.len()));
        }
        classes.push(file_name(&class_dir));
    }
    if classes.is_empty() {
        return Err(Error::input(train_dir, "holds no class folders"));
    }
    Ok((classes, samples))
}

/// Each class's label.
fn labels(classes: &[String]) -> HashMap<&str, usize> {
    classes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i))
        .collect()
}

/// Refuses a train folder that `known` (read from `source`) does not list as a class, and warns
/// when some classes have no folder.
fn check_classes(
    classes: &[String],
    known: &HashSet<String>,
    source: &Path,
    train_dir: &Path,
) -> Result<()> {
    if let Some(stray) = classes.iter().find(|c| !known.contains(*c)) {
        let msg = format!(
            "is not an ILSVRC-2012 class: {} does not list it",
            source.display()
        );
        return Err(Error::input(train_dir.join(stray), msg));
    }
    if classes.len() < known.len() {
        tracing::warn!(
            "{}: {} of the {} ImageNet classes have a folder; labels number those, so they are \
             not a {}-class model's output indices",
            train_dir.display(),
            classes.len(),
            known.len(),
            known.len()
        );
    }
    Ok(())
}

/// Validation samples and annotation files of Kaggle's package; adds the training boxes of
/// `LOC_train_solution.csv`, when present, to `train`.
fn read_kaggle(
    root: &Path,
    dir: &Path,
    classes: &[String],
    train: &mut [Sample],
) -> Result<(Vec<Sample>, Vec<PathBuf>)> {
    let solution = root.join(VAL_SOLUTION);
    let mut sources = vec![solution.clone()];
    let synsets = root.join(SYNSETS);
    if synsets.is_file() {
        let known = Table::read(&synsets, 2)?
            .rows()
            .map(|r| r.text(0).to_owned())
            .collect();
        check_classes(classes, &known, &synsets, &dir.join("train"))?;
        sources.push(synsets);
    }
    let val_dir = dir.join("val");
    let in_class_folders = super::folder::list(&val_dir)?.iter().any(|p| p.is_dir());
    let labels = labels(classes);
    let mut val = Vec::new();
    for row in read_solution(&solution)? {
        let label = *labels.get(row.wnid.as_str()).ok_or_else(|| {
            line_error(
                &solution,
                row.line,
                format!("class {} has no folder in train/", row.wnid),
            )
        })?;
        let name = format!("{}.JPEG", row.image);
        let path = if in_class_folders {
            val_dir.join(&row.wnid).join(name)
        } else {
            val_dir.join(name)
        };
        let sample = Sample::file(path, label).annotated(Annotation::of_boxes(row.boxes));
        val.push((row.image, row.line, sample));
    }
    val.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(pair) = val.windows(2).find(|w| w[0].0 == w[1].0) {
        let (first, second) = (pair[0].1.min(pair[1].1), pair[0].1.max(pair[1].1));
        let msg = format!("{} is listed again (first on line {first})", pair[0].0);
        return Err(line_error(&solution, second, msg));
    }
    let train_solution = root.join(TRAIN_SOLUTION);
    if train_solution.is_file() {
        add_train_boxes(&train_solution, &dir.join("train"), train)?;
        sources.push(train_solution);
    }
    Ok((val.into_iter().map(|(_, _, s)| s).collect(), sources))
}

/// Gives the training images listed in `LOC_train_solution.csv` their boxes; rows for images
/// that are not in `train/` (a partial copy) are left out.
fn add_train_boxes(path: &Path, train_dir: &Path, train: &mut [Sample]) -> Result<()> {
    let mut absent = 0;
    for row in read_solution(path)? {
        let folder = row.image.split('_').next().unwrap_or_default();
        let image = train_dir.join(folder).join(format!("{}.JPEG", row.image));
        // The training samples are in path order (see `read_train`).
        match train.binary_search_by(|s| s.file_path().cmp(&Some(image.as_path()))) {
            Ok(i) => train[i].annotation = Some(Box::new(Annotation::of_boxes(row.boxes))),
            Err(_) => absent += 1,
        }
    }
    if absent > 0 {
        tracing::info!(
            "{}: {absent} listed images are not in train/; their boxes are not used",
            path.display()
        );
    }
    Ok(())
}

/// One row of a LOC solution file: the image, its class (the first box's wnid) and every box.
struct Solution {
    line: usize,
    image: String,
    wnid: String,
    boxes: Vec<PixelBox>,
}

/// The rows of a LOC solution file (`ImageId,PredictionString`, the string being groups of
/// `wnid x0 y0 x1 y1`).
fn read_solution(path: &Path) -> Result<Vec<Solution>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut lines = text.lines().enumerate();
    let header = lines
        .next()
        .map(|(_, l)| l.trim_start_matches('\u{feff}').trim());
    if header != Some("ImageId,PredictionString") {
        return Err(line_error(
            path,
            1,
            "expected the header `ImageId,PredictionString`",
        ));
    }
    let mut rows = Vec::new();
    for (i, line) in lines.filter(|(_, l)| !l.trim().is_empty()) {
        let (image, wnid, boxes) =
            solution_row(line).map_err(|msg| line_error(path, i + 1, msg))?;
        rows.push(Solution {
            line: i + 1,
            image,
            wnid,
            boxes,
        });
    }
    Ok(rows)
}

/// The image, class and boxes of one solution row, or what is wrong with it.
fn solution_row(line: &str) -> std::result::Result<(String, String, Vec<PixelBox>), String> {
    let (image, prediction) = line
        .split_once(',')
        .ok_or("expected `ImageId,PredictionString`")?;
    let image = image.trim();
    let fields: Vec<&str> = prediction.split_whitespace().collect();
    if image.is_empty() || fields.is_empty() || !fields.len().is_multiple_of(5) {
        let n = fields.len();
        return Err(format!(
            "expected an image id and groups of `wnid x0 y0 x1 y1`, found {n} fields after \
             `{image}`"
        ));
    }
    let mut boxes = Vec::with_capacity(fields.len() / 5);
    for group in fields.chunks(5) {
        let mut corners = [0.0; 4];
        for (corner, text) in corners.iter_mut().zip(&group[1..]) {
            *corner = text
                .parse()
                .map_err(|_| format!("box coordinate `{text}` is not a number"))?;
        }
        // ImageNet's boxes name the first and last pixel the object covers, 0-based, inclusive.
        boxes.push(
            inclusive_box(corners, 0.0)
                .ok_or_else(|| format!("the box {corners:?} ends before it starts"))?,
        );
    }
    Ok((image.to_owned(), fields[0].to_owned(), boxes))
}

/// Validation samples and annotation files of the devkit shape: line i of the ground truth
/// labels the i-th image of the flat `val/` in name order.
fn read_devkit(root: &Path, dir: &Path, classes: &[String]) -> Result<(Vec<Sample>, Vec<PathBuf>)> {
    let meta = root.join(META);
    let wnids = leaf_wnids(&meta)?;
    let known = wnids.values().cloned().collect();
    check_classes(classes, &known, &meta, &dir.join("train"))?;
    let truth_path = root.join(GROUND_TRUTH);
    let truth = Table::read(&truth_path, 1)?;
    let val_dir = dir.join("val");
    let images: Vec<PathBuf> = super::folder::list(&val_dir)?
        .into_iter()
        .filter(|p| is_image(p))
        .collect();
    if truth.len() != images.len() {
        let msg = format!(
            "has {} lines but {} holds {} images; line i labels the i-th image, so they must match",
            truth.len(),
            val_dir.display(),
            images.len()
        );
        return Err(Error::input(&truth_path, msg));
    }
    let labels = labels(classes);
    let mut val = Vec::with_capacity(images.len());
    for (i, (row, image)) in truth.rows().zip(images).enumerate() {
        // Official names number the images; one that is out of place would shift the labels.
        let number = file_name(&image)
            .strip_prefix("ILSVRC2012_val_")
            .and_then(|n| n.split('.').next()?.parse::<usize>().ok());
        if let Some(n) = number.filter(|&n| n != i + 1) {
            let msg = format!(
                "is image {} of val/ in name order, but its name numbers it {n}",
                i + 1
            );
            return Err(Error::input(&image, msg));
        }
        let id: usize = row.get(0, "ILSVRC2012_ID")?;
        let wnid = wnids.get(&id).ok_or_else(|| {
            row.error(format!(
                "ILSVRC2012_ID {id} is not one of the classes 1 to {LEAF_SYNSETS} of meta.mat"
            ))
        })?;
        let label = *labels.get(wnid.as_str()).ok_or_else(|| {
            row.error(format!(
                "class {wnid} (ILSVRC2012_ID {id}) has no folder in train/"
            ))
        })?;
        val.push(Sample::file(image, label));
    }
    Ok((val, vec![truth_path, meta]))
}

/// The wnid of each class id (1 to 1000) in the devkit's `meta.mat`.
fn leaf_wnids(meta: &Path) -> Result<HashMap<usize, String>> {
    let mat = Mat::load(meta)?;
    let mut wnids = HashMap::with_capacity(LEAF_SYNSETS);
    for synset in mat.structs("synsets")? {
        let id = synset.whole("ILSVRC2012_ID")?;
        if (1..=LEAF_SYNSETS).contains(&id) {
            wnids.insert(id, synset.string("WNID")?);
        }
    }
    Ok(wnids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::mat::write;
    use crate::dataset::testing::{boxes, error_of, jpeg, open};
    use matrw::{matvar, MatVariable};

    const TENCH: &str = "n01440764";
    const GOLDFISH: &str = "n01443537";
    const SHARK: &str = "n01484850";

    /// `train/<wnid>/<wnid>_<n>.JPEG`, two per class, plus files that are not images.
    fn train(dir: &Path) {
        for wnid in [SHARK, TENCH, GOLDFISH] {
            for n in [2, 1] {
                jpeg(
                    &dir.join("train")
                        .join(wnid)
                        .join(format!("{wnid}_{n}.JPEG")),
                );
            }
            std::fs::write(dir.join("train").join(wnid).join("notes.txt"), "x").unwrap();
            std::fs::write(dir.join("train").join(wnid).join(".hidden.JPEG"), "x").unwrap();
        }
    }

    const VAL_CSV: &str = "ImageId,PredictionString\n\
        ILSVRC2012_val_00000003,n01484850 0 0 7 5 \n\
        ILSVRC2012_val_00000001,n01443537 1 2 3 4 n01443537 0 0 0 0\n\
        \n\
        ILSVRC2012_val_00000002,n01440764 2 2 5 5\n";

    /// Kaggle's package; `val_folders` puts the validation images in class folders.
    fn kaggle(root: &Path, val_folders: bool) {
        let dir = root.join(KAGGLE_DIR);
        train(&dir);
        for (id, wnid) in [(1, GOLDFISH), (2, TENCH), (3, SHARK)] {
            let name = format!("ILSVRC2012_val_{id:08}.JPEG");
            jpeg(&if val_folders {
                dir.join("val").join(wnid).join(name)
            } else {
                dir.join("val").join(name)
            });
        }
        std::fs::write(root.join(VAL_SOLUTION), VAL_CSV).unwrap();
        let synsets = format!(
            "{TENCH} tench, Tinca tinca\n{GOLDFISH} goldfish\n{SHARK} great white shark\n\
             n01491361 tiger shark\n"
        );
        std::fs::write(root.join(SYNSETS), synsets).unwrap();
        let train_csv = format!(
            "ImageId,PredictionString\n{GOLDFISH}_2,{GOLDFISH} 1 1 6 4 \n\
             {TENCH}_99,{TENCH} 0 0 1 1 \n"
        );
        std::fs::write(root.join(TRAIN_SOLUTION), train_csv).unwrap();
    }

    fn keys(ds: &Dataset, split: &str) -> Vec<String> {
        ds.split(split)
            .unwrap()
            .samples
            .iter()
            .map(|s| ds.key(s))
            .collect()
    }

    fn labels_of(ds: &Dataset, split: &str) -> Vec<usize> {
        ds.split(split)
            .unwrap()
            .samples
            .iter()
            .map(|s| s.label)
            .collect()
    }

    #[test]
    fn reads_kaggles_package() {
        for val_folders in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            kaggle(dir.path(), val_folders);
            let ds = open(dir.path()).unwrap();
            assert_eq!(ds.layout, Layout::Imagenet);
            assert_eq!(ds.classes, [TENCH, GOLDFISH, SHARK]);
            assert_eq!(
                ds.splits
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>(),
                ["train", "val"]
            );
            assert_eq!(labels_of(&ds, "train"), [0, 0, 1, 1, 2, 2]);
            let train_keys = keys(&ds, "train");
            assert_eq!(
                train_keys[0],
                format!("{KAGGLE_DIR}/train/{TENCH}/{TENCH}_1.JPEG")
            );
            // Validation images in name order, labelled by their boxes' class.
            assert_eq!(labels_of(&ds, "val"), [1, 0, 2]);
            let first = if val_folders {
                format!("val/{GOLDFISH}/")
            } else {
                "val/".to_owned()
            };
            assert_eq!(
                keys(&ds, "val")[0],
                format!("{KAGGLE_DIR}/{first}ILSVRC2012_val_00000001.JPEG")
            );
            let val = &ds.split("val").unwrap().samples;
            assert_eq!(boxes(&val[0]), [[1, 2, 4, 5], [0, 0, 1, 1]]);
            assert_eq!(boxes(&val[2]), [[0, 0, 8, 6]]);
            assert!(val.iter().all(|s| s.load().is_ok()));
            // The training boxes land on their image; the row for an absent image is left out.
            let train = &ds.split("train").unwrap().samples;
            assert_eq!(boxes(&train[3]), [[1, 1, 7, 5]]);
            assert_eq!(train.iter().filter(|s| s.annotation.is_some()).count(), 1);
            assert_eq!(val.len(), 3);
            assert_eq!(ds.split("val").unwrap().source_hashes.len(), 3);
        }
    }

    /// The original archives: ids in meta.mat are not in wnid order, as in the real file.
    fn devkit(root: &Path) {
        train(root);
        for id in 1..=3 {
            jpeg(
                &root
                    .join("val")
                    .join(format!("ILSVRC2012_val_{id:08}.JPEG")),
            );
        }
        let data = root.join(GROUND_TRUTH).parent().unwrap().to_path_buf();
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(root.join(GROUND_TRUTH), "3\n1\n2\n").unwrap();
        let synset = |id: f64, wnid: &str, children: MatVariable| {
            matvar!({
                ILSVRC2012_ID: id,
                WNID: wnid,
                words: "a fish",
                num_children: 0.0,
                children: children
            })
        };
        let synsets = write::structs(vec![
            synset(1.0, SHARK, matvar!([])),
            synset(2.0, GOLDFISH, matvar!([])),
            synset(3.0, TENCH, matvar!([])),
            synset(1001.0, "n01439121", matvar!([1.0, 2.0, 3.0])),
        ]);
        write::save(&root.join(META), vec![("synsets", synsets)], false).unwrap();
    }

    #[test]
    fn reads_the_devkit_layout() {
        let dir = tempfile::tempdir().unwrap();
        devkit(dir.path());
        let ds = open(dir.path()).unwrap();
        assert_eq!(ds.layout, Layout::Imagenet);
        assert_eq!(ds.classes, [TENCH, GOLDFISH, SHARK]);
        assert_eq!(
            keys(&ds, "train")[5],
            format!("train/{SHARK}/{SHARK}_2.JPEG")
        );
        // Ground truth 3, 1, 2 are tench, shark, goldfish.
        assert_eq!(labels_of(&ds, "val"), [0, 2, 1]);
        assert_eq!(keys(&ds, "val")[2], "val/ILSVRC2012_val_00000003.JPEG");
        assert!(ds
            .split("val")
            .unwrap()
            .samples
            .iter()
            .all(|s| s.annotation.is_none()));
        assert_eq!(ds.split("train").unwrap().source_hashes.len(), 2);
    }

    #[test]
    fn a_val_folder_of_classes_without_loc_files_is_an_image_folder() {
        let dir = tempfile::tempdir().unwrap();
        devkit(dir.path());
        for id in 1..=3 {
            let name = format!("ILSVRC2012_val_{id:08}.JPEG");
            std::fs::remove_file(dir.path().join("val").join(&name)).unwrap();
            jpeg(&dir.path().join("val").join(TENCH).join(name));
        }
        assert_eq!(
            crate::dataset::layout::detect(dir.path()),
            Layout::ImageFolder
        );
    }

    #[test]
    fn malformed_kaggle_files_are_errors_that_name_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        kaggle(root, false);
        let csv = root.join(VAL_SOLUTION);
        std::fs::write(&csv, VAL_CSV.replace("2 2 5 5", "2 2 5")).unwrap();
        let e = error_of(root);
        assert!(
            e.contains("LOC_val_solution.csv: line 5: expected an image id and groups"),
            "{e}"
        );
        std::fs::write(&csv, VAL_CSV.replace("1 2 3 4", "1 2 x 4")).unwrap();
        assert!(error_of(root).contains("line 3: box coordinate `x` is not a number"));
        std::fs::write(&csv, VAL_CSV.replace("n01440764 2", "n09999999 2")).unwrap();
        assert!(error_of(root).contains("line 5: class n09999999 has no folder in train/"));
        std::fs::write(&csv, VAL_CSV.replace("_00000002", "_00000001")).unwrap();
        assert!(error_of(root)
            .contains("line 5: ILSVRC2012_val_00000001 is listed again (first on line 3)"));
        std::fs::write(&csv, VAL_CSV.replace("ImageId,", "Id,")).unwrap();
        assert!(error_of(root).contains("line 1: expected the header"));
        // A train folder that is not a class.
        kaggle(root, false);
        jpeg(
            &root
                .join(KAGGLE_DIR)
                .join("train/n00000001/n00000001_1.JPEG"),
        );
        assert!(error_of(root).contains("n00000001: is not an ILSVRC-2012 class"));
    }

    #[test]
    fn malformed_devkit_files_are_errors_that_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        devkit(root);
        let truth = root.join(GROUND_TRUTH);
        std::fs::write(&truth, "3\n1\n").unwrap();
        let e = error_of(root);
        assert!(
            e.contains("ground_truth.txt: has 2 lines but") && e.contains("holds 3 images"),
            "{e}"
        );
        std::fs::write(&truth, "3\none\n2\n").unwrap();
        assert!(error_of(root).contains("ground_truth.txt: line 2: ILSVRC2012_ID `one`"));
        std::fs::write(&truth, "3\n1001\n2\n").unwrap();
        assert!(error_of(root).contains("line 2: ILSVRC2012_ID 1001 is not one of the classes"));
        devkit(root);
        let meta = root.join(META);
        let bytes = std::fs::read(&meta).unwrap();
        std::fs::write(&meta, &bytes[..bytes.len() / 2]).unwrap();
        assert!(error_of(root).contains("meta.mat"));
        let no_wnid = write::structs(vec![matvar!({ ILSVRC2012_ID: 1.0 })]);
        write::save(&meta, vec![("synsets", no_wnid)], false).unwrap();
        assert!(error_of(root).contains("meta.mat: synsets(1).WNID: no such field"));
    }
}
