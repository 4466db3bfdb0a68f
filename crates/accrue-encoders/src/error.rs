//! The error type of `accrue-encoders`.

use std::path::PathBuf;

use crate::checkpoint::LoadReport;

/// Everything that can go wrong while building, loading or saving an encoder.
#[derive(Debug, thiserror::Error)]
pub enum EncoderError {
    /// A configuration that cannot describe a network (zero widths, too few layers, …).
    #[error("invalid encoder configuration: {0}")]
    Config(String),
    /// The checkpoint file could not be read or parsed.
    #[error("cannot read checkpoint {path}: {detail}")]
    CheckpointRead {
        /// The file.
        path: PathBuf,
        /// What the reader said.
        detail: String,
    },
    /// The checkpoint could not be written.
    #[error("cannot write checkpoint {path}: {detail}")]
    CheckpointWrite {
        /// The file.
        path: PathBuf,
        /// What the writer said.
        detail: String,
    },
    /// Strict loading found keys that do not line up with the module. The report lists every
    /// missing, unexpected and wrongly-shaped tensor, not only the first one.
    #[error("checkpoint {path} does not match the model:\n{report}")]
    CheckpointMismatch {
        /// The file.
        path: PathBuf,
        /// Everything that did not line up.
        report: Box<LoadReport>,
    },
    /// A key-remapping pattern is not a valid regular expression.
    #[error("invalid key remapping pattern {pattern:?}: {detail}")]
    Remap {
        /// The pattern.
        pattern: String,
        /// What the regex compiler said.
        detail: String,
    },
}

/// `Result` with [`EncoderError`].
pub type Result<T> = std::result::Result<T, EncoderError>;
