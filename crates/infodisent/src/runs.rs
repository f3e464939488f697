//! What a run folder holds, named once: the files `train`, `mi train`, `metrics`, `report` and
//! `explain` write and read, and loading a trained head or probe from a folder or a file.

use crate::classifier::LinearClassifier;
use crate::error::{Error, Result};
use crate::head::params::HeadParams;
use crate::head::{HeadKind, TrainedHead};
use std::path::{Path, PathBuf};

/// A trained InfoDisent head (`U`, `W ≥ 0`, `b`).
pub const HEAD_FILE: &str = "head.safetensors";
/// A trained linear probe.
pub const PROBE_FILE: &str = "linear.safetensors";
/// A classifier stored beside features (cache) or MI masks (mi run).
pub const CLASSIFIER_FILE: &str = "classifier.safetensors";
/// Parameters, optimiser state and progress of an unfinished run.
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
/// The settings a run was made with.
pub const CONFIG_FILE: &str = "config.json";
/// One JSON line per finished epoch.
pub const METRICS_LOG: &str = "metrics.jsonl";
/// What a finished run reports.
pub const SUMMARY_FILE: &str = "summary.json";
/// The paper's metrics of a head (`infodisent metrics`, the demo).
pub const METRICS_FILE: &str = "metrics.json";
/// Accuracy reports of the demo's heads.
pub const EVAL_FILE: &str = "eval.json";
/// Prototypes of a head's channels.
pub const PROTOTYPES_FILE: &str = "prototypes.json";
/// Where the run's feature cache is ([`record_cache`]).
pub const CACHE_LINK_FILE: &str = "cache.json";
/// Mask and critic of a finished MI run.
pub const MI_FILE: &str = "mi.safetensors";
/// The MI run's reference representations.
pub const REFERENCE_FILE: &str = "reference.safetensors";

/// `path` itself when it is a file, else `file` inside it.
pub fn file_in(path: &Path, file: &str) -> PathBuf {
    if path.is_dir() {
        path.join(file)
    } else {
        path.to_path_buf()
    }
}

/// The run folder of `path`: the folder itself, or the folder holding the file.
pub fn folder_of(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.to_path_buf()
    } else {
        path.parent().map(Path::to_path_buf).unwrap_or_default()
    }
}

/// The final file of a head of `kind` in training folder `dir`.
pub fn head_file(dir: &Path, kind: HeadKind) -> PathBuf {
    dir.join(match kind {
        HeadKind::InfoDisent => HEAD_FILE,
        HeadKind::LinearProbe => PROBE_FILE,
    })
}

/// The kind of head a training folder holds, judged by its final file.
pub fn head_kind_in(dir: &Path) -> Option<HeadKind> {
    [HeadKind::InfoDisent, HeadKind::LinearProbe]
        .into_iter()
        .find(|&k| head_file(dir, k).exists())
}

/// [`file_in`], which must exist; `missing` says how to make it.
fn existing(path: &Path, file: &str, missing: &str) -> Result<PathBuf> {
    let file = file_in(path, file);
    if file.exists() {
        Ok(file)
    } else {
        Err(Error::input(&file, missing))
    }
}

/// Loads an InfoDisent head from a training folder (its `head.safetensors`) or a file.
pub fn load_head(path: impl AsRef<Path>) -> Result<HeadParams> {
    HeadParams::load(existing(
        path.as_ref(),
        HEAD_FILE,
        "no trained head here (run `infodisent train`)",
    )?)
}

/// Loads a linear probe from a training folder (its `linear.safetensors`) or a file.
pub fn load_probe(path: impl AsRef<Path>) -> Result<LinearClassifier> {
    LinearClassifier::load(existing(
        path.as_ref(),
        PROBE_FILE,
        "no linear probe here (run `infodisent train --kind linear-probe`)",
    )?)
}

/// Loads whichever head a training folder holds, or a head or probe file (by its name).
pub fn load_trained(path: impl AsRef<Path>) -> Result<TrainedHead> {
    let path = path.as_ref();
    let kind = if path.is_dir() {
        head_kind_in(path).ok_or_else(|| {
            Error::input(
                path,
                format!("holds neither {HEAD_FILE} nor {PROBE_FILE} (run `infodisent train`)"),
            )
        })?
    } else if path.file_name().is_some_and(|n| n == PROBE_FILE) {
        HeadKind::LinearProbe
    } else {
        HeadKind::InfoDisent
    };
    Ok(match kind {
        HeadKind::InfoDisent => TrainedHead::InfoDisent(load_head(path)?),
        HeadKind::LinearProbe => TrainedHead::Linear(load_probe(path)?),
    })
}

/// What a run folder records of its cache.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CacheLink {
    /// The cache folder, relative to the run folder when that is shorter, else absolute.
    pub cache: String,
    /// The cache's fingerprint when the run was made.
    pub fingerprint: String,
}

/// Records in run folder `run` where the cache in `cache_dir` (with `fingerprint`) is, so the
/// run folder alone finds its cache (and, through the cache, its model).
pub fn record_cache(run: &Path, cache_dir: &Path, fingerprint: &str) -> Result<()> {
    let link = CacheLink {
        cache: crate::fsutil::path_from(run, cache_dir)?,
        fingerprint: fingerprint.to_owned(),
    };
    crate::fsutil::write_json_atomic(run.join(CACHE_LINK_FILE), &link)
}

/// The cache folder given, else the one run folder `run` records.
pub fn cache_of(given: Option<&Path>, run: &Path) -> Result<PathBuf> {
    match given {
        Some(cache) => Ok(cache.to_path_buf()),
        None => recorded_cache(run),
    }
}

/// The cache a run folder (or a file in one) records, resolved against the folder.
pub fn recorded_cache(run: &Path) -> Result<PathBuf> {
    let folder = folder_of(run);
    let file = folder.join(CACHE_LINK_FILE);
    if !file.is_file() {
        return Err(Error::input(
            &folder,
            "records no cache (made before runs recorded it, or not a run folder): pass --cache",
        ));
    }
    let link: CacheLink = crate::fsutil::read_json(&file)?;
    let cache = folder.join(&link.cache);
    if !cache.is_dir() {
        return Err(Error::input(
            &cache,
            format!(
                "the cache recorded by {} is no longer there: pass --cache",
                file.display()
            ),
        ));
    }
    Ok(cache)
}

/// A file stem for an explanation that is unique within one run: the image's stem, prefixed
/// by its position.
pub fn output_stem(position: usize, source: &str) -> String {
    let stem = Path::new(source.split('#').next().unwrap_or(source))
        .file_stem()
        .map_or_else(|| "image".to_owned(), |s| s.to_string_lossy().into_owned());
    let clean: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{position:04}_{clean}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_are_positioned_and_file_safe() {
        assert_eq!(output_stem(3, "/data/a b/cat (1).jpg"), "0003_cat__1_");
        assert_eq!(output_stem(12, "train-images.idx#5"), "0012_train-images");
    }

    #[test]
    fn a_recorded_cache_is_found_from_the_run_folder_after_both_move() {
        let root = tempfile::tempdir().unwrap();
        let (run, cache) = (root.path().join("runs/head"), root.path().join("cache"));
        std::fs::create_dir_all(&run).unwrap();
        std::fs::create_dir_all(&cache).unwrap();
        let link = CacheLink {
            cache: crate::fsutil::path_from(&run, &cache).unwrap(),
            fingerprint: "f".into(),
        };
        assert_eq!(link.cache, "../../cache");
        crate::fsutil::write_json_atomic(run.join(CACHE_LINK_FILE), &link).unwrap();
        let moved = tempfile::tempdir().unwrap();
        std::fs::rename(root.path().join("runs"), moved.path().join("runs")).unwrap();
        std::fs::rename(&cache, moved.path().join("cache")).unwrap();
        let head = moved.path().join("runs/head/head.safetensors");
        assert_eq!(
            recorded_cache(&head).unwrap().canonicalize().unwrap(),
            moved.path().join("cache").canonicalize().unwrap()
        );
        let lone = tempfile::tempdir().unwrap();
        let e = recorded_cache(lone.path()).unwrap_err().to_string();
        assert!(e.contains("--cache"), "{e}");
    }

    #[test]
    fn a_folder_without_a_head_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(head_kind_in(dir.path()), None);
        let e = load_trained(dir.path()).unwrap_err().to_string();
        assert!(e.contains(HEAD_FILE) && e.contains(PROBE_FILE), "{e}");
    }
}
