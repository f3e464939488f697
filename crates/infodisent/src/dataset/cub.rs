//! CUB-200-2011 as it comes from its authors: `images.txt` lists the images under `images/`,
//! `image_class_labels.txt` and `classes.txt` give their classes, `train_test_split.txt` the
//! official split; `bounding_boxes.txt` (`x y width height`) and `parts/part_locs.txt` (the 15
//! parts of `parts/parts.txt`, invisible ones left out) become each sample's [`Annotation`].
//! The folder may be the one holding these files or its parent (the tarball's `CUB_200_2011/`).

use super::table::Table;
use super::{Annotation, Dataset, Layout, PartPoint, Sample};
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The files whose presence marks a CUB folder.
const MARKERS: [&str; 3] = [
    "images.txt",
    "image_class_labels.txt",
    "train_test_split.txt",
];

/// The folder holding CUB's files: `root` itself or its `CUB_200_2011/`.
pub fn find_root(root: &Path) -> Option<PathBuf> {
    [root.to_path_buf(), root.join("CUB_200_2011")]
        .into_iter()
        .find(|dir| MARKERS.iter().all(|m| dir.join(m).is_file()))
}

/// Maps a 1-based id column to the row it came from, refusing repeats.
fn by_id(table: &Table, what: &str) -> Result<HashMap<u32, usize>> {
    let mut ids = HashMap::with_capacity(table.len());
    for (i, row) in table.rows().enumerate() {
        if ids.insert(row.get::<u32>(0, what)?, i).is_some() {
            return Err(row.error(format!("{what} {} is listed twice", row.text(0))));
        }
    }
    Ok(ids)
}

/// Per image id, a value read from one column of `table` (`images.txt` ids must all be there).
fn column<T: std::str::FromStr>(
    table: &Table,
    images: &HashMap<u32, usize>,
    col: usize,
    what: &str,
) -> Result<Vec<Option<T>>> {
    let mut values: Vec<Option<T>> = (0..images.len()).map(|_| None).collect();
    for row in table.rows() {
        let id: u32 = row.get(0, "image id")?;
        let i = *images
            .get(&id)
            .ok_or_else(|| row.error(format!("image id {id} is not in images.txt")))?;
        values[i] = Some(row.get(col, what)?);
    }
    Ok(values)
}

/// Opens the CUB folder at or under `root`.
pub fn open(root: &Path) -> Result<Dataset> {
    let dir = find_root(root).ok_or_else(|| {
        Error::input(
            root,
            format!("not a CUB-200-2011 folder: {} missing", MARKERS.join(", ")),
        )
    })?;
    let images = Table::read(&dir.join("images.txt"), 2)?;
    let ids = by_id(&images, "image id")?;
    let labels = Table::read(&dir.join("image_class_labels.txt"), 2)?;
    let label = column::<usize>(&labels, &ids, 1, "class id")?;
    let split = Table::read(&dir.join("train_test_split.txt"), 2)?;
    let is_train = column::<u8>(&split, &ids, 1, "is_training_image")?;
    let classes = class_names(&dir.join("classes.txt"), &label)?;
    let mut annotations = vec![Annotation::default(); ids.len()];
    let boxes_file = dir.join("bounding_boxes.txt");
    if boxes_file.is_file() {
        read_boxes(&boxes_file, &ids, &mut annotations)?;
    }
    let part_names = read_parts(&dir, &ids, &mut annotations)?;
    let mut train = Vec::new();
    let mut test = Vec::new();
    for (i, (row, annotation)) in images.rows().zip(annotations).enumerate() {
        let missing =
            |file: &str| row.error(format!("image id {} has no line in {file}", row.text(0)));
        let class = label[i].ok_or_else(|| missing("image_class_labels.txt"))?;
        let sample = Sample::file(dir.join("images").join(row.text(1)), class - 1);
        let sample = if annotation == Annotation::default() {
            sample
        } else {
            sample.annotated(annotation)
        };
        match is_train[i].ok_or_else(|| missing("train_test_split.txt"))? {
            1 => train.push(sample),
            0 => test.push(sample),
            other => return Err(row.error(format!("is_training_image is {other}, not 0 or 1"))),
        }
    }
    let annotation_files = [
        "images.txt",
        "image_class_labels.txt",
        "train_test_split.txt",
        "classes.txt",
        "bounding_boxes.txt",
        "parts/parts.txt",
        "parts/part_locs.txt",
    ];
    let present: Vec<PathBuf> = annotation_files
        .iter()
        .map(|f| dir.join(f))
        .filter(|p| p.is_file())
        .collect();
    let hashes = super::hashes_of(&present)?;
    let dataset = Dataset::official(
        root,
        dir.clone(),
        Layout::Cub,
        classes,
        [("train", train), ("test", test)],
        hashes,
    );
    Ok(Dataset {
        part_names,
        ..dataset
    })
}

/// Class names in id order from `classes.txt` (`1 001.Black_footed_Albatross`); ids must run
/// 1..=N and cover every label.
fn class_names(path: &Path, labels: &[Option<usize>]) -> Result<Vec<String>> {
    let table = Table::read(path, 2)?;
    let mut names = Vec::with_capacity(table.len());
    for (i, row) in table.rows().enumerate() {
        let id: usize = row.get(0, "class id")?;
        if id != i + 1 {
            return Err(row.error(format!(
                "class ids must run 1, 2, 3, ...; found {id} on row {}",
                i + 1
            )));
        }
        names.push(row.text(1).to_owned());
    }
    if let Some(bad) = labels
        .iter()
        .flatten()
        .find(|&&l| l == 0 || l > names.len())
    {
        return Err(Error::input(
            path,
            format!(
                "image_class_labels.txt uses class {bad}, but this file names classes 1 to {}",
                names.len()
            ),
        ));
    }
    Ok(names)
}

/// Reads `bounding_boxes.txt` (`id x y width height`) into the annotations.
fn read_boxes(path: &Path, ids: &HashMap<u32, usize>, out: &mut [Annotation]) -> Result<()> {
    let table = Table::read(path, 5)?;
    for row in table.rows() {
        let id: u32 = row.get(0, "image id")?;
        let i = *ids
            .get(&id)
            .ok_or_else(|| row.error(format!("image id {id} is not in images.txt")))?;
        let [x, y, w, h] = [1, 2, 3, 4].map(|c| row.get::<f64>(c, "box coordinate"));
        let (x, y, w, h) = (x?, y?, w?, h?);
        if w <= 0.0 || h <= 0.0 {
            return Err(row.error(format!("the box has width {w} and height {h}")));
        }
        out[i]
            .boxes
            .push(crate::annotation::pixel_box(x, y, x + w, y + h));
    }
    Ok(())
}

/// Reads `parts/parts.txt` and the visible rows of `parts/part_locs.txt`; returns the part
/// names (none when the folder has no `parts/`).
fn read_parts(
    dir: &Path,
    ids: &HashMap<u32, usize>,
    out: &mut [Annotation],
) -> Result<Vec<String>> {
    let (names_file, locs_file) = (dir.join("parts/parts.txt"), dir.join("parts/part_locs.txt"));
    if !names_file.is_file() || !locs_file.is_file() {
        return Ok(vec![]);
    }
    let parts = Table::read(&names_file, 2)?;
    let mut names = Vec::with_capacity(parts.len());
    for (i, row) in parts.rows().enumerate() {
        if row.get::<usize>(0, "part id")? != i + 1 {
            return Err(row.error("part ids must run 1, 2, 3, ..."));
        }
        names.push(row.text(1).to_owned());
    }
    for row in Table::read(&locs_file, 5)?.rows() {
        let id: u32 = row.get(0, "image id")?;
        let i = *ids
            .get(&id)
            .ok_or_else(|| row.error(format!("image id {id} is not in images.txt")))?;
        let part: u16 = row.get(1, "part id")?;
        if part == 0 || usize::from(part) > names.len() {
            return Err(row.error(format!(
                "part {part} is not in parts.txt (1 to {})",
                names.len()
            )));
        }
        let visible: u8 = row.get(4, "visibility")?;
        if visible == 1 {
            out[i].parts.push(PartPoint {
                part: part - 1,
                x: row.get(2, "x")?,
                y: row.get(3, "y")?,
            });
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::{Dataset, OpenOptions};

    /// A CUB folder of four images, two classes, the first image with a box and two parts.
    fn tiny_cub(dir: &Path) {
        let files = [
            ("classes.txt", "1 001.Albatross\n2 002.Auklet\n"),
            ("images.txt", "1 001.Albatross/a1.jpg\n2 001.Albatross/a2.jpg\n3 002.Auklet/b1.jpg\n4 002.Auklet/b2.jpg\n"),
            ("image_class_labels.txt", "1 1\n2 1\n3 2\n4 2\n"),
            ("train_test_split.txt", "1 1\n2 0\n3 1\n4 0\n"),
            ("bounding_boxes.txt", "1 10.0 20.0 30.5 40.0\n"),
            ("parts/parts.txt", "1 beak\n2 left eye\n"),
            ("parts/part_locs.txt", "1 1 12.0 22.0 1\n1 2 0.0 0.0 0\n3 2 5.0 6.0 1\n"),
        ];
        for (name, text) in files {
            crate::fsutil::write_atomic(dir.join("CUB_200_2011").join(name), text.as_bytes())
                .unwrap();
        }
    }

    #[test]
    fn the_official_files_give_splits_labels_boxes_and_visible_parts() {
        let dir = tempfile::tempdir().unwrap();
        tiny_cub(dir.path());
        let root = dir.path().canonicalize().unwrap();
        let ds = Dataset::open_with(root.to_str().unwrap(), &OpenOptions::default()).unwrap();
        assert_eq!(ds.layout, Layout::Cub);
        assert_eq!(ds.classes, ["001.Albatross", "002.Auklet"]);
        assert_eq!(ds.part_names, ["beak", "left eye"]);
        let (train, test) = (ds.split("train").unwrap(), ds.split("test").unwrap());
        assert_eq!(
            train.samples.iter().map(|s| s.label).collect::<Vec<_>>(),
            [0, 1]
        );
        assert_eq!(test.samples.len(), 2);
        assert!(train.samples[0]
            .path
            .ends_with("CUB_200_2011/images/001.Albatross/a1.jpg"));
        let a = train.samples[0].annotation.as_deref().unwrap();
        assert_eq!(a.boxes, [[10, 20, 41, 60]]);
        // The invisible left eye of image 1 is left out.
        assert_eq!(
            a.parts,
            [PartPoint {
                part: 0,
                x: 12.0,
                y: 22.0
            }]
        );
        assert_eq!(
            train.samples[1].annotation.as_deref().unwrap().parts[0].part,
            1
        );
        assert!(test.samples[0].annotation.is_none());
        assert!(ds.held_out.is_none(), "the official split is kept");
    }

    #[test]
    fn a_malformed_file_is_named_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        tiny_cub(dir.path());
        let cub = dir.path().join("CUB_200_2011");
        let open = || open(dir.path()).unwrap_err().to_string();
        std::fs::write(cub.join("image_class_labels.txt"), "1 1\n2 x\n").unwrap();
        let e = open();
        assert!(
            e.contains("image_class_labels.txt") && e.contains("line 2"),
            "{e}"
        );
        std::fs::write(cub.join("image_class_labels.txt"), "1 1\n2 1\n3 2\n4 3\n").unwrap();
        let e = open();
        assert!(e.contains("classes.txt") && e.contains("class 3"), "{e}");
        std::fs::write(cub.join("image_class_labels.txt"), "1 1\n2 1\n3 2\n").unwrap();
        let e = open();
        assert!(
            e.contains("images.txt") && e.contains("image_class_labels.txt"),
            "{e}"
        );
        std::fs::write(cub.join("image_class_labels.txt"), "1 1\n2 1\n3 2\n4 2\n").unwrap();
        std::fs::write(cub.join("parts/part_locs.txt"), "1 9 1.0 1.0 1\n").unwrap();
        let e = open();
        assert!(e.contains("part_locs.txt") && e.contains("part 9"), "{e}");
    }
}
