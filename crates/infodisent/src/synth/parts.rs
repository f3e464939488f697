//! The parts benchmark's data (in the spirit of FunnyBirds and PIP-Net's purity): 224-px
//! images whose class is decided by *which* parts of a fixed vocabulary appear, each part at a
//! random place, over crops of real photos, with a distractor part that every class shares.
//! With all six classes every part belongs to two classes (with fewer, some do), so no single
//! part decides: a head has to learn one detector per part and combine them, which is what prototypical parts claim to be. Every
//! part's box is recorded in `parts.json`, so a prototype or an explanation can be checked.

use super::{draw_ring, draw_shape, try_place, PixelBox, SHAPES};
use crate::error::{Error, Result};
use crate::fsutil::{write_atomic, write_json_atomic};
use image::{Rgb, RgbImage};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The part vocabulary: the four shapes of [`SHAPES`], then two textures.
pub const PARTS: [&str; 6] = ["disk", "square", "triangle", "cross", "stripes", "checker"];

/// The distractor part drawn in every image, whatever its class.
pub const DISTRACTOR: &str = "ring";

/// The two parts that make each class, indices into [`PARTS`]; every part serves two classes.
const CLASS_PARTS: [[usize; 2]; 6] = [[0, 1], [2, 3], [4, 5], [0, 3], [1, 4], [2, 5]];

/// The file that holds the ground truth, at the dataset's root.
pub const TRUTH_FILE: &str = "parts.json";

/// Version of the drawing code: a dataset drawn by another version is refused, not reused.
const GENERATOR_VERSION: u32 = 2;

/// What to generate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartsConfig {
    /// Number of classes (2 to 6).
    pub classes: usize,
    /// Training images per class.
    pub train_per_class: usize,
    /// Test images per class.
    pub test_per_class: usize,
    /// Image side in pixels.
    pub size: u32,
    /// Side of each part's box in pixels.
    pub part_size: u32,
    /// Random seed.
    pub seed: u64,
}

impl Default for PartsConfig {
    fn default() -> Self {
        // Measured: with 56-pixel parts, 6 classes and 40 training images each, even the
        // linear probe reached only 59 % (the photos dominate Lite0's features); these sizes
        // give 85 %.
        PartsConfig {
            classes: 4,
            train_per_class: 100,
            test_per_class: 25,
            size: 224,
            part_size: 72,
            seed: 0,
        }
    }
}

/// One part drawn in an image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlacedPart {
    /// Its name in [`PARTS`], or [`DISTRACTOR`].
    pub part: String,
    /// Its box in image pixels.
    pub bbox: PixelBox,
}

/// The ground truth of one image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartsImage {
    /// Class name (its folder: the parts joined by `+`).
    pub class: String,
    /// Every part drawn, distractor included.
    pub parts: Vec<PlacedPart>,
}

/// The ground truth of a generated dataset; saved as [`TRUTH_FILE`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartsTruth {
    /// Version of the code that drew it.
    pub generator: u32,
    /// How it was generated.
    pub config: PartsConfig,
    /// File names of the background photos.
    pub backgrounds: Vec<String>,
    /// The parts that make each class, by class name (class indices are the dataset's, which
    /// sorts the folder names).
    pub classes: BTreeMap<String, Vec<String>>,
    /// Every image, keyed by its path relative to the dataset root (`test/disk+square/0003.png`).
    pub images: BTreeMap<String, PartsImage>,
}

impl PartsTruth {
    /// Reads the ground truth of the dataset at `root`.
    pub fn load(root: impl AsRef<Path>) -> Result<Self> {
        crate::fsutil::read_json(root.as_ref().join(TRUTH_FILE))
    }

    /// The ground truth of the dataset at `root`, or `None` when it is not a parts dataset.
    pub fn find(root: &Path) -> Result<Option<Self>> {
        if root.join(TRUTH_FILE).is_file() {
            Self::load(root).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Whether `part` is one of the parts that make class `class`.
    pub fn defines(&self, class: &str, part: &str) -> bool {
        self.classes
            .get(class)
            .is_some_and(|parts| parts.iter().any(|p| p == part))
    }
}

impl PartsImage {
    /// The box around the parts that make the class (the distractor left out): the object a
    /// dataset's bounding box would mark.
    pub fn object_box(&self) -> PixelBox {
        let object = || self.parts.iter().filter(|p| p.part != DISTRACTOR);
        let low = |k: usize| object().map(|p| p.bbox[k]).min().unwrap_or(0);
        let high = |k: usize| object().map(|p| p.bbox[k]).max().unwrap_or(0);
        [low(0), low(1), high(2), high(3)]
    }

    /// The part that covers most of box `b` (image pixels), or `None` when `b` touches none.
    pub fn part_at(&self, b: &PixelBox) -> Option<&str> {
        crate::geometry::covering_most(b, self.parts.iter().map(|p| (p.part.as_str(), p.bbox)))
    }
}

/// The photos the benchmark draws its backgrounds from: every photo in the fetched assets'
/// `imagenet`, `scenes` and `skimage` folders.
pub fn asset_backgrounds() -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for folder in ["photos/imagenet", "photos/scenes", "photos/skimage"] {
        let dir = crate::assets::asset(folder)?;
        for entry in std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
            let path = entry.map_err(|e| Error::io(&dir, e))?.path();
            if path.is_file() {
                found.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Name of class `label`: its parts joined by `+`.
fn class_name(label: usize) -> String {
    CLASS_PARTS[label].map(|p| PARTS[p]).join("+")
}

/// Draws part `index` of [`PARTS`] filling box `b`.
fn draw_part(img: &mut RgbImage, index: usize, b: PixelBox) {
    // One colour per shape, so a channel can tell the parts apart by colour as well as form.
    const SHAPE_INKS: [[u8; 3]; 4] = [[30, 30, 140], [230, 120, 0], [0, 140, 60], [190, 20, 20]];
    if index < SHAPES.len() {
        draw_shape(img, index, b, Rgb(SHAPE_INKS[index]));
        return;
    }
    let s = b[2] - b[0];
    let cell = (s / 7).max(1);
    for y in b[1]..b[3] {
        for x in b[0]..b[2] {
            let (u, v) = ((x - b[0]) / cell, (y - b[1]) / cell);
            let dark = if PARTS[index] == "stripes" {
                v % 2 == 0
            } else {
                (u + v) % 2 == 0
            };
            let color = match (PARTS[index], dark) {
                ("stripes", true) => [20, 20, 20],
                ("stripes", false) => [240, 220, 0],
                (_, true) => [10, 10, 10],
                (_, false) => [250, 250, 250],
            };
            img.put_pixel(x, y, Rgb(color));
        }
    }
}

/// A square crop of a random photo at a random place and scale, resized to `size`.
fn background(rng: &mut StdRng, photos: &[RgbImage], size: u32) -> Result<RgbImage> {
    let photo = &photos[rng.random_range(0..photos.len())];
    let short = photo.width().min(photo.height()) as f64;
    let side = short * rng.random_range(0.5..=1.0);
    let left = rng.random_range(0.0..=photo.width() as f64 - side);
    let top = rng.random_range(0.0..=photo.height() as f64 - side);
    crate::imageio::resize_rgb(photo, size, size, Some((left, top, side, side)))
}

/// Renders one image of class `label` from its own seed, so images can be drawn in parallel.
fn render(
    cfg: &PartsConfig,
    photos: &[RgbImage],
    label: usize,
    seed: u64,
) -> Result<(RgbImage, PartsImage)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut img = background(&mut rng, photos, cfg.size)?;
    // Large parts can be placed so that the last one finds no room: lay out all three again.
    let boxes = loop {
        let mut taken: Vec<PixelBox> = Vec::with_capacity(3);
        for _ in 0..3 {
            match try_place(&mut rng, cfg.size, cfg.part_size, &taken, 100) {
                Some(b) => taken.push(b),
                None => break,
            }
        }
        if taken.len() == 3 {
            break taken;
        }
    };
    let mut parts = Vec::with_capacity(3);
    for (&p, &b) in CLASS_PARTS[label].iter().zip(&boxes) {
        draw_part(&mut img, p, b);
        parts.push(PlacedPart {
            part: PARTS[p].to_owned(),
            bbox: b,
        });
    }
    draw_ring(&mut img, boxes[2], [140, 40, 170]);
    parts.push(PlacedPart {
        part: DISTRACTOR.to_owned(),
        bbox: boxes[2],
    });
    Ok((
        img,
        PartsImage {
            class: class_name(label),
            parts,
        },
    ))
}

/// Writes `train/` and `test/` ImageFolder splits (one folder per class, named by its parts)
/// and [`TRUTH_FILE`] under `dir`, backgrounds cropped from `backgrounds`. Deterministic for a
/// config and photo list. A finished dataset with the same settings is reused; one with other
/// settings is refused. The truth file is written last, so a killed run starts over.
pub fn generate(
    dir: impl AsRef<Path>,
    cfg: &PartsConfig,
    backgrounds: &[PathBuf],
) -> Result<PartsTruth> {
    let dir = dir.as_ref();
    if !(2..=CLASS_PARTS.len()).contains(&cfg.classes) {
        return Err(Error::Config(format!(
            "the parts benchmark has 2..={} classes, got {}",
            CLASS_PARTS.len(),
            cfg.classes
        )));
    }
    if cfg.part_size * 3 > cfg.size || cfg.part_size < 8 {
        return Err(Error::Config(format!(
            "parts of {} pixels do not fit three apart in {}-pixel images",
            cfg.part_size, cfg.size
        )));
    }
    if backgrounds.is_empty() {
        return Err(Error::Config(
            "the parts benchmark needs background photos".into(),
        ));
    }
    let names: Vec<String> = backgrounds
        .iter()
        .map(|p| {
            p.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    if let Some(existing) = PartsTruth::find(dir)? {
        if existing.generator == GENERATOR_VERSION
            && existing.config == *cfg
            && existing.backgrounds == names
        {
            return Ok(existing);
        }
        return Err(Error::Config(format!(
            "{} holds a parts dataset generated with other settings or by another version; choose another folder",
            dir.display()
        )));
    }
    let photos = backgrounds
        .par_iter()
        .map(crate::imageio::load_rgb)
        .collect::<Result<Vec<_>>>()?;
    let mut jobs = Vec::new();
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    for (split, per_class) in [("train", cfg.train_per_class), ("test", cfg.test_per_class)] {
        for label in 0..cfg.classes {
            for i in 0..per_class {
                let rel = format!("{split}/{}/{i:04}.png", class_name(label));
                jobs.push((rel, label, rng.random::<u64>()));
            }
        }
    }
    let images = jobs
        .into_par_iter()
        .map(|(rel, label, seed)| {
            let (img, truth) = render(cfg, &photos, label, seed)?;
            let mut png = Vec::new();
            img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
                .map_err(|e| Error::input(dir.join(&rel), e.to_string()))?;
            write_atomic(dir.join(&rel), &png)?;
            Ok((rel, truth))
        })
        .collect::<Result<BTreeMap<_, _>>>()?;
    let truth = PartsTruth {
        generator: GENERATOR_VERSION,
        config: cfg.clone(),
        backgrounds: names,
        classes: (0..cfg.classes)
            .map(|c| {
                let parts = CLASS_PARTS[c].iter().map(|&p| PARTS[p].to_owned());
                (class_name(c), parts.collect())
            })
            .collect(),
        images,
    };
    write_json_atomic(dir.join(TRUTH_FILE), &truth)?;
    Ok(truth)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn photo(dir: &Path, name: &str, rgb: [u8; 3]) -> PathBuf {
        let path = dir.join(name);
        RgbImage::from_pixel(300, 200, Rgb(rgb))
            .save(&path)
            .unwrap();
        path
    }

    #[test]
    fn every_class_shows_its_two_parts_and_the_ring_apart() {
        let dir = tempfile::tempdir().unwrap();
        let backgrounds = vec![
            photo(dir.path(), "a.png", [120, 160, 200]),
            photo(dir.path(), "b.png", [90, 90, 60]),
        ];
        let cfg = PartsConfig {
            classes: 6,
            train_per_class: 2,
            test_per_class: 1,
            ..Default::default()
        };
        let data = dir.path().join("parts");
        let truth = generate(&data, &cfg, &backgrounds).unwrap();
        assert_eq!(truth.images.len(), 6 * 3);
        for (rel, img) in &truth.images {
            let names: Vec<&str> = img.parts.iter().map(|p| p.part.as_str()).collect();
            assert_eq!(names.len(), 3, "{rel}");
            assert_eq!(names[2], DISTRACTOR);
            assert!(truth.defines(&img.class, names[0]) && truth.defines(&img.class, names[1]));
            assert!(!truth.defines(&img.class, DISTRACTOR));
            assert!(rel.contains(&format!("/{}+{}/", names[0], names[1])));
            let pixels = image::open(data.join(rel)).unwrap().to_rgb8();
            for p in &img.parts {
                let c = [(p.bbox[0] + p.bbox[2]) / 2, (p.bbox[1] + p.bbox[3]) / 2];
                assert_eq!(
                    img.part_at(&[c[0], c[1], c[0] + 1, c[1] + 1]),
                    Some(p.part.as_str())
                );
                // The part is drawn: its box is no longer the flat background.
                let inside = (p.bbox[1]..p.bbox[3])
                    .flat_map(|y| (p.bbox[0]..p.bbox[2]).map(move |x| (x, y)))
                    .filter(|&(x, y)| {
                        let v = pixels.get_pixel(x, y).0;
                        v != [120, 160, 200] && v != [90, 90, 60]
                    })
                    .count();
                assert!(inside > 600, "{rel}: {} barely drawn ({inside} px)", p.part);
            }
        }
        // Every part serves two classes, so no part alone decides.
        for part in PARTS {
            let serving = truth
                .classes
                .keys()
                .filter(|c| truth.defines(c, part))
                .count();
            assert_eq!(serving, 2, "{part}");
        }
        // Class indices are the dataset's (sorted folder names), not the generator's order.
        let dataset = crate::dataset::Dataset::open(data.to_str().unwrap()).unwrap();
        assert_eq!(
            dataset.classes,
            truth.classes.keys().cloned().collect::<Vec<_>>()
        );
        // Reused as is; other settings refused.
        assert_eq!(generate(&data, &cfg, &backgrounds).unwrap(), truth);
        let other = PartsConfig { seed: 1, ..cfg };
        assert!(generate(&data, &other, &backgrounds).is_err());
        assert_eq!(PartsTruth::load(&data).unwrap(), truth);
    }

    #[test]
    fn a_box_belongs_to_the_part_it_overlaps_most() {
        let img = PartsImage {
            class: "disk+square".into(),
            parts: vec![
                PlacedPart {
                    part: "disk".into(),
                    bbox: [0, 0, 50, 50],
                },
                PlacedPart {
                    part: "square".into(),
                    bbox: [60, 0, 110, 50],
                },
            ],
        };
        assert_eq!(img.part_at(&[40, 0, 72, 32]), Some("square"));
        assert_eq!(img.part_at(&[30, 0, 62, 32]), Some("disk"));
        assert_eq!(img.part_at(&[0, 60, 32, 92]), None);
    }
}
