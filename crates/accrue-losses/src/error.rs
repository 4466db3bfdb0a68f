//! The crate's error type.

/// Errors returned by the loss functions of this crate.
///
/// Loss functions validate shapes and configurations up front and return one of these instead
/// of panicking inside a backend kernel.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LossError {
    /// An input tensor has the wrong shape.
    #[error("{term}: {input} has shape {got:?}, expected {expected}")]
    Shape {
        /// The loss (or helper) that rejected the input.
        term: &'static str,
        /// Which input was rejected.
        input: &'static str,
        /// The shape that was received.
        got: Vec<usize>,
        /// A description of the expected shape.
        expected: String,
    },
    /// A batch with no rows was given.
    #[error("{term}: the batch is empty")]
    EmptyBatch {
        /// The loss that rejected the input.
        term: &'static str,
    },
    /// A configuration value is out of its valid range.
    #[error("invalid configuration `{field}`: {reason}")]
    InvalidConfig {
        /// The offending field.
        field: &'static str,
        /// Why it is invalid.
        reason: String,
    },
    /// A loss term evaluated to NaN or ±infinity.
    #[error("loss term `{term}` is not finite (value {value})")]
    NonFinite {
        /// The name of the offending term.
        term: String,
        /// The value that was observed (NaN or ±inf; the first non-finite element).
        value: f64,
    },
    /// A loss term was expected to be a scalar (shape `[1]`).
    #[error("loss term `{term}` must be a scalar of shape [1], got shape {got:?}")]
    NotScalar {
        /// The name of the offending term.
        term: String,
        /// The received shape.
        got: Vec<usize>,
    },
    /// Two loss terms share a name.
    #[error("duplicate loss term `{0}`")]
    DuplicateTerm(String),
    /// A total was requested from an empty set of terms.
    #[error("no loss terms to sum")]
    NoTerms,
}

/// The crate's result alias.
pub type Result<T> = core::result::Result<T, LossError>;
