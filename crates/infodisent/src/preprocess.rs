//! Image preprocessing presets: resize, center crop, normalisation, grey to RGB.

use crate::error::{Error, Result};
use image::RgbImage;
use serde::{Deserialize, Serialize};

/// The ImageNet channel means used by torchvision models.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// The ImageNet channel standard deviations used by torchvision models.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// What a user chose about preprocessing, each unset choice left to the model: a preset and
/// timm's `crop_pct` and filter, then explicit sizes and normalisation. The CLI's flags and the
/// Python `Backbone`'s keywords are both this.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PreprocessChoice {
    /// Convention of where the model came from (default: the model's own).
    pub preset: Option<Preset>,
    /// timm's `crop_pct`: resize = crop / crop_pct.
    pub crop_pct: Option<f64>,
    /// Resampling filter.
    pub interpolation: Option<Interpolation>,
    /// Shorter side after resizing.
    pub resize: Option<usize>,
    /// Side of the center crop.
    pub crop: Option<usize>,
    /// Pixel normalisation.
    pub normalize: Option<Normalize>,
}

impl PreprocessChoice {
    /// The chosen preset (or the model's default) at the model's input side, with the explicit
    /// overrides applied.
    pub fn resolve(&self, model_default: &Preprocess) -> Result<Preprocess> {
        let base = match (self.preset, self.crop_pct, self.interpolation) {
            (Some(preset), pct, interp) => preset.at(model_default.crop, pct, interp)?,
            (None, None, None) => model_default.clone(),
            (None, pct, interp) => {
                let preset = model_default.preset.unwrap_or(Preset::Torchvision);
                let mut p = preset.at(model_default.crop, pct, interp)?;
                p.normalize = model_default.normalize;
                if pct.is_none() {
                    p.resize = model_default.resize;
                }
                p
            }
        };
        base.with_overrides(self.resize, self.crop, self.normalize)
    }
}

/// How pixel values in [0, 255] are mapped to network inputs.
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Normalize {
    /// `(x/255 − mean) / std` with the ImageNet statistics (torchvision models).
    Imagenet,
    /// `(x − 127) / 128` (TensorFlow-trained EfficientNet-Lite).
    #[cfg_attr(feature = "clap", value(name = "centered127"))]
    Centered127,
    /// `x / 255`.
    Unit,
    /// `(x/255 − mean) / std` with explicit statistics.
    #[cfg_attr(feature = "clap", value(skip))]
    MeanStd {
        /// Per-channel mean (R, G, B) of `x / 255`.
        mean: [f32; 3],
        /// Per-channel standard deviation (R, G, B) of `x / 255`.
        std: [f32; 3],
    },
}

impl Normalize {
    /// Per-channel `(scale, offset)` so that `value = x * scale + offset` for a byte `x`.
    fn affine(&self) -> [(f32, f32); 3] {
        let mean_std = |mean: [f32; 3], std: [f32; 3]| {
            std::array::from_fn(|c| (1.0 / (255.0 * std[c]), -mean[c] / std[c]))
        };
        match *self {
            Normalize::Imagenet => mean_std(IMAGENET_MEAN, IMAGENET_STD),
            Normalize::Centered127 => [(1.0 / 128.0, -127.0 / 128.0); 3],
            Normalize::Unit => [(1.0 / 255.0, 0.0); 3],
            Normalize::MeanStd { mean, std } => mean_std(mean, std),
        }
    }
}

/// The resampling filter used to resize.
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Interpolation {
    /// Bilinear (torchvision's and TensorFlow's default).
    #[default]
    Bilinear,
    /// Bicubic (most timm models).
    Bicubic,
}

impl Interpolation {
    fn filter(self) -> fast_image_resize::FilterType {
        match self {
            Interpolation::Bilinear => fast_image_resize::FilterType::Bilinear,
            Interpolation::Bicubic => fast_image_resize::FilterType::CatmullRom,
        }
    }

    fn is_bilinear(&self) -> bool {
        *self == Interpolation::Bilinear
    }
}

impl std::fmt::Display for Preprocess {
    /// One line, as the CLI prints it: `timm: resize 248, crop 224, imagenet, bicubic`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(preset) = self.preset {
            write!(
                f,
                "{}: ",
                serde_json::to_value(preset)
                    .map_err(|_| std::fmt::Error)?
                    .as_str()
                    .unwrap_or("?")
            )?;
        }
        let normalize = match self.normalize {
            Normalize::Imagenet => "imagenet mean/std".to_owned(),
            Normalize::Centered127 => "(x - 127) / 128".to_owned(),
            Normalize::Unit => "x / 255".to_owned(),
            Normalize::MeanStd { mean, std } => format!("mean {mean:?} std {std:?}"),
        };
        let how = if self.resize == self.crop {
            format!("squash to {0}×{0}", self.crop)
        } else {
            format!("shorter side {}, center crop {}", self.resize, self.crop)
        };
        write!(f, "{how}, {normalize}, {:?}", self.interpolation)
    }
}

/// The preprocessing conventions of the places models come from.
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// torchvision: shorter side to size/0.875 (256 for 224), center crop, ImageNet mean/std,
    /// bilinear.
    Torchvision,
    /// timm: shorter side to size/crop_pct (crop_pct 0.875 unless given), center crop, ImageNet
    /// mean/std, bicubic unless given.
    Timm,
    /// TensorFlow Lite image models (EfficientNet-Lite): the whole image squashed to size × size,
    /// (x − 127) / 128, bilinear.
    Tflite,
}

impl Preset {
    /// The preprocessing this preset gives at input side `size`; `crop_pct` and `interpolation`
    /// override timm's per-model values (and apply to the other presets too).
    pub fn at(
        self,
        size: usize,
        crop_pct: Option<f64>,
        interpolation: Option<Interpolation>,
    ) -> Result<Preprocess> {
        let scaled = |pct: f64| -> Result<usize> {
            if !(pct > 0.0 && pct <= 1.0) {
                return Err(Error::Config(format!(
                    "crop_pct must be in (0, 1], got {pct}"
                )));
            }
            Ok((size as f64 / pct).floor() as usize)
        };
        let mut p = match self {
            Preset::Torchvision => Preprocess::torchvision(size),
            Preset::Timm => Preprocess {
                interpolation: Interpolation::Bicubic,
                ..Preprocess::new(scaled(0.875)?, size, Normalize::Imagenet)
            },
            Preset::Tflite => Preprocess::efficientnet_lite(size),
        };
        if let Some(pct) = crop_pct {
            p.resize = scaled(pct)?;
        }
        if let Some(i) = interpolation {
            p.interpolation = i;
        }
        p.preset = Some(self);
        p.validate()?;
        Ok(p)
    }
}

/// Everything that turns a decoded image into the network's input tensor; part of the cache
/// fingerprint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preprocess {
    /// Shorter side is resized to this many pixels (aspect kept), or the image to a square when
    /// `resize == crop`.
    pub resize: usize,
    /// Side of the square center crop fed to the network.
    pub crop: usize,
    /// Value mapping.
    pub normalize: Normalize,
    /// Resampling filter (left out of the JSON when bilinear, so older caches keep their
    /// fingerprints).
    #[serde(default, skip_serializing_if = "Interpolation::is_bilinear")]
    pub interpolation: Interpolation,
    /// The preset these values came from, when one was chosen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<Preset>,
}

impl Preprocess {
    /// Resize, crop and normalisation with bilinear resampling and no preset.
    pub fn new(resize: usize, crop: usize, normalize: Normalize) -> Self {
        Preprocess {
            resize,
            crop,
            normalize,
            interpolation: Interpolation::Bilinear,
            preset: None,
        }
    }

    /// The EfficientNet-Lite convention: the whole image squashed to `size × size` (bilinear),
    /// then `(x − 127) / 128`.
    pub fn efficientnet_lite(size: usize) -> Self {
        Preprocess::new(size, size, Normalize::Centered127)
    }

    /// The torchvision convention: shorter side to `size · 256/224`, center crop `size`,
    /// ImageNet mean/std.
    pub fn torchvision(size: usize) -> Self {
        Preprocess::new(size * 256 / 224, size, Normalize::Imagenet)
    }

    /// A copy with the given fields replaced; when only `crop` is given, `resize` follows it so
    /// a squashing preset stays squashing and a crop preset keeps its margin ratio.
    pub fn with_overrides(
        &self,
        resize: Option<usize>,
        crop: Option<usize>,
        normalize: Option<Normalize>,
    ) -> Result<Self> {
        let crop_new = crop.unwrap_or(self.crop);
        let resize_new = resize.unwrap_or(if self.resize == self.crop {
            crop_new
        } else {
            (self.resize * crop_new).div_ceil(self.crop.max(1))
        });
        let p = Preprocess {
            resize: resize_new,
            crop: crop_new,
            normalize: normalize.unwrap_or(self.normalize),
            ..self.clone()
        };
        p.validate()?;
        Ok(p)
    }

    /// Checks that the sizes make sense (non-zero, crop within the resized image).
    pub fn validate(&self) -> Result<()> {
        if self.crop == 0 || self.resize == 0 {
            return Err(Error::Config(format!(
                "preprocessing sizes must be positive (resize {}, crop {})",
                self.resize, self.crop
            )));
        }
        if self.crop > self.resize {
            return Err(Error::Config(format!(
                "crop {} is larger than resize {}",
                self.crop, self.resize
            )));
        }
        if let Normalize::MeanStd { std, .. } = self.normalize {
            if std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
                return Err(Error::Config(format!(
                    "normalisation std must be positive, got {std:?}"
                )));
            }
        }
        Ok(())
    }

    /// Side of the square network input.
    pub fn input_size(&self) -> usize {
        self.crop
    }

    /// Number of floats one preprocessed image takes: `3 · crop · crop`.
    pub fn input_len(&self) -> usize {
        3 * self.crop * self.crop
    }

    /// The preprocessing as JSON, the form stored in cache manifests and fingerprints.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("Preprocess serialises to JSON")
    }

    /// The source rectangle `(left, top, width, height)` that ends up in the crop, so resize
    /// and crop happen in one resampling pass without an intermediate image.
    fn source_box(&self, width: u32, height: u32) -> (f64, f64, f64, f64) {
        let (w, h) = (f64::from(width), f64::from(height));
        if self.resize == self.crop {
            return (0.0, 0.0, w, h);
        }
        let scale = self.resize as f64 / w.min(h);
        let side = self.crop as f64 / scale;
        ((w - side) / 2.0, (h - side) / 2.0, side, side)
    }

    /// Resizes and crops to `crop × crop` RGB bytes.
    pub fn resize_crop(&self, img: &RgbImage) -> Result<RgbImage> {
        self.validate()?;
        let side = u32::try_from(self.crop)
            .map_err(|_| Error::Config(format!("crop {} is too large", self.crop)))?;
        let source = self.source_box(img.width(), img.height());
        crate::imageio::resize_rgb_with(img, side, side, Some(source), self.interpolation.filter())
    }

    /// Normalises `crop × crop` RGB bytes into `out` as planar [3, S, S] floats.
    pub fn normalize_into(&self, img: &RgbImage, out: &mut [f32]) -> Result<()> {
        let plane = self.crop * self.crop;
        if img.width() as usize != self.crop
            || img.height() as usize != self.crop
            || out.len() != 3 * plane
        {
            return Err(Error::Shape(format!(
                "normalise expects a {0}×{0} image into {1} floats, got {2}×{3} into {4}",
                self.crop,
                3 * plane,
                img.width(),
                img.height(),
                out.len()
            )));
        }
        let affine = self.normalize.affine();
        let (r, rest) = out.split_at_mut(plane);
        let (g, b) = rest.split_at_mut(plane);
        for (i, px) in img.as_raw().chunks_exact(3).enumerate() {
            r[i] = f32::from(px[0]) * affine[0].0 + affine[0].1;
            g[i] = f32::from(px[1]) * affine[1].0 + affine[1].1;
            b[i] = f32::from(px[2]) * affine[2].0 + affine[2].1;
        }
        Ok(())
    }

    /// Writes the network input for `img` into `out` ([3, S, S], `out.len() == input_len()`),
    /// so a batch can be filled in place.
    pub fn apply_into(&self, img: &RgbImage, out: &mut [f32]) -> Result<()> {
        let cropped = self.resize_crop(img)?;
        self.normalize_into(&cropped, out)
    }

    /// The network input for `img`: [3, S, S] planar floats.
    pub fn apply(&self, img: &RgbImage) -> Result<Vec<f32>> {
        let mut out = vec![0.0; self.input_len()];
        self.apply_into(img, &mut out)?;
        Ok(out)
    }

    /// The S × S picture a network input `[3, S, S]` shows: the normalisation undone and
    /// clamped to bytes (for inputs a caller preprocessed, which come without their image).
    pub fn to_view(&self, input: &[f32]) -> Result<RgbImage> {
        let s = self.crop;
        if input.len() != self.input_len() {
            return Err(Error::Shape(format!(
                "an input of {} values; [3, {s}, {s}] has {}",
                input.len(),
                self.input_len()
            )));
        }
        let affine = self.normalize.affine();
        let plane = s * s;
        Ok(RgbImage::from_fn(s as u32, s as u32, |x, y| {
            let i = y as usize * s + x as usize;
            image::Rgb(std::array::from_fn(|c| {
                let (scale, offset) = affine[c];
                ((input[c * plane + i] - offset) / scale)
                    .round()
                    .clamp(0.0, 255.0) as u8
            }))
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    #[test]
    fn to_view_undoes_the_normalisation() {
        let img = RgbImage::from_fn(4, 4, |x, y| Rgb([(x * 60) as u8, (y * 60) as u8, 200]));
        for p in [
            Preprocess::efficientnet_lite(4),
            Preprocess::new(4, 4, Normalize::Imagenet),
        ] {
            assert_eq!(p.to_view(&p.apply(&img).unwrap()).unwrap(), img);
        }
        assert!(Preprocess::torchvision(4).to_view(&[0.0; 5]).is_err());
    }

    #[test]
    fn known_pixel_maps_to_known_value() {
        let img = RgbImage::from_pixel(10, 10, Rgb([255, 127, 0]));
        let lite = Preprocess::efficientnet_lite(4).apply(&img).unwrap();
        assert_eq!(lite.len(), 48);
        assert!(lite[..16].iter().all(|v| (v - 1.0).abs() < 1e-6));
        assert!(lite[16..32].iter().all(|v| v.abs() < 1e-6));
        assert!(lite[32..].iter().all(|v| (v + 127.0 / 128.0).abs() < 1e-6));

        let tv = Preprocess::torchvision(4).apply(&img).unwrap();
        assert!((tv[0] - (1.0 - 0.485) / 0.229).abs() < 1e-5);
        assert!((tv[16] - (127.0 / 255.0 - 0.456) / 0.224).abs() < 1e-5);
        assert!((tv[47] - (0.0 - 0.406) / 0.225).abs() < 1e-5);
    }

    #[test]
    fn center_crop_keeps_the_middle() {
        // Left third red, middle third green, right third blue: a center crop of the
        // shorter-side-resized image must be all green.
        let img = RgbImage::from_fn(300, 100, |x, _| match x / 100 {
            0 => Rgb([255, 0, 0]),
            1 => Rgb([0, 255, 0]),
            _ => Rgb([0, 0, 255]),
        });
        let p = Preprocess::new(50, 40, Normalize::Unit);
        let out = p.resize_crop(&img).unwrap();
        assert_eq!(out.dimensions(), (40, 40));
        assert!(
            out.pixels().all(|px| px.0 == [0, 255, 0]),
            "{:?}",
            out.get_pixel(0, 0)
        );

        let squash = Preprocess::new(30, 30, Normalize::Unit);
        let out = squash.resize_crop(&img).unwrap();
        assert_eq!(out.get_pixel(0, 15).0, [255, 0, 0]);
        assert_eq!(out.get_pixel(29, 15).0, [0, 0, 255]);
    }

    #[test]
    fn upsamples_tiny_images_and_rejects_bad_sizes() {
        let one = RgbImage::from_pixel(1, 1, Rgb([10, 20, 30]));
        let out = Preprocess::efficientnet_lite(8).resize_crop(&one).unwrap();
        assert!(out.pixels().all(|px| px.0 == [10, 20, 30]));
        let empty = RgbImage::new(0, 5);
        assert!(matches!(
            Preprocess::efficientnet_lite(8).apply(&empty),
            Err(Error::Shape(_))
        ));
        let bad = Preprocess::new(4, 8, Normalize::Unit);
        assert!(matches!(bad.apply(&one), Err(Error::Config(_))));
    }

    #[test]
    fn overrides_and_serialisation() {
        let lite = Preprocess::efficientnet_lite(224);
        assert_eq!(
            lite.with_overrides(None, Some(240), None).unwrap(),
            Preprocess::efficientnet_lite(240)
        );
        let tv = Preprocess::torchvision(224);
        assert_eq!(tv.resize, 256);
        assert_eq!(
            tv.with_overrides(None, Some(112), None).unwrap().resize,
            128
        );
        assert!(lite.with_overrides(Some(100), Some(200), None).is_err());
        let json = serde_json::to_string(&lite).unwrap();
        assert_eq!(
            json,
            r#"{"resize":224,"crop":224,"normalize":"centered127"}"#
        );
        assert_eq!(serde_json::from_str::<Preprocess>(&json).unwrap(), lite);
    }

    #[test]
    fn presets_follow_their_libraries() {
        let tv = Preset::Torchvision.at(224, None, None).unwrap();
        assert_eq!(
            (tv.resize, tv.crop, tv.normalize),
            (256, 224, Normalize::Imagenet)
        );
        assert_eq!(tv.interpolation, Interpolation::Bilinear);
        // timm: resize = floor(size / crop_pct), bicubic unless the model's config says otherwise.
        let timm = Preset::Timm.at(224, None, None).unwrap();
        assert_eq!(
            (timm.resize, timm.interpolation),
            (256, Interpolation::Bicubic)
        );
        let vit = Preset::Timm.at(224, Some(0.9), None).unwrap();
        assert_eq!(vit.resize, 248);
        let bilinear = Preset::Timm
            .at(256, Some(0.95), Some(Interpolation::Bilinear))
            .unwrap();
        assert_eq!(
            (bilinear.resize, bilinear.interpolation),
            (269, Interpolation::Bilinear)
        );
        let lite = Preset::Tflite.at(240, None, None).unwrap();
        assert_eq!(
            (lite.resize, lite.crop, lite.normalize),
            (240, 240, Normalize::Centered127)
        );
        assert!(Preset::Timm.at(224, Some(1.5), None).is_err());
        // The preset is part of the stored preprocessing (and so of cache fingerprints); plain
        // bilinear preprocessing keeps the JSON older caches were fingerprinted with.
        let json = serde_json::to_string(&vit).unwrap();
        assert!(
            json.contains(r#""preset":"timm""#) && json.contains("bicubic"),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<Preprocess>(&json).unwrap(), vit);
        assert_eq!(
            vit.to_string(),
            "timm: shorter side 248, center crop 224, imagenet mean/std, Bicubic"
        );
        // Bicubic and bilinear resampling really differ on an edge.
        let img = RgbImage::from_fn(64, 64, |x, _| {
            image::Rgb(if x < 32 { [0; 3] } else { [255; 3] })
        });
        let a = Preset::Timm
            .at(16, Some(0.5), None)
            .unwrap()
            .resize_crop(&img)
            .unwrap();
        let b = Preset::Torchvision
            .at(16, Some(0.5), None)
            .unwrap()
            .resize_crop(&img)
            .unwrap();
        assert_ne!(a.as_raw(), b.as_raw());
    }
}
