//! The parts benchmark written in CUB-200-2011's layout, so the CUB reader, part purity and
//! `bench paper` run offline on data whose parts are known: each generated part becomes a CUB
//! part location at its box's centre, the object box surrounds the parts that make the class,
//! and the split and labels follow the generated folders.

use super::parts::{PartsTruth, DISTRACTOR, PARTS};
use crate::error::{Error, Result};
use crate::fsutil::write_atomic;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

/// Writes the parts dataset at `parts_root` (with its ground truth `truth`) into `out` in CUB's
/// layout: `images.txt`, `image_class_labels.txt`, `train_test_split.txt`, `classes.txt`,
/// `bounding_boxes.txt`, `parts/parts.txt`, `parts/part_locs.txt` and `images/`.
pub fn write_cub(parts_root: &Path, truth: &PartsTruth, out: &Path) -> Result<()> {
    let classes: Vec<&String> = truth.classes.keys().collect();
    let part_names: Vec<&str> = PARTS.iter().copied().chain([DISTRACTOR]).collect();
    let mut files: BTreeMap<&str, String> = BTreeMap::new();
    for (c, name) in classes.iter().enumerate() {
        writeln!(
            files.entry("classes.txt").or_default(),
            "{} {:03}.{name}",
            c + 1,
            c + 1
        )
        .ok();
    }
    for (p, name) in part_names.iter().enumerate() {
        writeln!(
            files.entry("parts/parts.txt").or_default(),
            "{} {name}",
            p + 1
        )
        .ok();
    }
    for (i, (rel, image)) in truth.images.iter().enumerate() {
        let id = i + 1;
        let c = classes
            .iter()
            .position(|&n| *n == image.class)
            .ok_or_else(|| {
                Error::input(
                    parts_root.join(rel),
                    format!("class {} is not in the ground truth", image.class),
                )
            })?;
        let file = Path::new(rel)
            .file_name()
            .unwrap_or_default()
            .to_string_lossy();
        let name = format!(
            "{:03}.{}/{}_{}",
            c + 1,
            image.class,
            rel.split('/').next().unwrap_or(""),
            file
        );
        let dest = out.join("images").join(&name);
        let bytes =
            std::fs::read(parts_root.join(rel)).map_err(|e| Error::io(parts_root.join(rel), e))?;
        write_atomic(&dest, &bytes)?;
        writeln!(files.entry("images.txt").or_default(), "{id} {name}").ok();
        writeln!(
            files.entry("image_class_labels.txt").or_default(),
            "{id} {}",
            c + 1
        )
        .ok();
        let train = u8::from(rel.starts_with("train/"));
        writeln!(
            files.entry("train_test_split.txt").or_default(),
            "{id} {train}"
        )
        .ok();
        let object: Vec<_> = image
            .parts
            .iter()
            .filter(|p| p.part != DISTRACTOR)
            .collect();
        let [x0, y0] = [0, 1].map(|k| object.iter().map(|p| p.bbox[k]).min().unwrap_or(0));
        let [x1, y1] = [2, 3].map(|k| object.iter().map(|p| p.bbox[k]).max().unwrap_or(0));
        writeln!(
            files.entry("bounding_boxes.txt").or_default(),
            "{id} {x0}.0 {y0}.0 {}.0 {}.0",
            x1 - x0,
            y1 - y0
        )
        .ok();
        let locs = files.entry("parts/part_locs.txt").or_default();
        for (p, part) in part_names.iter().enumerate() {
            match image.parts.iter().find(|placed| placed.part == *part) {
                Some(placed) => {
                    let b = placed.bbox;
                    let (x, y) = (f64::from(b[0] + b[2]) / 2.0, f64::from(b[1] + b[3]) / 2.0);
                    writeln!(locs, "{id} {} {x:.1} {y:.1} 1", p + 1).ok();
                }
                None => writeln!(locs, "{id} {} 0.0 0.0 0", p + 1).unwrap_or(()),
            }
        }
    }
    for (file, text) in files {
        write_atomic(out.join(file), text.as_bytes())?;
    }
    Ok(())
}
