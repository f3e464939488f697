//! The library's error type: every failure names the file and the problem.

use std::path::{Path, PathBuf};

/// Result alias used across the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong, grouped by what the user has to fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// An input image or dataset is unusable (corrupt, empty, wrong format).
    #[error("{}: {msg}", path.display())]
    Input {
        /// The image, folder or dataset file.
        path: PathBuf,
        /// What is wrong with it.
        msg: String,
    },
    /// A model file is missing, malformed, or does not fit what was asked of it.
    #[error("model {}: {msg}", path.display())]
    Model {
        /// The model file, or the built-in model's name.
        path: PathBuf,
        /// What is wrong with it.
        msg: String,
    },
    /// A feature cache or checkpoint is corrupt, incomplete, or was made with other settings.
    #[error("cache {}: {msg}", path.display())]
    Cache {
        /// The cache or run folder, or the file in it.
        path: PathBuf,
        /// What is wrong with it.
        msg: String,
    },
    /// An option or configuration value is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Tensor shapes that must agree do not.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// ONNX Runtime is missing or failed.
    #[error("ONNX Runtime: {0}")]
    Runtime(String),
    /// A download of a pinned asset failed (no network, or a checksum that does not match) or
    /// was forbidden.
    #[error("download: {0}")]
    Download(String),
    /// A numeric failure (NaN, divergence) during training or evaluation.
    #[error("numerical problem: {0}")]
    Numeric(String),
    /// The caller asked the work to stop (Ctrl-C in Python); what was written so far is kept.
    #[error("interrupted")]
    Interrupted,
    /// An error raised inside candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl Error {
    /// An I/O error tagged with its path.
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }
    /// A bad-input error tagged with its path.
    pub fn input(path: impl AsRef<Path>, msg: impl Into<String>) -> Self {
        Error::Input {
            path: path.as_ref().to_path_buf(),
            msg: msg.into(),
        }
    }
    /// A model error tagged with its path.
    pub fn model(path: impl AsRef<Path>, msg: impl Into<String>) -> Self {
        Error::Model {
            path: path.as_ref().to_path_buf(),
            msg: msg.into(),
        }
    }
    /// A cache or checkpoint error tagged with its path.
    pub fn cache(path: impl AsRef<Path>, msg: impl Into<String>) -> Self {
        Error::Cache {
            path: path.as_ref().to_path_buf(),
            msg: msg.into(),
        }
    }

    /// The process exit code the CLI uses for this error, documented in `infodisent --help`.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config(_) => 2,
            Error::Io { .. } | Error::Input { .. } => 3,
            Error::Model { .. } | Error::Runtime(_) | Error::Shape(_) => 4,
            Error::Cache { .. } => 5,
            Error::Numeric(_) | Error::Candle(_) => 1,
            Error::Download(_) => 6,
            Error::Interrupted => 130,
        }
    }
}
