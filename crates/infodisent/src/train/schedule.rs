//! How long a run trains, chosen by optimizer steps as well as epochs: a small folder gets
//! enough steps to converge, a large one a bounded run; and when pruning and early stopping
//! happen. The user guide's sweep (`docs/book/src/training.md`) chose the numbers.

use super::config::{TrainConfig, DEFAULT_EPOCHS};
use crate::error::Result;
use serde::{Deserialize, Serialize};

/// The schedule a run follows, and why (printed by `train`, kept in its summary).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// Images trained on per epoch.
    pub train_items: usize,
    /// Images held out for validation.
    pub val_items: usize,
    /// Images per step.
    pub batch_size: usize,
    /// Optimizer steps per epoch.
    pub steps_per_epoch: u64,
    /// Passes over the training images.
    pub epochs: usize,
    /// Steps of the whole run.
    pub total_steps: u64,
    /// Steps of linear warm-up.
    pub warmup_steps: u64,
    /// The epoch (0-based) at whose start W is pruned, when pruning.
    pub prune_epoch: Option<usize>,
    /// Epochs without a better validation accuracy (counted after pruning) that end the run.
    pub patience: Option<usize>,
    /// Why this many epochs, in words.
    pub reason: String,
}

impl Schedule {
    /// Chooses the schedule of `cfg` for `train_items` training and `val_items` validation
    /// images; refuses a pruning or warm-up that the epochs leave no room for.
    pub fn new(cfg: &TrainConfig, train_items: usize, val_items: usize) -> Result<Self> {
        let steps_per_epoch = train_items.div_ceil(cfg.batch_size).max(1) as u64;
        let (epochs, reason) = match cfg.epochs {
            Some(e) => (e, "as asked (--epochs)".to_owned()),
            None => {
                let default_steps = DEFAULT_EPOCHS as u64 * steps_per_epoch;
                if default_steps < cfg.min_steps {
                    let e = cfg.min_steps.div_ceil(steps_per_epoch) as usize;
                    (e, format!("{DEFAULT_EPOCHS} epochs would be {default_steps} steps, below the minimum of {} (--min-steps)", cfg.min_steps))
                } else if default_steps > cfg.max_steps {
                    let e = ((cfg.max_steps / steps_per_epoch) as usize).max(cfg.fewest_epochs());
                    (e, format!("{DEFAULT_EPOCHS} epochs would be {default_steps} steps, above the maximum of {} (--max-steps)", cfg.max_steps))
                } else {
                    (
                        DEFAULT_EPOCHS,
                        format!(
                            "the default, within {}–{} steps",
                            cfg.min_steps, cfg.max_steps
                        ),
                    )
                }
            }
        };
        cfg.check_epochs(epochs)?;
        let prune_epoch = cfg.keep_top.map(|_| cfg.pruning_epoch(epochs));
        let patience = match (val_items, cfg.patience) {
            (0, _) | (_, Some(0)) => None,
            (_, Some(p)) => Some(p),
            // A quarter of the epochs that count (those after pruning), at least 2.
            (_, None) => Some((epochs - prune_epoch.unwrap_or(0)).div_ceil(4).max(2)),
        };
        Ok(Schedule {
            train_items,
            val_items,
            batch_size: cfg.batch_size,
            steps_per_epoch,
            epochs,
            total_steps: steps_per_epoch * epochs as u64,
            warmup_steps: (cfg.warmup_epochs * steps_per_epoch as f64).round() as u64,
            prune_epoch,
            patience,
            reason,
        })
    }

    /// The schedule in a few lines, as `train` prints it.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "schedule: {} epochs of {} steps ({} training images, batch {}) = {} steps: {}",
            self.epochs,
            self.steps_per_epoch,
            self.train_items,
            self.batch_size,
            self.total_steps,
            self.reason
        );
        if let Some(p) = self.prune_epoch {
            s += &format!("; prunes at the start of epoch {}", p + 1);
        }
        s += &match (self.val_items, self.patience) {
            (0, _) => "; no validation hold-out".to_owned(),
            (v, None) => format!(
                "; keeps the last epoch within a standard error of the best on {v} held-out images"
            ),
            (v, Some(p)) => format!(
                "; keeps the last epoch within a standard error of the best on {v} held-out images, stops after {p} epochs without one"
            ),
        };
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::config::{DEFAULT_MAX_STEPS, DEFAULT_MIN_STEPS};

    #[test]
    fn small_folders_get_the_minimum_steps_and_large_ones_the_cap() {
        let cfg = TrainConfig::default();
        // 30 images per class of 10 classes, 10 % held out, batch 64: 5 steps an epoch.
        let small = Schedule::new(&cfg, 270, 30).unwrap();
        assert_eq!(small.steps_per_epoch, 5);
        assert_eq!(small.epochs, (DEFAULT_MIN_STEPS / 5) as usize);
        assert!(small.total_steps >= DEFAULT_MIN_STEPS);
        assert_eq!(small.prune_epoch, Some(small.epochs / 2));
        assert_eq!(small.patience, Some(small.epochs.div_ceil(2).div_ceil(4)));
        let large = Schedule::new(&cfg, 1_000_000, 1000).unwrap();
        assert_eq!(large.epochs, 2, "two epochs is the fewest pruning allows");
        let mid = Schedule::new(&cfg, 60_000, 0).unwrap();
        assert_eq!(mid.epochs as u64, DEFAULT_MAX_STEPS / 938);
        assert!(mid.total_steps <= DEFAULT_MAX_STEPS);
        assert_eq!(mid.patience, None, "no hold-out, no early stopping");
        let asked = Schedule::new(
            &TrainConfig {
                epochs: Some(3),
                ..cfg.clone()
            },
            270,
            30,
        )
        .unwrap();
        assert_eq!((asked.epochs, asked.total_steps), (3, 15));
    }

    #[test]
    fn schedules_that_leave_no_room_are_refused() {
        let one = TrainConfig {
            epochs: Some(1),
            ..TrainConfig::default()
        };
        assert!(Schedule::new(&one, 100, 10).is_err());
        let late = TrainConfig {
            epochs: Some(4),
            prune_after: Some(4),
            ..TrainConfig::default()
        };
        assert!(Schedule::new(&late, 100, 10).is_err());
        let warm = TrainConfig {
            epochs: Some(2),
            warmup_epochs: 2.0,
            ..TrainConfig::default()
        };
        assert!(Schedule::new(&warm, 100, 10).is_err());
    }
}
