//! Drawing shared by explanations, MI maps and reports: the colours, bilinear upsampling of a
//! cell grid to pixels, heatmap overlays (one colour scaled by evidence, or jet over a min-max
//! range), boxes, and PNG files. Computing a map lives with its method; drawing it lives here.

use crate::error::{Error, Result};
use crate::geometry::PixelBox;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{Rgb, RgbImage};
use imageproc::drawing::draw_hollow_rect_mut;
use imageproc::rect::Rect;
use std::path::Path;

/// Evidence for a class.
pub const RED: [u8; 3] = [220, 30, 30];
/// Evidence against a class.
pub const BLUE: [u8; 3] = [30, 80, 230];
/// Boxes around deciding cells.
pub const YELLOW: [u8; 3] = [255, 220, 0];

/// Bilinear upsampling of an `h × w` grid to `out_h × out_w` with half-pixel centres
/// (`align_corners = false`, as in PyTorch), so cell `(r, s)` is centred on its pixel square.
pub fn upsample_bilinear(grid: &[f32], h: usize, w: usize, out_h: usize, out_w: usize) -> Vec<f32> {
    let taps = |n_in: usize, n_out: usize| -> Vec<(usize, usize, f32)> {
        (0..n_out)
            .map(|o| {
                let src = ((o as f32 + 0.5) * n_in as f32 / n_out as f32 - 0.5)
                    .clamp(0.0, (n_in - 1) as f32);
                let i0 = src.floor() as usize;
                let i1 = (i0 + 1).min(n_in - 1);
                (i0, i1, src - i0 as f32)
            })
            .collect()
    };
    let (ty, tx) = (taps(h, out_h), taps(w, out_w));
    let mut out = Vec::with_capacity(out_h * out_w);
    for &(y0, y1, fy) in &ty {
        for &(x0, x1, fx) in &tx {
            let top = grid[y0 * w + x0] * (1.0 - fx) + grid[y0 * w + x1] * fx;
            let bottom = grid[y1 * w + x0] * (1.0 - fx) + grid[y1 * w + x1] * fx;
            out.push(top * (1.0 - fy) + bottom * fy);
        }
    }
    out
}

/// `view` with an `h × w` grid of nonnegative values blended in `color`, upsampled to the
/// view's size; `scale` is the value drawn at full strength (75 % opacity).
pub fn tint(
    view: &RgbImage,
    values: &[f32],
    h: usize,
    w: usize,
    color: [u8; 3],
    scale: f32,
) -> RgbImage {
    let up = upsample_bilinear(values, h, w, view.height() as usize, view.width() as usize);
    let mut out = view.clone();
    if scale <= 0.0 {
        return out;
    }
    for (px, v) in out.pixels_mut().zip(up) {
        let alpha = 0.75 * (v / scale).clamp(0.0, 1.0);
        for (c, &target) in px.0.iter_mut().zip(&color) {
            *c = (f32::from(*c) * (1.0 - alpha) + f32::from(target) * alpha).round() as u8;
        }
    }
    out
}

/// The jet palette at `t ∈ [0, 1]` (blue → cyan → yellow → red).
fn jet(t: f32) -> [f32; 3] {
    let c = |x: f32| (1.5 - (4.0 * t - x).abs()).clamp(0.0, 1.0);
    [c(3.0), c(2.0), c(1.0)]
}

/// One map of `h × w` values over `image`: bilinear upsampling, min-max normalisation, jet,
/// alpha 0.5 (the MI maps, whose values have no fixed scale).
pub fn jet_overlay(image: &RgbImage, values: &[f32], h: usize, w: usize) -> Result<RgbImage> {
    if values.len() != h * w || h == 0 || w == 0 {
        return Err(Error::Shape(format!(
            "map has {} values for a {h}×{w} grid",
            values.len()
        )));
    }
    let up = upsample_bilinear(
        values,
        h,
        w,
        image.height() as usize,
        image.width() as usize,
    );
    let (lo, hi) = up
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let span = if hi - lo > 1e-12 { hi - lo } else { 1.0 };
    let mut out = image.clone();
    for (px, v) in out.pixels_mut().zip(up) {
        let colour = jet((v - lo) / span);
        for (ch, c) in px.0.iter_mut().zip(colour) {
            *ch = (0.5 * f32::from(*ch) + 0.5 * 255.0 * c)
                .round()
                .clamp(0.0, 255.0) as u8;
        }
    }
    Ok(out)
}

/// Draws a 2-pixel yellow frame around `b`.
pub fn draw_box(img: &mut RgbImage, b: PixelBox) {
    for inset in 0..2i32 {
        let (x, y) = (b[0] as i32 + inset, b[1] as i32 + inset);
        let (w, h) = (
            (b[2] - b[0]) as i32 - 2 * inset,
            (b[3] - b[1]) as i32 - 2 * inset,
        );
        if w > 0 && h > 0 {
            draw_hollow_rect_mut(img, Rect::at(x, y).of_size(w as u32, h as u32), Rgb(YELLOW));
        }
    }
}

/// Encodes a PNG in memory.
pub fn png_bytes(img: &RgbImage) -> Result<Vec<u8>> {
    let mut png = Vec::new();
    // Fast deflate: reports draw figures by the thousand and the viewer draws them live, where
    // encoding time matters more than a somewhat smaller file.
    let encoder =
        PngEncoder::new_with_quality(&mut png, CompressionType::Fast, FilterType::Adaptive);
    img.write_with_encoder(encoder)
        .map_err(|e| Error::io("PNG image", std::io::Error::other(e)))?;
    Ok(png)
}

/// Encodes a PNG and writes it atomically.
pub fn save_png(img: &RgbImage, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let png = png_bytes(img)?;
    crate::fsutil::write_atomic(path, &png)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upsampling_keeps_cell_centres_and_constant_maps() {
        let grid = [1.0, 2.0, 3.0, 4.0];
        let up = upsample_bilinear(&grid, 2, 2, 4, 4);
        assert_eq!(up[0], 1.0);
        assert_eq!(up[15], 4.0);
        assert!((up[5] - 1.75).abs() < 1e-6);
        assert!(upsample_bilinear(&[2.0; 49], 7, 7, 224, 224)
            .iter()
            .all(|&v| (v - 2.0).abs() < 1e-6));
    }

    #[test]
    fn jet_runs_from_blue_to_red() {
        assert_eq!(jet(0.0), [0.0, 0.0, 0.5]);
        assert_eq!(jet(1.0), [0.5, 0.0, 0.0]);
        assert_eq!(jet(0.5), [0.5, 1.0, 0.5]);
    }

    #[test]
    fn jet_overlay_is_reddest_where_the_map_peaks() {
        let image = RgbImage::from_pixel(70, 70, Rgb([128, 128, 128]));
        let mut values = vec![0.0; 49];
        values[7 * 5 + 2] = 3.0;
        let out = jet_overlay(&image, &values, 7, 7).unwrap();
        let red = |x: u32, y: u32| {
            i32::from(out.get_pixel(x, y).0[0]) - i32::from(out.get_pixel(x, y).0[2])
        };
        assert!(red(25, 55) > 50, "peak cell should be red");
        assert!(red(65, 5) < 0, "far cell should be blue");
    }

    #[test]
    fn tint_scales_opacity_with_evidence() {
        let view = RgbImage::from_pixel(4, 4, Rgb([0, 0, 0]));
        let out = tint(&view, &[0.0, 1.0], 1, 2, RED, 1.0);
        assert_eq!(out.get_pixel(0, 0).0, [0, 0, 0]);
        assert_eq!(out.get_pixel(3, 0).0[0], (0.75f32 * 220.0).round() as u8);
        let jet = jet_overlay(&view, &[0.0, 1.0], 1, 2).unwrap();
        assert!(jet.get_pixel(0, 0).0[2] > jet.get_pixel(0, 0).0[0]);
        assert!(jet.get_pixel(3, 0).0[0] > jet.get_pixel(3, 0).0[2]);
        assert!(jet_overlay(&view, &[0.0], 1, 2).is_err());
    }
}
