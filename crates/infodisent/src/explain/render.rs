//! PNG figures that read without in-image text (the JSON and the HTML report carry the
//! numbers): heatmap overlays (red = evidence for, blue = evidence against), yellow boxes on
//! the cells that decided, prototype crops and full images, and bars whose length is a
//! contribution's share.

use super::image::ImageExplanation;
use super::prototypes::{Prototype, Prototypes};
use super::{cam, dense, ClassExplanation, Heatmap, ImageGeometry};
use crate::dataset::ImageStore;
use crate::draw::{self, draw_box, save_png, BLUE, RED};
use crate::error::Result;
use crate::preprocess::Preprocess;
use image::{imageops, Rgb, RgbImage};
use imageproc::drawing::draw_filled_rect_mut;
use imageproc::rect::Rect;
use std::path::Path;

const BACKGROUND: [u8; 3] = [255, 255, 255];
const GAP: u32 = 6;
const BAR: u32 = 8;

/// What the network saw: the image resized and cropped to the input size.
pub fn network_view(img: &RgbImage, pre: &Preprocess) -> Result<RgbImage> {
    pre.resize_crop(img)
}

/// `view` with `map` blended in `color`; `scale` is the value drawn at full strength.
pub fn overlay(view: &RgbImage, map: &Heatmap, color: [u8; 3], scale: f32) -> RgbImage {
    draw::tint(view, &map.values, map.h, map.w, color, scale)
}

/// A prototype as the full original image with its box in yellow.
pub fn prototype_full(img: &RgbImage, pre: &Preprocess, proto: &Prototype) -> RgbImage {
    let b = ImageGeometry::new(pre, img.width(), img.height()).to_image(proto.input_box);
    let mut out = img.clone();
    draw_box(&mut out, b);
    out
}

/// A prototype as a crop of the original image around its box (with half a box of context on
/// each side), resized to `side × side`, the box in yellow.
pub fn prototype_crop(
    img: &RgbImage,
    pre: &Preprocess,
    proto: &Prototype,
    side: u32,
) -> Result<RgbImage> {
    let b = ImageGeometry::new(pre, img.width(), img.height()).to_image(proto.input_box);
    let (bw, bh) = ((b[2] - b[0]).max(1), (b[3] - b[1]).max(1));
    let x0 = b[0].saturating_sub(bw / 2);
    let y0 = b[1].saturating_sub(bh / 2);
    let x1 = (b[2] + bw / 2).min(img.width());
    let y1 = (b[3] + bh / 2).min(img.height());
    let (cw, ch) = ((x1 - x0).max(1), (y1 - y0).max(1));
    // The box is drawn after scaling: on small originals (28×28 digits) a box drawn first would
    // be a few pixels wide and its 2-pixel border would fill it.
    let source = (f64::from(x0), f64::from(y0), f64::from(cw), f64::from(ch));
    let mut tile = crate::imageio::resize_rgb(img, side, side, Some(source))?;
    let sx = |x: u32| x * side / cw;
    let sy = |y: u32| y * side / ch;
    draw_box(
        &mut tile,
        [sx(b[0] - x0), sy(b[1] - y0), sx(b[2] - x0), sy(b[3] - y0)],
    );
    Ok(tile)
}

/// A white canvas the figures are composed on.
struct Canvas {
    img: RgbImage,
}

impl Canvas {
    fn new(width: u32, height: u32) -> Self {
        Canvas {
            img: RgbImage::from_pixel(width.max(1), height.max(1), Rgb(BACKGROUND)),
        }
    }
    fn tile(&mut self, tile: &RgbImage, x: u32, y: u32, side: u32) -> Result<()> {
        let (x, y) = (i64::from(x), i64::from(y));
        if tile.dimensions() == (side, side) {
            imageops::replace(&mut self.img, tile, x, y);
        } else {
            let scaled = crate::imageio::resize_rgb(tile, side, side, None)?;
            imageops::replace(&mut self.img, &scaled, x, y);
        }
        Ok(())
    }
    /// A horizontal bar of `fraction` of `width`, in `color`, on a light grey track.
    fn bar(&mut self, x: u32, y: u32, width: u32, fraction: f32, color: [u8; 3]) {
        draw_filled_rect_mut(
            &mut self.img,
            Rect::at(x as i32, y as i32).of_size(width.max(1), BAR),
            Rgb([225, 225, 225]),
        );
        let len = (width as f32 * fraction.abs().clamp(0.0, 1.0)).round() as u32;
        if len > 0 {
            draw_filled_rect_mut(
                &mut self.img,
                Rect::at(x as i32, y as i32).of_size(len, BAR),
                Rgb(color),
            );
        }
    }
    /// A vertical colour scale: full `color` at the top fading to white at the bottom.
    fn scale(&mut self, x: u32, y: u32, height: u32, color: [u8; 3]) {
        for dy in 0..height {
            let alpha = 0.75 * (1.0 - dy as f32 / height.max(1) as f32);
            let px = color.map(|c| (255.0 * (1.0 - alpha) + f32::from(c) * alpha).round() as u8);
            draw_filled_rect_mut(
                &mut self.img,
                Rect::at(x as i32, (y + dy) as i32).of_size(BAR, 1),
                Rgb(px),
            );
        }
    }
}

/// The figure for one explained image. Top row: the network's view, `H⁺` (red), `H⁻` (blue)
/// on a shared scale with its colour scales, and CAM when present. Then one row per listed
/// contribution (positive first, then negative): the image with the channel's deciding cell
/// boxed and a bar of its share, followed by the channel's prototype crops (positive
/// prototypes for positive contributions, negative ones for negative contributions).
pub fn image_figure(
    view: &RgbImage,
    ex: &ImageExplanation,
    prototypes: Option<&Prototypes>,
    store: &ImageStore,
    pre: &Preprocess,
    tile: u32,
) -> Result<RgbImage> {
    let k = prototypes.map_or(0, |p| p.k);
    let hm = &ex.heatmaps;
    let (positive, negative) = (hm.get(dense::POSITIVE), hm.get(dense::NEGATIVE));
    let shared = positive
        .map_or(0.0, Heatmap::max)
        .max(negative.map_or(0.0, Heatmap::max));
    let mut top_row = vec![view.clone()];
    top_row.extend(positive.map(|m| overlay(view, m, RED, shared)));
    top_row.extend(negative.map(|m| overlay(view, m, BLUE, shared)));
    if let Some(cam) = hm.get(cam::NAME) {
        top_row.push(overlay(view, cam, RED, cam.max()));
    }
    let rows: Vec<_> = ex
        .positive
        .iter()
        .map(|c| (c, true))
        .chain(ex.negative.iter().map(|c| (c, false)))
        .collect();
    let columns = (top_row.len() as u32).max(1 + k as u32);
    let step = tile + GAP;
    let width = columns * step + 2 * BAR + 2 * GAP;
    let row_height = tile + BAR + 2 * GAP;
    let mut canvas = Canvas::new(width, row_height * (1 + rows.len() as u32) + GAP);
    for (i, t) in top_row.iter().enumerate() {
        canvas.tile(t, GAP + i as u32 * step, GAP, tile)?;
    }
    let scale_x = GAP + top_row.len() as u32 * step;
    canvas.scale(scale_x, GAP, tile, RED);
    canvas.scale(scale_x + BAR + 2, GAP, tile, BLUE);
    for (r, (c, positive)) in rows.iter().enumerate() {
        let y = GAP + (r as u32 + 1) * row_height;
        let mut boxed = view.clone();
        draw_box(&mut boxed, c.input_box);
        canvas.tile(&boxed, GAP, y, tile)?;
        canvas.bar(
            GAP,
            y + tile + 2,
            tile,
            c.share,
            if *positive { RED } else { BLUE },
        );
        let Some(protos) = prototypes.and_then(|p| p.channels.get(c.channel)) else {
            continue;
        };
        let list = if *positive {
            &protos.positive
        } else {
            &protos.negative
        };
        for (i, p) in list.iter().enumerate() {
            let img = store.get(&p.path)?;
            canvas.tile(
                &prototype_crop(&img, pre, p, tile)?,
                GAP + (i as u32 + 1) * step,
                y,
                tile,
            )?;
        }
    }
    Ok(canvas.img)
}

/// The figure for one class: one row per important channel, with a bar of its mean
/// contribution (relative to the largest) and its prototype crops.
pub fn class_figure(
    class: &ClassExplanation,
    prototypes: &Prototypes,
    store: &ImageStore,
    pre: &Preprocess,
    tile: u32,
) -> Result<RgbImage> {
    let step = tile + GAP;
    let row_height = tile + BAR + 2 * GAP;
    let largest = class
        .channels
        .iter()
        .map(|c| c.mean_contribution)
        .fold(0.0f32, f32::max);
    let mut canvas = Canvas::new(
        GAP + prototypes.k.max(1) as u32 * step,
        GAP + row_height * class.channels.len() as u32,
    );
    for (r, ch) in class.channels.iter().enumerate() {
        let y = GAP + r as u32 * row_height;
        let Some(protos) = prototypes.channels.get(ch.channel) else {
            continue;
        };
        for (i, p) in protos.positive.iter().enumerate() {
            let img = store.get(&p.path)?;
            canvas.tile(
                &prototype_crop(&img, pre, p, tile)?,
                GAP + i as u32 * step,
                y,
                tile,
            )?;
        }
        let fraction = if largest > 0.0 {
            ch.mean_contribution / largest
        } else {
            0.0
        };
        canvas.bar(GAP, y + tile + 2, tile, fraction, RED);
    }
    Ok(canvas.img)
}

/// Writes each listed channel's prototypes as crops and full images into `dir`:
/// `ch<k>_<pos|neg><rank>_<crop|full>.png`. Returns the file names written.
pub fn write_prototype_images(
    prototypes: &Prototypes,
    channels: &[usize],
    dir: &Path,
    store: &ImageStore,
    pre: &Preprocess,
    side: u32,
) -> Result<Vec<String>> {
    use rayon::prelude::*;
    let per_channel: Vec<Vec<String>> = channels
        .par_iter()
        .filter_map(|&ch| prototypes.channels.get(ch).map(|entry| (ch, entry)))
        .map(|(ch, entry)| {
            let mut written = Vec::new();
            for (polarity, list) in [("pos", &entry.positive), ("neg", &entry.negative)] {
                for (rank, p) in list.iter().enumerate() {
                    let img = store.get(&p.path)?;
                    for (kind, picture) in [
                        ("crop", prototype_crop(&img, pre, p, side)?),
                        ("full", prototype_full(&img, pre, p)),
                    ] {
                        let name = format!("ch{ch:04}_{polarity}{rank}_{kind}.png");
                        save_png(&picture, dir.join(&name))?;
                        written.push(name);
                    }
                }
            }
            Ok(written)
        })
        .collect::<Result<_>>()?;
    Ok(per_channel.into_iter().flatten().collect())
}

/// What [`write_prototypes`] wrote (the fields of `prototypes --json`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct PrototypesWritten {
    /// The prototypes file.
    pub prototypes: std::path::PathBuf,
    /// The split searched.
    pub split: String,
    /// Channels of the head.
    pub channels: usize,
    /// Prototypes kept per channel and side.
    pub k: usize,
    /// Seconds the search took.
    pub search_seconds: f64,
    /// Channels drawn as pictures.
    pub rendered_channels: Vec<usize>,
    /// Pictures written.
    pub images_written: usize,
    /// The prototypes themselves.
    #[serde(skip)]
    pub found: Prototypes,
}

/// Finds every channel's top `k` images of `split`, saves them as `prototypes.json` in `out`,
/// and draws the `render` heaviest channels of each class into `out/prototypes/`.
pub fn write_prototypes(
    cache: &crate::cache::FeatureCache,
    head: &crate::head::params::HeadParams,
    split: &str,
    k: usize,
    out: &Path,
    render: usize,
) -> Result<PrototypesWritten> {
    let started = std::time::Instant::now();
    let protos = super::find_prototypes(cache, head, split, k)?;
    let search_seconds = started.elapsed().as_secs_f64();
    let file = out.join(crate::runs::PROTOTYPES_FILE);
    protos.save(&file)?;
    let channels = super::top_weighted_channels(head, render);
    let written = if render > 0 {
        write_prototype_images(
            &protos,
            &channels,
            &out.join("prototypes"),
            &ImageStore::default(),
            &cache.manifest().preprocess,
            128,
        )?
    } else {
        Vec::new()
    };
    Ok(PrototypesWritten {
        prototypes: file,
        split: split.to_owned(),
        channels: protos.channels.len(),
        k,
        search_seconds,
        rendered_channels: channels,
        images_written: written.len(),
        found: protos,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_tints_where_the_map_is_high() {
        let view = RgbImage::from_pixel(64, 64, Rgb([200, 200, 200]));
        let map = Heatmap {
            h: 2,
            w: 2,
            values: vec![1.0, 0.0, 0.0, 0.0],
        };
        let out = overlay(&view, &map, RED, 1.0);
        let hot = out.get_pixel(2, 2).0;
        let cold = out.get_pixel(60, 60).0;
        assert!(hot[0] > hot[1] + 100, "{hot:?}");
        assert_eq!(cold, [200, 200, 200]);
    }

    #[test]
    fn crops_and_boxes_follow_the_geometry() {
        let img = RgbImage::from_pixel(448, 448, Rgb([0, 0, 0]));
        let pre = Preprocess::efficientnet_lite(224);
        let p = Prototype {
            item: 0,
            path: String::new(),
            label: 0,
            score: 1.0,
            cell: [1, 1],
            input_box: [32, 32, 64, 64],
        };
        let full = prototype_full(&img, &pre, &p);
        assert_eq!(full.get_pixel(64, 64).0, crate::draw::YELLOW);
        assert_eq!(full.get_pixel(100, 100).0, [0, 0, 0]);
        let crop = prototype_crop(&img, &pre, &p, 96).unwrap();
        assert_eq!(crop.dimensions(), (96, 96));
    }
}
