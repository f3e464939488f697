//! The skeleton every trainer runs in (the head's [`crate::train`], the decomposition's
//! [`crate::mi::train`](mod@crate::mi::train)): a run folder that refuses to be overwritten, its settings and cache link
//! written at the start, one epoch at a time with a line each in `metrics.jsonl`, checkpoints at
//! most [`CHECKPOINT_EVERY`] apart, and random streams drawn from the seed and the epoch, so a
//! killed run resumes to exactly what an unbroken one does without storing any RNG state.
//!
//! A trainer brings what is its own (parameters, steps, evaluation, what its checkpoint holds) by
//! implementing [`Trainer`]; everything about the folder and the loop lives here once.

use crate::cache::FeatureCache;
use crate::checkpoint;
use crate::error::{Error, Result};
use crate::runs;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The longest a run trains between checkpoints: a small folder runs hundreds of one-step epochs,
/// and checkpointing each would cost more than training it. A kill loses at most this much work.
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(10);

/// One line of a run's `metrics.jsonl`.
pub trait EpochLine: Serialize + DeserializeOwned {
    /// The epoch the line describes, counted as the trainer counts its finished epochs.
    fn epoch(&self) -> usize;
}

/// What a trainer brings to the skeleton: its state, advanced one epoch at a time.
pub trait Trainer {
    /// The line each epoch adds to `metrics.jsonl`.
    type Line: EpochLine;
    /// Epochs finished so far (those a resumed run read from its checkpoint included).
    fn epochs_done(&self) -> usize;
    /// Whether the run is over: every epoch trained, or stopped early.
    fn finished(&self) -> bool;
    /// The line a new run logs before its first epoch (the untrained state), if any.
    fn before_training(&self) -> Result<Option<Self::Line>> {
        Ok(None)
    }
    /// Trains and evaluates the next epoch.
    fn epoch(&mut self) -> Result<Self::Line>;
    /// Writes all that a resumed run needs to carry on exactly, to the checkpoint at `path`.
    fn save(&self, path: &Path) -> Result<()>;
}

/// The checkpoint in `out` when `resume` asks to continue it, else `None`. A folder holding a run
/// is refused without `resume`, so no run is overwritten by accident; `what` names the run in
/// the message (`a training run`, `an MI run`).
pub fn resumable_checkpoint(out: &Path, resume: bool, what: &str) -> Result<Option<PathBuf>> {
    let ckpt = out.join(runs::CHECKPOINT_FILE);
    match (ckpt.exists(), resume) {
        (true, false) => Err(Error::Config(format!(
            "{} already holds {what}: pass --resume to continue it, or choose another output folder",
            out.display()
        ))),
        (true, true) => Ok(Some(ckpt)),
        (false, _) => Ok(None),
    }
}

/// A run in its folder: the trainer and the lines logged so far.
pub struct TrainingRun<'a, T: Trainer> {
    out: &'a Path,
    trainer: T,
    log: Vec<T::Line>,
}

impl<'a, T: Trainer> TrainingRun<'a, T> {
    /// Starts the run of `trainer` in `out` (made if missing): writes its settings `config` and
    /// where `cache` is, and reads back the log of the epochs a resumed trainer has done.
    pub fn begin(
        out: &'a Path,
        config: &impl Serialize,
        cache: &FeatureCache,
        trainer: T,
    ) -> Result<Self> {
        std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
        crate::fsutil::write_json_atomic(out.join(runs::CONFIG_FILE), config)?;
        runs::record_cache(out, cache.dir(), &cache.manifest().fingerprint)?;
        let log_file = out.join(runs::METRICS_LOG);
        let mut log = Vec::new();
        if trainer.epochs_done() > 0 && log_file.exists() {
            log = checkpoint::read_log::<T::Line>(&log_file)?;
            // Lines past the checkpoint are epochs a kill lost: they are trained again.
            log.retain(|l| l.epoch() <= trainer.epochs_done());
        }
        if log.is_empty() {
            log.extend(trainer.before_training()?);
        }
        Ok(TrainingRun { out, trainer, log })
    }

    /// Trains epochs until the trainer is finished, or after `stop_after` epochs of this call (as
    /// if killed right after that epoch's checkpoint); returns the epochs trained.
    pub fn drive(&mut self, stop_after: Option<usize>) -> Result<usize> {
        let (mut ran, mut saved) = (0usize, Instant::now());
        while !self.trainer.finished() && stop_after.is_none_or(|s| ran < s) {
            let line = self.trainer.epoch()?;
            self.log.push(line);
            ran += 1;
            if self.trainer.finished()
                || stop_after == Some(ran)
                || saved.elapsed() >= CHECKPOINT_EVERY
            {
                self.save()?;
                saved = Instant::now();
            }
        }
        Ok(ran)
    }

    /// Writes the checkpoint and the log of the epochs done.
    fn save(&self) -> Result<()> {
        self.trainer.save(&self.out.join(runs::CHECKPOINT_FILE))?;
        checkpoint::write_log(&self.out.join(runs::METRICS_LOG), &self.log)
    }

    /// The trainer and every line of the run, for the trainer to finish with.
    pub fn into_parts(self) -> (T, Vec<T::Line>) {
        (self.trainer, self.log)
    }
}

/// Mixes a seed with a stream number (SplitMix64 finaliser) so per-epoch and per-step random
/// streams are independent and need no stored RNG state to resume.
pub fn mix(seed: u64, stream: u64) -> u64 {
    let mut z = seed
        ^ stream
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The generator of `stream` (one of a trainer's named constants) at position `index` (an
/// epoch, a step) of a run seeded with `seed`.
pub fn rng(seed: u64, stream: u64, index: u64) -> StdRng {
    StdRng::seed_from_u64(mix(seed ^ stream, index))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn streams_differ_by_stream_and_index_and_repeat_by_seed() {
        let draw = |seed, stream, index| rng(seed, stream, index).random::<u64>();
        assert_eq!(draw(7, 1 << 40, 3), draw(7, 1 << 40, 3));
        assert_ne!(draw(7, 1 << 40, 3), draw(7, 1 << 40, 4));
        assert_ne!(draw(7, 1 << 40, 3), draw(7, 2 << 40, 3));
        assert_ne!(draw(7, 1 << 40, 3), draw(8, 1 << 40, 3));
    }

    #[test]
    fn a_folder_holding_a_run_is_refused_without_resume() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            resumable_checkpoint(dir.path(), false, "a run").unwrap(),
            None
        );
        std::fs::write(dir.path().join(runs::CHECKPOINT_FILE), b"x").unwrap();
        let e = resumable_checkpoint(dir.path(), false, "a run").unwrap_err();
        assert!(e.to_string().contains("--resume"), "{e}");
        assert!(resumable_checkpoint(dir.path(), true, "a run")
            .unwrap()
            .is_some());
    }
}
