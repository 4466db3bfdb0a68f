//! Evaluation of audio encoders for multi-modal continual pre-training.
//!
//! Paper: Kim, Wu, Bondi, Liu, "Multi-modal continual pre-training for audio encoders",
//! ICASSP 2024. The protocols are those of the project's method specification (§6 evaluation,
//! §10 items 10, 17–20, 22); reference implementations are named in each module.
//!
//! This crate works on **embeddings and scores** — row-major `f32` [`Matrix`] buffers, built
//! from any Burn tensor with [`Matrix::from_tensor`] — so it needs neither the encoder nor the
//! trainer: the caller embeds, this crate scores. *Evaluation never mutates a model*: the only
//! model it trains is the small probe head of [`probe`], on frozen embeddings.
//!
//! - [`retrieval`]: cosine ranks with the deterministic tie rule (count strictly larger
//!   similarities), R@1/5/10 and mAP@10 both ways, Clotho's several-captions rule, `N × N`
//!   image ↔ audio; streams similarity rows, never materialising the full matrix.
//! - [`classification`]: scikit-learn-exact average precision and macro mAP (documented rule
//!   for classes without positives), ROC AUC, d′, top-1 accuracy.
//! - [`zero_shot`]: prompts → any [`zero_shot::TextEmbedder`] (a closure will do) → prompt
//!   ensembling → argmax cosine → accuracy.
//! - [`probe`]: the HEAR linear (or MLP) probe in Burn: lr × init grid, Adam, early stopping,
//!   k-fold rule, multi-class and multi-label; seeded and deterministic.
//! - [`continual`]: the stage × evaluation matrix, GEM ACC/BWT/FWT, Chaudhry forgetting and
//!   intransigence.
//! - [`report`]: the JSON artifact (every score + provenance) with a JSON Schema in
//!   `schema/eval-artifact.schema.json`; [`table`]: the paper's Tables 1–3 in Markdown with
//!   mean ± std over seeds; [`plot`]: heatmap, training curves, forgetting bars, retention
//!   versus gain (PNG/SVG).
//!
//! ```
//! use accrue_eval::matrix::Matrix;
//! use accrue_eval::retrieval::{Positives, cross_modal_retrieval};
//!
//! # fn main() -> accrue_eval::Result<()> {
//! // 2 clips, 2 captions each (Clotho layout: captions of a clip are consecutive).
//! let audio = Matrix::from_rows(&[vec![1.0, 0.0], vec![0.0, 1.0]])?;
//! let text = Matrix::from_rows(&[
//!     vec![0.9, 0.1], vec![0.8, 0.3], // clip 0
//!     vec![0.2, 0.9], vec![0.7, 0.6], // clip 1
//! ])?;
//! let clips = Positives::grouped_caption_clips(2, 2);
//! let r = cross_modal_retrieval(audio.view(), text.view(), &clips)?;
//! assert_eq!(r.audio_to_other.r_at_1, 1.0); // A2T: best caption rank 1 for both clips
//! assert_eq!(r.other_to_audio.r_at_1, 0.75); // T2A: caption 3 prefers clip 0
//! # Ok(())
//! # }
//! ```

pub mod classification;
pub mod continual;
mod error;
pub mod matrix;
#[cfg(feature = "plot")]
pub mod plot;
pub mod probe;
pub mod report;
pub mod retrieval;
pub mod schema;
pub mod table;
pub mod zero_shot;

pub use error::{BoxError, EvalError, Result};
pub use matrix::{Matrix, MatrixRef};
