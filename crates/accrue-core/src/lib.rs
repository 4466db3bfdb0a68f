//! # accrue-core
//!
//! The infrastructure every layer of accrue shares, each piece written once:
//!
//! | module | what |
//! |---|---|
//! | [`atomic`] | files written to a temporary name, synced and renamed: a reader never sees half a file |
//! | [`hash`] | sha256 of bytes and files (`sha256:<hex>` tags and plain hex) |
//! | [`seed`] | SplitMix64: the seeded generator and the seed derivations of loader, trainer and probe |
//! | [`arrays`] | named `f32` arrays on disk (safetensors), the one format of every cache |
//! | [`load`] | the strict-load report (missing / unexpected / mis-shaped tensors) |
//! | `nn` | PyTorch-faithful `BatchNorm` (feature `burn`) |
//! | `kernels` | fast `flex` convolution and batch norm, forward and gradients, as Burn backend extensions (feature `burn`) |
//!
//! Invariant: this crate depends on no other accrue crate, and without the `burn` feature on
//! no tensor library, so the data layer can use it and stay tensor-free.
#![deny(missing_docs)]

pub mod arrays;
pub mod atomic;
pub mod hash;
#[cfg(feature = "burn")]
pub mod kernels;
pub mod load;
#[cfg(feature = "burn")]
pub mod nn;
pub mod seed;

use std::path::{Path, PathBuf};

/// Errors of the shared infrastructure; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// File-system error on `path`.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file exists but is not what it should be (wrong format, truncated, wrong key).
    #[error("{}: {message}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    /// A format error on `path`.
    pub fn format(path: impl AsRef<Path>, message: impl Into<String>) -> Self {
        Self::Format {
            path: path.as_ref().to_path_buf(),
            message: message.into(),
        }
    }
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
