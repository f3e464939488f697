//! A split's plan and its parts' progress: how many writers share one cache folder.
//!
//! The plan (`<split>/plan.json` and `<split>/items.json`) fixes the items, the shard layout
//! and the number of parts before any shard is written; its bytes depend only on those
//! inputs, so every task of a cluster job writes the same bytes or finds them already there.
//! Part `i` of `N` owns a contiguous run of whole shards and records what it finished in its
//! own file, `<split>/part-iiiii-of-nnnnn.json`: no two writers ever share a file, and
//! completeness is read from the files present, never from a shared counter.

use super::{Item, Skipped, SplitInfo};
use crate::error::{Error, Result};
use crate::fsutil::{read_json, sha256_bytes, write_atomic};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One of `count` disjoint parts of a cache's work, made of whole shard files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    /// Which part, from 0.
    pub index: usize,
    /// How many parts there are.
    pub count: usize,
}

impl Part {
    /// The whole work as one part.
    pub const WHOLE: Part = Part { index: 0, count: 1 };

    /// Part `index` of `count`, checked.
    pub fn new(index: usize, count: usize) -> Result<Self> {
        if count == 0 || index >= count {
            return Err(Error::Config(format!(
                "part {index}/{count}: the index must be below the count, which must be positive"
            )));
        }
        Ok(Part { index, count })
    }

    /// Parses `I/N` (part I of N, from 0).
    pub fn parse(spec: &str) -> Result<Self> {
        let bad = || Error::Config(format!("--part {spec}: expected I/N (e.g. 0/4) or auto"));
        let (i, n) = spec.split_once('/').ok_or_else(bad)?;
        Part::new(
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        )
    }

    /// The shards of `num_shards` this part owns: a contiguous run, the runs as even as they go.
    pub fn shards(&self, num_shards: usize) -> Range<usize> {
        self.index * num_shards / self.count..(self.index + 1) * num_shards / self.count
    }

    /// The parts of `count` there are.
    pub fn all(count: usize) -> impl Iterator<Item = Part> {
        (0..count).map(move |index| Part { index, count })
    }
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// `<split>/plan.json`: what a split will hold, fixed before the first shard is written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitPlan {
    /// The cache fingerprint the plan belongs to.
    pub fingerprint: String,
    /// Images listed for the split, before any is found unreadable.
    pub items: usize,
    /// SHA-256 of `items.json`.
    pub items_sha256: String,
    /// Images per shard.
    pub shard_size: usize,
    /// Parts the shards are divided into.
    pub parts: usize,
    /// What the dataset listing itself left out (e.g. empty class folders with `--skip-bad`).
    pub skipped: Vec<Skipped>,
}

impl SplitPlan {
    /// How many shards the split has.
    pub fn num_shards(&self) -> usize {
        self.items.div_ceil(self.shard_size.max(1))
    }
    /// The planned items of shard `s`.
    pub fn shard_items(&self, s: usize) -> Range<usize> {
        s * self.shard_size..((s + 1) * self.shard_size).min(self.items)
    }
    /// The part that owns shard `s`.
    pub fn owner(&self, s: usize) -> Part {
        Part::all(self.parts)
            .find(|p| p.shards(self.num_shards()).contains(&s))
            .unwrap_or(Part::WHOLE)
    }
}

/// An image a part found unreadable while extracting (with `--skip-bad`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedItem {
    /// Its index among the split's planned items.
    pub item: usize,
    /// Its path, as `items.json` records it.
    pub path: String,
    /// What was wrong with it.
    pub reason: String,
}

/// A finished shard, as its part records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardDone {
    /// Shard number within the split.
    pub shard: usize,
    /// Images it holds (its planned items less those skipped).
    pub rows: usize,
    /// Planned items it left out.
    pub skipped: Vec<SkippedItem>,
    /// SHA-256 of its rows' item indices, labels, stored features and logits.
    pub digest: String,
}

/// `<split>/part-iiiii-of-nnnnn.json`: the shards one part has finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartProgress {
    /// Which part.
    pub part: Part,
    /// Its finished shards, in the order written.
    pub shards: Vec<ShardDone>,
}

/// File name of a shard.
pub fn shard_file(s: usize) -> String {
    format!("shard-{s:05}.safetensors")
}

/// Path of a part's progress file.
pub fn progress_path(split_dir: &Path, part: Part) -> PathBuf {
    split_dir.join(format!("part-{:05}-of-{:05}.json", part.index, part.count))
}

/// A split as its folder records it: the plan and every part's finished shards.
#[derive(Debug, Clone)]
pub struct SplitState {
    /// The plan.
    pub plan: SplitPlan,
    /// Finished shards by number, from every part's progress file.
    pub done: BTreeMap<usize, ShardDone>,
}

impl SplitState {
    /// Reads a split folder's plan and progress files (parts without one have finished nothing).
    pub fn read(split_dir: &Path) -> Result<Self> {
        let plan: SplitPlan = read_json(split_dir.join("plan.json"))?;
        let mut done = BTreeMap::new();
        for part in Part::all(plan.parts) {
            let path = progress_path(split_dir, part);
            if !path.exists() {
                continue;
            }
            let progress: PartProgress = read_json(&path)?;
            let owned = part.shards(plan.num_shards());
            for shard in progress.shards {
                if progress.part != part || !owned.contains(&shard.shard) {
                    return Err(Error::cache(
                        &path,
                        format!(
                            "records shard {} that part {part} does not own",
                            shard.shard
                        ),
                    ));
                }
                done.insert(shard.shard, shard);
            }
        }
        Ok(SplitState { plan, done })
    }

    /// The split as readers see it.
    pub fn info(&self) -> SplitInfo {
        let mut skipped = self.plan.skipped.clone();
        let mut skipped_items = Vec::new();
        for shard in self.done.values() {
            for s in &shard.skipped {
                skipped.push(Skipped {
                    path: s.path.clone(),
                    reason: s.reason.clone(),
                });
                skipped_items.push(s.item);
            }
        }
        let shard_rows = (0..self.plan.num_shards())
            .map(|s| self.done.get(&s).map(|d| d.rows))
            .collect();
        SplitInfo::new(
            self.plan.items - skipped_items.len(),
            self.plan.shard_size,
            self.plan.parts,
            shard_rows,
            skipped,
            skipped_items,
        )
    }
}

/// Serialized `items.json` bytes: deterministic for the same items.
pub fn items_bytes(items: &[Item]) -> Result<Vec<u8>> {
    serde_json::to_vec(items).map_err(|e| Error::Config(e.to_string()))
}

/// Writes `bytes` to `path` unless it already holds exactly them; a file with other bytes is
/// left alone and reported as `Ok(false)`. Every task of a job may call this at once: each
/// writes the same bytes through its own temporary file and an atomic rename.
pub fn write_same(path: &Path, bytes: &[u8]) -> Result<bool> {
    match std::fs::read(path) {
        Ok(old) => Ok(old == bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            write_atomic(path, bytes)?;
            Ok(true)
        }
        Err(e) => Err(Error::io(path, e)),
    }
}

/// The plan for `items` in shards of `shard_size` divided into `parts`.
pub fn plan_for(
    fingerprint: &str,
    items: &[Item],
    skipped: Vec<Skipped>,
    shard_size: usize,
    parts: usize,
) -> Result<(SplitPlan, Vec<u8>)> {
    let bytes = items_bytes(items)?;
    let plan = SplitPlan {
        fingerprint: fingerprint.to_owned(),
        items: items.len(),
        items_sha256: sha256_bytes(&bytes),
        shard_size,
        parts,
        skipped,
    };
    Ok((plan, bytes))
}

/// What differs between a recorded plan and a task's, in words.
pub fn plan_difference(old: &SplitPlan, new: &SplitPlan) -> String {
    let mut why = Vec::new();
    if old.parts != new.parts {
        why.push(format!(
            "it was planned for {} parts, this task asks for {}",
            old.parts, new.parts
        ));
    }
    if old.shard_size != new.shard_size {
        why.push(format!(
            "its shards hold {} images, this task asks for {}",
            old.shard_size, new.shard_size
        ));
    }
    if old.items != new.items || old.items_sha256 != new.items_sha256 {
        why.push(format!(
            "it lists {} images, this task's dataset {} others",
            old.items, new.items
        ));
    }
    if old.skipped != new.skipped {
        why.push("the dataset listing skipped other folders".to_owned());
    }
    if old.fingerprint != new.fingerprint {
        why.push("another cache fingerprint".to_owned());
    }
    why.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_cover_every_shard_once_in_order() {
        for shards in [0, 1, 3, 10, 17] {
            for count in 1..6 {
                let owned: Vec<usize> = Part::all(count).flat_map(|p| p.shards(shards)).collect();
                assert_eq!(
                    owned,
                    (0..shards).collect::<Vec<_>>(),
                    "{shards} shards, {count} parts"
                );
            }
        }
        assert_eq!(Part::parse("2/4").unwrap(), Part { index: 2, count: 4 });
        assert!(
            Part::parse("4/4").is_err() && Part::parse("1").is_err() && Part::parse("0/0").is_err()
        );
    }
}
