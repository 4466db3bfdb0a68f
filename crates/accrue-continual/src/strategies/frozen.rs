//! Frozen encoder + adapter: the paper's Wav2CLIP-in-AT protocol (method-spec §4.4, issue 5).
//!
//! The encoder is fixed after the previous stage (no gradients, eval-mode BatchNorm and
//! dropout, via [`Capabilities::freeze_encoder`]); only the current task's head (and its logit
//! scale) is trained with `L_c`. No teacher is needed: a frozen encoder cannot forget.

use accrue_losses::LossTerms;
use burn::tensor::Device;

use crate::error::Result;
use crate::model::Student;
use crate::strategy::{Capabilities, NoAux, StageInfo, StepView, Strategy, task_loss_only};

/// Train only the head of the current task on a frozen encoder.
#[derive(Clone, Debug, Default)]
pub struct FrozenAdapter;

impl Strategy for FrozenAdapter {
    type Aux = NoAux;

    fn name(&self) -> String {
        "frozen_adapter".into()
    }

    fn capabilities(&self, stage: &StageInfo) -> Capabilities {
        Capabilities {
            teacher_forward: false,
            supervision: true,
            // A first stage has nothing to keep: train it normally.
            freeze_encoder: stage.previous.is_some(),
            replay: false,
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

    #[test]
    fn only_the_head_trains_and_encoder_bn_is_fixed() {
        let r = run_one_step(FrozenAdapter, TaskKind::AT, Some(TaskKind::AV));
        assert_eq!(r.counters.teacher_forwards, 0);
        assert_eq!(
            r.grads.encoder, 0.0,
            "the frozen encoder received gradients"
        );
        assert!(r.grads.current_head > 0.0);
        assert!(
            r.encoder_untouched,
            "the frozen encoder's weights or BN statistics moved"
        );
    }
}
