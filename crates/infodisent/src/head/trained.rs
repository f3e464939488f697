//! A trained head of either kind behind one small interface: what evaluation, the metrics and
//! the explanations ask of it, so none of them matches on the kind to read it.

use super::params::HeadParams;
use crate::classifier::LinearClassifier;
use crate::error::Result;

/// A trained head of either kind.
#[derive(Debug, Clone)]
pub enum TrainedHead {
    /// U, W ≥ 0, b.
    InfoDisent(HeadParams),
    /// Linear layer on pooled features (a probe, or the model's own classifier).
    Linear(LinearClassifier),
}

/// What a trained head does with cached feature maps.
pub trait Classifies {
    /// Classes it decides between.
    fn classes(&self) -> usize;
    /// Channels of the feature maps it reads.
    fn dim(&self) -> usize;
    /// For each of `n` maps `[n, D, cells]`: the pooled channel values its logits are linear
    /// in, and the logits.
    fn decide(&self, features: &[f32], n: usize, cells: usize) -> Result<Vec<Read>>;
    /// Its weights `[C, D]` with the part every class shares removed ([`Gauge`]), so that
    /// contributions `W[c,k] · v_k` compare between heads.
    fn gauge_fixed_weights(&self) -> Vec<f32>;
}

/// One image as a head reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Read {
    /// Pooled channel values `[D]`.
    pub pooled: Vec<f32>,
    /// Logits `[C]`.
    pub logits: Vec<f32>,
}

/// How a weight matrix is gauge-fixed: under softmax a row added to W for every class changes
/// no prediction, so contributions are counted on W less a per-channel shift.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gauge {
    /// Subtract each channel's smallest weight over the classes (keeps InfoDisent's W ≥ 0).
    Min,
    /// Subtract each channel's mean weight over the classes (a linear layer's).
    Mean,
}

/// `weight` `[classes, dim]` with the per-channel part shared by every class removed.
pub fn gauge_fixed(weight: &[f32], classes: usize, dim: usize, gauge: Gauge) -> Vec<f32> {
    let shift: Vec<f32> = (0..dim)
        .map(|k| {
            let column = (0..classes).map(|c| weight[c * dim + k]);
            match gauge {
                Gauge::Min => column.fold(f32::INFINITY, f32::min),
                Gauge::Mean => column.sum::<f32>() / classes as f32,
            }
        })
        .collect();
    weight
        .chunks_exact(dim)
        .flat_map(|row| row.iter().zip(&shift).map(|(w, s)| w - s))
        .collect()
}

impl Classifies for HeadParams {
    fn classes(&self) -> usize {
        self.classes
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn decide(&self, features: &[f32], n: usize, cells: usize) -> Result<Vec<Read>> {
        Ok(self
            .decide_batch(features, n, cells)?
            .into_iter()
            .map(|d| Read {
                pooled: d.pooled.v,
                logits: d.logits,
            })
            .collect())
    }

    fn gauge_fixed_weights(&self) -> Vec<f32> {
        gauge_fixed(&self.weight, self.classes, self.dim, Gauge::Min)
    }
}

impl Classifies for LinearClassifier {
    fn classes(&self) -> usize {
        self.classes
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn decide(&self, features: &[f32], n: usize, cells: usize) -> Result<Vec<Read>> {
        let len = (self.dim * cells).max(1);
        Ok(features[..(n * len).min(features.len())]
            .chunks_exact(len)
            .map(|map| {
                let pooled = self.pool(map, cells);
                let logits = self.logits(&pooled);
                Read { pooled, logits }
            })
            .collect())
    }

    fn gauge_fixed_weights(&self) -> Vec<f32> {
        gauge_fixed(&self.weight, self.classes, self.dim, Gauge::Mean)
    }
}

impl TrainedHead {
    /// What it is, as tables name it: `InfoDisent` or `linear probe`.
    pub fn label(&self) -> &'static str {
        match self {
            TrainedHead::InfoDisent(_) => "InfoDisent",
            TrainedHead::Linear(_) => "linear probe",
        }
    }

    /// The head that finds this model's cells and prototypes: the InfoDisent head itself, or
    /// for a linear layer one that rotates by the identity, so a probe's cells and prototypes
    /// are found in the raw channels (its zero weights are never read).
    pub fn cell_finder(&self) -> Result<std::borrow::Cow<'_, HeadParams>> {
        let p = match self {
            TrainedHead::InfoDisent(h) => return Ok(std::borrow::Cow::Borrowed(h)),
            TrainedHead::Linear(p) => p,
        };
        let mut identity = vec![0.0; p.dim * p.dim];
        identity
            .iter_mut()
            .step_by(p.dim + 1)
            .for_each(|x| *x = 1.0);
        let head = HeadParams::new(
            p.dim,
            p.classes,
            identity,
            vec![0.0; p.classes * p.dim],
            vec![0.0; p.classes],
        )?;
        Ok(std::borrow::Cow::Owned(head))
    }

    fn inner(&self) -> &dyn Classifies {
        match self {
            TrainedHead::InfoDisent(p) => p,
            TrainedHead::Linear(l) => l,
        }
    }
}

impl Classifies for TrainedHead {
    fn classes(&self) -> usize {
        self.inner().classes()
    }

    fn dim(&self) -> usize {
        self.inner().dim()
    }

    fn decide(&self, features: &[f32], n: usize, cells: usize) -> Result<Vec<Read>> {
        self.inner().decide(features, n, cells)
    }

    fn gauge_fixed_weights(&self) -> Vec<f32> {
        self.inner().gauge_fixed_weights()
    }
}
