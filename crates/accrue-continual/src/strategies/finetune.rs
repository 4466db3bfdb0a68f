//! Sequential fine-tuning: the "no continual learning" lower bound (method-spec §4.4, λ = 0).
//!
//! Each task's loss alone; no teacher, no extras. Also the single-task baselines (Wav2CLIP =
//! one AV stage, CLAP = one AT stage) when run from the AudioSet checkpoint.

use accrue_losses::LossTerms;
use burn::tensor::Device;

use crate::error::Result;
use crate::model::Student;
use crate::strategy::{Capabilities, NoAux, StageInfo, StepView, Strategy, task_loss_only};

/// Sequential fine-tuning (λ = 0).
#[derive(Clone, Debug, Default)]
pub struct FineTune;

impl Strategy for FineTune {
    type Aux = NoAux;

    fn name(&self) -> String {
        "finetune".into()
    }

    fn capabilities(&self, _stage: &StageInfo) -> Capabilities {
        Capabilities {
            supervision: true,
            ..Capabilities::default()
        }
    }

    fn fork(&self, _device: &Device) -> Result<Self> {
        Ok(self.clone())
    }

    fn begin_stage(&mut self, _: &StageInfo, _: &Student, _: &Device) -> Result<NoAux> {
        Ok(NoAux {})
    }

    fn loss_terms(&self, view: &StepView<'_>, _aux: &NoAux) -> Result<LossTerms> {
        task_loss_only(view.primary())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TaskKind;
    use crate::testing::*;
    use accrue_losses::CONTRASTIVE_TERM;

    #[test]
    fn no_teacher_forward_and_student_gets_gradients() {
        for (kind, prev) in [
            (TaskKind::A, None),
            (TaskKind::AV, Some(TaskKind::A)),
            (TaskKind::AT, Some(TaskKind::AV)),
        ] {
            let r = run_one_step(FineTune, kind, prev);
            assert_eq!(r.counters.teacher_forwards, 0, "{kind}");
            assert_eq!(r.counters.steps, 1);
            assert!(r.grads.encoder > 0.0, "{kind}: encoder got no gradient");
            if kind != TaskKind::A {
                assert!(r.grads.current_head > 0.0, "{kind}: head got no gradient");
            }
            assert_eq!(r.term_names, vec![CONTRASTIVE_TERM.to_string()]);
        }
    }
}
