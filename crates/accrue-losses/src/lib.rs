//! Losses of multi-modal continual pre-training for audio encoders.
//!
//! Paper: Kim, Wu, Bondi, Liu, "Multi-modal continual pre-training for audio encoders",
//! ICASSP 2024; the exact definitions implemented here are those of the project's method
//! specification (§3.1 contrastive loss, §4 continual-learning objective, §10 ambiguities).
//!
//! Everything is a pure function of Burn tensors (any backend, differentiable), or a tiny
//! module for the learnable parts (the [`LogitScale`], the CaSSLe [`CasslePredictor`]):
//!
//! - [`contrastive`]: symmetric CLIP/InfoNCE cross-entropy, its multi-positive variant and the
//!   learnable, clamped logit scale.
//! - [`kl`]: the KL divergence with explicit direction, temperature (`T²` scaling), softmax axis,
//!   reduction, and a per-class Bernoulli alternative for multi-label heads.
//! - [`distill`]: the LwF, CaSSLe and Mod-X distillation terms, taking already-computed teacher
//!   and student tensors (teacher sides are detached inside).
//! - [`objective`]: `L = (1 − λ) · L_c + λ · L_kd` and the named, weighted [`LossTerms`] that
//!   higher layers log and check for NaN/inf.
//!
//! Every ambiguity of the spec that concerns losses is a field of a serialisable config whose
//! default is the spec's recommendation: [`KlDivConfig`] (§10 items 3–5), [`ModXConfig`]
//! (item 7), [`LogitScaleConfig`] (item 16), [`ObjectiveConfig`] (λ).
//!
//! All scalar losses have shape `[1]`. The crate is verified against PyTorch autograd (values
//! and input gradients) by golden fixtures generated with `tools/goldens/losses.py`.
//!
//! ```
//! use accrue_losses::{LwfConfig, ObjectiveConfig, LossTerms, clip_loss, lwf_loss};
//! use burn::tensor::{Device, Tensor, Distribution};
//!
//! # fn main() -> accrue_losses::Result<()> {
//! let device = Device::default();
//! let audio = Tensor::<2>::random([4, 8], Distribution::Default, &device);
//! let image = Tensor::<2>::random([4, 8], Distribution::Default, &device);
//! let scale = Tensor::<1>::from_floats([1.0 / 0.07], &device);
//! let l_c = clip_loss(audio, image, scale)?;
//!
//! let teacher_logits = Tensor::<2>::random([4, 527], Distribution::Default, &device);
//! let student_logits = Tensor::<2>::random([4, 527], Distribution::Default, &device);
//! let l_kd = lwf_loss(teacher_logits, student_logits, &LwfConfig::new())?;
//!
//! let terms = LossTerms::objective(l_c, l_kd, &ObjectiveConfig::new())?;
//! terms.check_finite()?;
//! let loss = terms.total()?; // (1 − 0.3)·L_c + 0.3·L_kd, ready for `.backward()`
//! assert_eq!(loss.dims(), [1]);
//! # Ok(())
//! # }
//! ```

pub mod contrastive;
pub mod distill;
mod error;
pub mod kl;
pub mod objective;
mod util;

pub use contrastive::{
    DEFAULT_LOG_LOGIT_SCALE, LogitScale, LogitScaleConfig, MAX_LOG_LOGIT_SCALE, clip_loss,
    clip_loss_multi_positive, contrastive_logits, positives_from_labels,
};
pub use distill::cassle::{
    CassleConfig, CasslePredictor, CasslePredictorConfig, cassle_kl, cassle_loss,
};
pub use distill::lwf::{LwfConfig, lwf_loss};
pub use distill::modx::{
    ModXConfig, TieBreak, cognition_align, cognition_align_with, misranked_rows,
    misranked_rows_with, modx_loss, modx_loss_from_similarities, modx_loss_from_similarities_with,
    same_target_mask,
};
pub use error::{LossError, Result};
pub use kl::{Distribution, KlDirection, KlDivConfig, Reduction, kl_div};
pub use objective::{
    CONTRASTIVE_TERM, DISTILLATION_TERM, LossTerm, LossTerms, ObjectiveConfig, TermValue,
    check_finite, combine,
};
pub use util::{NORMALIZE_EPS, cosine_similarity_matrix, l2_normalize};
