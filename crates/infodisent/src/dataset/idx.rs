//! IDX files (the MNIST / Fashion-MNIST format), raw or gzip-compressed: a magic number naming
//! the element type and rank, big-endian dimensions, then the data.

use super::{Dataset, Layout, Sample, Source, Split};
use crate::error::{Error, Result};
use crate::fsutil::sha256_bytes;
use image::{GrayImage, RgbImage};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The Fashion-MNIST class names, indexed by label.
pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// IDX element type code for unsigned bytes.
const UBYTE: u8 = 0x08;

/// The grey images of one IDX file, kept in memory (Fashion-MNIST train is 47 MB).
#[derive(Debug)]
pub struct IdxImages {
    /// The file they were read from.
    pub path: PathBuf,
    /// Number of images.
    pub count: usize,
    /// Image height.
    pub rows: usize,
    /// Image width.
    pub cols: usize,
    /// `count × rows × cols` bytes.
    pixels: Vec<u8>,
}

impl IdxImages {
    /// Image `index` as RGB (grey replicated).
    pub fn rgb(&self, index: usize) -> Result<RgbImage> {
        let n = self.rows * self.cols;
        let bytes = self.pixels.get(index * n..(index + 1) * n).ok_or_else(|| {
            Error::input(
                &self.path,
                format!("no image {index} (file holds {})", self.count),
            )
        })?;
        let grey = GrayImage::from_raw(self.cols as u32, self.rows as u32, bytes.to_vec())
            .ok_or_else(|| Error::input(&self.path, "image buffer has the wrong length"))?;
        Ok(image::DynamicImage::ImageLuma8(grey).to_rgb8())
    }
}

/// Reads a whole file, gunzipping it when it starts with the gzip magic; returns the raw file
/// bytes' SHA-256 too.
fn read_maybe_gz(path: &Path) -> Result<(Vec<u8>, String)> {
    let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let hash = sha256_bytes(&raw);
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| Error::input(path, format!("corrupt gzip data: {e}")))?;
        Ok((out, hash))
    } else {
        Ok((raw, hash))
    }
}

/// Parses an IDX header of unsigned bytes with `rank` dimensions; returns the dimensions and
/// the data, checking that the data length matches them exactly.
fn parse(path: &Path, bytes: &[u8], rank: u8) -> Result<(Vec<usize>, Vec<u8>)> {
    let magic = bytes.get(..4).ok_or_else(|| {
        Error::input(
            path,
            format!("too short for an IDX file ({} bytes)", bytes.len()),
        )
    })?;
    if magic[0] != 0 || magic[1] != 0 || magic[2] != UBYTE || magic[3] != rank {
        return Err(Error::input(
            path,
            format!(
                "bad IDX magic {:02x}{:02x}{:02x}{:02x}: expected 000008{rank:02x} (unsigned bytes, {rank} dimensions)",
                magic[0], magic[1], magic[2], magic[3]
            ),
        ));
    }
    let header_len = 4 + 4 * usize::from(rank);
    if bytes.len() < header_len {
        return Err(Error::input(
            path,
            format!("too short for an IDX header ({} bytes)", bytes.len()),
        ));
    }
    let dims: Vec<usize> = bytes[4..header_len]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let expected = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    let data = &bytes[header_len..];
    if expected != Some(data.len()) {
        return Err(Error::input(
            path,
            format!(
                "header says dimensions {dims:?} but the file holds {} data bytes",
                data.len()
            ),
        ));
    }
    Ok((dims, data.to_vec()))
}

/// Reads an images file (magic `0x00000803`: count × rows × cols).
pub fn read_images(path: &Path) -> Result<(IdxImages, String)> {
    let (bytes, hash) = read_maybe_gz(path)?;
    let (dims, pixels) = parse(path, &bytes, 3)?;
    if dims[1] == 0 || dims[2] == 0 {
        return Err(Error::input(
            path,
            format!("images have no pixels ({}×{})", dims[1], dims[2]),
        ));
    }
    Ok((
        IdxImages {
            path: path.to_path_buf(),
            count: dims[0],
            rows: dims[1],
            cols: dims[2],
            pixels,
        },
        hash,
    ))
}

/// Reads a labels file (magic `0x00000801`: one byte per image).
pub fn read_labels(path: &Path) -> Result<(Vec<u8>, String)> {
    let (bytes, hash) = read_maybe_gz(path)?;
    let (_, labels) = parse(path, &bytes, 1)?;
    Ok((labels, hash))
}

/// One split from an images file and its labels file; labels must be below `num_classes`.
fn split(name: &str, images_path: &Path, labels_path: &Path, num_classes: usize) -> Result<Split> {
    let (images, images_hash) = read_images(images_path)?;
    let (labels, labels_hash) = read_labels(labels_path)?;
    if labels.len() != images.count {
        return Err(Error::input(
            labels_path,
            format!(
                "holds {} labels but {} holds {} images",
                labels.len(),
                images_path.display(),
                images.count
            ),
        ));
    }
    if let Some((i, &bad)) = labels
        .iter()
        .enumerate()
        .find(|(_, &l)| usize::from(l) >= num_classes)
    {
        return Err(Error::input(
            labels_path,
            format!("label {bad} of image {i} is not below the {num_classes} classes"),
        ));
    }
    let images = Arc::new(images);
    let file = images_path.display().to_string();
    let samples = labels
        .iter()
        .enumerate()
        .map(|(index, &label)| Sample {
            path: format!("{file}#{index}"),
            label: usize::from(label),
            annotation: None,
            source: Source::Idx {
                images: Arc::clone(&images),
                index,
            },
        })
        .collect();
    Ok(Split {
        name: name.to_owned(),
        samples,
        skipped: vec![],
        source_hashes: vec![images_hash, labels_hash],
    })
}

/// The file `stem` in `dir`, compressed (`stem.gz`) or raw.
fn find(dir: &Path, stem: &str) -> Option<PathBuf> {
    [format!("{stem}.gz"), stem.to_owned()]
        .into_iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
}

/// Whether `dir` holds MNIST-style IDX files (`train-images-idx3-ubyte[.gz]` or `t10k-…`).
pub fn is_idx_dir(dir: &Path) -> bool {
    find(dir, "train-images-idx3-ubyte").is_some() || find(dir, "t10k-images-idx3-ubyte").is_some()
}

/// Reads the `train` (`train-*`) and `test` (`t10k-*`) splits found in `dir`.
fn read_dir_splits(dir: &Path, num_classes: usize) -> Result<Vec<Split>> {
    let mut splits = Vec::new();
    for (name, prefix) in [("train", "train"), ("test", "t10k")] {
        let images = find(dir, &format!("{prefix}-images-idx3-ubyte"));
        let labels = find(dir, &format!("{prefix}-labels-idx1-ubyte"));
        match (images, labels) {
            (Some(i), Some(l)) => splits.push(split(name, &i, &l, num_classes)?),
            (Some(i), None) => {
                return Err(Error::input(
                    i,
                    format!("no matching {prefix}-labels-idx1-ubyte[.gz] beside it"),
                ))
            }
            (None, Some(l)) => {
                return Err(Error::input(
                    l,
                    format!("no matching {prefix}-images-idx3-ubyte[.gz] beside it"),
                ))
            }
            (None, None) => {}
        }
    }
    Ok(splits)
}

/// The built-in Fashion-MNIST: 60,000 train and 10,000 test images from the assets.
pub fn fashion_mnist() -> Result<Dataset> {
    let dir = crate::assets::asset("fashion-mnist")?;
    let splits = read_dir_splits(&dir, FASHION_MNIST_CLASSES.len())?;
    if splits.len() != 2 {
        return Err(Error::input(
            &dir,
            "Fashion-MNIST files missing: run `scripts/fetch-assets.sh`",
        ));
    }
    Ok(Dataset {
        spec: super::FASHION_MNIST.to_owned(),
        root: dir.canonicalize().ok(),
        classes: FASHION_MNIST_CLASSES.map(str::to_owned).to_vec(),
        splits,
        held_out: None,
        layout: Layout::Idx,
        part_names: vec![],
    })
}

/// A folder of MNIST-style IDX files; classes are named by their digit (`0`…`9`).
pub fn open_dir(dir: &Path) -> Result<Dataset> {
    let splits = read_dir_splits(dir, 256)?;
    let num_classes = splits
        .iter()
        .flat_map(|s| s.samples.iter().map(|x| x.label + 1))
        .max()
        .unwrap_or(0);
    Ok(Dataset {
        spec: dir.display().to_string(),
        root: Some(dir.to_path_buf()),
        classes: (0..num_classes).map(|c| c.to_string()).collect(),
        splits,
        held_out: None,
        layout: Layout::Idx,
        part_names: vec![],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx_bytes(rank: u8, dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut b = vec![0, 0, UBYTE, rank];
        for d in dims {
            b.extend_from_slice(&d.to_be_bytes());
        }
        b.extend_from_slice(data);
        b
    }

    #[test]
    fn header_checks_name_the_problem() {
        let p = Path::new("x-images-idx3-ubyte");
        let good = idx_bytes(3, &[2, 1, 2], &[1, 2, 3, 4]);
        let (dims, data) = parse(p, &good, 3).unwrap();
        assert_eq!((dims, data), (vec![2, 1, 2], vec![1, 2, 3, 4]));
        let e = parse(p, &idx_bytes(3, &[3, 1, 2], &[1, 2, 3, 4]), 3)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("x-images-idx3-ubyte") && e.contains("4 data bytes"),
            "{e}"
        );
        let e = parse(p, &good, 1).unwrap_err().to_string();
        assert!(e.contains("bad IDX magic"), "{e}");
        assert!(parse(p, &[0, 0], 3).is_err());
    }
}
