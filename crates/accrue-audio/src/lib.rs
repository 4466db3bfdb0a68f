//! # accrue-audio
//!
//! The lowest layer of accrue: audio in, features out.
//!
//! - [`decode`]: any common audio file (WAV, FLAC, OGG/Vorbis, MP3, …) to mono `f32` with
//!   symphonia, with typed errors that name the file.
//! - [`resample`]: band-limited resampling between 1 and 192 kHz with rubato (real data holds
//!   rates as low as 5 kHz).
//! - [`crop`]: random / centre / start crops and zero-padding to a fixed length.
//! - [`mel`]: the Slaney mel filterbank exactly as librosa computes it.
//! - [`nn`]: a PyTorch-faithful `BatchNorm` (unbiased running variance), shared with the
//!   encoders.
//! - [`frontend`]: the PANNs log-mel front end (STFT → power → mel → dB → `bn0` →
//!   SpecAugment) as a differentiable Burn module, with presets for PANNs (32 kHz) and the
//!   `aisfx` checkpoint (44.1 kHz), plus mixup.
//! - [`memo`]: the process's memo of log-mel rows, keyed by the front end's fingerprint and the
//!   clip's samples ([`frontend::FrontEnd::logmel_memoized`]).
//!
//! Architecture invariant: this crate knows nothing of models, losses or training; it depends
//! on no other accrue crate but `accrue-core` (atomic writes, BatchNorm).

pub mod crop;
pub mod decode;
pub mod error;
pub mod frontend;
pub mod mel;
pub mod memo;
pub mod resample;

pub use decode::{Decoded, decode_file};
pub use error::{AudioError, Result};

use std::path::Path;

/// Decodes `path` to mono and resamples it to `target_rate` Hz.
pub fn load(path: &Path, target_rate: u32) -> Result<Vec<f32>> {
    let decoded = decode_file(path)?;
    resample::resample(&decoded.samples, decoded.sample_rate, target_rate)
}
