//! infodisent: explain pretrained image classifiers with prototypical parts (InfoDisent) and
//! mutual-information maps.
//!
//! The pipeline: a frozen ONNX backbone ([`onnx`], [`engine`]) turns images ([`dataset`],
//! [`preprocess`]) into feature maps cached on disk ([`extract`], [`cache`]); a small head is
//! trained on them ([`head`], [`train`], with [`optim`] and [`checkpoint`] shared with [`mi`]);
//! the trained head ([`head::params`]) decides and explains ([`explain`]), is measured
//! ([`metrics`]) and reported ([`report`]), drawn through [`draw`], with run folders named in
//! [`runs`]. [`mi`] decomposes the information a representation holds about each image
//! position.

pub mod ablate;
pub mod assets;
pub mod bench;
pub mod cache;
pub mod checkpoint;
pub mod classifier;
pub mod dataset;
pub mod draw;
pub mod engine;
pub mod error;
pub mod eval;
pub mod explain;
pub mod extract;
pub mod fsutil;
pub mod geometry;
pub mod head;
pub mod imageio;
pub mod metrics;
pub mod mi;
pub mod models;
pub mod onnx;
pub mod optim;
pub mod pipeline;
pub mod predict;
pub mod preprocess;
pub mod progress;
pub mod report;
pub mod runs;
pub mod synth;
pub mod train;

pub use error::{Error, Result};
