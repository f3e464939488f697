//! Labelled image datasets: an ImageFolder tree ([`folder`]), IDX files ([`idx`]), the
//! official layouts of CUB-200-2011 ([`cub`]), Stanford Cars ([`cars`]), Stanford Dogs
//! ([`dogs`]) and ImageNet ([`imagenet`]), and the built-in `fashion-mnist`. A dataset is a
//! list of splits, each a list of samples that know how to load themselves, so extraction can
//! decode them in parallel; samples of annotated layouts carry their boxes and part locations.

pub mod cars;
pub mod class_order;
pub mod cub;
pub mod dogs;
pub mod folder;
pub mod idx;
pub mod imagenet;
pub mod layout;
pub(crate) mod mat;
mod store;
pub mod table;

pub use crate::annotation::{Annotation, PartPoint};
pub use crate::layout::Layout;
pub use store::ImageStore;

pub use crate::cache::HoldOut;
use crate::cache::Skipped;
use crate::error::{Error, Result};
use image::RgbImage;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The built-in dataset name that resolves to the Fashion-MNIST IDX files in the assets.
pub const FASHION_MNIST: &str = "fashion-mnist";

/// Share of each class held out as the test split of a folder that has none.
pub const DEFAULT_TEST_FRACTION: f64 = 0.2;

/// Options that decide how strictly a dataset is read, in which layout, and how a folder
/// without a test split is divided.
#[cfg_attr(feature = "clap", derive(clap::Args))]
#[derive(Debug, Clone, Copy)]
pub struct OpenOptions {
    /// Skip unreadable images and empty class folders (counted in the manifest) instead of
    /// stopping at the first one.
    #[cfg_attr(feature = "clap", arg(long))]
    pub skip_bad: bool,
    /// Share of each class held out as the `test` split when the folder has no `test/` or
    /// `val/` (`valid/`, `validation/`) folder, so nothing is measured on training images; 0
    /// keeps the folder as one split. Recorded in the cache and its fingerprint.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = DEFAULT_TEST_FRACTION))]
    pub test_fraction: f64,
    /// Seed of that held-out draw.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0))]
    pub split_seed: u64,
    /// The folder's layout (default: detected from the files it holds: CUB-200-2011's
    /// `images.txt`, Stanford Cars' and Dogs' `.mat` lists, ImageNet's ground-truth files, IDX
    /// files, else ImageFolder).
    #[cfg_attr(feature = "clap", arg(long, value_enum))]
    pub layout: Option<Layout>,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            skip_bad: false,
            test_fraction: DEFAULT_TEST_FRACTION,
            split_seed: 0,
            layout: None,
        }
    }
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
    /// Its boxes and part locations, where the dataset's layout records them.
    pub annotation: Option<Box<Annotation>>,
    source: Source,
}

impl Sample {
    /// A sample read from an image file.
    pub fn file(path: PathBuf, label: usize) -> Self {
        Sample {
            path: path.display().to_string(),
            label,
            annotation: None,
            source: Source::File(path),
        }
    }

    /// The sample with `annotation` attached.
    pub fn annotated(mut self, annotation: Annotation) -> Self {
        self.annotation = Some(Box::new(annotation));
        self
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

    /// Decodes the image and preprocesses it into `out`, naming the image in any error.
    pub fn preprocess_into(
        &self,
        preprocess: &crate::preprocess::Preprocess,
        out: &mut [f32],
    ) -> Result<()> {
        let img = self.load()?;
        preprocess.apply_into(&img, out).map_err(|e| match e {
            Error::Io { .. } | Error::Input { .. } => e,
            other => Error::input(&self.path, other.to_string()),
        })
    }

    /// What the dataset fingerprint records of the sample, under its root-relative `key`: the
    /// key and size for files (not the modification time nor the absolute root, so nodes that
    /// copy the data to local scratch agree); IDX content is covered by the split's file hashes.
    fn identity(&self, key: &str) -> String {
        match &self.source {
            Source::File(path) => match std::fs::metadata(path) {
                Ok(meta) => format!("{key}\t{}", meta.len()),
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

/// SHA-256 of each of `files`, for [`Split::source_hashes`].
pub(crate) fn hashes_of(files: &[PathBuf]) -> Result<Vec<String>> {
    files.iter().map(crate::fsutil::sha256_file).collect()
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
    /// How the `test` split was drawn, when the folder had none.
    pub held_out: Option<HoldOut>,
    /// The layout it was read in.
    pub layout: Layout,
    /// Names of the parts that samples' [`PartPoint`]s index (CUB's 15; empty elsewhere).
    pub part_names: Vec<String>,
}

impl Dataset {
    /// A dataset read from an official layout: its two splits as the annotation files give
    /// them, each recording `hashes` (of those files) so the fingerprint follows them.
    pub(crate) fn official(
        spec: &Path,
        root: PathBuf,
        layout: Layout,
        classes: Vec<String>,
        splits: [(&str, Vec<Sample>); 2],
        hashes: Vec<String>,
    ) -> Dataset {
        let splits = splits.map(|(name, samples)| Split {
            name: name.to_owned(),
            samples,
            skipped: vec![],
            source_hashes: hashes.clone(),
        });
        Dataset {
            spec: spec.display().to_string(),
            root: Some(root),
            classes,
            splits: splits.into(),
            held_out: None,
            layout,
            part_names: vec![],
        }
    }

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
                "a dataset must be a folder (ImageFolder, IDX files, or the official layout of CUB-200-2011, Stanford Cars, Stanford Dogs or ImageNet)",
            ));
        }
        // Sample paths are absolute, so nothing later depends on the working directory.
        let path = &path.canonicalize().map_err(|e| Error::io(path, e))?;
        let layout = opts.layout.unwrap_or_else(|| layout::detect(path));
        let mut dataset = layout::open(layout, path, opts)?;
        dataset.hold_out_test(opts.test_fraction, opts.split_seed)?;
        Ok(dataset)
    }

    /// Divides a dataset without a `test` or `val` split: of each class of its `train` split
    /// (or its only split), `fraction` of the images, drawn with `seed`, become the `test`
    /// split, so nothing is measured on images a head was trained on. Each class keeps at
    /// least one training image; the order within each split is the original one. A dataset
    /// too small to give any image is left as it is.
    pub fn hold_out_test(&mut self, fraction: f64, seed: u64) -> Result<()> {
        if !(0.0..1.0).contains(&fraction) {
            return Err(Error::Config(format!(
                "the test fraction {fraction} must be at least 0 and below 1"
            )));
        }
        let has_test = self
            .splits
            .iter()
            .any(|s| s.name == "test" || s.name == "val");
        let source = match &self.splits[..] {
            [_] => Some(0),
            _ => self.splits.iter().position(|s| s.name == "train"),
        };
        let Some(source) = source.filter(|_| fraction > 0.0 && !has_test) else {
            return Ok(());
        };
        let split = &mut self.splits[source];
        let mut by_class: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
        for (i, s) in split.samples.iter().enumerate() {
            by_class.entry(s.label).or_default().push(i);
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut is_test = vec![false; split.samples.len()];
        for members in by_class.values_mut() {
            let n = members.len();
            let take = ((n as f64 * fraction).round() as usize).min(n.saturating_sub(1));
            members.shuffle(&mut rng);
            for &i in &members[..take] {
                is_test[i] = true;
            }
        }
        if !is_test.contains(&true) {
            return Ok(());
        }
        let (test, train): (Vec<_>, Vec<_>) = std::mem::take(&mut split.samples)
            .into_iter()
            .zip(&is_test)
            .partition(|(_, &t)| t);
        split.name = "train".to_owned();
        split.samples = train.into_iter().map(|(s, _)| s).collect();
        let test = Split {
            name: "test".to_owned(),
            samples: test.into_iter().map(|(s, _)| s).collect(),
            skipped: vec![],
            source_hashes: split.source_hashes.clone(),
        };
        self.splits.insert(source + 1, test);
        self.held_out = Some(HoldOut { fraction, seed });
        Ok(())
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
        if let Some(HoldOut { fraction, seed }) = self.held_out {
            h.update(format!("held out {fraction} seed {seed}\n").as_bytes());
        }
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

/// What the layout readers' tests share: small images, opening a folder as a user would
/// (layout detected), and reading what came back.
#[cfg(test)]
pub(crate) mod testing {
    use super::{Dataset, OpenOptions, Sample};
    use crate::error::Result;
    use std::path::Path;

    /// Writes a small black JPEG at `path`, creating its folder.
    pub fn jpeg(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        image::RgbImage::new(8, 6).save(path).unwrap();
    }

    /// Opens `root` with the default options: its layout is detected.
    pub fn open(root: &Path) -> Result<Dataset> {
        Dataset::open_with(root.to_str().unwrap(), &OpenOptions::default())
    }

    /// The object boxes of a sample (none when it has no annotation).
    pub fn boxes(s: &Sample) -> Vec<[u32; 4]> {
        s.annotation
            .as_ref()
            .map(|a| a.boxes.clone())
            .unwrap_or_default()
    }

    /// The error opening `root` gives, printed so a failing test shows it.
    pub fn error_of(root: &Path) -> String {
        let e = open(root).unwrap_err().to_string();
        println!("{e}");
        e
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

    fn dataset_of(splits: Vec<Split>) -> Dataset {
        Dataset {
            spec: "test".into(),
            root: None,
            classes: vec!["a".into(), "b".into(), "c".into()],
            splits,
            held_out: None,
            layout: Layout::default(),
            part_names: vec![],
        }
    }

    #[test]
    fn a_held_out_test_split_is_stratified_seeded_and_disjoint() {
        // A class-sorted folder: 10, 5 and 1 images.
        let labels: Vec<usize> = [vec![0; 10], vec![1; 5], vec![2; 1]].concat();
        let mut one = split_of(&labels);
        one.name = "all".into();
        let mut ds = dataset_of(vec![one]);
        ds.hold_out_test(0.2, 7).unwrap();
        let names: Vec<_> = ds.splits.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["train", "test"]);
        let (train, test) = (&ds.splits[0], &ds.splits[1]);
        // 20 % of each class, rounded, and the single image of class c stays in training.
        assert_eq!(test.class_counts(3), [2, 1, 0]);
        assert_eq!(train.class_counts(3), [8, 4, 1]);
        let (a, b) = (paths(train), paths(test));
        assert!(a.iter().all(|p| !b.contains(p)), "train and test overlap");
        let number = |p: &&str| p.trim_end_matches(".png").parse::<usize>().unwrap();
        assert!(
            a.windows(2).all(|w| number(&w[0]) < number(&w[1])),
            "order kept"
        );
        assert_eq!(
            ds.held_out,
            Some(HoldOut {
                fraction: 0.2,
                seed: 7
            })
        );
        // The same seed draws the same images; other seeds draw others.
        let again = |seed| {
            let mut one = split_of(&labels);
            one.name = "all".into();
            let mut ds = dataset_of(vec![one]);
            ds.hold_out_test(0.2, seed).unwrap();
            paths(&ds.splits[1])
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(again(7), b);
        let draws: std::collections::HashSet<_> = (0..8).map(again).collect();
        assert!(draws.len() > 1, "every seed drew the same images");
    }

    #[test]
    fn a_dataset_with_a_test_or_val_split_is_left_alone() {
        let mut test = split_of(&[0, 1]);
        test.name = "val".into();
        let mut ds = dataset_of(vec![split_of(&[0, 0, 1, 1]), test]);
        ds.hold_out_test(0.5, 0).unwrap();
        assert_eq!(ds.splits[0].samples.len(), 4);
        assert!(ds.held_out.is_none());
        assert!(ds.hold_out_test(1.0, 0).is_err());
    }
}
