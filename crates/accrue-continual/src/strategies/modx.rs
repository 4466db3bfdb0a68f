//! Mod-X, adapted to multi-modal continual pre-training (method-spec §4.3).
//!
//! Paper: Ni et al., "Continual vision-language representation learning with off-diagonal
//! information", ICML 2023; reference `ZixuanNi/Mod-X:ModX_Training/continue_train_model.py`.
//! Distils the raw cosine matrix between audio and supervision embeddings:
//! `C = norm(g^k(f_a^k(x)))·S_supᵀ`, `C° = norm(ĝ(f_a^{k−1}(x)))·S_supᵀ` with cognition
//! alignment and `KL(C° ‖ C)` per row and column. The teacher's audio side is
//! - after an AV/AT task: the teacher's own head g^{k−1} on the teacher encoder;
//! - after the unimodal task A: the **current** head g^k applied to the previous encoder under
//!   no-grad (§10 item 8).
//!
//! The supervision embeddings are the current batch's (§10 item 9).
//!
//! The spec's rule for a multi-modal previous task relies on CLIP's shared image/text space
//! (the old AV head's output is comparable with the AT supervision). With towers that do not
//! share a space (e.g. EfficientNet-Lite0 1280-d images, MiniLM 384-d text) the previous head
//! cannot be compared with the current supervision; [`TeacherHead::Auto`] then uses the
//! unimodal rule (current head on the previous encoder). [`ModXOptions::teacher_head`] makes
//! the choice explicit.

use accrue_losses::{LossTerms, ModXConfig, modx_loss};
use burn::module::Module;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::error::{ContinualError, Result};
use crate::model::{Student, TaskKind};
use crate::strategy::{
    Capabilities, NoAux, StageInfo, StepView, Strategy, Supervision, TeacherSlot, mixed_objective,
    task_loss, task_loss_only,
};

/// Mod-X options (defaults: the reference code, §10 item 7, except the tie rule).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModXOptions {
    /// Cognition alignment of mis-ranked teacher rows.
    pub alignment: bool,
    /// Which head maps the previous encoder's embedding after a multi-modal previous task.
    pub teacher_head: TeacherHead,
    /// When a teacher row counts as correctly ranked (see [`Ties`]).
    pub ties: Ties,
}

impl Default for ModXOptions {
    fn default() -> Self {
        Self {
            alignment: true,
            teacher_head: TeacherHead::Auto,
            ties: Ties::SameTarget,
        }
    }
}

/// The tie rule of cognition alignment ([`accrue_losses::TieBreak`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ties {
    /// A row is correct when a column with its own target attains the row maximum (default):
    /// with class-level targets (clips of a class share one image embedding) a class's columns
    /// tie exactly, and the reference's rule would discard about half of each batch's rows.
    #[default]
    SameTarget,
    /// The first maximal column must be the diagonal (the reference code's `argmax`).
    FirstIndex,
    /// The diagonal must attain the row maximum.
    DiagonalWins,
}

impl Ties {
    fn tie_break(self) -> accrue_losses::TieBreak {
        match self {
            Self::SameTarget => accrue_losses::TieBreak::SameTarget,
            Self::FirstIndex => accrue_losses::TieBreak::FirstIndex,
            Self::DiagonalWins => accrue_losses::TieBreak::DiagonalWins,
        }
    }
}

/// The head applied to the teacher's embedding when the previous task was AV/AT.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TeacherHead {
    /// The previous task's head when its output width equals the current supervision's
    /// (a shared space, as CLIP's), else the current head.
    #[default]
    Auto,
    /// Always the previous task's head (method-spec §4.3; needs a shared space).
    Previous,
    /// Always the current head, frozen for this computation (the rule for a unimodal
    /// previous task).
    Current,
}

/// Whether the teacher's audio side uses the previous task's head (else the current head on
/// the previous encoder): never after task A; with `Auto`, only when the previous head exists
/// and outputs the supervision's width (a shared space).
fn use_previous_head(
    previous: TaskKind,
    choice: TeacherHead,
    previous_width: Option<usize>,
    supervision_width: usize,
) -> bool {
    match (previous, choice) {
        (TaskKind::A, _) | (_, TeacherHead::Current) => false,
        (_, TeacherHead::Previous) => true,
        (_, TeacherHead::Auto) => previous_width == Some(supervision_width),
    }
}

/// Mod-X.
#[derive(Clone, Debug, Default)]
pub struct ModX {
    options: ModXOptions,
    teacher: TeacherSlot,
}

impl ModX {
    /// Mod-X with the given options.
    pub fn new(options: ModXOptions) -> Self {
        Self {
            options,
            teacher: TeacherSlot::new(),
        }
    }
}

impl Strategy for ModX {
    type Aux = NoAux;

    fn name(&self) -> String {
        "modx".into()
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
        if stage.previous.is_some() && !stage.kind().is_contrastive() {
            return Err(ContinualError::strategy(
                "modx",
                "the current task must be contrastive (AV/AT)",
            ));
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
        let teacher = self
            .teacher
            .get()
            .ok_or_else(|| ContinualError::strategy("modx", "no teacher"))?;
        let t_out = task.teacher.as_ref().ok_or_else(|| {
            ContinualError::strategy("modx", "no teacher outputs in the step view")
        })?;
        let Some(Supervision::Embeddings(sup)) = &task.supervision else {
            return Err(ContinualError::strategy(
                "modx",
                "needs supervision embeddings",
            ));
        };
        let [_, sup_width] = sup.dims();
        let previous_head = use_previous_head(
            prev,
            self.options.teacher_head,
            teacher.head(prev).map(|h| h.d_output()),
            sup_width,
        );
        let teacher_audio = if previous_head {
            teacher.head_output(prev, t_out)?
        } else {
            // §10 item 8: the current head, frozen for this computation, on the old encoder.
            view.student
                .require_head(task.kind)?
                .valid()
                .forward(t_out.embedding_dropped.clone())
        };
        let config = ModXConfig::new()
            .with_alignment(self.options.alignment)
            .with_tie_break(self.options.ties.tie_break());
        let [rows, _] = sup.dims();
        // The term sums over rows: scaled to the whole batch, so that a data-parallel replica's
        // shard weighs it against L_c as one device does.
        let l_kd = modx_loss(
            teacher_audio,
            task.head_output.clone(),
            sup.clone(),
            &config,
        )?
        .mul_scalar(task.meta.sum_scale(rows));
        mixed_objective(view.stage, l_c, l_kd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    #[test]
    fn teacher_head_choice() {
        use TeacherHead::*;
        // After A there is no previous head to use.
        for c in [Auto, Previous, Current] {
            assert!(!use_previous_head(TaskKind::A, c, None, 16));
        }
        // CLIP-like shared space: the previous AV head maps into the AT supervision space.
        assert!(use_previous_head(TaskKind::AV, Auto, Some(512), 512));
        // EfficientNet (1280) vs MiniLM (384): not comparable, so the current head is used.
        assert!(!use_previous_head(TaskKind::AV, Auto, Some(1280), 384));
        assert!(!use_previous_head(TaskKind::AV, Auto, None, 384));
        // Explicit choices are obeyed.
        assert!(use_previous_head(TaskKind::AV, Previous, Some(1280), 384));
        assert!(!use_previous_head(TaskKind::AV, Current, Some(512), 512));
        // The config spelling.
        let o: ModXOptions = toml::from_str("teacher_head = \"current\"").expect("parses");
        assert_eq!(o.teacher_head, Current);
        assert!(o.alignment);
    }

    #[test]
    fn stage_av_after_a_uses_current_head_on_old_encoder() {
        let r = run_one_step(ModX::default(), TaskKind::AV, Some(TaskKind::A));
        assert_eq!(r.counters.teacher_forwards, 1);
        assert!(r.teacher_untouched);
        assert!(r.grads.encoder > 0.0 && r.grads.current_head > 0.0);
        assert_eq!(r.grads.classifier, 0.0);
        assert!(r.kd_value.is_some_and(|v| v.is_finite() && v >= 0.0));
    }

    #[test]
    fn stage_at_after_av_uses_the_frozen_av_head() {
        let r = run_one_step(ModX::default(), TaskKind::AT, Some(TaskKind::AV));
        assert!(r.teacher_untouched);
        assert_eq!(
            r.grads.previous_head, 0.0,
            "Mod-X's old head is teacher-only"
        );
        assert!(r.grads.current_head > 0.0);
    }
}
