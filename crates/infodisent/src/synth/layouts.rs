//! The parts benchmark written in the official layouts of CUB-200-2011, Stanford Cars, Stanford
//! Dogs and ImageNet, so every reader, part purity and `bench paper` run offline on data whose
//! answers are known: each image's class and split (the generated `train/` and `test/`; ImageNet
//! calls the test split `val`), its object box (around the parts that make its class, the
//! distractor left out), and for CUB each part's location at its box's centre. CUB keeps the
//! generated PNG files byte for byte, so its features equal the parts benchmark's; the others are
//! JPEG files, as the real sets are, in each layout's own box convention.

use super::parts::{PartsImage, PartsTruth, DISTRACTOR, PARTS};
use crate::dataset::mat::write as mat;
use crate::error::{Error, Result};
use crate::fsutil::write_atomic;
use crate::geometry::PixelBox;
use crate::layout::Layout;
use matrw::{matvar, MatVariable};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// One generated image as every layout sees it.
struct Entry<'a> {
    /// 1-based position in the ground truth's order.
    id: usize,
    /// Where the generated file is.
    source: PathBuf,
    /// 0-based class index (the ground truth's sorted class names).
    class: usize,
    train: bool,
    truth: &'a PartsImage,
    /// End-exclusive box around the parts that make the class.
    object: PixelBox,
    /// Side of the (square) image in pixels.
    size: u32,
}

/// The generated images of `truth` (under `parts_root`), in its order.
fn entries<'a>(parts_root: &Path, truth: &'a PartsTruth) -> Result<Vec<Entry<'a>>> {
    let classes: Vec<&String> = truth.classes.keys().collect();
    truth
        .images
        .iter()
        .enumerate()
        .map(|(i, (rel, image))| {
            let source = parts_root.join(rel);
            let class = classes
                .iter()
                .position(|&n| *n == image.class)
                .ok_or_else(|| {
                    Error::input(
                        &source,
                        format!("class {} is not in the ground truth", image.class),
                    )
                })?;
            Ok(Entry {
                id: i + 1,
                source,
                class,
                train: rel.starts_with("train/"),
                truth: image,
                object: image.object_box(),
                size: truth.config.size,
            })
        })
        .collect()
}

/// Writes the parts dataset at `parts_root` (ground truth `truth`) into `out` in `layout`
/// (one of the four official ones).
pub fn write_layout(
    layout: Layout,
    parts_root: &Path,
    truth: &PartsTruth,
    out: &Path,
) -> Result<()> {
    let entries = entries(parts_root, truth)?;
    let classes: Vec<&str> = truth.classes.keys().map(String::as_str).collect();
    match layout {
        Layout::Cub => write_cub(&entries, &classes, out),
        Layout::Cars => write_cars(&entries, &classes, out),
        Layout::Dogs => write_dogs(&entries, &classes, out),
        Layout::Imagenet => write_imagenet(&entries, &classes, out),
        Layout::ImageFolder | Layout::Idx => Err(Error::Config(format!(
            "the parts benchmark is already an image folder; `{}` is not an official layout",
            layout.name()
        ))),
    }
}

/// Re-encodes a generated image as a JPEG file at `dest`.
fn save_jpeg(source: &Path, dest: &Path) -> Result<()> {
    let img = crate::imageio::load_rgb(source)?;
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 95)
        .encode_image(&img)
        .map_err(|e| Error::input(dest, e.to_string()))?;
    write_atomic(dest, &bytes)
}

/// CUB's text files: `images.txt`, `image_class_labels.txt`, `train_test_split.txt`,
/// `classes.txt`, `bounding_boxes.txt`, `parts/parts.txt`, `parts/part_locs.txt`.
fn write_cub(entries: &[Entry], classes: &[&str], out: &Path) -> Result<()> {
    let part_names: Vec<&str> = PARTS.iter().copied().chain([DISTRACTOR]).collect();
    let mut files: BTreeMap<&str, String> = BTreeMap::new();
    let mut line = |file, text: String| {
        let _ = writeln!(files.entry(file).or_default(), "{text}");
    };
    for (c, name) in classes.iter().enumerate() {
        line("classes.txt", format!("{} {:03}.{name}", c + 1, c + 1));
    }
    for (p, name) in part_names.iter().enumerate() {
        line("parts/parts.txt", format!("{} {name}", p + 1));
    }
    for e in entries {
        let (id, c) = (e.id, e.class + 1);
        let name = format!("{c:03}.{}/{id:05}.png", classes[e.class]);
        let bytes = std::fs::read(&e.source).map_err(|err| Error::io(&e.source, err))?;
        write_atomic(out.join("images").join(&name), &bytes)?;
        line("images.txt", format!("{id} {name}"));
        line("image_class_labels.txt", format!("{id} {c}"));
        line(
            "train_test_split.txt",
            format!("{id} {}", u8::from(e.train)),
        );
        let [x0, y0, x1, y1] = e.object;
        let (w, h) = (x1 - x0, y1 - y0);
        line(
            "bounding_boxes.txt",
            format!("{id} {x0}.0 {y0}.0 {w}.0 {h}.0"),
        );
        for (p, part) in part_names.iter().enumerate() {
            let placed = e.truth.parts.iter().find(|placed| placed.part == *part);
            line(
                "parts/part_locs.txt",
                match placed {
                    Some(placed) => {
                        let b = placed.bbox;
                        let (x, y) = (f64::from(b[0] + b[2]) / 2.0, f64::from(b[1] + b[3]) / 2.0);
                        format!("{id} {} {x:.1} {y:.1} 1", p + 1)
                    }
                    None => format!("{id} {} 0.0 0.0 0", p + 1),
                },
            );
        }
    }
    for (file, text) in files {
        write_atomic(out.join(file), text.as_bytes())?;
    }
    Ok(())
}

/// Stanford Cars' devkit: `cars_train/`, `cars_test/`, `devkit/cars_meta.mat`,
/// `devkit/cars_train_annos.mat` and `cars_test_annos_withlabels.mat`, boxes 1-based inclusive.
fn write_cars(entries: &[Entry], classes: &[&str], out: &Path) -> Result<()> {
    let mut annos: [Vec<MatVariable>; 2] = Default::default();
    for e in entries {
        let (folder, split) = if e.train {
            ("cars_train", 0)
        } else {
            ("cars_test", 1)
        };
        let fname = format!("{:05}.jpg", e.id);
        save_jpeg(&e.source, &out.join(folder).join(&fname))?;
        let [x0, y0, x1, y1] = e.object.map(f64::from);
        let class = (e.class + 1) as f64;
        annos[split].push(matvar!({
            bbox_x1: x0 + 1.0, bbox_y1: y0 + 1.0, bbox_x2: x1, bbox_y2: y1,
            class: class, fname: fname.as_str()
        }));
    }
    let [train, test] = annos;
    mat::save(
        &out.join("devkit/cars_meta.mat"),
        vec![("class_names", mat::strings(classes))],
        true,
    )?;
    mat::save(
        &out.join("devkit/cars_train_annos.mat"),
        vec![("annotations", mat::structs(train))],
        true,
    )?;
    mat::save(
        &out.join("cars_test_annos_withlabels.mat"),
        vec![("annotations", mat::structs(test))],
        true,
    )
}

/// A made-up WordNet id for class `c`, in the classes' sorted order.
fn wnid(c: usize) -> String {
    format!("n{:08}", 90_000_000 + c)
}

/// Stanford Dogs: `Images/<wnid>-<breed>/`, one VOC file per image under `Annotation/` (boxes
/// 0-based inclusive), the split in `lists/train_list.mat` and `lists/test_list.mat`.
fn write_dogs(entries: &[Entry], classes: &[&str], out: &Path) -> Result<()> {
    let mut lists: [(Vec<String>, Vec<f64>); 2] = Default::default();
    for e in entries {
        let stem = format!(
            "{}-{}/{}_{}",
            wnid(e.class),
            classes[e.class],
            wnid(e.class),
            e.id
        );
        save_jpeg(&e.source, &out.join("Images").join(format!("{stem}.jpg")))?;
        let [x0, y0, x1, y1] = e.object;
        let size = e.size;
        let voc = format!(
            "<annotation>\n\t<size><width>{size}</width><height>{size}</height></size>\n\t<object>\n\
             \t\t<name>{}</name>\n\t\t<bndbox>\n\t\t\t<xmin>{x0}</xmin>\n\t\t\t<ymin>{y0}</ymin>\n\
             \t\t\t<xmax>{}</xmax>\n\t\t\t<ymax>{}</ymax>\n\t\t</bndbox>\n\t</object>\n</annotation>\n",
            classes[e.class],
            x1 - 1,
            y1 - 1
        );
        write_atomic(out.join("Annotation").join(&stem), voc.as_bytes())?;
        let list = &mut lists[usize::from(!e.train)];
        list.0.push(format!("{stem}.jpg"));
        list.1.push((e.class + 1) as f64);
    }
    for ((files, labels), name) in lists.into_iter().zip(["train", "test"]) {
        let stems: Vec<&str> = files.iter().map(|f| f.trim_end_matches(".jpg")).collect();
        let vars = vec![
            ("file_list", mat::strings(&files)),
            ("annotation_list", mat::strings(&stems)),
            ("labels", MatVariable::from(labels)),
        ];
        mat::save(&out.join(format!("lists/{name}_list.mat")), vars, true)?;
    }
    Ok(())
}

/// ImageNet as Kaggle packages it: `ILSVRC/Data/CLS-LOC/train/<wnid>/`, a flat `val/`,
/// `LOC_val_solution.csv`, `LOC_train_solution.csv` (boxes 0-based inclusive) and
/// `LOC_synset_mapping.txt`.
fn write_imagenet(entries: &[Entry], classes: &[&str], out: &Path) -> Result<()> {
    let data = out.join("ILSVRC/Data/CLS-LOC");
    let mut solutions = [
        String::from("ImageId,PredictionString\n"),
        String::from("ImageId,PredictionString\n"),
    ];
    for e in entries {
        let w = wnid(e.class);
        let (image, path) = if e.train {
            let image = format!("{w}_{}", e.id);
            let path = data.join("train").join(&w).join(format!("{image}.JPEG"));
            (image, path)
        } else {
            let image = format!("ILSVRC2012_val_{:08}", e.id);
            let path = data.join("val").join(format!("{image}.JPEG"));
            (image, path)
        };
        save_jpeg(&e.source, &path)?;
        let [x0, y0, x1, y1] = e.object;
        let row = format!("{image},{w} {x0} {y0} {} {} \n", x1 - 1, y1 - 1);
        solutions[usize::from(!e.train)].push_str(&row);
    }
    let synsets: String = (0..classes.len())
        .map(|c| format!("{} {}\n", wnid(c), classes[c]))
        .collect();
    write_atomic(out.join("LOC_synset_mapping.txt"), synsets.as_bytes())?;
    write_atomic(out.join("LOC_train_solution.csv"), solutions[0].as_bytes())?;
    write_atomic(out.join("LOC_val_solution.csv"), solutions[1].as_bytes())
}
