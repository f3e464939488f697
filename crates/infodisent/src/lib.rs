//! infodisent: explain pretrained image classifiers with prototypical parts (InfoDisent) and
//! mutual-information maps.
//!
//! The `infodisent` command-line tool is a thin layer over this crate; the user guide
//! (`docs/book` in the repository, built by `scripts/build-book.sh`) explains the method, the
//! commands and the measured figures.
//!
//! # The pipeline
//!
//! 1. **A frozen backbone.** [`backbone::BackboneSpec::load`] opens a built-in model
//!    ([`models`]: `efficientnet-lite0`, `-lite1`, `-lite2`) or any ONNX image classifier with
//!    its preprocessing, on ONNX Runtime or OpenVINO ([`engine`]); [`onnx`] finds the last
//!    feature map its classifier pools and the layer after the pool.
//! 2. **Features, once.** [`extract`] ([`extract::ExtractRequest`]) decodes and preprocesses a dataset ([`dataset`],
//!    [`preprocess`]) and runs it through the backbone into a sharded, fingerprinted, resumable
//!    feature cache ([`cache`]), in one process or as the parts of a cluster job ([`scheduler`]).
//!    Everything after this step reads the cache, not the images.
//! 3. **A head.** [`train`] fits the InfoDisent head ([`head`]: an orthogonal rotation of the
//!    channels, a sparse max/min pooling per channel, a nonnegative linear layer) or a linear
//!    probe on the cached features, with [`optim`], [`checkpoint`] and the run skeleton [`training_run`] shared with [`mi`].
//! 4. **Decisions and explanations.** A trained head as plain numbers
//!    ([`head::params::HeadParams`]) decides ([`head::params::HeadParams::decide`]) and splits
//!    each logit into channel contributions; [`explain`] turns them into prototypes, heatmaps
//!    and figures, drawn through [`draw`] and [`geometry`].
//! 5. **Measurements and a report.** [`metrics`] computes the paper's metrics and more,
//!    [`report`] writes the static HTML report, [`mi`] decomposes the information a
//!    representation holds about each image position; [`pipeline`] runs the whole path, and
//!    [`runs`] names the files in run folders.
//!
//! Errors are one [`Error`] type whose [`Error::exit_code`] is the CLI's exit code.
//!
//! # Example
//!
//! The built-in EfficientNet-Lite0 on a photo, as `infodisent predict` runs it: the feature map
//! a head would be trained on, and the original classifier's top class. The model's weights are
//! downloaded on first use; the photo is one that `scripts/fetch-assets.sh` fetches (into
//! `.assets/` above the working directory, or `$INFODISENT_ASSETS`).
//!
//! ```
//! use infodisent::assets::asset;
//! use infodisent::backbone::BackboneSpec;
//! use infodisent::predict::predict_files;
//!
//! let mut backbone = BackboneSpec::new("efficientnet-lite0", 2).load()?;
//! // The last map before global pooling: 1280 channels on a 7×7 grid at 224 px.
//! assert_eq!(backbone.model().feature_shape, [1280, 7, 7]);
//!
//! let preprocess = backbone.model().preprocess.clone();
//! let photo = asset("photos/skimage/chelsea.png")?;
//! let (predictions, skipped) = predict_files(&mut backbone, &[photo], &preprocess, 5, false)?;
//! assert!(skipped.is_empty());
//! let best = &predictions[0].top[0];
//! assert_eq!(best.class, 285);
//! println!("{} ({:.1} %)", best.label, 100.0 * best.prob); // Egyptian cat (79.1 %)
//! # Ok::<(), infodisent::Error>(())
//! ```

pub mod ablate;
pub mod annotation;
pub mod assets;
pub mod backbone;
pub mod baseline;
pub mod cache;
pub mod checkpoint;
pub mod classifier;
pub mod cpu;
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
pub mod layout;
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
pub mod rv;
pub mod scheduler;
#[cfg(feature = "serve")]
pub mod serve;
pub mod synth;
pub mod train;
pub mod training_run;

pub use error::{Error, Result};
