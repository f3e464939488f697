//! Where the assets live: the built-in backbones' weights and class names (downloaded on first
//! use, see [`fetch`]), Fashion-MNIST, and the photos and exports the tests use.

pub mod fetch;

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// The environment variable that overrides the asset folder.
pub const ASSETS_ENV: &str = "INFODISENT_ASSETS";

/// How to get the assets the library does not download itself (the tests' photos and exports).
const HOW_TO_FETCH: &str = "run `scripts/fetch-assets.sh` in the repository";

/// The asset folder: `$INFODISENT_ASSETS`, else the first `.assets` found walking up from the
/// current directory, then from the executable (so a binary built inside the repository uses
/// the repository's), else the user's cache folder (created when the first download needs it).
pub fn assets_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os(ASSETS_ENV) {
        return Ok(PathBuf::from(dir));
    }
    let starts = [std::env::current_dir().ok(), std::env::current_exe().ok()];
    for start in starts.into_iter().flatten() {
        for dir in start.ancestors() {
            let candidate = dir.join(".assets");
            if candidate.is_dir() {
                return Ok(candidate);
            }
        }
    }
    user_assets_dir().ok_or_else(|| {
        Error::Config(format!(
            "no asset folder: neither {ASSETS_ENV}, XDG_CACHE_HOME nor HOME is set"
        ))
    })
}

/// `$XDG_CACHE_HOME/infodisent/assets`, else `~/.cache/infodisent/assets`.
fn user_assets_dir() -> Option<PathBuf> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(cache.join("infodisent").join("assets"))
}

/// A file or folder inside the asset folder, downloaded first when it is a pinned one that is
/// missing; an error that says how to fetch it otherwise.
pub fn asset(rel: impl AsRef<Path>) -> Result<PathBuf> {
    let dir = assets_dir()?;
    fetch::ensure(&dir, rel.as_ref())?;
    let path = dir.join(rel.as_ref());
    if path.exists() {
        Ok(path)
    } else {
        Err(Error::input(
            &path,
            format!("asset missing: {HOW_TO_FETCH}"),
        ))
    }
}

/// The ImageNet class names when a classifier has `classes` outputs, ImageNet's count; `None`
/// otherwise (or when they cannot be had), so that other classifiers never fetch them.
pub fn imagenet_labels_for(classes: usize) -> Option<Vec<String>> {
    const IMAGENET_CLASSES: usize = 1000;
    (classes == IMAGENET_CLASSES)
        .then(|| imagenet_labels().ok())
        .flatten()
}

/// The 1000 ImageNet class names in the standard (sorted wnid) order.
pub fn imagenet_labels() -> Result<Vec<String>> {
    let path = asset("imagenet/labels.txt")?;
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    Ok(text.lines().map(str::to_owned).collect())
}
