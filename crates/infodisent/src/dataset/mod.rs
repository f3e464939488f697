//! Labelled image datasets: an ImageFolder tree ([`folder`]), IDX files ([`idx`]) and the
//! built-in `fashion-mnist`. A dataset is a list of splits, each a list of samples that know
//! how to load themselves, so extraction can decode them in parallel.

pub mod folder;
pub mod idx;
mod store;

pub use store::ImageStore;

use crate::cache::Skipped;
use crate::error::{Error, Result};
use image::RgbImage;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The built-in dataset name that resolves to the Fashion-MNIST IDX files in the assets.
pub const FASHION_MNIST: &str = "fashion-mnist";

/// Options that decide how strictly a dataset is read.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenOptions {
    /// Record unusable parts (empty class folders) as skipped instead of failing.
    pub skip_bad: bool,
}

/// Where a sample's pixels come from.
#[derive(Debug, Clone)]
enum Source {
    /// An image file.
    File(PathBuf),
    /// Image `index` of an IDX file held in memory.
    Idx {
        images: Arc<idx::IdxImages>,
        index: usize,
    },
}

/// One labelled image of a split.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Where the image came from: a file path, or `<idx file>#<index>`.
    pub path: String,
    /// Class index into [`Dataset::classes`].
    pub label: usize,
    source: Source,
}

impl Sample {
    /// A sample read from an image file.
    pub fn file(path: PathBuf, label: usize) -> Self {
        Sample {
            path: path.display().to_string(),
            label,
            source: Source::File(path),
        }
    }

    /// The image file, when the sample is one (IDX samples are records inside a file).
    pub fn file_path(&self) -> Option<&Path> {
        match &self.source {
            Source::File(path) => Some(path),
            Source::Idx { .. } => None,
        }
    }

    /// Decodes the image as 8-bit RGB (grey IDX images are replicated to three channels).
    pub fn load(&self) -> Result<RgbImage> {
        match &self.source {
            Source::File(path) => crate::imageio::load_rgb(path),
            Source::Idx { images, index } => images.rgb(*index),
        }
    }

    /// What identifies this sample's content in a cache fingerprint: the path plus size and
    /// modification time for files (IDX content is covered by the split's file hashes).
    /// What the dataset fingerprint records of the sample, under its root-relative `key`.
    fn identity(&self, key: &str) -> String {
        match &self.source {
            Source::File(path) => match std::fs::metadata(path) {
                Ok(meta) => {
                    let mtime = meta
                        .modified()
                        .ok()
                        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                        .map_or(0, |d| d.as_nanos());
                    format!("{key}\t{}\t{mtime}", meta.len())
                }
                Err(_) => format!("{key}\tunreadable"),
            },
            Source::Idx { .. } => key.to_owned(),
        }
    }
}

/// A named part of a dataset (`train`, `test`, or `all` for a folder without splits).
#[derive(Debug, Clone)]
pub struct Split {
    /// Split name.
    pub name: String,
    /// Its samples in a fixed order.
    pub samples: Vec<Sample>,
    /// What was left out while reading it (with [`OpenOptions::skip_bad`]).
    pub skipped: Vec<Skipped>,
    /// SHA-256 of the files the samples are read from when they are not one file per sample.
    pub source_hashes: Vec<String>,
}

impl Split {
    /// Keeps a deterministic, class-balanced subset: at most `per_class` samples of each class
    /// (the first ones), then at most `total` samples taken round-robin over classes, in the
    /// original order.
    pub fn limit(&mut self, per_class: Option<usize>, total: Option<usize>) {
        let mut seen = std::collections::HashMap::new();
        let ranks: Vec<usize> = self
            .samples
            .iter()
            .map(|s| {
                let r = seen.entry(s.label).or_insert(0usize);
                *r += 1;
                *r - 1
            })
            .collect();
        let mut keep: Vec<usize> = (0..self.samples.len())
            .filter(|&i| per_class.is_none_or(|k| ranks[i] < k))
            .collect();
        if let Some(n) = total.filter(|&n| n < keep.len()) {
            keep.sort_by_key(|&i| (ranks[i], i));
            keep.truncate(n);
            keep.sort_unstable();
        }
        let mut keep_mask = vec![false; self.samples.len()];
        for i in keep {
            keep_mask[i] = true;
        }
        let mut i = 0;
        self.samples.retain(|_| {
            i += 1;
            keep_mask[i - 1]
        });
    }

    /// Number of samples per class index (length `classes`).
    pub fn class_counts(&self, classes: usize) -> Vec<usize> {
        let mut counts = vec![0; classes];
        for s in &self.samples {
            if let Some(c) = counts.get_mut(s.label) {
                *c += 1;
            }
        }
        counts
    }
}

/// A labelled dataset: class names and splits.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// What was opened: a folder path or a built-in name.
    pub spec: String,
    /// The dataset's folder (absolute): caches record image paths relative to it, so they
    /// work from any working directory and follow a dataset that moves.
    pub root: Option<PathBuf>,
    /// Class names, indexed by label.
    pub classes: Vec<String>,
    /// Splits in a fixed order.
    pub splits: Vec<Split>,
}

impl Dataset {
    /// Opens `fashion-mnist`, a folder of IDX files, or an ImageFolder tree, strictly.
    pub fn open(spec: &str) -> Result<Dataset> {
        Self::open_with(spec, &OpenOptions::default())
    }

    /// Opens a dataset with explicit options.
    pub fn open_with(spec: &str, opts: &OpenOptions) -> Result<Dataset> {
        if spec == FASHION_MNIST {
            return idx::fashion_mnist();
        }
        let path = Path::new(spec);
        if !path.exists() {
            return Err(Error::input(
                path,
                format!(
                    "no such dataset: neither a folder nor the built-in name `{FASHION_MNIST}`"
                ),
            ));
        }
        if !path.is_dir() {
            return Err(Error::input(
                path,
                "a dataset must be a folder (ImageFolder layout or IDX files)",
            ));
        }
        // Sample paths are absolute, so nothing later depends on the working directory.
        let path = &path.canonicalize().map_err(|e| Error::io(path, e))?;
        if idx::is_idx_dir(path) {
            return idx::open_dir(path);
        }
        folder::open(path, opts)
    }

    /// How a cache records `sample`: its path relative to the dataset root (the whole path
    /// when it lies elsewhere).
    pub fn key(&self, sample: &Sample) -> String {
        self.root
            .as_deref()
            .and_then(|root| Path::new(&sample.path).strip_prefix(root).ok())
            .map_or_else(|| sample.path.clone(), |rel| rel.display().to_string())
    }

    /// The split called `name`.
    pub fn split(&self, name: &str) -> Result<&Split> {
        self.splits.iter().find(|s| s.name == name).ok_or_else(|| {
            let have: Vec<_> = self.splits.iter().map(|s| s.name.as_str()).collect();
            Error::Config(format!(
                "dataset {} has no split `{name}` (have: {})",
                self.spec,
                have.join(", ")
            ))
        })
    }

    /// Applies [`Split::limit`] to every split.
    pub fn limit(&mut self, per_class: Option<usize>, total: Option<usize>) {
        for split in &mut self.splits {
            split.limit(per_class, total);
        }
    }

    /// Keeps only the named splits, in the given order.
    pub fn select_splits(&mut self, names: &[String]) -> Result<()> {
        let mut chosen = Vec::with_capacity(names.len());
        for name in names {
            chosen.push(self.split(name)?.clone());
        }
        self.splits = chosen;
        Ok(())
    }

    /// SHA-256 over the class names and every split's listing (paths, sizes, modification
    /// times, source file hashes): changes whenever the data a cache was made from changes.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        for class in &self.classes {
            h.update(class.as_bytes());
            h.update(b"\n");
        }
        for split in &self.splits {
            h.update(format!("split {}\n", split.name).as_bytes());
            for source in &split.source_hashes {
                h.update(format!("source {source}\n").as_bytes());
            }
            for sample in &split.samples {
                let identity = sample.identity(&self.key(sample));
                h.update(format!("{identity}\t{}\n", sample.label).as_bytes());
            }
        }
        hex::encode(h.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_of(labels: &[usize]) -> Split {
        let samples = labels
            .iter()
            .enumerate()
            .map(|(i, &l)| Sample::file(PathBuf::from(format!("{i}.png")), l))
            .collect();
        Split {
            name: "train".into(),
            samples,
            skipped: vec![],
            source_hashes: vec![],
        }
    }

    fn paths(s: &Split) -> Vec<&str> {
        s.samples.iter().map(|s| s.path.as_str()).collect()
    }

    #[test]
    fn limits_are_deterministic_and_balanced() {
        let mut s = split_of(&[0, 0, 0, 1, 1, 1, 2, 2, 2]);
        s.limit(Some(2), None);
        assert_eq!(
            paths(&s),
            ["0.png", "1.png", "3.png", "4.png", "6.png", "7.png"]
        );
        let mut s = split_of(&[0, 0, 0, 1, 1, 1, 2, 2, 2]);
        s.limit(None, Some(4));
        assert_eq!(paths(&s), ["0.png", "1.png", "3.png", "6.png"]);
        assert_eq!(s.class_counts(3), [2, 1, 1]);
    }
}
