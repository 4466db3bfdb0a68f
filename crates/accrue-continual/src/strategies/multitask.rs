//! MT-WC: multi-task Wav2CLIP + CLAP (method-spec §4.4, §10 item 21).
//!
//! One encoder, two heads (g^AV, g^AT), trained jointly on an AV batch and an AT batch per
//! step: `L = w_AV·L_c^AV + w_AT·L_c^AT`. The paper suspects one term dominated, so the weights
//! are configurable (default ½, ½). The non-sequential upper bound; no teacher.

use accrue_losses::LossTerms;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::error::{ContinualError, Result};
use crate::model::{Student, TaskKind};
use crate::strategy::{Capabilities, NoAux, StageInfo, StepView, Strategy, task_loss};

/// MT-WC options.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MultiTaskOptions {
    /// Weight of the AV contrastive term.
    pub weight_av: f64,
    /// Weight of the AT contrastive term.
    pub weight_at: f64,
}

impl Default for MultiTaskOptions {
    fn default() -> Self {
        Self {
            weight_av: 0.5,
            weight_at: 0.5,
        }
    }
}

/// Joint multi-task training; every task of the stage contributes `contrastive_<task>`.
#[derive(Clone, Debug, Default)]
pub struct MultiTask {
    options: MultiTaskOptions,
}

impl MultiTask {
    /// MT-WC with the given weights.
    pub fn new(options: MultiTaskOptions) -> Self {
        Self { options }
    }

    fn weight(&self, kind: TaskKind) -> f64 {
        match kind {
            TaskKind::AV => self.options.weight_av,
            TaskKind::AT => self.options.weight_at,
            TaskKind::A => 1.0,
        }
    }
}

impl Strategy for MultiTask {
    type Aux = NoAux;

    fn name(&self) -> String {
        "multitask".into()
    }

    fn capabilities(&self, _: &StageInfo) -> Capabilities {
        Capabilities {
            supervision: true,
            ..Capabilities::default()
        }
    }

    fn fork(&self, _device: &Device) -> Result<Self> {
        Ok(self.clone())
    }

    fn begin_stage(&mut self, stage: &StageInfo, _: &Student, _: &Device) -> Result<NoAux> {
        if stage.tasks.len() < 2 {
            return Err(ContinualError::strategy(
                "multitask",
                format!(
                    "a multi-task stage lists several tasks, got {:?}",
                    stage.tasks
                ),
            ));
        }
        Ok(NoAux {})
    }

    fn loss_terms(&self, view: &StepView<'_>, _aux: &NoAux) -> Result<LossTerms> {
        let mut terms = LossTerms::new();
        for task in view.tasks {
            terms.push(
                format!("contrastive_{}", task.kind),
                task_loss(task)?,
                self.weight(task.kind),
            )?;
        }
        Ok(terms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    #[test]
    fn both_heads_and_the_encoder_train() {
        let r = run_multitask_step(MultiTask::new(MultiTaskOptions {
            weight_av: 0.8,
            weight_at: 0.2,
        }));
        assert_eq!(r.counters.teacher_forwards, 0);
        assert_eq!(r.counters.student_forwards, 2);
        assert!(r.grads.encoder > 0.0);
        assert!(r.grads.previous_head > 0.0 && r.grads.current_head > 0.0);
        assert_eq!(
            r.term_names,
            vec!["contrastive_AV".to_string(), "contrastive_AT".to_string()]
        );
    }
}
