//! Explaining a representation by mutual information (the decomposition of the seed paper on decision-related information).
//!
//! For every feature-map position i of an image, three numbers:
//! - **total** `I(Z; X_i)`: how much the representation Z (the pooled feature vector) tells about
//!   the local feature X_i;
//! - **decision-related** `I(Z; λ_i X_i)`: the part that survives the mask λ, which is trained
//!   so that the frozen classifier still decides correctly from `pool(λ ⊙ F)` while keeping as
//!   little as possible;
//! - **redundant**: total − decision-related.
//!
//! Everything runs on cached feature maps (the backbone is frozen and its classifier is
//! pool + linear), so only two small modules are trained: the mask ([`mask`]) and the critic
//! ([`critic`]) whose scores feed a mutual-information lower bound ([`bounds`]). [`train`](mod@train) fits
//! them with checkpoints and resume; [`model`] loads a trained run; [`maps`] turns its per-position
//! values into heatmaps and JSON.
//!
//! Files of a trained run (`infodisent mi train --out DIR`):
//! ```text
//! config.json              MiMeta: the MiConfig, cache fingerprint, shapes, classifier source
//! classifier.safetensors   the frozen classifier the mask was trained against
//! checkpoint.safetensors   parameters + Adam moments after the last finished epoch, with the
//!                          epoch, step and metrics in its metadata (resume)
//! metrics.jsonl            one EpochMetrics per line (epoch 0 = before training)
//! mi.safetensors           final mask and critic parameters, and the input standardisation
//! reference.safetensors    projected local features and pooled representations of reference
//!                          training images: the negatives used when a single image is explained
//! ```

pub mod bounds;
pub mod config;
pub mod critic;
pub mod maps;
pub mod mask;
pub mod model;
pub mod standardize;
pub mod train;

pub use bounds::Bound;
pub use config::{ClassifierChoice, MapNegatives, MiConfig, MiMeta, NetDims, Pairing};
pub use maps::{
    explain_all, explain_cached_item, explain_files, render_overlays, write_explanation,
    MiExplanation, MiFiles,
};
pub use model::{MiMaps, MiModel};
pub use train::{resolve_classifier, train, EpochMetrics, MiSummary};
