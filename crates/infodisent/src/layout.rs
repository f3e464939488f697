//! The layouts a dataset folder can be in: named here, below the cache that records which one
//! a dataset was read in; recognised and read by [`crate::dataset`].

use crate::error::Result;
use serde::{Deserialize, Serialize};

/// A dataset layout.
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// `[train|val|test/]<class>/<image>`, or images directly in the folder.
    #[default]
    #[cfg_attr(feature = "clap", value(name = "imagefolder"))]
    ImageFolder,
    /// MNIST-style `*-images-idx3-ubyte[.gz]` with their `*-labels-idx1-ubyte[.gz]`.
    Idx,
    /// CUB-200-2011: `images.txt`, `image_class_labels.txt`, `train_test_split.txt`,
    /// `classes.txt`, `bounding_boxes.txt`, `parts/`.
    Cub,
    /// Stanford Cars: `cars_train/`, `cars_test/` and the devkit's annotation `.mat` files.
    Cars,
    /// Stanford Dogs: `Images/`, `Annotation/` and `lists/{train,test}_list.mat`.
    Dogs,
    /// ImageNet (ILSVRC-2012): `train/<wnid>/` and a flat `val/` with its ground-truth file.
    Imagenet,
}

impl Layout {
    /// Its name as `--layout` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Layout::ImageFolder => "imagefolder",
            Layout::Idx => "idx",
            Layout::Cub => "cub",
            Layout::Cars => "cars",
            Layout::Dogs => "dogs",
            Layout::Imagenet => "imagenet",
        }
    }
}

impl std::str::FromStr for Layout {
    type Err = crate::error::Error;

    fn from_str(name: &str) -> Result<Self> {
        ALL.into_iter().find(|l| l.name() == name).ok_or_else(|| {
            let names: Vec<_> = ALL.iter().map(|l| l.name()).collect();
            crate::error::Error::Config(format!(
                "unknown dataset layout `{name}` (one of: {})",
                names.join(", ")
            ))
        })
    }
}

/// Every layout.
const ALL: [Layout; 6] = [
    Layout::ImageFolder,
    Layout::Idx,
    Layout::Cub,
    Layout::Cars,
    Layout::Dogs,
    Layout::Imagenet,
];

impl std::fmt::Display for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
