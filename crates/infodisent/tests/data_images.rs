//! Image decoding on real photos and on every kind of bad or unusual file.

mod data_common;

use data_common::{assert_names, asset, cmyk_jpeg, huge_bmp_header, write_image};
use image::{
    DynamicImage, GrayImage, ImageBuffer, ImageFormat, Luma, Rgb, RgbImage, Rgba, RgbaImage,
};
use infodisent::imageio::load_rgb;
use infodisent::Error;
use std::path::Path;

/// The error loading `path` gives; a successful decode fails the test without dumping pixels.
fn load_err(path: &Path) -> Error {
    match load_rgb(path) {
        Ok(img) => panic!(
            "{} decoded as a {}×{} image",
            path.display(),
            img.width(),
            img.height()
        ),
        Err(e) => e,
    }
}

#[test]
fn every_asset_photo_decodes_to_rgb() {
    let mut n = 0;
    for dir in [
        "photos/imagenet",
        "photos/skimage",
        "photos/scenes",
        "photos/small",
    ] {
        for entry in std::fs::read_dir(asset(dir)).unwrap() {
            let path = entry.unwrap().path();
            let img = load_rgb(&path).unwrap_or_else(|e| panic!("{e}"));
            assert!(img.width() > 0 && img.height() > 0);
            n += 1;
        }
    }
    assert!(n >= 100, "only {n} photos");
    let chelsea = load_rgb(asset("photos/skimage/chelsea.png")).unwrap();
    assert_eq!(chelsea.dimensions(), (451, 300));
}

#[test]
fn broken_files_are_input_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let png = std::fs::read(asset("photos/skimage/coffee.png")).unwrap();
    let jpg = std::fs::read(asset("photos/imagenet/imagenet_00_243.jpg")).unwrap();

    let zero = dir.path().join("zero.png");
    std::fs::write(&zero, b"").unwrap();
    let e = load_err(&zero);
    assert!(matches!(e, Error::Input { .. }));
    assert_names(&e, &zero, &["empty"]);

    let text = dir.path().join("notes.jpg");
    std::fs::write(&text, "these are not pixels\n".repeat(10)).unwrap();
    assert_names(&load_err(&text), &text, &["not an image", "JPEG"]);

    for (name, bytes) in [("cut.png", &png), ("cut.jpg", &jpg)] {
        let cut = dir.path().join(name);
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let e = load_err(&cut);
        assert!(matches!(e, Error::Input { .. }), "{e}");
        assert_names(&e, &cut, &[]);
    }

    // Valid signature and header, scrambled compressed data.
    let mut corrupt = png.clone();
    for b in &mut corrupt[200..4000] {
        *b = b.wrapping_mul(31).wrapping_add(7);
    }
    let bad = dir.path().join("corrupt.png");
    std::fs::write(&bad, &corrupt).unwrap();
    assert_names(&load_err(&bad), &bad, &["corrupt"]);

    let huge = dir.path().join("huge.bmp");
    std::fs::write(&huge, huge_bmp_header(60_000, 60_000)).unwrap();
    let e = load_err(&huge);
    assert!(matches!(e, Error::Input { .. }));
    assert_names(&e, &huge, &["60000×60000", "limit"]);
}

#[test]
fn unreadable_paths_are_io_errors_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let dangling = dir.path().join("gone.jpg");
    std::os::unix::fs::symlink(dir.path().join("missing-target.jpg"), &dangling).unwrap();
    let e = load_err(&dangling);
    assert!(matches!(e, Error::Io { .. }));
    assert_eq!(e.exit_code(), 3);
    assert_names(&e, &dangling, &[]);

    let folder = dir.path().join("folder.png");
    std::fs::create_dir(&folder).unwrap();
    assert_names(&load_err(&folder), &folder, &[]);
}

#[test]
fn unusual_encodings_become_8bit_rgb() {
    let dir = tempfile::tempdir().unwrap();

    let cmyk = load_rgb(cmyk_jpeg()).unwrap();
    assert_eq!(cmyk.dimensions(), (16, 16));
    let near = |got: [u8; 3], want: [u8; 3]| got.iter().zip(want).all(|(g, w)| g.abs_diff(w) <= 12);
    assert!(
        near(cmyk.get_pixel(2, 8).0, [0, 255, 255]),
        "cyan ink decoded as {:?}",
        cmyk.get_pixel(2, 8)
    );
    assert!(
        near(cmyk.get_pixel(13, 8).0, [255, 255, 0]),
        "yellow ink decoded as {:?}",
        cmyk.get_pixel(13, 8)
    );

    let deep: ImageBuffer<Rgb<u16>, Vec<u16>> =
        ImageBuffer::from_pixel(3, 2, Rgb([65535, 32896, 0]));
    let p16 = dir.path().join("deep.png");
    write_image(&p16, &DynamicImage::ImageRgb16(deep), ImageFormat::Png);
    assert_eq!(load_rgb(&p16).unwrap().get_pixel(1, 1).0, [255, 128, 0]);

    let rgba = RgbaImage::from_fn(2, 1, |x, _| {
        if x == 0 {
            Rgba([10, 20, 30, 0])
        } else {
            Rgba([10, 20, 30, 255])
        }
    });
    let prgba = dir.path().join("alpha.png");
    write_image(&prgba, &DynamicImage::ImageRgba8(rgba), ImageFormat::Png);
    let out = load_rgb(&prgba).unwrap();
    assert_eq!(
        out.get_pixel(0, 0).0,
        [255, 255, 255],
        "transparent is composited on white"
    );
    assert_eq!(out.get_pixel(1, 0).0, [10, 20, 30]);

    let grey = GrayImage::from_pixel(4, 4, Luma([77]));
    let pgrey = dir.path().join("grey.png");
    write_image(&pgrey, &DynamicImage::ImageLuma8(grey), ImageFormat::Png);
    assert_eq!(load_rgb(&pgrey).unwrap().get_pixel(3, 3).0, [77, 77, 77]);

    // GIF is palette-based: decoding goes through the palette.
    let pal = RgbImage::from_fn(4, 4, |x, _| {
        if x < 2 {
            Rgb([255, 0, 0])
        } else {
            Rgb([0, 0, 255])
        }
    });
    let pgif = dir.path().join("palette.gif");
    write_image(&pgif, &DynamicImage::ImageRgb8(pal), ImageFormat::Gif);
    let gif = load_rgb(&pgif).unwrap();
    assert_eq!(gif.get_pixel(0, 0).0, [255, 0, 0]);
    assert_eq!(gif.get_pixel(3, 3).0, [0, 0, 255]);

    let one = dir.path().join("one.bmp");
    write_image(
        &one,
        &DynamicImage::ImageRgb8(RgbImage::from_pixel(1, 1, Rgb([1, 2, 3]))),
        ImageFormat::Bmp,
    );
    assert_eq!(load_rgb(&one).unwrap().dimensions(), (1, 1));

    // A PNG saved under a .jpg name decodes by its content.
    let lying = dir.path().join("really-a-png.jpg");
    std::fs::copy(&pgrey, &lying).unwrap();
    assert_eq!(load_rgb(&lying).unwrap().get_pixel(0, 0).0, [77, 77, 77]);
}
