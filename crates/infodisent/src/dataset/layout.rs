//! Which layout a dataset folder is in, decided from the files it holds ([`detect`]): the official layouts
//! of CUB-200-2011, Stanford Cars, Stanford Dogs and ImageNet, a folder of IDX files, or an
//! ImageFolder tree (the fallback, which also reads the common re-packagings of those sets).

use super::{cars, cub, dogs, folder, idx, imagenet, Dataset, Layout, OpenOptions};
use crate::error::Result;
use std::path::Path;

/// The layout of the folder `root`: the first official layout whose marker files it holds,
/// else IDX files, else ImageFolder.
pub fn detect(root: &Path) -> Layout {
    if cub::find_root(root).is_some() {
        Layout::Cub
    } else if cars::is_cars(root) {
        Layout::Cars
    } else if dogs::is_dogs(root) {
        Layout::Dogs
    } else if imagenet::is_imagenet(root) {
        Layout::Imagenet
    } else if idx::is_idx_dir(root) {
        Layout::Idx
    } else {
        Layout::ImageFolder
    }
}

/// Reads the folder `root` (absolute) in this layout.
pub(super) fn open(layout: Layout, root: &Path, opts: &OpenOptions) -> Result<Dataset> {
    let mut dataset = match layout {
        Layout::ImageFolder => folder::open(root, opts)?,
        Layout::Idx => idx::open_dir(root)?,
        Layout::Cub => cub::open(root)?,
        Layout::Cars => cars::open(root)?,
        Layout::Dogs => dogs::open(root)?,
        Layout::Imagenet => imagenet::open(root)?,
    };
    dataset.layout = layout;
    Ok(dataset)
}
