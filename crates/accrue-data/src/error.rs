//! The error type of `accrue-data`.

use std::path::PathBuf;

/// Everything that can go wrong while reading a dataset or loading its audio.
///
/// Every variant names the file it is about; row-level problems also name the line (1-based).
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file or directory could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A row of a metadata file is malformed (wrong number of fields, bad number, unknown label…).
    #[error("{}:{line}: {message}", path.display())]
    Malformed {
        /// The metadata file.
        path: PathBuf,
        /// 1-based line number of the offending row (0 when unknown).
        line: u64,
        /// What is wrong with the row.
        message: String,
    },
    /// The dataset directory does not have the expected layout (missing metadata file, header…).
    #[error("{}: {message}", path.display())]
    Layout {
        /// The file or directory that is missing or wrong.
        path: PathBuf,
        /// What was expected.
        message: String,
    },
    /// An audio or image file referenced by the dataset does not exist.
    #[error("{what} file {} (clip `{clip_id}`) does not exist", path.display())]
    MissingFile {
        /// `"audio"` or `"image"`.
        what: &'static str,
        /// The missing file.
        path: PathBuf,
        /// The clip that references it.
        clip_id: String,
    },
    /// An audio file exists but could not be decoded or resampled.
    #[error("audio file {} (clip `{clip_id}`) could not be loaded: {source}", path.display())]
    Audio {
        /// The audio file.
        path: PathBuf,
        /// The clip that references it.
        clip_id: String,
        /// The decoder/resampler error.
        #[source]
        source: accrue_audio::AudioError,
    },
    /// Several files were bad and `skip_bad` was off: the first error and how many there were.
    #[error(
        "{first} ({count} bad file(s) in total; set `skip_bad = true` to skip and report them)"
    )]
    BadFiles {
        /// The error for the first bad example (in dataset order).
        first: Box<DataError>,
        /// Number of bad examples found.
        count: usize,
    },
    /// A file of the on-disk audio cache could not be written.
    #[error("audio cache {}: {message}", path.display())]
    Cache {
        /// The cache file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The loader configuration is invalid.
    #[error("invalid data-loader configuration: {0}")]
    Config(String),
    /// The background prefetch thread stopped unexpectedly.
    #[error("data-loader worker stopped unexpectedly: {0}")]
    Worker(String),
}

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn malformed(
        path: impl Into<PathBuf>,
        line: u64,
        message: impl Into<String>,
    ) -> Self {
        DataError::Malformed {
            path: path.into(),
            line,
            message: message.into(),
        }
    }

    pub(crate) fn layout(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        DataError::Layout {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// `Result` with [`DataError`].
pub type Result<T, E = DataError> = std::result::Result<T, E>;
