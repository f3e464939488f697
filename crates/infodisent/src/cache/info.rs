//! What a cache holds and what it still lacks, part by part, and a digest of its content.

use super::plan::{shard_file, Part};
use super::shard::digest_file;
use super::FeatureCache;
use crate::error::{Error, Result};
use crate::fsutil::sha256_bytes;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// One part's progress within a split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartInfo {
    /// Which part.
    pub part: Part,
    /// Shards it owns.
    pub shards: usize,
    /// Of those, finished.
    pub shards_done: usize,
    /// Images in its finished shards.
    pub items_done: usize,
}

/// One split's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitReport {
    /// Split name.
    pub name: String,
    /// Images listed for it.
    pub listed: usize,
    /// Images in finished shards.
    pub items_done: usize,
    /// Images found unreadable so far.
    pub skipped: usize,
    /// Shards it has.
    pub shards: usize,
    /// Shards finished.
    pub shards_done: usize,
    /// Every part's progress.
    pub parts: Vec<PartInfo>,
    /// Parts with shards still missing.
    pub missing_parts: Vec<Part>,
}

/// What `infodisent cache info` prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheInfo {
    /// The cache folder.
    pub cache: PathBuf,
    /// Format version.
    pub version: u32,
    /// Fingerprint of model, preprocessing and dataset.
    pub fingerprint: String,
    /// Model name.
    pub model: String,
    /// Feature map shape [D, h, w].
    pub feature_shape: [usize; 3],
    /// Whether every split is complete.
    pub complete: bool,
    /// Splits by name.
    pub splits: Vec<SplitReport>,
    /// SHA-256 over every split's listed items and its shards' indices, labels, stored
    /// features and logits, in item order: equal for caches holding the same bits, however
    /// many tasks made them. `None` while incomplete.
    pub content_digest: Option<String>,
    /// Whether every shard file was read again and found to hold what its part recorded
    /// (`false`: the recorded digests were used).
    pub verified: bool,
}

impl FeatureCache {
    /// The cache's progress per split and part and, once complete, its content digest. With
    /// `verify`, every shard file is read and checked against the digest recorded when it was
    /// written (a version 1 cache, which recorded none, is always read).
    pub fn info(&self, verify: bool) -> Result<CacheInfo> {
        let m = self.manifest();
        let mut splits = Vec::new();
        let mut content = String::new();
        for (name, info) in &m.splits {
            let split_dir = self.dir().join(name);
            let state = self.states.get(name);
            let parts = Part::all(info.parts)
                .map(|p| {
                    let owned = p.shards(info.num_shards());
                    PartInfo {
                        part: p,
                        shards: owned.len(),
                        shards_done: owned
                            .clone()
                            .filter(|&s| info.shard_rows[s].is_some())
                            .count(),
                        items_done: owned.map(|s| info.shard_len(s)).sum(),
                    }
                })
                .collect();
            splits.push(SplitReport {
                name: name.clone(),
                listed: info.num_items + info.skipped_items.len(),
                items_done: (0..info.num_shards()).map(|s| info.shard_len(s)).sum(),
                skipped: info.skipped.len(),
                shards: info.num_shards(),
                shards_done: info.shards_done(),
                parts,
                missing_parts: info.missing_parts(),
            });
            if !info.is_complete() {
                continue;
            }
            let items = split_dir.join("items.json");
            let items_sha256 = match state {
                Some(s) => s.plan.items_sha256.clone(),
                None => sha256_bytes(&std::fs::read(&items).map_err(|e| Error::io(&items, e))?),
            };
            content.push_str(&format!("split {name}\n{items_sha256}\n"));
            for s in 0..info.num_shards() {
                let path = split_dir.join(shard_file(s));
                let recorded = state.map(|st| st.done[&s].digest.clone());
                let digest = match (&recorded, verify) {
                    (Some(d), false) => d.clone(),
                    _ => digest_file(&path)?,
                };
                if recorded.as_ref().is_some_and(|r| *r != digest) {
                    return Err(Error::cache(
                        &path,
                        "holds other content than its part recorded when writing it: the file changed since; extract that part again",
                    ));
                }
                content.push_str(&digest);
                content.push('\n');
            }
        }
        let complete = splits.iter().all(|s| s.missing_parts.is_empty());
        Ok(CacheInfo {
            cache: self.dir().to_path_buf(),
            version: m.version,
            fingerprint: m.fingerprint.clone(),
            model: m.model.clone(),
            feature_shape: m.feature_shape,
            complete,
            splits,
            content_digest: complete.then(|| sha256_bytes(content.as_bytes())),
            verified: verify || m.version == 1,
        })
    }
}
