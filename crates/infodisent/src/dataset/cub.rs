//! CUB-200-2011 as it comes from its authors: `images.txt` lists the images under `images/`,
//! `image_class_labels.txt` and `classes.txt` give their classes, `train_test_split.txt` the
//! official split; `bounding_boxes.txt` (`x y width height`) and `parts/part_locs.txt` (the 15
//! parts of `parts/parts.txt`, invisible ones left out) become each sample's [`Annotation`].
//! The folder may be the one holding these files or its parent (the tarball's `CUB_200_2011/`).
//! A folder with `images.txt` and `images/` is read as CUB, so a missing label or split file is
//! named rather than the folder falling back to an ImageFolder of `images/` and `parts/`. Every
//! listed image must exist, and every box and part location must lie inside its image: an
//! annotation file from a resized or other copy is refused at its line, before anything is written.

use super::table::{line_error, Row, Table};
use super::{Annotation, Dataset, Layout, PartPoint, Sample};
use crate::error::{Error, Result};
use rayon::prelude::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The files a CUB folder must hold besides `images.txt`, and what each gives.
const REQUIRED: [(&str, &str); 3] = [
    ("image_class_labels.txt", "each image's class"),
    ("train_test_split.txt", "the official train/test split"),
    ("classes.txt", "the class names"),
];

/// How far (pixels) a box or part location may reach past its image's edge: annotators click
/// on the last pixel row and boxes are rounded outwards.
const EDGE_TOLERANCE: f64 = 1.0;

/// The folder holding CUB's files: `root` itself or its `CUB_200_2011/`, marked by
/// `images.txt` beside `images/`.
pub fn find_root(root: &Path) -> Option<PathBuf> {
    [root.to_path_buf(), root.join("CUB_200_2011")]
        .into_iter()
        .find(|dir| dir.join("images.txt").is_file() && dir.join("images").is_dir())
}

/// Refuses a CUB folder that lacks one of its [`REQUIRED`] files, naming it.
fn require_files(dir: &Path) -> Result<()> {
    match REQUIRED.iter().find(|(file, _)| !dir.join(file).is_file()) {
        Some((file, gives)) => Err(Error::input(
            dir.join(file),
            format!("missing from this CUB-200-2011 folder: it gives {gives}"),
        )),
        None => Ok(()),
    }
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
            "not a CUB-200-2011 folder: no images.txt beside images/ here or in CUB_200_2011/",
        )
    })?;
    require_files(&dir)?;
    let images = Table::read(&dir.join("images.txt"), 2)?;
    let ids = by_id(&images, "image id")?;
    let labels = Table::read(&dir.join("image_class_labels.txt"), 2)?;
    let label = column::<usize>(&labels, &ids, 1, "class id")?;
    let split = Table::read(&dir.join("train_test_split.txt"), 2)?;
    let is_train = column::<u8>(&split, &ids, 1, "is_training_image")?;
    let classes = class_names(&dir.join("classes.txt"), &label)?;
    let mut annotations = vec![Annotation::default(); ids.len()];
    let mut sources = vec![Sources::default(); ids.len()];
    let boxes_file = dir.join("bounding_boxes.txt");
    if boxes_file.is_file() {
        read_boxes(&boxes_file, &ids, &mut annotations, &mut sources)?;
    }
    let part_names = read_parts(&dir, &ids, &mut annotations, &mut sources)?;
    check_files_and_extents(&dir, &images, &annotations, &sources, &part_names)?;
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

/// Where in the annotation files an image's boxes and part locations were read: their line
/// numbers, in the order of its [`Annotation`]'s lists.
#[derive(Clone, Default)]
struct Sources {
    boxes: Vec<usize>,
    parts: Vec<usize>,
}

/// Reads `bounding_boxes.txt` (`id x y width height`) into the annotations.
fn read_boxes(
    path: &Path,
    ids: &HashMap<u32, usize>,
    out: &mut [Annotation],
    lines: &mut [Sources],
) -> Result<()> {
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
        lines[i].boxes.push(row.line());
    }
    Ok(())
}

/// Reads `parts/parts.txt` and the visible rows of `parts/part_locs.txt`; returns the part
/// names (none when the folder has no `parts/`).
fn read_parts(
    dir: &Path,
    ids: &HashMap<u32, usize>,
    out: &mut [Annotation],
    lines: &mut [Sources],
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
            lines[i].parts.push(row.line());
        }
    }
    Ok(names)
}

/// Refuses a listed image that is not there, and a box or part location outside its image
/// (sizes read from the image headers, in parallel); the first problem in file order is named.
fn check_files_and_extents(
    dir: &Path,
    images: &Table,
    annotations: &[Annotation],
    sources: &[Sources],
    part_names: &[String],
) -> Result<()> {
    let rows: Vec<_> = images.rows().collect();
    let checked: Vec<Result<()>> = rows
        .par_iter()
        .zip(annotations)
        .zip(sources)
        .map(|((row, annotation), lines)| check_image(dir, row, annotation, lines, part_names))
        .collect();
    checked.into_iter().collect()
}

/// [`check_files_and_extents`] for the image of `row` in `images.txt`.
fn check_image(
    dir: &Path,
    row: &Row,
    annotation: &Annotation,
    lines: &Sources,
    part_names: &[String],
) -> Result<()> {
    let path = dir.join("images").join(row.text(1));
    if !path.is_file() {
        return Err(row.error(format!("{} does not exist", path.display())));
    }
    if annotation.boxes.is_empty() && annotation.parts.is_empty() {
        return Ok(());
    }
    // An unreadable header is the extraction's to report (or skip, with --skip-bad).
    let Ok((w, h)) = image::image_dimensions(&path) else {
        return Ok(());
    };
    let inside = |x: f64, y: f64| {
        (-EDGE_TOLERANCE..=f64::from(w) + EDGE_TOLERANCE).contains(&x)
            && (-EDGE_TOLERANCE..=f64::from(h) + EDGE_TOLERANCE).contains(&y)
    };
    let outside = |file: &str, line: usize, what: String| {
        let msg = format!(
            "{what} of image id {} is outside its {w}×{h} image {}",
            row.text(0),
            row.text(1)
        );
        Err(line_error(&dir.join(file), line, msg))
    };
    for (b, &line) in annotation.boxes.iter().zip(&lines.boxes) {
        if !inside(f64::from(b[2]), f64::from(b[3])) {
            return outside("bounding_boxes.txt", line, format!("the box {b:?}"));
        }
    }
    for (p, &line) in annotation.parts.iter().zip(&lines.parts) {
        if !inside(f64::from(p.x), f64::from(p.y)) {
            let name = part_names
                .get(usize::from(p.part))
                .map_or("?", String::as_str);
            let what = format!("part `{name}` at ({}, {})", p.x, p.y);
            return outside("parts/part_locs.txt", line, what);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::{Dataset, OpenOptions};

    /// A CUB folder of four 80×60 images, two classes, the first image with a box and two parts.
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
        let cub = dir.join("CUB_200_2011");
        for (name, text) in files {
            crate::fsutil::write_atomic(cub.join(name), text.as_bytes()).unwrap();
        }
        for name in [
            "001.Albatross/a1",
            "001.Albatross/a2",
            "002.Auklet/b1",
            "002.Auklet/b2",
        ] {
            let path = cub.join("images").join(format!("{name}.jpg"));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            image::RgbImage::new(80, 60).save(&path).unwrap();
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

    #[test]
    fn a_truncated_list_a_missing_file_and_a_part_off_its_image_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        tiny_cub(dir.path());
        let cub = dir.path().join("CUB_200_2011");
        let open = || open(dir.path()).unwrap_err().to_string();
        let images = std::fs::read_to_string(cub.join("images.txt")).unwrap();
        // Cut inside its last line, the list names an image that is not there; cut before it,
        // the labels name an image the list lacks.
        std::fs::write(cub.join("images.txt"), &images[..images.len() - 8]).unwrap();
        let e = open();
        assert!(
            e.contains("images.txt: line 4") && e.contains("does not exist"),
            "{e}"
        );
        std::fs::write(
            cub.join("images.txt"),
            images.lines().take(3).collect::<Vec<_>>().join("\n"),
        )
        .unwrap();
        let e = open();
        assert!(
            e.contains("image_class_labels.txt: line 4")
                && e.contains("image id 4 is not in images.txt"),
            "{e}"
        );
        std::fs::write(cub.join("images.txt"), &images).unwrap();
        // The part lies right of the 80-pixel-wide image: refused at its line.
        std::fs::write(
            cub.join("parts/part_locs.txt"),
            "1 1 12.0 22.0 1\n3 2 95.0 6.0 1\n",
        )
        .unwrap();
        let e = open();
        assert!(
            e.contains("part_locs.txt: line 2")
                && e.contains("left eye")
                && e.contains("outside its 80×60 image"),
            "{e}"
        );
        std::fs::write(cub.join("parts/part_locs.txt"), "1 1 12.0 22.0 1\n").unwrap();
        // Without its split file the folder is still CUB, and the file is named.
        std::fs::remove_file(cub.join("train_test_split.txt")).unwrap();
        assert_eq!(crate::dataset::layout::detect(dir.path()), Layout::Cub);
        let e = open();
        assert!(
            e.contains("train_test_split.txt") && e.contains("official train/test split"),
            "{e}"
        );
    }
}
