//! The ImageFolder layout: one sub-folder per class, optionally under `train/`, `val/` and
//! `test/` split folders. Class names are the folder names, sorted; hidden entries are skipped;
//! images are found recursively by extension. A folder of images without class folders is one
//! class, [`UNLABELLED`]: what a head fitted to the original classifier (`--target original`)
//! explains.

use super::{Dataset, Layout, OpenOptions, Sample, Split};
use crate::cache::Skipped;
use crate::error::{Error, Result};
use image::ImageFormat;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Split folder names recognised at the top level, in the order splits are listed, with the
/// split each becomes: `valid/` and `validation/` are the `val` split (the held-out split
/// where there is no `test/`).
pub const SPLIT_NAMES: [(&str, &str); 5] = [
    ("train", "train"),
    ("val", "val"),
    ("valid", "val"),
    ("validation", "val"),
    ("test", "test"),
];

/// The split name used when the folder has no split sub-folders.
pub const SINGLE_SPLIT: &str = "all";

/// The class of images that sit in a split folder with no class folders.
pub const UNLABELLED: &str = "unlabelled";

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'))
}

/// The visible entries of a folder, sorted by name.
pub(super) fn list(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut paths = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        if !is_hidden(&path) {
            paths.push(path);
        }
    }
    paths.sort();
    Ok(paths)
}

pub(super) fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(ImageFormat::from_extension)
        .is_some()
}

/// Image files under `dir`, recursively, sorted; a broken link stays in the list so reading it
/// later fails with an error naming it. Returns the images and the count of ignored files.
fn images_under(dir: &Path) -> Result<(Vec<PathBuf>, usize)> {
    let mut images = Vec::new();
    let mut ignored = 0;
    for path in list(dir)? {
        if path.is_dir() {
            let (more, more_ignored) = images_under(&path)?;
            images.extend(more);
            ignored += more_ignored;
        } else if has_image_extension(&path) {
            images.push(path);
        } else {
            ignored += 1;
        }
    }
    Ok((images, ignored))
}

/// The class folders of a split folder.
fn class_dirs(split_dir: &Path) -> Result<Vec<PathBuf>> {
    Ok(list(split_dir)?
        .into_iter()
        .filter(|p| p.is_dir())
        .collect())
}

fn dir_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Opens an ImageFolder tree rooted at `root`.
pub fn open(root: &Path, opts: &OpenOptions) -> Result<Dataset> {
    let split_dirs: Vec<(String, PathBuf)> = {
        let mut named: Vec<(String, PathBuf)> = Vec::new();
        for (folder, split) in SPLIT_NAMES {
            let dir = root.join(folder);
            if !dir.is_dir() {
                continue;
            }
            if let Some((_, other)) = named.iter().find(|(name, _)| name == split) {
                return Err(Error::input(
                    &dir,
                    format!(
                        "both {} and {} are the `{split}` split: keep one",
                        other.display(),
                        dir.display()
                    ),
                ));
            }
            named.push((split.to_owned(), dir));
        }
        if named.is_empty() {
            vec![(SINGLE_SPLIT.to_owned(), root.to_path_buf())]
        } else {
            named
        }
    };

    // Pass 1: the images of every class folder, so the class list can leave out classes that
    // are empty everywhere (only possible with skip_bad; otherwise an empty folder is an error).
    let mut listed = Vec::new();
    let mut classes = BTreeSet::new();
    for (name, dir) in &split_dirs {
        let mut per_class = Vec::new();
        let mut skipped = Vec::new();
        let mut ignored = 0;
        let class_folders = class_dirs(dir)?;
        if class_folders.is_empty() {
            let (images, loose_ignored) = images_under(dir)?;
            ignored += loose_ignored;
            if !images.is_empty() {
                classes.insert(UNLABELLED.to_owned());
                per_class.push((UNLABELLED.to_owned(), images));
            }
        }
        for class_dir in class_folders {
            let (images, class_ignored) = images_under(&class_dir)?;
            ignored += class_ignored;
            if images.is_empty() {
                let reason = "empty class folder: it holds no image files".to_owned();
                if !opts.skip_bad {
                    return Err(Error::input(
                        &class_dir,
                        format!("{reason} (remove it, or pass --skip-bad to skip it)"),
                    ));
                }
                tracing::warn!("{}: {reason}; skipped", class_dir.display());
                skipped.push(Skipped {
                    path: class_dir.display().to_string(),
                    reason,
                });
                continue;
            }
            classes.insert(dir_name(&class_dir));
            per_class.push((dir_name(&class_dir), images));
        }
        if ignored > 0 {
            tracing::info!(
                "{}: ignored {ignored} files without an image extension",
                dir.display()
            );
        }
        listed.push((name.clone(), per_class, skipped));
    }
    if classes.is_empty() {
        return Err(Error::input(
            root,
            "no images found (expected <root>/[train|test/]<class>/<image>, or images directly in the folder)",
        ));
    }

    let classes: Vec<String> = classes.into_iter().collect();
    let splits = listed
        .into_iter()
        .map(|(name, per_class, skipped)| {
            let samples = per_class
                .into_iter()
                .flat_map(|(class, images)| {
                    let label = classes
                        .binary_search(&class)
                        .expect("class was collected above");
                    images.into_iter().map(move |p| Sample::file(p, label))
                })
                .collect();
            Split {
                name,
                samples,
                skipped,
                source_hashes: vec![],
            }
        })
        .collect();
    Ok(Dataset {
        spec: root.display().to_string(),
        root: Some(root.to_path_buf()),
        classes,
        splits,
        held_out: None,
        layout: Layout::default(),
        part_names: vec![],
    })
}
