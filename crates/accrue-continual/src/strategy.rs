//! The strategy API: how a continual-learning method plugs into the trainer.
//!
//! A method is a [`Strategy`] with three narrow, typed hooks:
//!
//! 1. [`Strategy::begin_stage`] — sees the [`StageInfo`] and a read-only [`Student`] as it is at
//!    the end of the previous stage. It snapshots what it needs (a teacher via
//!    [`snapshot_teacher`], an eval-mode no-grad copy whose BatchNorm statistics can never
//!    move) and returns its freshly built trainable extras ([`Strategy::Aux`]).
//! 2. [`Strategy::loss_terms`] — a pure function of one step's read-only [`StepView`]
//!    (student outputs and head outputs, teacher outputs when requested, supervision
//!    embeddings, batch metadata) and the current aux module; returns named [`LossTerms`].
//! 3. [`Strategy::end_stage`] — takes the trained student and returns the stage's model:
//!    most methods return it unchanged; a weight-space method may change it (e.g. interpolate
//!    towards the stage-start weights).
//!
//! A method that keeps data across stages (experience replay) declares
//! [`Capabilities::replay`]: the trainer then hands [`Strategy::replay`] the training data of
//! every earlier stage ([`TaskSource`]); the method returns bounded, seeded subsets of it
//! ([`Replay`]), and every step carries one batch of each as [`StepView::replay`].
//!
//! The trainer owns the optimisation: the student and the aux module travel together in a
//! [`crate::Trainable`] that Burn's optimiser updates as one module, so a method's extras (the
//! CaSSLe predictor) are trained with the same optimiser and learning rate as the student.
//! Declared [`Capabilities`] let the trainer skip work: no teacher forward unless
//! [`Capabilities::teacher_forward`], no supervision lookup unless
//! [`Capabilities::supervision`], no encoder gradients with
//! [`Capabilities::freeze_encoder`].
//!
//! Strategies never run optimisers, log, or write checkpoints; metrics and checkpointing
//! observe the trainer, they never change training.

use accrue_encoders::EncoderOutput;
use accrue_losses::{LossTerms, clip_loss};
use burn::module::{Module, ModuleDisplay};
use burn::tensor::{Device, Tensor};

use crate::error::{ContinualError, Result};
use crate::model::{Student, TaskKind};

/// What a stage trains on, as a strategy sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct StageInfo {
    /// Position of the stage in the experiment (0-based).
    pub index: usize,
    /// The tasks trained jointly in this stage (one, except for multi-task stages such as MT-WC:
    /// `[AV, AT]`). The first one is the stage's primary task.
    pub tasks: Vec<TaskKind>,
    /// The primary task of the previous stage (`None` for the first stage).
    pub previous: Option<TaskKind>,
    /// Mixing weight λ of `L = (1 − λ)·L_c + λ·L_kd` (method-spec §4).
    pub lambda: f64,
    /// The stage's seed (`seed` of the experiment's stage): derive a method's own draws from it
    /// ([`accrue_core::seed::derive`]) so that they are reproducible and survive a resume.
    pub seed: u64,
    /// The tasks see the same clips in each step (a joint multi-task stage): one encoder
    /// forward serves every task's view.
    pub joint: bool,
}

impl StageInfo {
    /// A single-task stage.
    pub fn new(index: usize, kind: TaskKind, previous: Option<TaskKind>, lambda: f64) -> Self {
        Self {
            index,
            tasks: vec![kind],
            previous,
            lambda,
            seed: 0,
            joint: false,
        }
    }

    /// The primary task.
    pub fn kind(&self) -> TaskKind {
        self.tasks[0]
    }
}

/// Work a strategy needs from the trainer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Run the teacher ([`Strategy::teacher`]) on every batch and fill [`TaskView::teacher`].
    pub teacher_forward: bool,
    /// Look up supervision embeddings / labels for every batch ([`TaskView::supervision`]).
    pub supervision: bool,
    /// Keep the encoder fixed (no gradients, eval-mode BatchNorm and dropout) for the stage.
    pub freeze_encoder: bool,
    /// Call [`Strategy::replay`] with the earlier stages' data and carry its streams'
    /// batches in every step ([`StepView::replay`]).
    pub replay: bool,
}

impl Capabilities {
    /// The union of two sets of needs.
    pub fn union(self, other: Self) -> Self {
        Self {
            teacher_forward: self.teacher_forward || other.teacher_forward,
            supervision: self.supervision || other.supervision,
            freeze_encoder: self.freeze_encoder || other.freeze_encoder,
            replay: self.replay || other.replay,
        }
    }
}

/// The supervision side of one task's batch.
#[derive(Clone, Debug)]
pub enum Supervision {
    /// `[B, D]` frozen-tower embeddings (CLIP image or text), from the embedding cache.
    Embeddings(Tensor<2>),
    /// `[B, C]` class targets (multi-hot, or one-hot for single-label data).
    Labels {
        /// The targets.
        targets: Tensor<2>,
        /// Multi-label (sigmoid/BCE) rather than single-label (softmax/CE).
        multi_label: bool,
    },
}

/// Batch metadata a strategy may read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BatchMeta {
    /// Epoch within the stage.
    pub epoch: usize,
    /// Step within the epoch.
    pub step: usize,
    /// Clip ids of the rows.
    pub clip_ids: Vec<String>,
    /// Clips of the task's whole batch in this step, across data-parallel replicas (a replica
    /// sees a shard of it; 0: unknown, the view's own rows). A term that *sums* over rows
    /// scales by `batch_size / rows` so that its weight relative to mean-reduced terms does
    /// not depend on the replica count ([`BatchMeta::sum_scale`]).
    pub batch_size: usize,
}

impl BatchMeta {
    /// `batch_size / rows` (1 when the batch size is unknown): the factor that makes a
    /// sum-over-rows term of a replica's shard stand for the whole batch's.
    pub fn sum_scale(&self, rows: usize) -> f64 {
        if self.batch_size == 0 || rows == 0 {
            1.0
        } else {
            self.batch_size as f64 / rows as f64
        }
    }
}

/// One task's tensors in a step.
#[derive(Clone, Debug)]
pub struct TaskView {
    /// The task.
    pub kind: TaskKind,
    /// The student encoder's outputs (train mode, carrying gradients).
    pub student: EncoderOutput,
    /// The student's output of the task's head: `g^k(embedding_dropped)` for AV/AT, the logits
    /// for A.
    pub head_output: Tensor<2>,
    /// The task head's logit scale `exp(τ)` (AV/AT).
    pub logit_scale: Option<Tensor<1>>,
    /// The teacher encoder's outputs (eval mode, no gradients), when requested.
    pub teacher: Option<EncoderOutput>,
    /// The supervision, when requested.
    pub supervision: Option<Supervision>,
    /// Batch metadata.
    pub meta: BatchMeta,
}

/// Everything a strategy may read during one step.
#[derive(Clone, Copy, Debug)]
pub struct StepView<'a> {
    /// The stage.
    pub stage: &'a StageInfo,
    /// The student being trained (read-only; apply its heads to build more terms).
    pub student: &'a Student,
    /// One entry per task of the stage, in [`StageInfo::tasks`] order.
    pub tasks: &'a [TaskView],
    /// One entry per replay stream of the method ([`Strategy::replay`]), in its order: the
    /// task is the earlier task's, the head output its head's. Empty without
    /// [`Capabilities::replay`], and in validation passes.
    pub replay: &'a [TaskView],
}

/// The training data of one task of an earlier stage, as [`Strategy::replay`] sees it.
#[derive(Clone, Debug)]
pub struct TaskSource {
    /// The stage it belongs to (0-based); `None` for the task the initial encoder was trained
    /// on (`[encoder.trained_on_data]`).
    pub stage: Option<usize>,
    /// The task.
    pub kind: TaskKind,
    /// Its training clips (split applied).
    pub dataset: accrue_data::Dataset,
    /// Its supervision table (AV/AT).
    pub supervision: Option<std::sync::Arc<crate::supervision::SupervisionTable>>,
}

/// A stream of earlier data that a method mixes into every step of a stage: the trainer loads
/// `source` (usually a subset of a [`TaskSource`]) with random crops of the stage's length, in
/// an order seeded by the stage and the stream's position, and carries one batch of
/// `batch_size` clips per step in [`StepView::replay`].
#[derive(Clone, Debug)]
pub struct Replay {
    /// The clips (and their supervision) to replay.
    pub source: TaskSource,
    /// Clips per step.
    pub batch_size: usize,
}

impl<'a> StepView<'a> {
    /// The primary task's tensors.
    pub fn primary(&self) -> &'a TaskView {
        &self.tasks[0]
    }
}

/// A continual-learning method. See the [module documentation](self).
pub trait Strategy {
    /// Trainable extras optimised together with the student (use [`NoAux`] when none).
    type Aux: Module + ModuleDisplay;

    /// A short name, used as the prefix of composed terms and in logs.
    fn name(&self) -> String;

    /// What the trainer must compute for this strategy in `stage`.
    fn capabilities(&self, stage: &StageInfo) -> Capabilities;

    /// Prepares a stage: snapshot a teacher from `student` (its state at the end of the
    /// previous stage) and build fresh auxiliary modules on `device`.
    ///
    /// # Errors
    /// When the method cannot run in this stage.
    fn begin_stage(
        &mut self,
        stage: &StageInfo,
        student: &Student,
        device: &Device,
    ) -> Result<Self::Aux>;

    /// The frozen teacher the trainer runs when [`Capabilities::teacher_forward`] is set.
    fn teacher(&self) -> Option<&Student> {
        None
    }

    /// The step's named loss terms.
    ///
    /// # Errors
    /// Shape errors from the loss functions, or missing inputs.
    fn loss_terms(&self, view: &StepView<'_>, aux: &Self::Aux) -> Result<LossTerms>;

    /// The replay streams of a stage, from the training data of every earlier stage; called
    /// after [`Strategy::begin_stage`] (also on a resume) when [`Capabilities::replay`] is set.
    /// Choose clips from [`StageInfo::seed`], never from a global RNG, so that a resumed run
    /// replays what the interrupted one did. Default: none.
    ///
    /// # Errors
    /// Method-specific.
    fn replay(&mut self, _stage: &StageInfo, _earlier: &[TaskSource]) -> Result<Vec<Replay>> {
        Ok(Vec::new())
    }

    /// Finishes a stage: receives the trained student (after early stopping restored the best
    /// epoch) and returns the stage's model, which is exported, checkpointed and trained on by
    /// the next stage. Default: unchanged.
    ///
    /// # Errors
    /// Method-specific.
    fn end_stage(
        &mut self,
        _stage: &StageInfo,
        student: Student,
        _aux: &Self::Aux,
    ) -> Result<Student> {
        Ok(student)
    }

    /// This strategy with its state (a teacher snapshot) on `device`, for a data-parallel
    /// replica on another device ([`crate::parallel`]). Replicas on the main device share the
    /// strategy itself and never call this. Called after [`Strategy::begin_stage`].
    ///
    /// # Errors
    /// The default refuses, naming the method: a method that holds tensors must move them, so
    /// it opts in (usually `Ok(Self { teacher: fork_teacher(&self.teacher, device), ..self.clone() })`).
    fn fork(&self, device: &Device) -> Result<Self>
    where
        Self: Sized,
    {
        let _ = device;
        Err(ContinualError::strategy(
            &self.name(),
            "does not implement `Strategy::fork`, so it cannot place replicas on other devices",
        ))
    }
}

/// The empty auxiliary module of strategies without trainable extras.
#[derive(Module, Debug, Default)]
pub struct NoAux {}

/// An eval-mode, no-gradient inference copy of `student`: dropout and SpecAugment off,
/// BatchNorm reads (and never updates) its running statistics, tensors leave the autodiff
/// graph. This is the only way strategies should make teachers.
pub fn snapshot_teacher(student: &Student) -> Student {
    student.valid()
}

/// A teacher snapshot copied to `device` (for [`Strategy::fork`]). `valid()` gives the copy its
/// own BatchNorm statistics: a clone would share them with the original, and moving them would
/// move the original's.
pub fn fork_teacher(teacher: &Option<Student>, device: &Device) -> Option<Student> {
    teacher.as_ref().map(|t| t.valid().fork(device))
}

/// The frozen copy of the student that a distillation method keeps from the end of the
/// previous stage: empty in a first stage. Holds the teacher, copies it for data-parallel
/// replicas and hands it to the trainer, so that no method writes that bookkeeping again.
#[derive(Clone, Debug, Default)]
pub struct TeacherSlot(Option<Student>);

impl TeacherSlot {
    /// An empty slot.
    pub fn new() -> Self {
        Self(None)
    }

    /// At a stage start: a [`snapshot_teacher`] of `student` when the stage has a previous
    /// stage, empty otherwise.
    pub fn begin(&mut self, stage: &StageInfo, student: &Student) {
        self.0 = stage.previous.map(|_| snapshot_teacher(student));
    }

    /// Takes a snapshot of `student` unconditionally.
    pub fn set(&mut self, student: &Student) {
        self.0 = Some(snapshot_teacher(student));
    }

    /// The teacher, if any (for [`Strategy::teacher`]).
    pub fn get(&self) -> Option<&Student> {
        self.0.as_ref()
    }

    /// A copy on `device` for a data-parallel replica (for [`Strategy::fork`]).
    pub fn fork(&self, device: &Device) -> Self {
        Self(fork_teacher(&self.0, device))
    }
}

/// The terms of a step without distillation: the task loss alone, weight 1 (a first stage, or
/// a method that only trains).
///
/// # Errors
/// As [`task_loss`].
pub fn task_loss_only(task: &TaskView) -> Result<LossTerms> {
    Ok(LossTerms::new().with(accrue_losses::CONTRASTIVE_TERM, task_loss(task)?, 1.0)?)
}

/// The paper's mix `L = (1 − λ)·L_c + λ·L_kd` as named terms, with the stage's λ.
///
/// # Errors
/// A non-scalar term or a λ outside `[0, 1]`.
pub fn mixed_objective(stage: &StageInfo, l_c: Tensor<1>, l_kd: Tensor<1>) -> Result<LossTerms> {
    LossTerms::objective(
        l_c,
        l_kd,
        &accrue_losses::ObjectiveConfig::new().with_lambda(stage.lambda),
    )
    .map_err(ContinualError::from)
}

/// The task loss `L_c` of one task: symmetric CLIP loss (§3.1) for AV/AT, binary
/// cross-entropy with logits (multi-label) or softmax cross-entropy (single-label) for A.
///
/// # Errors
/// Missing supervision, or shape errors.
pub fn task_loss(task: &TaskView) -> Result<Tensor<1>> {
    let missing = || {
        ContinualError::Config(format!(
            "task {}: no supervision in the step view",
            task.kind
        ))
    };
    match (task.kind, task.supervision.as_ref().ok_or_else(missing)?) {
        (
            TaskKind::A,
            Supervision::Labels {
                targets,
                multi_label,
            },
        ) => Ok(classification_loss(
            task.head_output.clone(),
            targets.clone(),
            *multi_label,
        )),
        (TaskKind::AV | TaskKind::AT, Supervision::Embeddings(emb)) => {
            let scale = task.logit_scale.clone().ok_or_else(|| {
                ContinualError::Config(format!("task {}: no logit scale", task.kind))
            })?;
            Ok(clip_loss(task.head_output.clone(), emb.clone(), scale)?)
        }
        (kind, _) => Err(ContinualError::Config(format!(
            "task {kind}: supervision of the wrong type"
        ))),
    }
}

/// Mean binary cross-entropy with logits (multi-label) or softmax cross-entropy (single-label).
///
/// # Shapes
/// - `logits`, `targets`: `[B, C]`
/// - output: `[1]`
pub fn classification_loss(logits: Tensor<2>, targets: Tensor<2>, multi_label: bool) -> Tensor<1> {
    if multi_label {
        // max(x, 0) − x·y + log(1 + exp(−|x|)), averaged over all elements.
        let pos = logits.clone().clamp_min(0.0);
        let soft = logits.clone().abs().neg().exp().add_scalar(1.0).log();
        (pos - logits * targets + soft).mean()
    } else {
        let [b, _] = logits.dims();
        let logp = burn::tensor::activation::log_softmax(logits, 1);
        (logp * targets).sum().neg().div_scalar(b.max(1) as f64)
    }
}

/// The outputs of the previous task's head g^{k−1} for teacher and student (method-spec §4.1):
/// for a previous task A the encoders' 527-way logits, otherwise `g^{k−1}` applied to each
/// encoder's embedding. The teacher side is computed with the teacher's own (frozen) head.
///
/// # Errors
/// Without a previous task, teacher outputs, or the previous head.
pub fn previous_head_outputs(
    name: &str,
    stage: &StageInfo,
    teacher: Option<&Student>,
    view: &StepView<'_>,
    task: &TaskView,
) -> Result<(Tensor<2>, Tensor<2>)> {
    let prev = stage
        .previous
        .ok_or_else(|| ContinualError::strategy(name, "needs a previous stage"))?;
    let teacher = teacher
        .ok_or_else(|| ContinualError::strategy(name, "no teacher (begin_stage not called?)"))?;
    let t_out = task
        .teacher
        .as_ref()
        .ok_or_else(|| ContinualError::strategy(name, "the step view has no teacher outputs"))?;
    Ok((
        teacher.head_output(prev, t_out)?,
        view.student.head_output(prev, &task.student)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TaskKind;
    use crate::strategies::Lwf;
    use crate::testing::run_one_step;

    /// A broken method whose "teacher" is a plain clone (train mode, shared running
    /// statistics): the harness's bit-exact check must catch it. Proves the check has teeth.
    #[derive(Default)]
    struct CloneTeacher(Lwf, Option<Student>);

    impl Strategy for CloneTeacher {
        type Aux = NoAux;
        fn name(&self) -> String {
            "clone".into()
        }
        fn capabilities(&self, stage: &StageInfo) -> Capabilities {
            self.0.capabilities(stage)
        }
        fn begin_stage(&mut self, stage: &StageInfo, s: &Student, d: &Device) -> Result<NoAux> {
            self.0.begin_stage(stage, s, d)?;
            self.1 = Some(s.clone());
            Ok(NoAux {})
        }
        fn teacher(&self) -> Option<&Student> {
            self.1.as_ref()
        }
        fn loss_terms(&self, view: &StepView<'_>, aux: &NoAux) -> Result<LossTerms> {
            self.0.loss_terms(view, aux)
        }
    }

    #[test]
    fn a_train_mode_teacher_is_detected() {
        let r = run_one_step(CloneTeacher::default(), TaskKind::AV, Some(TaskKind::A));
        assert!(
            !r.teacher_untouched,
            "a train-mode clone should have moved its BN statistics"
        );
    }
}
