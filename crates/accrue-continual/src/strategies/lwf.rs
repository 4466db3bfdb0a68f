//! Learning without Forgetting, adapted to multi-modal continual pre-training (method-spec §4.1).
//!
//! Paper: Li & Hoiem, "Learning without Forgetting", ECCV 2016 / TPAMI 2017.
//! `L = (1 − λ)·L_c + λ·KL(P(g^{k−1}(f_a^{k−1}(x))) ‖ P(g^{k−1}(f_a^k(x))))` with
//! `P = softmax(·/T)`, `T = 2`, `T²` scaling, batch-mean (§10 items 3–5).
//!
//! The previous head g^{k−1} is the student's own copy (`fc_audioset` after task A, g^AV after
//! AV), which keeps training as in LwF (§10 item 6); the teacher's copy is frozen. Because the
//! student keeps all heads, the retained head needs no auxiliary module.

use accrue_losses::{KlDivConfig, LossTerms, LwfConfig, lwf_loss};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::model::Student;
use crate::strategy::{
    Capabilities, NoAux, StageInfo, StepView, Strategy, TeacherSlot, mixed_objective,
    previous_head_outputs, task_loss, task_loss_only,
};

/// LwF options (defaults: the spec's recommendations).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LwfOptions {
    /// Distillation temperature `T` (§10 item 3).
    pub temperature: f64,
    /// Per-class Bernoulli KL on the 527-way multi-label head instead of softmax (§10 item 4).
    pub bernoulli_on_labels: bool,
}

impl Default for LwfOptions {
    fn default() -> Self {
        Self {
            temperature: 2.0,
            bernoulli_on_labels: false,
        }
    }
}

impl LwfOptions {
    pub(crate) fn kl(&self, previous_is_labels: bool) -> KlDivConfig {
        let kl = KlDivConfig::lwf().with_temperature(self.temperature);
        if previous_is_labels && self.bernoulli_on_labels {
            kl.with_distribution(accrue_losses::Distribution::Bernoulli)
        } else {
            kl
        }
    }
}

/// Learning without Forgetting.
#[derive(Clone, Debug, Default)]
pub struct Lwf {
    options: LwfOptions,
    teacher: TeacherSlot,
}

impl Lwf {
    /// LwF with the given options.
    pub fn new(options: LwfOptions) -> Self {
        Self {
            options,
            teacher: TeacherSlot::new(),
        }
    }
}

impl Strategy for Lwf {
    type Aux = NoAux;

    fn name(&self) -> String {
        "lwf".into()
    }

    fn capabilities(&self, stage: &StageInfo) -> Capabilities {
        Capabilities {
            teacher_forward: stage.previous.is_some(),
            supervision: true,
            freeze_encoder: false,
            replay: false,
        }
    }

    fn begin_stage(&mut self, stage: &StageInfo, student: &Student, _: &Device) -> Result<NoAux> {
        if let Some(prev) = stage.previous.filter(|p| p.is_contrastive()) {
            student.require_head(prev)?;
        }
        self.teacher.begin(stage, student);
        Ok(NoAux {})
    }

    fn teacher(&self) -> Option<&Student> {
        self.teacher.get()
    }

    fn fork(&self, device: &Device) -> Result<Self> {
        Ok(Self {
            options: self.options.clone(),
            teacher: self.teacher.fork(device),
        })
    }

    fn loss_terms(&self, view: &StepView<'_>, _aux: &NoAux) -> Result<LossTerms> {
        let task = view.primary();
        let Some(prev) = view.stage.previous else {
            return task_loss_only(task);
        };
        let l_c = task_loss(task)?;
        let (t, s) = previous_head_outputs("lwf", view.stage, self.teacher.get(), view, task)?;
        let kl = self.options.kl(prev == crate::model::TaskKind::A);
        let l_kd = lwf_loss(t, s, &LwfConfig::new().with_kl(kl))?;
        mixed_objective(view.stage, l_c, l_kd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TaskKind;
    use crate::testing::*;

    #[test]
    fn stage_av_after_a_distils_the_audioset_head() {
        let r = run_one_step(Lwf::default(), TaskKind::AV, Some(TaskKind::A));
        assert_eq!(r.counters.teacher_forwards, 1);
        assert!(
            r.teacher_untouched,
            "teacher weights or BN statistics moved"
        );
        assert!(r.grads.encoder > 0.0 && r.grads.current_head > 0.0);
        assert!(
            r.grads.classifier > 0.0,
            "LwF trains the student's copy of g^A"
        );
        assert!(r.kd_value.is_some_and(|v| v > 0.0));
    }

    #[test]
    fn stage_at_after_av_keeps_training_the_old_head() {
        let r = run_one_step(Lwf::default(), TaskKind::AT, Some(TaskKind::AV));
        assert_eq!(r.counters.teacher_forwards, 1);
        assert!(r.teacher_untouched);
        assert!(
            r.grads.previous_head > 0.0,
            "LwF trains the student's copy of g^AV"
        );
        assert!(r.grads.current_head > 0.0);
    }

    #[test]
    fn first_stage_needs_no_teacher() {
        let r = run_one_step(Lwf::default(), TaskKind::A, None);
        assert_eq!(r.counters.teacher_forwards, 0);
    }
}
