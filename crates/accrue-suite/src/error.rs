//! The application layer's error type: every lower layer's error, plus its own.

use std::path::PathBuf;

/// Errors of the evaluation-suite runner, the supervision tables and the main job.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A frozen tower failed (weights, tokenizer, image decoding, cache).
    #[error(transparent)]
    Towers(#[from] accrue_towers::Error),
    /// Data reading or loading failed.
    #[error(transparent)]
    Data(#[from] accrue_data::DataError),
    /// Training failed.
    #[error(transparent)]
    Continual(#[from] accrue_continual::ContinualError),
    /// An encoder or checkpoint error.
    #[error(transparent)]
    Encoders(#[from] accrue_encoders::EncoderError),
    /// An evaluation error.
    #[error(transparent)]
    Eval(#[from] accrue_eval::EvalError),
    /// A shared-infrastructure error (atomic write, array file, hashing), naming the file.
    #[error(transparent)]
    Core(#[from] accrue_core::Error),
    /// File-system error on `path`.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Something the benchmark needs is missing (with what to do about it).
    #[error("{0}")]
    Missing(String),
    /// A child `accrue train` process failed.
    #[error("run `{run}` failed: {detail}")]
    Run {
        /// Run name.
        run: String,
        /// Exit status and the log file to read.
        detail: String,
    },
    /// Anything else, described.
    #[error("{0}")]
    Other(String),
}

impl Error {
    /// A file-system error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result with the facade's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
