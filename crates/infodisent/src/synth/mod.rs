//! Generated image datasets whose correct explanation is known: each class is decided by one
//! shape drawn at a random place, a distractor shape that every class shares sits elsewhere, and
//! optionally another class's shape is planted as counter-evidence. The boxes are recorded, so a
//! heatmap, a prototype box or a mutual-information map can be checked against the truth.

use crate::error::{Error, Result};
use crate::fsutil::{write_atomic, write_json_atomic};
use crate::geometry::boxes_overlap;
use image::{Rgb, RgbImage};
use imageproc::drawing::{draw_filled_circle_mut, draw_filled_rect_mut, draw_polygon_mut};
use imageproc::point::Point;
use imageproc::rect::Rect;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

pub mod layouts;
pub mod parts;

/// A pixel box `[x0, y0, x1, y1)` in image coordinates.
pub type PixelBox = [u32; 4];

/// The shapes that decide the classes, in class order.
pub const SHAPES: [&str; 4] = ["disk", "square", "triangle", "cross"];

/// What to generate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SynthConfig {
    /// Number of classes (at most `SHAPES.len()`).
    pub classes: usize,
    /// Training images per class.
    pub train_per_class: usize,
    /// Test images per class.
    pub test_per_class: usize,
    /// Image side in pixels.
    pub size: u32,
    /// Side of each shape's bounding box in pixels.
    pub shape_size: u32,
    /// Draw a label-independent distractor (a ring) in every image.
    pub distractor: bool,
    /// Colour each image's ring at random from a palette, independently of the label: the ring
    /// then tells a representation something about the image that the decision does not need
    /// (what the mutual-information maps call redundant). A ring of one colour in every image
    /// carries no information at all.
    #[serde(default)]
    pub distractor_colors: bool,
    /// Paint every background the same grey (230) instead of a level drawn per image
    /// (215–245): a level that varies per image is information about the image in every cell.
    #[serde(default)]
    pub fixed_background: bool,
    /// Fraction of test images that also carry another class's shape as counter-evidence.
    pub counter_fraction: f32,
    /// Random seed.
    pub seed: u64,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            classes: 2,
            train_per_class: 64,
            test_per_class: 16,
            size: 224,
            shape_size: 56,
            distractor: true,
            distractor_colors: false,
            fixed_background: false,
            counter_fraction: 0.0,
            seed: 0,
        }
    }
}

/// Ground truth of one generated image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Annotation {
    /// Class index.
    pub label: usize,
    /// Box of the class-deciding shape.
    pub decisive: PixelBox,
    /// Box of the distractor, when drawn.
    pub distractor: Option<PixelBox>,
    /// Box and class of a planted other-class shape, when drawn.
    pub counter: Option<(usize, PixelBox)>,
}

/// All annotations, keyed by path relative to the dataset root (`test/square/0003.png`).
pub type Annotations = BTreeMap<String, Annotation>;

/// A random box of side `s` inside `size × size` that keeps clear of every box in `taken`.
fn place(rng: &mut StdRng, size: u32, s: u32, taken: &[PixelBox]) -> PixelBox {
    loop {
        if let Some(b) = try_place(rng, size, s, taken, 1000) {
            return b;
        }
    }
}

/// [`place`] within `attempts` draws: `None` when the boxes already placed leave no room.
pub(crate) fn try_place(
    rng: &mut StdRng,
    size: u32,
    s: u32,
    taken: &[PixelBox],
    attempts: usize,
) -> Option<PixelBox> {
    let margin = s / 4;
    let grown = |t: &PixelBox| {
        [
            t[0].saturating_sub(margin),
            t[1].saturating_sub(margin),
            t[2] + margin,
            t[3] + margin,
        ]
    };
    (0..attempts).find_map(|_| {
        let x = rng.random_range(0..=size - s);
        let y = rng.random_range(0..=size - s);
        let b = [x, y, x + s, y + s];
        taken
            .iter()
            .all(|t| !boxes_overlap(&b, &grown(t)))
            .then_some(b)
    })
}

/// Draws shape `kind` filling box `b`.
pub(crate) fn draw_shape(img: &mut RgbImage, kind: usize, b: PixelBox, color: Rgb<u8>) {
    let (x0, y0, s) = (b[0] as i32, b[1] as i32, (b[2] - b[0]) as i32);
    match SHAPES[kind] {
        "disk" => draw_filled_circle_mut(img, (x0 + s / 2, y0 + s / 2), s / 2, color),
        "square" => draw_filled_rect_mut(
            img,
            Rect::at(x0 + s / 8, y0 + s / 8).of_size((s * 3 / 4) as u32, (s * 3 / 4) as u32),
            color,
        ),
        "triangle" => draw_polygon_mut(
            img,
            &[
                Point::new(x0 + s / 2, y0),
                Point::new(x0 + s - 1, y0 + s - 1),
                Point::new(x0, y0 + s - 1),
            ],
            color,
        ),
        _ => {
            let t = (s / 4).max(1) as u32;
            draw_filled_rect_mut(
                img,
                Rect::at(x0, y0 + s / 2 - t as i32 / 2).of_size(s as u32, t),
                color,
            );
            draw_filled_rect_mut(
                img,
                Rect::at(x0 + s / 2 - t as i32 / 2, y0).of_size(t, s as u32),
                color,
            );
        }
    }
}

/// Ring colours: the first is the fixed one, the rest are drawn from with `distractor_colors`.
const RING_COLORS: [[u8; 3]; 6] = [
    [40, 160, 60],
    [200, 40, 40],
    [230, 150, 20],
    [140, 40, 170],
    [20, 150, 170],
    [90, 60, 30],
];

/// Draws the distractor ring filling box `b`.
pub(crate) fn draw_ring(img: &mut RgbImage, b: PixelBox, color: [u8; 3]) {
    let s = (b[2] - b[0]) as i32;
    let c = (b[0] as i32 + s / 2, b[1] as i32 + s / 2);
    draw_filled_circle_mut(img, c, s / 2, Rgb(color));
    draw_filled_circle_mut(img, c, s / 4, Rgb([235, 235, 235]));
}

/// Renders one image; returns it with its annotation.
fn render(
    rng: &mut StdRng,
    cfg: &SynthConfig,
    label: usize,
    with_counter: bool,
) -> (RgbImage, Annotation) {
    let shade = if cfg.fixed_background {
        230
    } else {
        rng.random_range(215..=245u8)
    };
    let mut img = RgbImage::from_pixel(cfg.size, cfg.size, Rgb([shade, shade, shade]));
    for p in img.pixels_mut() {
        let n = rng.random_range(0..12u8);
        p.0 = p.0.map(|v| v.saturating_sub(n));
    }
    let decisive = place(rng, cfg.size, cfg.shape_size, &[]);
    let mut taken = vec![decisive];
    let distractor = cfg.distractor.then(|| {
        let b = place(rng, cfg.size, cfg.shape_size, &taken);
        taken.push(b);
        b
    });
    let counter = with_counter.then(|| {
        let other = (label + rng.random_range(1..cfg.classes)) % cfg.classes;
        (other, place(rng, cfg.size, cfg.shape_size, &taken))
    });
    let ink = Rgb([30, 30, 140]);
    draw_shape(&mut img, label, decisive, ink);
    if let Some(b) = distractor {
        let color = if cfg.distractor_colors {
            RING_COLORS[rng.random_range(0..RING_COLORS.len())]
        } else {
            RING_COLORS[0]
        };
        draw_ring(&mut img, b, color);
    }
    if let Some((other, b)) = counter {
        draw_shape(&mut img, other, b, ink);
    }
    (
        img,
        Annotation {
            label,
            decisive,
            distractor,
            counter,
        },
    )
}

/// Writes `train/` and `test/` ImageFolder splits and `annotations.json` under `dir`.
/// Deterministic for a given config.
pub fn generate(dir: impl AsRef<Path>, cfg: &SynthConfig) -> Result<Annotations> {
    let dir = dir.as_ref();
    if cfg.classes < 2 || cfg.classes > SHAPES.len() {
        return Err(Error::Config(format!(
            "synthetic data needs 2..={} classes, got {}",
            SHAPES.len(),
            cfg.classes
        )));
    }
    if cfg.shape_size * 3 > cfg.size {
        return Err(Error::Config(format!(
            "shape size {} is too large for {}-pixel images",
            cfg.shape_size, cfg.size
        )));
    }
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let mut annotations = Annotations::new();
    for (split, per_class, counter_fraction) in [
        ("train", cfg.train_per_class, 0.0),
        ("test", cfg.test_per_class, cfg.counter_fraction),
    ] {
        for (label, shape) in SHAPES.iter().enumerate().take(cfg.classes) {
            for i in 0..per_class {
                let with_counter = rng.random::<f32>() < counter_fraction;
                let (img, ann) = render(&mut rng, cfg, label, with_counter);
                let rel = format!("{split}/{shape}/{i:04}.png");
                let mut png = Vec::new();
                img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
                    .map_err(|e| Error::input(dir.join(&rel), e.to_string()))?;
                write_atomic(dir.join(&rel), &png)?;
                annotations.insert(rel, ann);
            }
        }
    }
    write_json_atomic(dir.join("annotations.json"), &annotations)?;
    Ok(annotations)
}

/// Reads the `annotations.json` that [`generate`] wrote.
pub fn load_annotations(dir: impl AsRef<Path>) -> Result<Annotations> {
    crate::fsutil::read_json(dir.as_ref().join("annotations.json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_are_drawn_inside_their_boxes_and_apart() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = SynthConfig {
            classes: 3,
            train_per_class: 2,
            test_per_class: 4,
            counter_fraction: 1.0,
            ..Default::default()
        };
        let ann = generate(dir.path(), &cfg).unwrap();
        assert_eq!(ann.len(), 3 * 6);
        for (rel, a) in &ann {
            let img = image::open(dir.path().join(rel)).unwrap().to_rgb8();
            let ink = |b: &PixelBox| {
                (b[1]..b[3])
                    .flat_map(|y| (b[0]..b[2]).map(move |x| (x, y)))
                    .filter(|&(x, y)| img.get_pixel(x, y).0 == [30, 30, 140])
                    .count()
            };
            assert!(ink(&a.decisive) > 200, "{rel}: decisive shape not drawn");
            let d = a.distractor.unwrap();
            assert!(!boxes_overlap(&a.decisive, &d));
            if rel.starts_with("test/") {
                let (other, b) = a.counter.unwrap();
                assert_ne!(other, a.label);
                assert!(ink(&b) > 200 && !boxes_overlap(&b, &a.decisive));
            }
        }
        assert_eq!(load_annotations(dir.path()).unwrap(), ann);
    }
}
