//! The crate's error type.

use std::path::PathBuf;

use crate::checkpoint::LoadReport;

/// Everything that can go wrong in `accrue-towers`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A shared-infrastructure error (hashing, atomic write), naming the file.
    #[error(transparent)]
    Core(#[from] accrue_core::Error),
    /// A required weight/tokenizer file is absent (run `scripts/fetch_towers.sh`).
    #[error("missing file {path}: {hint}")]
    MissingFile {
        /// The file that was expected.
        path: PathBuf,
        /// How to obtain it.
        hint: String,
    },
    /// A checkpoint file could not be parsed.
    #[error("cannot read checkpoint {path}: {message}")]
    Checkpoint {
        /// The checkpoint.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The checkpoint's keys or shapes do not match the model (nothing was loaded).
    #[error("checkpoint {path} does not match the model:\n{report}")]
    KeyMismatch {
        /// The checkpoint.
        path: PathBuf,
        /// Every missing, unexpected and mismatched key.
        report: LoadReport,
    },
    /// A configuration or JSON file is invalid.
    #[error("invalid config {path}: {message}")]
    Config {
        /// The config file (or a description of the source).
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A tokenizer failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A caption is longer than the context and truncation is off.
    #[error("text of {n_tokens} tokens exceeds the context length {context_length}: {text:?}")]
    TextTooLong {
        /// The offending text.
        text: String,
        /// Its length in tokens, start and end tokens included.
        n_tokens: usize,
        /// The model's context length.
        context_length: usize,
    },
    /// An empty (or whitespace-only) text was given to a text tower.
    #[error("empty text at batch position {index}")]
    EmptyText {
        /// The position in the batch.
        index: usize,
    },
    /// An image could not be decoded.
    #[error("cannot decode image {source_name}: {message}")]
    Image {
        /// Path or description of the image.
        source_name: String,
        /// The decoder's message.
        message: String,
    },
    /// An empty batch was given.
    #[error("empty batch")]
    EmptyBatch,
    /// The embedding cache is inconsistent.
    #[error("embedding cache {path}: {message}")]
    Cache {
        /// The cache directory or file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Data had an unexpected shape or type.
    #[error("{0}")]
    Invalid(String),
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
