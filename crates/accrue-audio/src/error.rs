//! The error type of `accrue-audio`.

use std::path::PathBuf;

/// Everything that can go wrong while reading, resampling or shaping audio.
///
/// Every variant that concerns a file names it, so that a message read in a log of a
/// thousand-file run says which file to look at.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// The file could not be opened or read.
    #[error("cannot read audio file {path}: {source}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// No container format or codec able to read the stream is compiled in.
    #[error("unsupported audio format or codec in {path}: {detail}")]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// What the decoder said.
        detail: String,
    },
    /// The stream is malformed or cut short.
    #[error("corrupt or truncated audio stream in {path}: {detail}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What the decoder said.
        detail: String,
    },
    /// The stream decoded to no samples at all.
    #[error("audio file {path} contains no samples")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The decoded stream holds NaN or infinite samples (float formats only).
    #[error("audio file {path} holds {count} non-finite samples (first at sample {first_index})")]
    NonFinite {
        /// The file.
        path: PathBuf,
        /// Number of non-finite samples.
        count: usize,
        /// Index (in mono samples) of the first one.
        first_index: usize,
    },
    /// Float samples far outside `[-1, 1]` (e.g. ±1e30): the front end's power spectrum
    /// would overflow to infinity and every feature become NaN.
    #[error(
        "audio file {path} peaks at {peak:e} (sample {index}): float audio is expected in [-1, 1], \
         and beyond ±{limit:e} the features overflow; rescale the file"
    )]
    OutOfRange {
        /// The file.
        path: PathBuf,
        /// The largest absolute sample.
        peak: f32,
        /// Its index (in mono samples).
        index: usize,
        /// The largest accepted absolute value.
        limit: f32,
    },
    /// A sample rate outside what the resampler accepts.
    #[error("unsupported sample rate {rate} Hz (accepted: {min}..={max} Hz)")]
    SampleRate {
        /// The rejected rate.
        rate: u32,
        /// Lowest accepted rate.
        min: u32,
        /// Highest accepted rate.
        max: u32,
    },
    /// The resampler failed.
    #[error("resampling {from} Hz -> {to} Hz failed: {detail}")]
    Resample {
        /// Input rate.
        from: u32,
        /// Output rate.
        to: u32,
        /// What the resampler said.
        detail: String,
    },
    /// A front-end configuration that cannot work (e.g. `f_max` above Nyquist).
    #[error("invalid front-end configuration: {0}")]
    Config(String),
    /// An argument of a front-end call that does not fit (e.g. samples that do not split into
    /// the stated number of clips).
    #[error("invalid front-end input: {0}")]
    InvalidArgument(String),
}

/// The result type of `accrue-audio`.
pub type Result<T, E = AudioError> = std::result::Result<T, E>;
