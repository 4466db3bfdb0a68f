//! The error type of `accrue-continual`.

use std::path::PathBuf;

use accrue_losses::LossError;

/// Everything that can go wrong while configuring or running continual pre-training.
#[derive(Debug, thiserror::Error)]
pub enum ContinualError {
    /// A loss function rejected its inputs or a term was NaN/inf ([`LossError::NonFinite`]
    /// names the term).
    #[error(transparent)]
    Loss(#[from] LossError),
    /// A data error (dataset reader or loader).
    #[error(transparent)]
    Data(#[from] accrue_data::DataError),
    /// An encoder or checkpoint error from `accrue-encoders`.
    #[error(transparent)]
    Encoder(#[from] accrue_encoders::EncoderError),
    /// A shared-infrastructure error (atomic write, hashing), naming the file.
    #[error(transparent)]
    Core(#[from] accrue_core::Error),
    /// A front-end error from `accrue-audio` (e.g. a batch whose host samples do not match
    /// its waveform tensor).
    #[error(transparent)]
    Audio(#[from] accrue_audio::AudioError),
    /// A new run (no `resume`) would overwrite a previous run's checkpoints, log or models.
    #[error(
        "{} already holds a run ({found}); resume it (`--resume`) or start afresh (`--fresh`, which deletes it)",
        path.display()
    )]
    RunExists {
        /// The run folder.
        path: PathBuf,
        /// What was found there.
        found: String,
    },
    /// A strategy cannot run in this stage (e.g. distillation without a previous stage).
    #[error("strategy `{strategy}`: {reason}")]
    Strategy {
        /// The strategy's name.
        strategy: String,
        /// What is wrong.
        reason: String,
    },
    /// A method's options are invalid or its kind is not registered ([`crate::Registry`]).
    #[error("method `{kind}`{}: {message}", .line.map(|l| format!(" (line {l})")).unwrap_or_default())]
    Method {
        /// The method's kind.
        kind: String,
        /// The line of the experiment file, when the spec came from one.
        line: Option<usize>,
        /// What is wrong.
        message: String,
    },
    /// An invalid configuration value.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A configuration file that does not parse (unknown keys name the key and the line).
    #[error("{path}: {message}")]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A checkpoint or run-state file is unusable.
    #[error("checkpoint {path}: {detail}")]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// Supervision embeddings are missing for an input.
    #[error("supervision table {path}: {detail}")]
    Supervision {
        /// The table file.
        path: PathBuf,
        /// What is missing.
        detail: String,
    },
    /// Training diverged: a loss term was NaN or infinite. The last good checkpoint is kept.
    #[error(
        "training stopped at stage {stage}, epoch {epoch}, step {step}: loss term `{term}` is {value} (last good checkpoint kept: {checkpoint})"
    )]
    Diverged {
        /// Stage index.
        stage: usize,
        /// Epoch within the stage.
        epoch: usize,
        /// Step within the epoch.
        step: usize,
        /// The offending term.
        term: String,
        /// Its value.
        value: f64,
        /// The last good checkpoint (or "none").
        checkpoint: String,
    },
}

impl ContinualError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// [`ContinualError::Strategy`]: `strategy` cannot run as asked (for methods' own errors).
    pub fn strategy(strategy: &str, reason: impl Into<String>) -> Self {
        Self::Strategy {
            strategy: strategy.to_string(),
            reason: reason.into(),
        }
    }
}

/// `Result` with [`ContinualError`].
pub type Result<T> = core::result::Result<T, ContinualError>;
