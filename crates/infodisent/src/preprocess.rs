//! Image preprocessing presets: resize, center crop, normalisation, grey to RGB.

use crate::error::{Error, Result};
use image::RgbImage;
use serde::{Deserialize, Serialize};

/// The ImageNet channel means used by torchvision models.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// The ImageNet channel standard deviations used by torchvision models.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// How pixel values in [0, 255] are mapped to network inputs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Normalize {
    /// `(x/255 − mean) / std` with the ImageNet statistics (torchvision models).
    Imagenet,
    /// `(x − 127) / 128` (TensorFlow-trained EfficientNet-Lite).
    Centered127,
    /// `x / 255`.
    Unit,
    /// `(x/255 − mean) / std` with explicit statistics.
    MeanStd { mean: [f32; 3], std: [f32; 3] },
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

impl std::str::FromStr for Normalize {
    type Err = Error;

    /// Parses the CLI spelling: `imagenet`, `centered127` or `unit`.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "imagenet" => Ok(Normalize::Imagenet),
            "centered127" => Ok(Normalize::Centered127),
            "unit" => Ok(Normalize::Unit),
            other => Err(Error::Config(format!(
                "unknown normalisation `{other}` (expected imagenet, centered127 or unit)"
            ))),
        }
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
}

impl Preprocess {
    /// The EfficientNet-Lite convention: the whole image squashed to `size × size` (bilinear),
    /// then `(x − 127) / 128`.
    pub fn efficientnet_lite(size: usize) -> Self {
        Preprocess {
            resize: size,
            crop: size,
            normalize: Normalize::Centered127,
        }
    }

    /// The torchvision convention: shorter side to `size · 256/224`, center crop `size`,
    /// ImageNet mean/std.
    pub fn torchvision(size: usize) -> Self {
        Preprocess {
            resize: size * 256 / 224,
            crop: size,
            normalize: Normalize::Imagenet,
        }
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
        crate::imageio::resize_rgb(img, side, side, Some(source))
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

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
        let p = Preprocess {
            resize: 50,
            crop: 40,
            normalize: Normalize::Unit,
        };
        let out = p.resize_crop(&img).unwrap();
        assert_eq!(out.dimensions(), (40, 40));
        assert!(
            out.pixels().all(|px| px.0 == [0, 255, 0]),
            "{:?}",
            out.get_pixel(0, 0)
        );

        let squash = Preprocess {
            resize: 30,
            crop: 30,
            normalize: Normalize::Unit,
        };
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
        let bad = Preprocess {
            resize: 4,
            crop: 8,
            normalize: Normalize::Unit,
        };
        assert!(matches!(bad.apply(&one), Err(Error::Config(_))));
    }

    #[test]
    fn overrides_and_parsing() {
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
        assert_eq!("unit".parse::<Normalize>().unwrap(), Normalize::Unit);
        assert!("bogus".parse::<Normalize>().is_err());
        let json = serde_json::to_string(&lite).unwrap();
        assert_eq!(
            json,
            r#"{"resize":224,"crop":224,"normalize":"centered127"}"#
        );
        assert_eq!(serde_json::from_str::<Preprocess>(&json).unwrap(), lite);
    }
}
