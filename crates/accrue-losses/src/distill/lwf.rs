//! Learning without Forgetting distillation term (method-spec §4.1).
//!
//! Paper: Li & Hoiem, "Learning without Forgetting", ECCV 2016 / TPAMI 2017. The CL paper's
//! adaptation: `L_kd = KL(P(g^{k−1}(f_a^{k−1}(x))) ‖ P(g^{k−1}(f_a^k(x))))` with
//! `P(u) = softmax(u / T)`, `T = 2`, `T²` scaling and batch-mean reduction (spec §10 item 3).
//! The student copy of the old head `g^{k−1}` keeps training (spec §10 item 6); that is the
//! caller's business — this function only sees its output.

use burn::config::Config;
use burn::tensor::Tensor;

use crate::kl::{KlDivConfig, kl_div};
use crate::util::{check_matrix, check_same};

/// Configuration of the LwF term. The default is the spec's recommendation.
#[derive(Config, Debug, PartialEq)]
pub struct LwfConfig {
    /// The divergence: teacher‖student, `T = 2` with `T²`, softmax over the last axis,
    /// batch-mean. Use [`KlDivConfig::bernoulli`] for the per-class Bernoulli alternative on
    /// the 527-way multi-label AudioSet head (spec §10 item 4).
    #[config(default = "KlDivConfig::lwf()")]
    pub kl: KlDivConfig,
}

/// LwF distillation term `KL(P(teacher head) ‖ P(student head))`.
///
/// `teacher_head_out` is detached inside. Stage AV: both are 527-way `fc_audioset` logits
/// (teacher = frozen AudioSet model, student = `fc_audioset` on the current encoder's un-dropped
/// embedding). Stage AT: both are the 512-d `g^AV` outputs.
///
/// # Shapes
///
/// - `teacher_head_out`: `[B, C]`
/// - `student_head_out`: `[B, C]`
/// - output: `[1]` (`[B·C]` with [`crate::Reduction::None`])
///
/// # Errors
///
/// [`crate::LossError::Shape`], [`crate::LossError::EmptyBatch`] or
/// [`crate::LossError::InvalidConfig`].
pub fn lwf_loss(
    teacher_head_out: Tensor<2>,
    student_head_out: Tensor<2>,
    config: &LwfConfig,
) -> crate::Result<Tensor<1>> {
    check_matrix("lwf_loss", "teacher_head_out", &teacher_head_out)?;
    check_same(
        "lwf_loss",
        "student_head_out",
        &teacher_head_out,
        &student_head_out,
    )?;
    kl_div(teacher_head_out.detach(), student_head_out, &config.kl)
}
