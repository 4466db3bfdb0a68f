//! Feature-space L2 distillation: a method not in the paper, written against the public
//! `Strategy` trait. `L = (1 − λ)·L_c + λ·‖f_a^k(x) − f_a^{k−1}(x)‖²` (mean over the batch),
//! pulling the student's un-dropped embedding towards the frozen previous encoder's.

use accrue_continual::{
    Capabilities, ContinualError, NoAux, Result, StageInfo, StepView, Strategy, Student,
    TeacherSlot, task_loss, task_loss_only,
};
use accrue_losses::{LossTerms, ObjectiveConfig};
use burn::tensor::Device;

/// L2 distillation of encoder features.
#[derive(Debug, Default)]
pub struct FeatureL2 {
    teacher: TeacherSlot,
}

impl Strategy for FeatureL2 {
    type Aux = NoAux;

    fn name(&self) -> String {
        "feature_l2".into()
    }

    fn capabilities(&self, stage: &StageInfo) -> Capabilities {
        Capabilities {
            teacher_forward: stage.previous.is_some(),
            supervision: true,
            freeze_encoder: false,
        }
    }

    fn begin_stage(&mut self, stage: &StageInfo, student: &Student, _: &Device) -> Result<NoAux> {
        // An eval-mode, no-grad copy: its BatchNorm statistics can never move.
        self.teacher.begin(stage, student);
        Ok(NoAux {})
    }

    fn teacher(&self) -> Option<&Student> {
        self.teacher.get()
    }

    fn loss_terms(&self, view: &StepView<'_>, _: &NoAux) -> Result<LossTerms> {
        let task = view.primary();
        let Some(teacher) = &task.teacher else {
            return task_loss_only(task);
        };
        let l_c = task_loss(task)?;
        let [b, _] = task.student.embedding.dims();
        let diff = task.student.embedding.clone() - teacher.embedding.clone();
        let l_kd = diff.powf_scalar(2.0).sum().div_scalar(b as f64);
        let objective = ObjectiveConfig::new().with_lambda(view.stage.lambda);
        LossTerms::objective(l_c, l_kd, &objective).map_err(ContinualError::from)
    }
}
