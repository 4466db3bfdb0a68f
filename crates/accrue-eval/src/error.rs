//! The crate's error type.

/// A boxed error from caller-supplied code (a text tower behind [`crate::TextEmbedder`]).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors returned by the evaluation functions of this crate.
///
/// Inputs (score matrices, labels, folds, configurations, files) are validated up front; no
/// function of this crate panics on malformed user input.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A buffer does not have the length its declared shape implies, or two inputs disagree.
    #[error("{what}: {reason}")]
    Shape {
        /// Which input was rejected.
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// An input is empty where at least one element is required.
    #[error("{0}: empty input")]
    Empty(&'static str),
    /// An index (label, candidate, fold) is out of range.
    #[error("{what}: index {index} out of range (< {bound} expected)")]
    Index {
        /// Which input holds the index.
        what: &'static str,
        /// The offending index.
        index: usize,
        /// The exclusive upper bound.
        bound: usize,
    },
    /// A value is NaN or infinite.
    #[error("{0}: non-finite value")]
    NonFinite(&'static str),
    /// A configuration value is out of its valid range.
    #[error("invalid configuration `{field}`: {reason}")]
    InvalidConfig {
        /// The offending field.
        field: &'static str,
        /// Why it is invalid.
        reason: String,
    },
    /// A metric is undefined for the given input (e.g. BWT with a single stage).
    #[error("{metric} is undefined: {reason}")]
    Undefined {
        /// The metric.
        metric: &'static str,
        /// Why.
        reason: String,
    },
    /// The caller-supplied text embedder failed.
    #[error("text embedder failed: {0}")]
    Embedder(#[source] BoxError),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A shared-infrastructure error (atomic write, hashing), naming the file.
    #[error(transparent)]
    Core(#[from] accrue_core::Error),
    /// JSON (de)serialisation failed.
    #[error("{context}: {source}")]
    Json {
        /// What was being (de)serialised.
        context: String,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },
    /// Plot rendering failed.
    #[error("plot `{path}`: {reason}")]
    Plot {
        /// The output file.
        path: String,
        /// The drawing backend's message.
        reason: String,
    },
}

impl EvalError {
    pub(crate) fn shape(what: &'static str, reason: impl Into<String>) -> Self {
        Self::Shape {
            what,
            reason: reason.into(),
        }
    }

    pub(crate) fn config(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidConfig {
            field,
            reason: reason.into(),
        }
    }

    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// The crate's result alias.
pub type Result<T> = core::result::Result<T, EvalError>;
