//! CaSSLe, adapted to multi-modal continual pre-training (method-spec §4.2).
//!
//! Paper: Fini et al., "Self-Supervised Models are Continual Learners", CVPR 2022; reference
//! `DonkeyShot21/cassle:cassle/distillers/predictive.py`.
//! `L = (1 − λ)·L_c + λ·KL(P(g^{k−1}(f_a^{k−1}(x))) ‖ P(p(g^k(f_a^k(x)))))`: a fresh predictor
//! `p` (Linear → BN → ReLU → Linear, hidden 2048) per stage maps the current projection to the
//! previous head's space (stage AV: 512 → 527, stage AT: 512 → 512). The predictor is this
//! strategy's [`Strategy::Aux`], trained with the student's optimiser and learning rate. The old
//! head is teacher-only (§10 item 6).

use accrue_losses::{CassleConfig, CasslePredictor, CasslePredictorConfig, LossTerms, cassle_loss};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::error::{ContinualError, Result};
use crate::model::{Student, TaskKind};
use crate::strategies::lwf::LwfOptions;
use crate::strategy::{
    Capabilities, StageInfo, StepView, Strategy, TeacherSlot, mixed_objective,
    previous_head_outputs, task_loss, task_loss_only,
};

/// CaSSLe options (defaults: the spec's recommendations).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CassleOptions {
    /// Predictor hidden width (`distill_proj_hidden_dim`).
    pub hidden: usize,
    /// KL temperature `T`.
    pub temperature: f64,
    /// Per-class Bernoulli KL against a 527-way multi-label teacher head (§10 item 4).
    pub bernoulli_on_labels: bool,
}

impl Default for CassleOptions {
    fn default() -> Self {
        Self {
            hidden: 2048,
            temperature: 2.0,
            bernoulli_on_labels: false,
        }
    }
}

/// CaSSLe with a fresh predictor per stage.
#[derive(Clone, Debug, Default)]
pub struct Cassle {
    options: CassleOptions,
    teacher: TeacherSlot,
}

impl Cassle {
    /// CaSSLe with the given options.
    pub fn new(options: CassleOptions) -> Self {
        Self {
            options,
            teacher: TeacherSlot::new(),
        }
    }
}

/// The aux module of [`Cassle`]: the predictor (absent in a first stage).
pub type CassleAux = Option<CasslePredictor>;

impl Strategy for Cassle {
    type Aux = CassleAux;

    fn name(&self) -> String {
        "cassle".into()
    }

    fn capabilities(&self, stage: &StageInfo) -> Capabilities {
        Capabilities {
            teacher_forward: stage.previous.is_some(),
            supervision: true,
            freeze_encoder: false,
            replay: false,
        }
    }

    fn begin_stage(
        &mut self,
        stage: &StageInfo,
        student: &Student,
        device: &Device,
    ) -> Result<CassleAux> {
        let Some(prev) = stage.previous else {
            self.teacher = TeacherSlot::new();
            return Ok(None);
        };
        let kind = stage.kind();
        let d_in = student.require_head(kind)?.d_output();
        let d_out = match prev {
            TaskKind::A => accrue_encoders::AudioBody::num_classes(&student.encoder),
            p => student.require_head(p)?.d_output(),
        };
        if !kind.is_contrastive() {
            return Err(ContinualError::strategy(
                "cassle",
                "the current task must be contrastive (AV/AT)",
            ));
        }
        self.teacher.set(student);
        Ok(Some(
            CasslePredictorConfig::new(d_in, d_out)
                .with_d_hidden(self.options.hidden)
                .init(device),
        ))
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

    fn loss_terms(&self, view: &StepView<'_>, aux: &CassleAux) -> Result<LossTerms> {
        let task = view.primary();
        let (Some(prev), Some(predictor)) = (view.stage.previous, aux.as_ref()) else {
            return task_loss_only(task);
        };
        let l_c = task_loss(task)?;
        let (t, _) = previous_head_outputs("cassle", view.stage, self.teacher.get(), view, task)?;
        let lwf_like = LwfOptions {
            temperature: self.options.temperature,
            bernoulli_on_labels: self.options.bernoulli_on_labels,
        };
        let config = CassleConfig::new().with_kl(lwf_like.kl(prev == TaskKind::A));
        let l_kd = cassle_loss(predictor, t, task.head_output.clone(), &config)?;
        mixed_objective(view.stage, l_c, l_kd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    #[test]
    fn stage_av_trains_the_predictor_not_the_old_head() {
        let r = run_one_step(
            Cassle::new(CassleOptions {
                hidden: 32,
                ..Default::default()
            }),
            TaskKind::AV,
            Some(TaskKind::A),
        );
        assert_eq!(r.counters.teacher_forwards, 1);
        assert!(r.teacher_untouched);
        assert!(r.grads.aux > 0.0, "the predictor got no gradient");
        assert!(r.grads.encoder > 0.0 && r.grads.current_head > 0.0);
        assert_eq!(r.grads.classifier, 0.0, "CaSSLe's old head is teacher-only");
        assert!(r.aux_changed, "the optimiser did not update the predictor");
    }

    #[test]
    fn stage_at_maps_into_the_av_space() {
        let r = run_one_step(
            Cassle::new(CassleOptions {
                hidden: 16,
                ..Default::default()
            }),
            TaskKind::AT,
            Some(TaskKind::AV),
        );
        assert!(r.teacher_untouched);
        assert!(r.grads.aux > 0.0);
        assert_eq!(r.grads.previous_head, 0.0);
    }
}
