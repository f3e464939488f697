//! Robust image decoding: any supported file becomes an 8-bit RGB image, and anything unusable
//! becomes an [`Error::Input`] that names the file and what is wrong with it.
//!
//! Conversions: grey is replicated to three channels; palette images are expanded; 16-bit and
//! float images are scaled to 8 bits; CMYK JPEGs are converted to RGB by the decoder; an alpha
//! channel is composited onto white (transparent product shots and icons are drawn on white
//! backgrounds, and white keeps the object's outline visible to the network); EXIF orientation is
//! applied.

use crate::error::{Error, Result};
use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};
use std::io::Cursor;
use std::path::Path;

/// Largest accepted width or height, in pixels.
pub const MAX_SIDE: u32 = 16_384;
/// Largest accepted pixel count (width × height): 100 megapixels.
pub const MAX_PIXELS: u64 = 100_000_000;
/// Largest memory the decoder may allocate for one image, in bytes.
pub const MAX_DECODE_BYTES: u64 = 1 << 30;

/// Reads and decodes an image file into 8-bit RGB.
pub fn load_rgb(path: impl AsRef<Path>) -> Result<RgbImage> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    decode_rgb(&bytes, path)
}

/// Decodes an image held in memory; `path` names it in errors and its extension is checked
/// against the content.
pub fn decode_rgb(bytes: &[u8], path: &Path) -> Result<RgbImage> {
    let format = sniff_format(bytes, path)?;
    if format == ImageFormat::Jpeg && !jpeg_is_complete(bytes) {
        // The JPEG decoder pads a cut-off scan with grey instead of failing.
        return Err(Error::input(
            path,
            "truncated JPEG file: no end-of-image marker after the image data",
        ));
    }
    let reader = ImageReader::with_format(Cursor::new(bytes), format);
    let (width, height) = reader
        .into_dimensions()
        .map_err(|e| decode_error(path, format, e))?;
    check_dimensions(path, width, height)?;

    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(decode_limits());
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| decode_error(path, format, e))?;
    let orientation = decoder.orientation().ok();
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| decode_error(path, format, e))?;
    if let Some(o) = orientation {
        img.apply_orientation(o);
    }
    Ok(to_rgb8(img))
}

/// The format the bytes actually hold; a mismatching extension is only logged, since a PNG
/// saved as `.jpg` is common and harmless.
fn sniff_format(bytes: &[u8], path: &Path) -> Result<ImageFormat> {
    if bytes.is_empty() {
        return Err(Error::input(path, "empty file (0 bytes), not an image"));
    }
    let by_ext = path.extension().and_then(ImageFormat::from_extension);
    let sniffed = image::guess_format(bytes).map_err(|_| {
        let claimed = by_ext.map_or(String::new(), |f| {
            format!(" although the extension says {}", format_name(f))
        });
        Error::input(
            path,
            format!("not an image: the content is no recognised image format{claimed}"),
        )
    })?;
    if !sniffed.reading_enabled() {
        return Err(Error::input(
            path,
            format!(
                "{} images are not supported (supported: PNG, JPEG, GIF, BMP, TIFF, WebP)",
                format_name(sniffed)
            ),
        ));
    }
    if let Some(ext) = by_ext.filter(|f| *f != sniffed) {
        tracing::warn!(
            "{}: extension says {} but the content is {}; decoding as {}",
            path.display(),
            format_name(ext),
            format_name(sniffed),
            format_name(sniffed)
        );
    }
    Ok(sniffed)
}

/// Whether an end-of-image marker follows the first start-of-scan: entropy-coded data escapes
/// every 0xFF byte, so `FF D9` after `FF DA` can only be the real end (an EXIF thumbnail's own
/// markers come before the main scan).
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let marker = |m: u8| move |w: &[u8]| w[0] == 0xFF && w[1] == m;
    match bytes.windows(2).position(marker(0xDA)) {
        Some(sos) => bytes[sos..].windows(2).any(marker(0xD9)),
        None => false,
    }
}

fn format_name(f: ImageFormat) -> String {
    format!("{f:?}").to_uppercase()
}

fn decode_limits() -> Limits {
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    limits
}

fn check_dimensions(path: &Path, width: u32, height: u32) -> Result<()> {
    if width == 0 || height == 0 {
        return Err(Error::input(
            path,
            format!("image has no pixels ({width}×{height})"),
        ));
    }
    if width > MAX_SIDE || height > MAX_SIDE || u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(Error::input(
            path,
            format!(
                "image is {width}×{height} pixels, above the decode limit ({MAX_SIDE} pixels a side, {} megapixels); downscale it first",
                MAX_PIXELS / 1_000_000
            ),
        ));
    }
    Ok(())
}

fn decode_error(path: &Path, format: ImageFormat, e: image::ImageError) -> Error {
    use image::ImageError;
    let what = format_name(format);
    let msg = match e {
        ImageError::Limits(l) => {
            format!("{what} image exceeds the decode limits ({l}); downscale it first")
        }
        ImageError::Unsupported(u) => format!("unsupported {what} variant: {u}"),
        ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            format!("truncated {what} file: the data ends early")
        }
        other => format!("corrupt or truncated {what} file: {other}"),
    };
    Error::input(path, msg)
}

/// Any decoded image as 8-bit RGB, alpha composited onto white.
fn to_rgb8(img: DynamicImage) -> RgbImage {
    match img {
        DynamicImage::ImageRgb8(rgb) => rgb,
        DynamicImage::ImageLuma8(_)
        | DynamicImage::ImageLuma16(_)
        | DynamicImage::ImageRgb16(_)
        | DynamicImage::ImageRgb32F(_) => img.to_rgb8(),
        with_alpha => {
            let rgba = with_alpha.to_rgba8();
            let (w, h) = rgba.dimensions();
            let data = rgba
                .as_raw()
                .chunks_exact(4)
                .flat_map(|p| {
                    let a = u32::from(p[3]);
                    let over_white =
                        |c: u8| ((u32::from(c) * a + 255 * (255 - a) + 127) / 255) as u8;
                    [over_white(p[0]), over_white(p[1]), over_white(p[2])]
                })
                .collect();
            RgbImage::from_raw(w, h, data).expect("3 bytes per pixel of a w×h image")
        }
    }
}

/// Resamples the `(left, top, width, height)` rectangle of `img` (the whole image when `None`)
/// to `width × height` with a bilinear filter, in one SIMD pass.
pub fn resize_rgb(
    img: &RgbImage,
    width: u32,
    height: u32,
    source: Option<(f64, f64, f64, f64)>,
) -> Result<RgbImage> {
    resize_rgb_with(img, width, height, source, FilterType::Bilinear)
}

/// [`resize_rgb`] with another convolution filter (bicubic for timm's models).
pub fn resize_rgb_with(
    img: &RgbImage,
    width: u32,
    height: u32,
    source: Option<(f64, f64, f64, f64)>,
    filter: FilterType,
) -> Result<RgbImage> {
    if img.width() == 0 || img.height() == 0 || width == 0 || height == 0 {
        return Err(Error::Shape(format!(
            "cannot resize a {}×{} image to {width}×{height}",
            img.width(),
            img.height()
        )));
    }
    let src = ImageRef::new(img.width(), img.height(), img.as_raw(), PixelType::U8x3)
        .map_err(|e| Error::Shape(format!("image buffer: {e}")))?;
    let mut dst = Image::new(width, height, PixelType::U8x3);
    let mut options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(filter));
    if let Some((left, top, w, h)) = source {
        options = options.crop(left, top, w, h);
    }
    Resizer::new()
        .resize(&src, &mut dst, &options)
        .map_err(|e| {
            Error::Shape(format!(
                "resize {}×{} to {width}×{height}: {e}",
                img.width(),
                img.height()
            ))
        })?;
    RgbImage::from_raw(width, height, dst.into_vec())
        .ok_or_else(|| Error::Shape("resized buffer has the wrong length".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgba, RgbaImage};

    #[test]
    fn alpha_is_composited_on_white() {
        let img = RgbaImage::from_fn(2, 1, |x, _| {
            if x == 0 {
                Rgba([0, 0, 0, 0])
            } else {
                Rgba([0, 100, 200, 255])
            }
        });
        let rgb = to_rgb8(DynamicImage::ImageRgba8(img));
        assert_eq!(rgb.get_pixel(0, 0).0, [255, 255, 255]);
        assert_eq!(rgb.get_pixel(1, 0).0, [0, 100, 200]);
        let half = RgbaImage::from_pixel(1, 1, Rgba([0, 0, 0, 128]));
        assert_eq!(
            to_rgb8(DynamicImage::ImageRgba8(half)).get_pixel(0, 0).0,
            [127, 127, 127]
        );
    }

    #[test]
    fn empty_and_garbage_bytes_are_named_errors() {
        let p = Path::new("x/photo.jpg");
        let e = decode_rgb(&[], p).unwrap_err().to_string();
        assert!(e.contains("x/photo.jpg") && e.contains("empty"), "{e}");
        let e = decode_rgb(b"hello, I am text", p).unwrap_err().to_string();
        assert!(e.contains("not an image") && e.contains("JPEG"), "{e}");
    }
}
