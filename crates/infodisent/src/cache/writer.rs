//! Writing a cache: the manifest once, each split's plan, then shards part by part.

use super::plan::{
    plan_difference, plan_for, progress_path, shard_file, write_same, Part, PartProgress,
    ShardDone, SkippedItem, SplitPlan, SplitState,
};
use super::shard::{encode, ShardData};
use super::{manifest_path, read_manifest, CacheManifest, Item, Skipped, CACHE_VERSION};
use crate::error::{Error, Result};
use crate::fsutil::{write_atomic, write_json_atomic};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Writes a cache shard by shard; resumes a partial cache with the same fingerprint. Several
/// writers (one per [`Part`]) may work on one folder at once.
pub struct CacheWriter {
    dir: PathBuf,
    manifest: CacheManifest,
    /// Each begun split's plan and finished shards, as last read or written.
    states: BTreeMap<String, SplitState>,
}

impl CacheWriter {
    /// Starts a new cache, or resumes one made with the same fingerprint. A cache made with a
    /// different fingerprint is refused, naming what differs, unless `overwrite` is set, in
    /// which case it is replaced.
    pub fn create_or_resume(
        dir: impl AsRef<Path>,
        fresh: CacheManifest,
        overwrite: bool,
    ) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let mpath = manifest_path(&dir);
        let fresh = CacheManifest {
            version: CACHE_VERSION,
            splits: BTreeMap::new(),
            ..fresh
        };
        if mpath.exists() {
            let old = read_manifest(&mpath)?;
            if old.version == CACHE_VERSION && old.fingerprint == fresh.fingerprint {
                // The model may have moved (the fingerprint covers its bytes, not its path).
                if old.backbone != fresh.backbone {
                    write_json_atomic(&mpath, &fresh)?;
                }
                return Ok(CacheWriter {
                    dir,
                    manifest: fresh,
                    states: BTreeMap::new(),
                });
            }
            if !overwrite {
                let why = match old.version {
                    CACHE_VERSION => old.difference(&fresh),
                    v => format!("cache format version {v}"),
                };
                return Err(Error::cache(
                    &dir,
                    format!("holds a cache made with {why}; pass --overwrite to replace it, or choose another --cache folder"),
                ));
            }
            std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        }
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        write_json_atomic(&mpath, &fresh)?;
        Ok(CacheWriter {
            dir,
            manifest: fresh,
            states: BTreeMap::new(),
        })
    }

    /// The cache folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// The manifest (without splits).
    pub fn manifest(&self) -> &CacheManifest {
        &self.manifest
    }

    /// Plans a split: its listed items, shards of `shard_size` and `parts` parts (`None`: the
    /// count recorded by an earlier task, else 1). Every task writes the same plan bytes or
    /// finds them there; a task whose plan differs is refused, naming the difference.
    /// Returns the plan in force.
    pub fn plan_split(
        &mut self,
        name: &str,
        items: &[Item],
        skipped: Vec<Skipped>,
        shard_size: usize,
        parts: Option<usize>,
    ) -> Result<SplitPlan> {
        let split_dir = self.dir.join(name);
        let plan_path = split_dir.join("plan.json");
        let recorded = match plan_path.exists() {
            true => Some(SplitState::read(&split_dir)?),
            false => None,
        };
        let parts = parts
            .or(recorded.as_ref().map(|r| r.plan.parts))
            .unwrap_or(1);
        let (plan, item_bytes) = plan_for(
            &self.manifest.fingerprint,
            items,
            skipped,
            shard_size.max(1),
            parts,
        )?;
        let plan_bytes =
            serde_json::to_vec_pretty(&plan).map_err(|e| Error::Config(e.to_string()))?;
        let refuse = |old: &SplitPlan| {
            Error::cache(
                &split_dir,
                format!(
                    "split `{name}` was planned otherwise: {}; extract into another --cache folder, or delete this one first",
                    plan_difference(old, &plan)
                ),
            )
        };
        if let Some(old) = &recorded {
            if old.plan != plan {
                return Err(refuse(&old.plan));
            }
        }
        if !write_same(&split_dir.join("items.json"), &item_bytes)? {
            return Err(Error::cache(
                &split_dir,
                format!("split `{name}`: items.json lists other images than this task's dataset; extract into another --cache folder"),
            ));
        }
        if !write_same(&plan_path, &plan_bytes)? {
            let old = SplitState::read(&split_dir)?.plan;
            return Err(refuse(&old));
        }
        // A plan this task wrote may already have progress from others running at once.
        let state = match recorded {
            Some(state) => state,
            None => SplitState::read(&split_dir)?,
        };
        self.states.insert(name.to_owned(), state);
        Ok(plan)
    }

    /// Declares a split written by one process (one part, no skips found while decoding);
    /// resuming with the same items and shard size is a no-op.
    pub fn begin_split(
        &mut self,
        name: &str,
        items: &[Item],
        skipped: Vec<Skipped>,
        shard_size: usize,
    ) -> Result<()> {
        self.plan_split(name, items, skipped, shard_size, None)
            .map(drop)
    }

    fn state(&self, split: &str) -> Result<&SplitState> {
        self.states
            .get(split)
            .ok_or_else(|| Error::Config(format!("split `{split}` not planned")))
    }

    /// The shards of `part` not finished yet, in order.
    pub fn shards_todo(&self, split: &str, part: Part) -> Result<Vec<usize>> {
        let state = self.state(split)?;
        Ok(part
            .shards(state.plan.num_shards())
            .filter(|s| !state.done.contains_key(s))
            .collect())
    }

    /// Writes shard `shard` of `split` with the rows `data` (its listed items less `skipped`),
    /// then records it in its part's progress file.
    pub fn write_shard_rows(
        &mut self,
        split: &str,
        shard: usize,
        data: &ShardData<'_>,
        skipped: Vec<SkippedItem>,
    ) -> Result<()> {
        let [d, h, w] = self.manifest.feature_shape;
        let state = self.state(split)?;
        let listed = state.plan.shard_items(shard);
        let n = data.labels.len();
        if shard >= state.plan.num_shards()
            || n + skipped.len() != listed.len()
            || data.listed.len() != n
            || data.features.len() != n * d * h * w
            || data
                .logits
                .is_some_and(|l| Some(l.len()) != self.manifest.original_classes.map(|c| c * n))
        {
            return Err(Error::Shape(format!(
                "shard {shard} of `{split}`: expected {} images of [{d},{h},{w}] less those skipped, got {n} and {} skipped",
                listed.len(),
                skipped.len()
            )));
        }
        let part = state.plan.owner(shard);
        let (bytes, digest) = encode(
            data,
            self.manifest.feature_shape,
            self.manifest.dtype,
            self.manifest.original_classes,
        )?;
        let split_dir = self.dir.join(split);
        write_atomic(split_dir.join(shard_file(shard)), &bytes)?;
        let state = self.states.get_mut(split).expect("checked above");
        state.done.insert(
            shard,
            ShardDone {
                shard,
                rows: n,
                skipped,
                digest,
            },
        );
        let owned = part.shards(state.plan.num_shards());
        let progress = PartProgress {
            part,
            shards: owned.filter_map(|s| state.done.get(&s).cloned()).collect(),
        };
        write_json_atomic(progress_path(&split_dir, part), &progress)
    }

    /// Writes the next unfinished shard of a one-part split, every listed item kept: how tests
    /// and tools write a cache of features they already hold.
    pub fn write_shard(
        &mut self,
        split: &str,
        features: &[f32],
        labels: &[i64],
        logits: Option<&[f32]>,
    ) -> Result<()> {
        let shard = *self
            .shards_todo(split, Part::WHOLE)?
            .first()
            .ok_or_else(|| Error::Config(format!("split `{split}` is already complete")))?;
        let listed: Vec<i64> = self
            .state(split)?
            .plan
            .shard_items(shard)
            .map(|i| i as i64)
            .collect();
        let data = ShardData {
            features,
            labels,
            logits,
            listed: &listed,
        };
        self.write_shard_rows(split, shard, &data, vec![])
    }

    /// Stores the original classifier beside the features.
    pub fn write_classifier(&self, classifier: &crate::classifier::LinearClassifier) -> Result<()> {
        classifier.save(self.dir.join(crate::runs::CLASSIFIER_FILE))
    }
}
