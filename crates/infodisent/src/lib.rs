//! infodisent: explain pretrained image classifiers with prototypical parts (InfoDisent) and
//! mutual-information maps.
//!
//! The pipeline: a frozen ONNX backbone ([`model`], [`engine`]) turns images ([`dataset`],
//! [`preprocess`]) into feature maps cached on disk ([`extract`], [`cache`]); a small head is
//! trained on them ([`head`], [`train`]); the trained head ([`head_params`]) explains decisions
//! ([`explain`]), is measured ([`metrics`]) and reported ([`report`]). [`mi`] decomposes the
//! information a representation holds about each image position.

pub mod assets;
pub mod bench;
pub mod cache;
pub mod classifier;
pub mod dataset;
pub mod engine;
pub mod error;
pub mod eval;
pub mod explain;
pub mod extract;
pub mod fsutil;
pub mod head;
pub mod head_params;
pub mod imageio;
pub mod metrics;
pub mod mi;
pub mod model;
pub mod models;
pub mod onnx;
pub mod pipeline;
pub mod predict;
pub mod preprocess;
pub mod progress;
pub mod report;
pub mod synth;
pub mod train;

pub use error::{Error, Result};
