//! The three per-position maps of one image, drawn over the image and written as PNG + JSON.
//!
//! Each map is upsampled bilinearly from the feature grid to the network input, min-max
//! normalised on its own, coloured with the jet palette and blended with the image at 0.5. The
//! JSON keeps the raw per-position values (row-major `h × w`), so the maps can be compared in
//! absolute terms too.

use super::model::{MiMaps, MiModel};
use crate::cache::FeatureCache;
use crate::dataset::ImageStore;
use crate::draw::jet_overlay;
use crate::engine::FeatureFn;
use crate::error::{Error, Result};
use crate::fsutil::{write_atomic, write_json_atomic};
use image::imageops;
use image::{Rgb, RgbImage};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Grid cell `(row, col)` holding the largest value.
pub fn argmax_cell(values: &[f32], w: usize) -> (usize, usize) {
    let i = values
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i);
    (i / w.max(1), i % w.max(1))
}

/// The total, decision-related and redundant overlays of `maps` on `image`, in that order.
pub fn render_overlays(image: &RgbImage, maps: &MiMaps) -> Result<[RgbImage; 3]> {
    Ok([
        jet_overlay(image, &maps.total, maps.h, maps.w)?,
        jet_overlay(image, &maps.decision, maps.h, maps.w)?,
        jet_overlay(image, &maps.redundant, maps.h, maps.w)?,
    ])
}

/// The image and its three overlays side by side, 4 white pixels apart.
fn panel(image: &RgbImage, overlays: &[RgbImage; 3]) -> RgbImage {
    let gap = 4;
    let (w, h) = (image.width(), image.height());
    let mut out = RgbImage::from_pixel(4 * w + 3 * gap, h, Rgb([255, 255, 255]));
    for (i, img) in std::iter::once(image).chain(overlays.iter()).enumerate() {
        imageops::replace(&mut out, img, i64::from(i as u32 * (w + gap)), 0);
    }
    out
}

/// The files written for one image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MiFiles {
    /// Total-information overlay.
    pub total: PathBuf,
    /// Decision-related overlay.
    pub decision: PathBuf,
    /// Redundant overlay.
    pub redundant: PathBuf,
    /// Image + the three overlays in one strip.
    pub panel: PathBuf,
    /// This explanation as JSON.
    pub json: PathBuf,
}

/// The explanation of one image: its maps and where they were written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MiExplanation {
    /// The image file (or `idx-file#index`).
    pub source: String,
    /// True label, when known (cached items).
    pub label: Option<usize>,
    /// Name of the class the masked path predicts.
    pub masked_prediction_name: String,
    /// Argmax cell `(row, col)` of the total map.
    pub total_peak: (usize, usize),
    /// Argmax cell of the decision-related map.
    pub decision_peak: (usize, usize),
    /// Argmax cell of the redundant map.
    pub redundant_peak: (usize, usize),
    /// The per-position values.
    pub maps: MiMaps,
    /// Written files.
    pub files: MiFiles,
}

fn write_png(path: &Path, img: &RgbImage) -> Result<()> {
    let mut bytes = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .map_err(|e| Error::input(path, e.to_string()))?;
    write_atomic(path, &bytes)
}

/// Writes `<stem>_{total,decision,redundant,panel}.png` and `<stem>.json` under `out_dir`.
/// `image` must be what the network saw (resized and cropped).
pub fn write_explanation(
    out_dir: &Path,
    stem: &str,
    image: &RgbImage,
    maps: MiMaps,
    source: String,
    label: Option<usize>,
    classes: &[String],
) -> Result<MiExplanation> {
    let overlays = render_overlays(image, &maps)?;
    let file = |suffix: &str| out_dir.join(format!("{stem}{suffix}"));
    let files = MiFiles {
        total: file("_total.png"),
        decision: file("_decision.png"),
        redundant: file("_redundant.png"),
        panel: file("_panel.png"),
        json: file(".json"),
    };
    write_png(&files.total, &overlays[0])?;
    write_png(&files.decision, &overlays[1])?;
    write_png(&files.redundant, &overlays[2])?;
    write_png(&files.panel, &panel(image, &overlays))?;
    let explanation = MiExplanation {
        source,
        label,
        masked_prediction_name: classes
            .get(maps.masked_prediction)
            .cloned()
            .unwrap_or_else(|| maps.masked_prediction.to_string()),
        total_peak: argmax_cell(&maps.total, maps.w),
        decision_peak: argmax_cell(&maps.decision, maps.w),
        redundant_peak: argmax_cell(&maps.redundant, maps.w),
        maps,
        files: files.clone(),
    };
    write_json_atomic(&files.json, &explanation)?;
    Ok(explanation)
}

/// Explains item `index` of a cached split: computes the maps from the cached features, draws
/// them over the item's image as the network saw it, and writes PNGs + JSON named
/// `<split>-<index>` under `out_dir` (see [`write_explanation`]).
pub fn explain_cached_item(
    model: &MiModel,
    cache: &FeatureCache,
    split: &str,
    index: usize,
    out_dir: &Path,
    store: &ImageStore,
) -> Result<MiExplanation> {
    if cache.feature_shape() != model.meta.feature_shape {
        return Err(Error::Shape(format!(
            "the mi run was trained on [{:?}] features, the cache holds {:?}",
            model.meta.feature_shape,
            cache.feature_shape()
        )));
    }
    let info = cache.split(split)?;
    if index >= info.num_items {
        return Err(Error::Config(format!(
            "split `{split}` has {} items; item {index} does not exist",
            info.num_items
        )));
    }
    let row = cache.read_items(split, &[index])?;
    let maps = model.maps(&row.features, 1)?.remove(0);
    let item = cache.items(split)?.swap_remove(index);
    let image = cache
        .manifest()
        .preprocess
        .resize_crop(store.get(&item.path)?.as_ref())?;
    let label = usize::try_from(item.label).ok();
    write_explanation(
        out_dir,
        &format!("{split}-{index}"),
        &image,
        maps,
        item.path,
        label,
        &cache.manifest().classes,
    )
}

/// Explains image files: each is decoded, preprocessed as the cache was, passed through
/// `features` (a backbone: `[n, 3, S, S]` inputs → `[n, D, h, w]` maps) and written like
/// [`explain_cached_item`], with stems from [`crate::runs::output_stem`].
pub fn explain_files(
    model: &MiModel,
    cache: &FeatureCache,
    paths: &[PathBuf],
    features: &mut FeatureFn<'_>,
    out_dir: &Path,
) -> Result<Vec<MiExplanation>> {
    let preprocess = cache.manifest().preprocess.clone();
    let mut out = Vec::with_capacity(paths.len());
    for (i, path) in paths.iter().enumerate() {
        let image = crate::imageio::load_rgb(path)?;
        let input = preprocess.apply(&image)?;
        let maps = model.maps(&features(&input, 1)?, 1)?.remove(0);
        let source = path.display().to_string();
        let stem = crate::runs::output_stem(i, &source);
        out.push(write_explanation(
            out_dir,
            &stem,
            &preprocess.resize_crop(&image)?,
            maps,
            source,
            None,
            &cache.manifest().classes,
        )?);
    }
    Ok(out)
}

/// Explains cached `items` of `split` and image `files` (through `features`, needed only for
/// files) into `out_dir`: what `mi explain` does. A cache other than the run's is warned about.
pub fn explain_all(
    model: &MiModel,
    cache: &FeatureCache,
    split: &str,
    items: &[usize],
    files: &[PathBuf],
    features: Option<&mut FeatureFn<'_>>,
    out_dir: &Path,
) -> Result<Vec<MiExplanation>> {
    if items.is_empty() && files.is_empty() {
        return Err(Error::Config(
            "nothing to explain: give image files or items".into(),
        ));
    }
    if cache.manifest().fingerprint != model.meta.cache_fingerprint {
        tracing::warn!(
            "{} is not the cache the mi run was trained on",
            cache.dir().display()
        );
    }
    let store = ImageStore::default();
    let mut out = items
        .iter()
        .map(|&i| explain_cached_item(model, cache, split, i, out_dir, &store))
        .collect::<Result<Vec<_>>>()?;
    if !files.is_empty() {
        let features = features
            .ok_or_else(|| Error::Config("explaining image files needs the backbone".into()))?;
        out.extend(explain_files(model, cache, files, features, out_dir)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_cell_is_row_and_column() {
        let mut values = vec![0.0; 49];
        values[7 * 5 + 2] = 3.0;
        assert_eq!(argmax_cell(&values, 7), (5, 2));
    }
}
