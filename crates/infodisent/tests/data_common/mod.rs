//! Helpers shared by the data tests: real photos from the assets and deliberately broken files.
#![allow(dead_code)]

use image::{DynamicImage, ImageFormat};
use std::path::{Path, PathBuf};

/// A file from the asset folder.
pub fn asset(rel: &str) -> PathBuf {
    infodisent::assets::asset(rel).expect("assets fetched by scripts/fetch-assets.sh")
}

/// A 16×16 CMYK JPEG (Adobe APP14 marker): left half pure cyan ink, right half pure yellow
/// ink, written by the `jpeg-encoder` crate (0.6.1, `ColorType::Cmyk`, quality 95).
pub fn cmyk_jpeg() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data_common/cmyk.jpg")
}

/// Encodes an image in `format` and writes it to `path`.
pub fn write_image(path: &Path, img: &DynamicImage, format: ImageFormat) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    let mut bytes = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut bytes), format)
        .unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// A BMP header that claims `width × height` pixels but carries no pixel data.
pub fn huge_bmp_header(width: u32, height: u32) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(b"BM");
    b.extend_from_slice(&54u32.to_le_bytes()); // file size (ignored by decoders)
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&54u32.to_le_bytes()); // pixel data offset
    b.extend_from_slice(&40u32.to_le_bytes()); // BITMAPINFOHEADER
    b.extend_from_slice(&width.to_le_bytes());
    b.extend_from_slice(&height.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes()); // planes
    b.extend_from_slice(&24u16.to_le_bytes()); // bits per pixel
    b.extend_from_slice(&[0; 24]);
    b
}

/// Asserts that `err` names `path` and mentions every word of `words`.
pub fn assert_names(err: &infodisent::Error, path: &Path, words: &[&str]) {
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()),
        "error does not name {}: {msg}",
        path.display()
    );
    for w in words {
        assert!(
            msg.to_lowercase().contains(&w.to_lowercase()),
            "error lacks `{w}`: {msg}"
        );
    }
}
