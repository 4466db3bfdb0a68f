//! The frozen-tower abstraction: anything that turns a batch of inputs (texts or images)
//! into L2-normalised embeddings `[N, D]`, with a stable identity for provenance.

use std::fmt;
use std::path::Path;

use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// Which tower produced an embedding: enough to tell two sets of training targets apart.
///
/// Two towers with equal identities produce the same embeddings for the same input (up to
/// floating-point differences between backends); the [embedding cache](crate::cache) is keyed
/// by it, and training results should record it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TowerIdentity {
    /// Architecture and its configuration, e.g. `"minilm-l6-h384/bert-mean-pool"`.
    pub architecture: String,
    /// Hex sha256 of the weight file (of the bytes on disk).
    pub weights_sha256: String,
    /// Input preprocessing, e.g. `"clip-bicubic-224-center-crop/v1"` or a tokenizer hash.
    pub preprocessing: String,
}

impl TowerIdentity {
    /// A short, filesystem-safe digest of the whole identity (16 hex digits).
    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        for part in [
            &self.architecture,
            &self.weights_sha256,
            &self.preprocessing,
        ] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        hex(&h.finalize()[..8])
    }
}

impl fmt::Display for TowerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self
            .weights_sha256
            .get(..12)
            .unwrap_or(&self.weights_sha256);
        write!(
            f,
            "{} [weights sha256 {w}…, preprocessing {}]",
            self.architecture, self.preprocessing
        )
    }
}

/// What a tower embeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Modality {
    /// Natural-language text.
    Text,
    /// RGB images.
    Image,
}

/// A frozen encoder that supervises the audio encoder (f_s in the paper).
///
/// Implementations run in inference mode only (no dropout, BatchNorm on running statistics,
/// no gradients) and return embeddings with unit L2 norm on the tower's device, whatever
/// the backend.
pub trait FrozenTower {
    /// One input item: `str` for text towers, [`image::DynamicImage`] for image towers.
    type Input: ?Sized;

    /// The tower's provenance record.
    fn identity(&self) -> &TowerIdentity;
    /// Text or image.
    fn modality(&self) -> Modality;
    /// The embedding width `D`.
    fn embed_dim(&self) -> usize;
    /// The device the tower runs on.
    fn device(&self) -> &Device;
    /// Embeds a non-empty batch: `[N, D]`, each row L2-normalised.
    fn embed(&self, batch: &[&Self::Input]) -> Result<Tensor<2>>;
    /// A content hash of one input (the embedding-cache key together with [`Self::identity`]).
    fn input_digest(input: &Self::Input) -> [u8; 32];
}

/// Hash of a text input.
pub fn text_digest(text: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"text\0");
    h.update(text.as_bytes());
    h.finalize().into()
}

/// Hash of an image input (its RGB8 pixels and size, so re-encoding does not change it).
pub fn image_digest(img: &image::DynamicImage) -> [u8; 32] {
    let rgb = img.to_rgb8();
    let mut h = Sha256::new();
    h.update(b"rgb8\0");
    h.update(rgb.width().to_le_bytes());
    h.update(rgb.height().to_le_bytes());
    h.update(rgb.as_raw());
    h.finalize().into()
}

/// Rows of `x` `[N, D]` scaled to unit L2 norm (rows of zeros stay zero).
pub fn l2_normalize(x: Tensor<2>) -> Tensor<2> {
    let norm = x.clone().powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-12);
    x / norm
}

pub use accrue_core::hash::hex;

/// Hex sha256 of a file's bytes.
///
/// # Errors
/// [`Error::Core`] naming the unreadable file.
pub fn sha256_file(path: &Path) -> Result<String> {
    Ok(accrue_core::hash::sha256_file(path)?)
}

/// The directory holding the fetched tower files, as written by `scripts/fetch_towers.sh`:
/// `$ACCRUE_DATA_DIR/towers`, or `data/towers` relative to the current directory.
pub fn default_towers_dir() -> std::path::PathBuf {
    match std::env::var_os("ACCRUE_DATA_DIR") {
        Some(d) => std::path::PathBuf::from(d).join("towers"),
        None => std::path::PathBuf::from("data/towers"),
    }
}

/// Refuses an empty batch ([`Error::EmptyBatch`]): every tower's first check.
pub(crate) fn require_batch<T: ?Sized>(batch: &[&T]) -> Result<()> {
    if batch.is_empty() {
        return Err(Error::EmptyBatch);
    }
    Ok(())
}

/// Refuses an empty batch and an empty or blank caption ([`Error::EmptyText`] with its index):
/// every text tower's first check.
pub(crate) fn require_texts(batch: &[&str]) -> Result<()> {
    require_batch(batch)?;
    if let Some(index) = batch.iter().position(|t| t.trim().is_empty()) {
        return Err(Error::EmptyText { index });
    }
    Ok(())
}

pub(crate) fn require_file(path: &Path) -> Result<()> {
    if path.is_file() {
        Ok(())
    } else {
        Err(Error::MissingFile {
            path: path.to_path_buf(),
            hint: "run scripts/fetch_towers.sh (or set ACCRUE_DATA_DIR)".into(),
        })
    }
}
