//! Stanford Dogs as its authors distribute it: `Images/<wnid>-<breed>/<image>.jpg`, one PASCAL
//! VOC XML file per image, without extension, under `Annotation/<wnid>-<breed>/` (the dogs'
//! boxes), and the official split in `lists/train_list.mat` and `lists/test_list.mat` (also read
//! from the folder itself, where `lists.tar` puts them when unpacked in place). The lists' labels
//! are 1-based and follow the sorted breed folders, whose names are the class names.

use super::mat::{whole, Mat};
use super::table::line_error;
use super::{Annotation, Dataset, Layout, Sample};
use crate::annotation::inclusive_box;
use crate::error::{Error, Result};
use crate::fsutil::sha256_file;
use crate::geometry::PixelBox;
use quick_xml::events::Event;
use quick_xml::Reader;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The folder of breed folders of images.
const IMAGES: &str = "Images";
/// The folder of breed folders of annotation files.
const ANNOTATIONS: &str = "Annotation";
/// The coordinates of a VOC `<bndbox>`, in the order [`inclusive_box`] takes them.
const CORNERS: [&str; 4] = ["xmin", "ymin", "xmax", "ymax"];

/// The folder holding `train_list.mat` and `test_list.mat`: `lists/`, else `root` itself.
fn lists_dir(root: &Path) -> Option<PathBuf> {
    [root.join("lists"), root.to_path_buf()]
        .into_iter()
        .find(|dir| dir.join("train_list.mat").is_file())
}

/// Whether `root` holds Stanford Dogs: `Images/` and the split lists.
pub fn is_dogs(root: &Path) -> bool {
    root.join(IMAGES).is_dir() && lists_dir(root).is_some()
}

/// Opens the Stanford Dogs folder `root`.
pub fn open(root: &Path) -> Result<Dataset> {
    let lists = lists_dir(root)
        .ok_or_else(|| Error::input(root, "not a Stanford Dogs folder: no lists/train_list.mat"))?;
    let images = root.join(IMAGES);
    let classes = breed_folders(&images)?;
    let mut annotations = Sha256::new();
    let mut hashes = Vec::new();
    let mut samples = Vec::new();
    for name in ["train", "test"] {
        let list = lists.join(format!("{name}_list.mat"));
        samples.push(read_list(&list, root, &classes, &mut annotations)?);
        hashes.push(sha256_file(&list)?);
    }
    // The ~20,000 annotation files are hashed as they are read, into one digest.
    hashes.push(hex::encode(annotations.finalize()));
    let [train, test]: [Vec<Sample>; 2] = samples
        .try_into()
        .map_err(|_| Error::input(root, "expected a train and a test list"))?;
    Ok(Dataset::official(
        root,
        images,
        Layout::Dogs,
        classes,
        [("train", train), ("test", test)],
        hashes,
    ))
}

/// The names of the visible folders of `images`, sorted: the classes in label order.
fn breed_folders(images: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(images).map_err(|e| Error::io(images, e))? {
        let path = entry.map_err(|e| Error::io(images, e))?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        match name {
            Some(name) if path.is_dir() && !name.starts_with('.') => names.push(name),
            _ => {}
        }
    }
    if names.is_empty() {
        return Err(Error::input(images, "holds no breed folders"));
    }
    names.sort();
    Ok(names)
}

/// The samples of a split list: `file_list` (paths under `Images/`) with their 1-based
/// `labels`, and the boxes of their annotation files, hashed into `digest`.
fn read_list(
    path: &Path,
    root: &Path,
    classes: &[String],
    digest: &mut Sha256,
) -> Result<Vec<Sample>> {
    let mat = Mat::load(path)?;
    let files = mat.strings("file_list")?;
    let labels = mat.numbers("labels")?;
    if labels.len() != files.len() {
        let msg = format!(
            "`file_list` has {} entries but `labels` {}",
            files.len(),
            labels.len()
        );
        return Err(Error::input(path, msg));
    }
    let mut samples = Vec::with_capacity(files.len());
    for (i, (file, &label)) in files.iter().zip(&labels).enumerate() {
        let label = whole(label)
            .filter(|l| (1..=classes.len()).contains(l))
            .ok_or_else(|| {
                mat.error(
                    "labels",
                    i,
                    format!("{label} is not a label 1 to {}", classes.len()),
                )
            })?;
        let folder = file.split('/').next().unwrap_or_default();
        if folder != classes[label - 1] {
            return Err(mat.error(
                "labels",
                i,
                format!(
                    "{label} for `{file}`, but folder {label} of Images/ in sorted order is `{}`: \
                     the labels follow the sorted breed folders, so Images/ must hold exactly \
                     the breed folders of Images.tar",
                    classes[label - 1]
                ),
            ));
        }
        // The annotation of `<breed>/<image>.jpg` is `Annotation/<breed>/<image>`, as the
        // lists' `annotation_list` also says.
        let stem = file
            .rsplit_once('.')
            .map_or(file.as_str(), |(stem, _)| stem);
        let boxes = read_voc(&root.join(ANNOTATIONS).join(stem), stem, digest)?;
        let sample = Sample::file(root.join(IMAGES).join(file), label - 1);
        samples.push(if boxes.is_empty() {
            sample
        } else {
            sample.annotated(Annotation::of_boxes(boxes))
        });
    }
    Ok(samples)
}

/// The object boxes of the VOC annotation file `path` (none when there is no such file),
/// adding its name `key` and contents to `digest`.
fn read_voc(path: &Path, key: &str, digest: &mut Sha256) -> Result<Vec<PixelBox>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(Error::io(path, e)),
    };
    digest.update(format!("{key}\t{}\n", text.len()).as_bytes());
    digest.update(text.as_bytes());
    voc_boxes(&text).map_err(|(offset, msg)| {
        // The offset is in bytes; counting newline bytes cannot split a character.
        let line = text.as_bytes()[..offset.min(text.len())]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        line_error(path, line + 1, msg)
    })
}

/// The `<object><bndbox>` boxes of a VOC document, or the byte offset of what is wrong and
/// what it is. Coordinates are ImageNet's: the first and last pixel the object covers, 0-based
/// and inclusive.
fn voc_boxes(text: &str) -> std::result::Result<Vec<PixelBox>, (usize, String)> {
    let mut reader = Reader::from_str(text);
    let mut open: Vec<String> = Vec::new();
    let mut corners = [None; 4];
    let mut boxes = Vec::new();
    loop {
        let at = reader.buffer_position() as usize;
        let event = reader.read_event().map_err(|e| {
            (
                reader.error_position() as usize,
                format!("malformed XML: {e}"),
            )
        })?;
        let in_object = open.last().is_some_and(|t| t == "object");
        match event {
            Event::Start(tag) => {
                let name = tag.name().as_ref().to_owned();
                if in_object && name == "bndbox" {
                    corners = [None; 4];
                }
                open.push(name);
            }
            Event::End(_) => {
                let closed = open.pop();
                if open.last().is_some_and(|t| t == "object") && closed.as_deref() == Some("bndbox")
                {
                    boxes.push(bndbox(corners).map_err(|msg| (at, msg))?);
                }
            }
            Event::Text(t) => {
                if let [.., object, bndbox, coord] = &open[..] {
                    let k = CORNERS.iter().position(|c| c == coord);
                    if let (Some(k), "object", "bndbox") = (k, object.as_str(), bndbox.as_str()) {
                        let value = t.trim();
                        let parsed = value.parse().map_err(|_| {
                            (at, format!("<{coord}> holds `{value}`, not a number"))
                        })?;
                        corners[k] = Some(parsed);
                    }
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    match open.last() {
        Some(inside) => Err((text.len(), format!("the file ends inside <{inside}>"))),
        None => Ok(boxes),
    }
}

/// The box of a `<bndbox>` whose coordinates were read into `corners`.
fn bndbox(corners: [Option<f64>; 4]) -> std::result::Result<PixelBox, String> {
    let mut values = [0.0; 4];
    for ((value, corner), name) in values.iter_mut().zip(corners).zip(CORNERS) {
        *value = corner.ok_or_else(|| format!("a <bndbox> has no <{name}>"))?;
    }
    inclusive_box(values, 0.0).ok_or_else(|| format!("the box {values:?} ends before it starts"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::mat::write;
    use crate::dataset::testing::{boxes, error_of, open};
    use matrw::MatVariable;

    const CHIHUAHUA: &str = "n02085620-Chihuahua";
    const MALTESE: &str = "n02085936-Maltese_dog";

    fn voc(boxes: &[[u32; 4]]) -> String {
        let objects: String = boxes
            .iter()
            .map(|[x0, y0, x1, y1]| {
                format!(
                    "\t<object>\n\t\t<name>dog</name>\n\t\t<bndbox>\n\
                     \t\t\t<xmin>{x0}</xmin>\n\t\t\t<ymin>{y0}</ymin>\n\
                     \t\t\t<xmax>{x1}</xmax>\n\t\t\t<ymax>{y1}</ymax>\n\
                     \t\t</bndbox>\n\t</object>\n"
                )
            })
            .collect();
        let size = "<size><width>8</width><height>6</height></size>";
        format!("<annotation>\n\t{size}\n{objects}</annotation>\n")
    }

    /// Writes image `rel` (under `Images/`) and, when given, its annotation.
    fn image(root: &Path, rel: &str, boxes: Option<&[[u32; 4]]>) {
        let path = root.join(IMAGES).join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        image::RgbImage::new(8, 6).save(&path).unwrap();
        if let Some(boxes) = boxes {
            let anno = root.join(ANNOTATIONS).join(rel.trim_end_matches(".jpg"));
            std::fs::create_dir_all(anno.parent().unwrap()).unwrap();
            std::fs::write(anno, voc(boxes)).unwrap();
        }
    }

    fn list(path: &Path, files: &[String], labels: Vec<f64>) {
        let annos: Vec<&str> = files.iter().map(|f| f.trim_end_matches(".jpg")).collect();
        let vars = vec![
            ("file_list", write::strings(files)),
            ("annotation_list", write::strings(&annos)),
            ("labels", MatVariable::from(labels)),
        ];
        write::save(path, vars, true).unwrap();
    }

    /// Two breeds, three training and two test images; one training image has two dogs and
    /// one has no annotation file.
    fn dataset(root: &Path) {
        let train = [
            format!("{MALTESE}/n02085936_1.jpg"),
            format!("{CHIHUAHUA}/n02085620_7.jpg"),
            format!("{CHIHUAHUA}/n02085620_9.jpg"),
        ];
        let test = [
            format!("{CHIHUAHUA}/n02085620_3.jpg"),
            format!("{MALTESE}/n02085936_2.jpg"),
        ];
        image(root, &train[0], Some(&[[0, 0, 7, 5], [2, 1, 3, 4]]));
        image(root, &train[1], Some(&[[1, 1, 6, 4]]));
        image(root, &train[2], None);
        image(root, &test[0], Some(&[[0, 0, 0, 0]]));
        image(root, &test[1], Some(&[[4, 2, 7, 5]]));
        std::fs::create_dir_all(root.join("lists")).unwrap();
        list(
            &root.join("lists/train_list.mat"),
            &train,
            vec![2.0, 1.0, 1.0],
        );
        list(&root.join("lists/test_list.mat"), &test, vec![1.0, 2.0]);
    }

    #[test]
    fn reads_the_official_layout() {
        let dir = tempfile::tempdir().unwrap();
        dataset(dir.path());
        let ds = open(dir.path()).unwrap();
        assert_eq!(ds.layout, Layout::Dogs);
        assert_eq!(ds.classes, [CHIHUAHUA, MALTESE]);
        let (train, test) = (ds.split("train").unwrap(), ds.split("test").unwrap());
        assert_eq!(
            train.samples.iter().map(|s| s.label).collect::<Vec<_>>(),
            [1, 0, 0]
        );
        assert_eq!(
            test.samples.iter().map(|s| s.label).collect::<Vec<_>>(),
            [0, 1]
        );
        assert_eq!(
            ds.key(&train.samples[0]),
            format!("{MALTESE}/n02085936_1.jpg")
        );
        // 0-based inclusive corners become end-exclusive boxes; every object is kept.
        assert_eq!(boxes(&train.samples[0]), [[0, 0, 8, 6], [2, 1, 4, 5]]);
        assert!(train.samples[2].annotation.is_none());
        assert_eq!(boxes(&test.samples[0]), [[0, 0, 1, 1]]);
        assert_eq!(train.source_hashes.len(), 3);
        assert!(train.samples[1].load().is_ok());
        // The annotation files are part of the fingerprint.
        let before = ds.fingerprint();
        let anno = dir
            .path()
            .join(ANNOTATIONS)
            .join(CHIHUAHUA)
            .join("n02085620_7");
        std::fs::write(&anno, voc(&[[1, 1, 5, 4]])).unwrap();
        assert_ne!(open(dir.path()).unwrap().fingerprint(), before);
    }

    #[test]
    fn labels_must_follow_the_sorted_breed_folders() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        dataset(root);
        let test = [
            format!("{CHIHUAHUA}/n02085620_3.jpg"),
            format!("{MALTESE}/n02085936_2.jpg"),
        ];
        list(&root.join("lists/test_list.mat"), &test, vec![2.0, 1.0]);
        let e = error_of(root);
        assert!(
            e.contains("test_list.mat") && e.contains("labels(1)") && e.contains("sorted"),
            "{e}"
        );
        list(&root.join("lists/test_list.mat"), &test, vec![1.0, 3.0]);
        assert!(error_of(root).contains("labels(2): 3 is not a label 1 to 2"));
        list(&root.join("lists/test_list.mat"), &test, vec![1.0]);
        assert!(error_of(root).contains("`file_list` has 2 entries but `labels` 1"));
    }

    #[test]
    fn malformed_annotations_are_errors_that_name_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        dataset(root);
        let anno = root.join(ANNOTATIONS).join(CHIHUAHUA).join("n02085620_7");
        let good = voc(&[[1, 1, 6, 4]]);
        std::fs::write(&anno, good.replace("<ymax>4", "<ymax>four")).unwrap();
        let e = error_of(root);
        assert!(
            e.contains("n02085620_7: line 9: <ymax> holds `four`"),
            "{e}"
        );
        std::fs::write(&anno, good.replace("<xmax>6</xmax>", "")).unwrap();
        assert!(error_of(root).contains("n02085620_7: line 10: a <bndbox> has no <xmax>"));
        std::fs::write(&anno, good.replace("</ymin>", "</xmin>")).unwrap();
        assert!(error_of(root).contains("n02085620_7: line 7: malformed XML"));
        std::fs::write(&anno, &good[..good.len() / 2]).unwrap();
        assert!(error_of(root).contains("n02085620_7: line 6: the file ends inside <bndbox>"));
        std::fs::write(&anno, good.replace("<xmax>6", "<xmax>0")).unwrap();
        assert!(error_of(root).contains("ends before it starts"));
        // A truncated list.
        dataset(root);
        let list = root.join("lists/train_list.mat");
        let bytes = std::fs::read(&list).unwrap();
        std::fs::write(&list, &bytes[..bytes.len() / 2]).unwrap();
        assert!(error_of(root).contains("train_list.mat"));
    }
}
