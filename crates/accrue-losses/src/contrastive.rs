//! Symmetric CLIP / InfoNCE cross-entropy with a learnable logit scale (method-spec §3.1).
//!
//! Paper: Radford et al., "Learning Transferable Visual Models From Natural Language
//! Supervision", ICML 2021. Reference implementations: `openai/CLIP:clip/model.py` (logit scale
//! init `ln(1/0.07)`), `descriptinc/lyrebird-wav2clip:wav2clip/pre_training/loss.py`
//! (`CLIPLoss1D`), `ZixuanNi/Mod-X` (clamp of the log-scale to `[0, ln 100]` after each step).
//!
//! For a batch of `B` pairs, `z = norm(audio)`, `s = norm(supervision)`,
//! `L = exp(τ) · z sᵀ` (rows = audio) and
//! `L_c = ½ [CE_rows(L, I) + CE_rows(Lᵀ, I)]`.
//!
//! The multi-positive variant replaces the one-hot target `I` by a per-row distribution that is
//! uniform over the positives of the row (and, for the column direction, over the positives of
//! the column); with the identity mask it is exactly the plain loss.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Bool, Device, Int, Tensor};

use crate::error::LossError;
use crate::util::{check_matrix, check_same, cosine_similarity_matrix, identity_mask};

/// `ln(1 / 0.07)`: the CLIP / Wav2CLIP / CLAP initial log logit scale.
pub const DEFAULT_LOG_LOGIT_SCALE: f64 = 2.659_260_036_932_778;
/// `ln(100)`: the upper clamp of the log logit scale (`exp(τ) ≤ 100`).
pub const MAX_LOG_LOGIT_SCALE: f64 = 4.605_170_185_988_092;

/// Configuration of a learnable [`LogitScale`] (method-spec §3.1, §10 item 16).
#[derive(Config, Debug, PartialEq)]
pub struct LogitScaleConfig {
    /// Initial value of the log scale `τ` (the multiplier is `exp(τ)`).
    #[config(default = "DEFAULT_LOG_LOGIT_SCALE")]
    pub init: f64,
    /// Lower clamp of `τ` (`0` ⇒ `exp(τ) ≥ 1`).
    #[config(default = 0.0)]
    pub min: f64,
    /// Upper clamp of `τ` (`ln 100` ⇒ `exp(τ) ≤ 100`).
    #[config(default = "MAX_LOG_LOGIT_SCALE")]
    pub max: f64,
}

impl LogitScaleConfig {
    /// The CLIP preset (the defaults): init `ln(1/0.07)`, clamp `[0, ln 100]`.
    pub fn clip() -> Self {
        Self::new()
    }

    /// Checks that `min ≤ init ≤ max` and that all are finite.
    pub fn validate(&self) -> crate::Result<()> {
        if !(self.min.is_finite() && self.max.is_finite() && self.init.is_finite()) {
            return Err(LossError::InvalidConfig {
                field: "logit_scale",
                reason: "init, min and max must be finite".into(),
            });
        }
        if self.min > self.max || self.init < self.min || self.init > self.max {
            return Err(LossError::InvalidConfig {
                field: "logit_scale",
                reason: format!(
                    "need min ≤ init ≤ max, got min {}, init {}, max {}",
                    self.min, self.init, self.max
                ),
            });
        }
        Ok(())
    }

    /// Creates the [`LogitScale`] module.
    ///
    /// # Errors
    ///
    /// [`LossError::InvalidConfig`] when [`LogitScaleConfig::validate`] fails.
    pub fn init(&self, device: &Device) -> crate::Result<LogitScale> {
        self.validate()?;
        let value = Tensor::<1>::from_floats([self.init as f32], device);
        Ok(LogitScale {
            log_scale: Param::from_tensor(value),
            min: self.min,
            max: self.max,
        })
    }
}

/// A learnable temperature: the log of the multiplier applied to cosine similarities.
///
/// The scale is kept in `[exp(min), exp(max)]` in two ways, as in the references: the forward
/// pass clamps `τ` before exponentiating, and [`LogitScale::clamp`] projects the stored
/// parameter back into range (call it after each optimiser step, as CLIP and Mod-X do).
#[derive(Module, Debug)]
pub struct LogitScale {
    /// The log scale `τ`, shape `[1]`.
    pub log_scale: Param<Tensor<1>>,
    /// Lower clamp of `τ`.
    pub min: f64,
    /// Upper clamp of `τ`.
    pub max: f64,
}

impl LogitScale {
    /// The multiplier `exp(clamp(τ, min, max))`.
    ///
    /// # Shapes
    ///
    /// - output: `[1]`
    pub fn forward(&self) -> Tensor<1> {
        self.log_scale.val().clamp(self.min, self.max).exp()
    }

    /// Projects the stored `τ` into `[min, max]`, keeping the parameter id (so optimiser state
    /// stays attached) and its gradient requirement.
    pub fn clamp(self) -> Self {
        let (min, max) = (self.min, self.max);
        let log_scale = self.log_scale.map(|t| {
            let require_grad = t.is_require_grad();
            t.clamp(min, max).detach().set_require_grad(require_grad)
        });
        Self {
            log_scale,
            min,
            max,
        }
    }
}

/// The `[B, B]` logit matrix `scale · norm(audio) · norm(supervision)ᵀ` (rows = audio).
///
/// # Shapes
///
/// - `audio`, `supervision`: `[B, D]`
/// - `logit_scale`: `[1]` (the multiplier, e.g. [`LogitScale::forward`])
/// - output: `[B, B]`
pub fn contrastive_logits(
    audio: Tensor<2>,
    supervision: Tensor<2>,
    logit_scale: Tensor<1>,
) -> Tensor<2> {
    cosine_similarity_matrix(audio, supervision).mul(logit_scale.reshape([1, 1]))
}

fn check_pair(
    term: &'static str,
    audio: &Tensor<2>,
    supervision: &Tensor<2>,
    scale: &Tensor<1>,
) -> crate::Result<usize> {
    let [b, _] = check_matrix(term, "audio", audio)?;
    check_same(term, "supervision", audio, supervision)?;
    if scale.dims() != [1] {
        return Err(LossError::Shape {
            term,
            input: "logit_scale",
            got: scale.dims().to_vec(),
            expected: "[1]".into(),
        });
    }
    Ok(b)
}

/// Symmetric CLIP / InfoNCE loss with the diagonal as targets (method-spec §3.1).
///
/// Both embeddings are L2-normalised **inside** (`x / max(‖x‖, 1e-12)`, as `F.normalize`), so
/// raw head outputs can be passed directly; normalising twice is harmless for the value.
/// `logit_scale` is the multiplier `exp(τ)` (not `τ`), typically [`LogitScale::forward`].
///
/// `L_c = ½ [−(1/B) Σ_i log softmax_j(L_ij)|_{j=i} − (1/B) Σ_j log softmax_i(L_ij)|_{i=j}]`.
///
/// # Shapes
///
/// - `audio`: `[B, D]` (rows pair with the rows of `supervision`)
/// - `supervision`: `[B, D]`
/// - `logit_scale`: `[1]`
/// - output: `[1]`
///
/// # Errors
///
/// [`LossError::Shape`] / [`LossError::EmptyBatch`] on malformed inputs.
pub fn clip_loss(
    audio: Tensor<2>,
    supervision: Tensor<2>,
    logit_scale: Tensor<1>,
) -> crate::Result<Tensor<1>> {
    let b = check_pair("clip_loss", &audio, &supervision, &logit_scale)?;
    let device = audio.device();
    let logits = contrastive_logits(audio, supervision, logit_scale);
    let eye = identity_mask(b, &device).float();
    Ok(soft_target_symmetric_ce(logits, eye.clone(), eye, b))
}

/// `½ [CE_rows(L, Q_rows) + CE_cols(L, Q_cols)]` with soft targets that sum to one per row
/// (resp. per column).
fn soft_target_symmetric_ce(
    logits: Tensor<2>,
    row_targets: Tensor<2>,
    col_targets: Tensor<2>,
    b: usize,
) -> Tensor<1> {
    let rows = log_softmax(logits.clone(), 1).mul(row_targets).sum();
    let cols = log_softmax(logits, 0).mul(col_targets).sum();
    rows.add(cols).div_scalar(-2.0 * b as f64)
}

/// Symmetric CLIP loss with several positives per row (class-level pairings, e.g. "any image
/// of a violin").
///
/// `positives[i, j] = true` when audio `i` and supervision `j` form a positive pair. The target
/// of audio row `i` is uniform over its positives, `q_ij = m_ij / Σ_k m_ik`; symmetrically the
/// target of supervision column `j` is uniform over the positives of that column,
/// `q'_ij = m_ij / Σ_k m_kj`. The loss is
/// `½ [−(1/B) Σ_ij q_ij log softmax_j(L)_ij − (1/B) Σ_ij q'_ij log softmax_i(L)_ij]`.
/// This is the "uniform soft target" choice (as in SupCon's `L_out` with the log outside the
/// average and as used by CLIP-style class-level training); with the identity mask it equals
/// [`clip_loss`] exactly. A row (column) with no positive contributes zero but still counts in
/// `B`; normally the diagonal is always positive.
///
/// # Shapes
///
/// - `audio`, `supervision`: `[B, D]`
/// - `logit_scale`: `[1]`
/// - `positives`: `[B, B]` (rows = audio, columns = supervision)
/// - output: `[1]`
///
/// # Errors
///
/// [`LossError::Shape`] / [`LossError::EmptyBatch`] on malformed inputs.
pub fn clip_loss_multi_positive(
    audio: Tensor<2>,
    supervision: Tensor<2>,
    logit_scale: Tensor<1>,
    positives: Tensor<2, Bool>,
) -> crate::Result<Tensor<1>> {
    let b = check_pair(
        "clip_loss_multi_positive",
        &audio,
        &supervision,
        &logit_scale,
    )?;
    if positives.dims() != [b, b] {
        return Err(LossError::Shape {
            term: "clip_loss_multi_positive",
            input: "positives",
            got: positives.dims().to_vec(),
            expected: format!("[{b}, {b}]"),
        });
    }
    let logits = contrastive_logits(audio, supervision, logit_scale);
    let mask = positives.float();
    let row_targets = mask.clone().div(mask.clone().sum_dim(1).clamp_min(1.0));
    let col_targets = mask.clone().div(mask.sum_dim(0).clamp_min(1.0));
    Ok(soft_target_symmetric_ce(
        logits,
        row_targets,
        col_targets,
        b,
    ))
}

/// The positive mask of class-level pairings: `positives[i, j] = (labels[i] == labels[j])`.
///
/// # Shapes
///
/// - `labels`: `[B]`
/// - output: `[B, B]` (the diagonal is always true)
pub fn positives_from_labels(labels: Tensor<1, Int>) -> Tensor<2, Bool> {
    let [b] = labels.dims();
    let rows = labels.clone().reshape([b, 1]).expand([b, b]);
    let cols = labels.reshape([1, b]).expand([b, b]);
    rows.equal(cols)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar(t: Tensor<1>) -> f32 {
        t.into_data().try_to_vec_as::<f32>().expect("f32 data")[0]
    }

    fn orthonormal(b: usize, d: usize, device: &Device) -> Tensor<2> {
        let data: Vec<f32> = (0..b * d)
            .map(|k| if k % d == k / d { 1.0 } else { 0.0 })
            .collect();
        Tensor::<1>::from_floats(data.as_slice(), device).reshape([b, d])
    }

    #[test]
    fn perfect_alignment_with_huge_scale_gives_zero_loss() {
        let device = Device::default();
        let z = orthonormal(4, 6, &device);
        let scale = Tensor::<1>::from_floats([1000.0], &device);
        let loss = scalar(clip_loss(z.clone(), z.mul_scalar(3.0), scale).expect("loss"));
        assert!(loss.abs() < 1e-6, "loss {loss}");
    }

    #[test]
    fn identical_rows_give_log_b() {
        // All logits equal ⇒ each softmax is uniform ⇒ CE = ln B in both directions.
        let device = Device::default();
        let a = Tensor::<2>::ones([5, 3], &device);
        let scale = Tensor::<1>::from_floats([14.0], &device);
        let loss = scalar(clip_loss(a.clone(), a, scale).expect("loss"));
        assert!((loss - (5.0f32).ln()).abs() < 1e-5, "loss {loss}");
    }

    #[test]
    fn multi_positive_with_identity_mask_equals_plain_loss() {
        let device = Device::default();
        let a = Tensor::<2>::from_floats(
            [[1.0, 0.2, -0.3], [0.1, 1.0, 0.4], [-0.5, 0.3, 0.9]],
            &device,
        );
        let s = Tensor::<2>::from_floats(
            [[0.8, 0.1, 0.0], [0.3, 0.7, 0.2], [0.0, -0.2, 1.0]],
            &device,
        );
        let scale = Tensor::<1>::from_floats([10.0], &device);
        let plain = scalar(clip_loss(a.clone(), s.clone(), scale.clone()).expect("loss"));
        let eye = positives_from_labels(Tensor::<1, Int>::from_ints([0, 1, 2], &device));
        let multi = scalar(clip_loss_multi_positive(a, s, scale, eye).expect("loss"));
        assert!((plain - multi).abs() < 1e-6);
    }

    #[test]
    fn positives_from_labels_marks_equal_classes() {
        let device = Device::default();
        let m = positives_from_labels(Tensor::<1, Int>::from_ints([3, 1, 3], &device));
        let v = m.into_data().try_to_vec_as::<bool>().expect("bool");
        assert_eq!(
            v,
            vec![true, false, true, false, true, false, true, false, true]
        );
    }

    #[test]
    fn logit_scale_defaults_and_clamp() {
        let device = Device::default();
        let ls = LogitScaleConfig::new().init(&device).expect("init");
        assert!((scalar(ls.forward()) - 1.0 / 0.07).abs() < 1e-3);
        // Push τ above the max: forward is clamped, and clamp() projects the parameter.
        let ls = LogitScale {
            log_scale: ls.log_scale.map(|t| t.add_scalar(10.0)),
            ..ls
        };
        assert!((scalar(ls.forward()) - 100.0).abs() < 1e-3);
        let id = ls.log_scale.id;
        let ls = ls.clamp();
        assert_eq!(ls.log_scale.id, id);
        assert!((scalar(ls.log_scale.val()) as f64 - MAX_LOG_LOGIT_SCALE).abs() < 1e-6);
        assert!(
            LogitScaleConfig::new()
                .with_init(5.0)
                .init(&device)
                .is_err()
        );
    }

    #[test]
    fn logit_scale_clamp_keeps_it_trainable() {
        let device = Device::default().autodiff();
        let ls = LogitScaleConfig::new().init(&device).expect("init").clamp();
        assert!(ls.log_scale.val().is_require_grad());
        let grads = ls.forward().backward();
        assert!(ls.log_scale.val().grad(&grads).is_some());
    }

    #[test]
    fn mismatched_shapes_are_errors() {
        let device = Device::default();
        let a = Tensor::<2>::ones([2, 3], &device);
        let s = Tensor::<2>::ones([3, 3], &device);
        let scale = Tensor::<1>::from_floats([1.0], &device);
        assert!(matches!(
            clip_loss(a, s, scale),
            Err(LossError::Shape { .. })
        ));
    }
}
