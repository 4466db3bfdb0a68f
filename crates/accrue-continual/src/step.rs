//! One optimisation step, shared by the stage trainer and the tests.
//!
//! ```text
//!  wave [B,L] ──► student.encoder (train) ──► EncoderOutput ──► g^k ──► head_output ─┐
//!        │                                                                          │
//!        └─(caps.teacher_forward)─► teacher.encoder (valid, no grad) ──► teacher ───┤
//!  supervision (cache) ─(caps.supervision)───────────────────────────────────────────┤
//!                                                                                   ▼
//!                        strategy.loss_terms(StepView, &aux) ──► LossTerms (named, weighted)
//!                                                                                   │
//!           check_finite (names the term) ◄─────────────────────────────────────────┤
//!                                                                                   ▼
//!                 total().backward() ──► GradientsParams ──► optimiser.step(Trainable{student, aux})
//! ```

use std::sync::Arc;

use accrue_audio::frontend::FrontEnd;
use accrue_encoders::{AudioEncoder, EncoderOutput};
use accrue_losses::{LossError, LossTerms, TermValue};
use burn::module::{Module, ModuleDisplay, ModuleVisitor, Param};
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor};

use crate::error::Result;
use crate::model::{TaskKind, Trainable};
use crate::strategy::{BatchMeta, StageInfo, StepView, Strategy, Supervision, TaskView};

/// One task's raw batch.
#[derive(Clone, Debug)]
pub struct TaskBatch {
    /// The task.
    pub kind: TaskKind,
    /// `[B, L]` waveforms (plain, no autodiff).
    pub wave: Tensor<2>,
    /// The same waveforms on the host, row-major `B·L` (the trainer's loader sets them): with
    /// them the front end serves each clip's log-mel from the process's memo
    /// (`accrue_audio::memo`) instead of recomputing it. `None`: computed from `wave`.
    pub audio: Option<Arc<[f32]>>,
    /// Supervision (embeddings for AV/AT, labels for A).
    pub supervision: Option<Supervision>,
    /// Metadata.
    pub meta: BatchMeta,
    /// A batch of a method's replay stream ([`crate::Strategy::replay`]), shown to it in
    /// [`StepView::replay`] rather than [`StepView::tasks`].
    pub replay: bool,
}

impl TaskBatch {
    /// Clips in the batch.
    pub fn len(&self) -> usize {
        self.wave.dims()[0]
    }

    /// Whether the batch has no clips.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Clips `start..start + len` (waveforms, supervision rows and clip ids), on `device`.
    pub fn slice_to(&self, start: usize, len: usize, device: &Device) -> Self {
        let rows = |t: &Tensor<2>| t.clone().narrow(0, start, len).to_device(device);
        Self {
            kind: self.kind,
            wave: rows(&self.wave),
            audio: self.audio.as_ref().map(|a| {
                let l = a.len() / self.len().max(1);
                Arc::from(&a[start * l..(start + len) * l])
            }),
            supervision: self.supervision.as_ref().map(|s| match s {
                Supervision::Embeddings(e) => Supervision::Embeddings(rows(e)),
                Supervision::Labels {
                    targets,
                    multi_label,
                } => Supervision::Labels {
                    targets: rows(targets),
                    multi_label: *multi_label,
                },
            }),
            meta: BatchMeta {
                clip_ids: self
                    .meta
                    .clip_ids
                    .iter()
                    .skip(start)
                    .take(len)
                    .cloned()
                    .collect(),
                ..self.meta.clone()
            },
            replay: self.replay,
        }
    }
}

/// Work counters (observability and tests).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StepCounters {
    /// Student encoder forwards.
    pub student_forwards: u64,
    /// Teacher encoder forwards.
    pub teacher_forwards: u64,
    /// Completed optimiser steps.
    pub steps: u64,
}

/// A computed (not yet applied) step.
pub struct ComputedStep {
    /// Gradients of the total loss w.r.t. the trainable module.
    pub grads: GradientsParams,
    /// The terms' values (unweighted) and weights.
    pub terms: Vec<TermValue>,
    /// The weighted total.
    pub total: f64,
}

/// Builds the step view and asks the strategy for its terms.
///
/// # Errors
/// Strategy or loss errors.
pub fn loss_terms<S: Strategy>(
    strategy: &S,
    stage: &StageInfo,
    model: &Trainable<S::Aux>,
    batches: &[TaskBatch],
    counters: &mut StepCounters,
) -> Result<LossTerms> {
    let caps = strategy.capabilities(stage);
    let teacher = if caps.teacher_forward {
        strategy.teacher()
    } else {
        None
    };
    let mut views = Vec::with_capacity(batches.len());
    let mut replay = Vec::new();
    let front = model.student.encoder.front_end();
    // The teacher takes the student's log-mel when its front end computes the same one (the
    // frozen copy of the student always does; a method's own teacher may not).
    let teacher_shares_logmel =
        teacher.is_some_and(|t| t.encoder.front_end().fingerprint() == front.fingerprint());
    // A joint stage's tasks carry the same clips: one forward serves them all.
    let mut shared: Option<(EncoderOutput, Option<EncoderOutput>)> = None;
    for batch in batches {
        let reuse = stage.joint && !batch.replay;
        let (student, teacher) = match shared.as_ref().filter(|_| reuse) {
            Some((s, t)) => (s.clone(), t.clone()),
            None => {
                let logmel = batch_logmel(front, batch)?;
                let student = model.student.encode_logmel(logmel.clone());
                counters.student_forwards += 1;
                let teacher = teacher.map(|t| {
                    counters.teacher_forwards += 1;
                    if teacher_shares_logmel {
                        t.encode_logmel(logmel.inner())
                    } else {
                        t.encode(batch.wave.clone().inner())
                    }
                });
                if reuse {
                    shared = Some((student.clone(), teacher.clone()));
                }
                (student, teacher)
            }
        };
        let head_output = model.student.head_output(batch.kind, &student)?;
        let logit_scale = model
            .student
            .head(batch.kind)
            .map(|h| h.logit_scale.forward());
        let into = if batch.replay {
            &mut replay
        } else {
            &mut views
        };
        into.push(TaskView {
            kind: batch.kind,
            student,
            head_output,
            logit_scale,
            teacher,
            supervision: if caps.supervision {
                batch.supervision.clone()
            } else {
                None
            },
            meta: batch.meta.clone(),
        });
    }
    let view = StepView {
        stage,
        student: &model.student,
        tasks: &views,
        replay: &replay,
    };
    strategy.loss_terms(&view, &model.aux)
}

/// The log-mel of `batch` by the student's front end `front`: from the process's memo when the
/// batch carries its host samples, else computed from its waveforms.
///
/// # Errors
/// [`crate::ContinualError::Audio`] when the host samples do not match the waveform tensor.
fn batch_logmel(front: &FrontEnd, batch: &TaskBatch) -> Result<Tensor<4>> {
    match &batch.audio {
        Some(audio) => {
            let [b, l] = batch.wave.dims();
            if audio.len() != b * l {
                return Err(accrue_audio::AudioError::InvalidArgument(format!(
                    "a {kind} batch carries {} host samples for a [{b}, {l}] waveform tensor",
                    audio.len(),
                    kind = batch.kind
                ))
                .into());
            }
            Ok(front.logmel_memoized(audio, b)?)
        }
        None => Ok(front.logmel(batch.wave.clone())),
    }
}

/// Forward + NaN/inf check + backward. Nothing is modified: on error the model is intact.
///
/// # Errors
/// [`LossError::NonFinite`] (wrapped) naming the first non-finite term, or strategy errors.
pub fn compute_step<S: Strategy>(
    strategy: &S,
    stage: &StageInfo,
    model: &Trainable<S::Aux>,
    batches: &[TaskBatch],
    counters: &mut StepCounters,
) -> Result<ComputedStep> {
    compute_step_scaled(strategy, stage, model, batches, counters, 1.0)
}

/// As [`compute_step`], with the gradients of `scale · total` (a data-parallel replica's share
/// of the batch, [`crate::parallel`]); the reported terms and total stay unscaled.
///
/// # Errors
/// As [`compute_step`].
pub fn compute_step_scaled<S: Strategy>(
    strategy: &S,
    stage: &StageInfo,
    model: &Trainable<S::Aux>,
    batches: &[TaskBatch],
    counters: &mut StepCounters,
    scale: f64,
) -> Result<ComputedStep> {
    let terms = loss_terms(strategy, stage, model, batches, counters)?;
    terms.check_finite()?;
    let total_t = terms.total()?;
    let total = total_t
        .clone()
        .into_data()
        .iter::<f64>()
        .next()
        .unwrap_or(f64::NAN);
    if !total.is_finite() {
        return Err(LossError::NonFinite {
            term: "total".into(),
            value: total,
        }
        .into());
    }
    // Scaling by exactly 1 is skipped so a single-device step keeps its bits.
    let scaled = if scale == 1.0 {
        total_t
    } else {
        total_t.mul_scalar(scale)
    };
    let grads = GradientsParams::from_grads(scaled.backward(), model);
    check_gradients(model, &grads)?;
    Ok(ComputedStep {
        grads,
        terms: terms.values(),
        total,
    })
}

/// Initialises every lazily initialised parameter of `module` now (Burn initialises a fresh
/// parameter on its first use), so its values come from the RNG state of this moment: a
/// stage's new heads and aux modules draw from the stage's seed, not from whichever step or
/// data-parallel replica touches them first.
pub fn initialize_params<M: Module>(module: &M) {
    struct Touch;
    impl ModuleVisitor for Touch {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let _ = param.val();
        }
    }
    module.visit(&mut Touch);
}

/// [`LossError::NonFinite`] (term `gradient`) when any gradient element is NaN or ±inf.
///
/// # Errors
/// As described.
pub fn check_gradients<M: Module>(module: &M, grads: &GradientsParams) -> Result<()> {
    let g = gradient_abs_sum(module, grads);
    if g.is_finite() {
        Ok(())
    } else {
        Err(LossError::NonFinite {
            term: "gradient".into(),
            value: g,
        }
        .into())
    }
}

/// `Σ |g|` over every gradient of `module`'s parameters, synchronised once: NaN or ±inf when
/// any gradient element is (a finite loss can still have a non-finite gradient, e.g. through
/// `sqrt` at 0).
pub fn gradient_abs_sum<M: Module>(module: &M, grads: &GradientsParams) -> f64 {
    struct Sum<'a> {
        grads: &'a GradientsParams,
        acc: Option<Tensor<1>>,
    }
    impl ModuleVisitor for Sum<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.get::<D>(param.id) {
                let s = g.abs().sum();
                self.acc = Some(match self.acc.take() {
                    Some(a) => a + s,
                    None => s,
                });
            }
        }
    }
    let mut v = Sum { grads, acc: None };
    module.visit(&mut v);
    v.acc.map_or(0.0, |t| {
        t.into_data().iter::<f64>().next().unwrap_or(f64::NAN)
    })
}

/// Applies a computed step with `optimizer` at learning rate `lr`, then clamps the logit
/// scales.
pub fn apply_step<A: Module + ModuleDisplay>(
    model: Trainable<A>,
    optimizer: &mut ModuleOptimizer,
    lr: f64,
    step: ComputedStep,
    counters: &mut StepCounters,
) -> Trainable<A> {
    let model = optimizer.step(lr, model, step.grads);
    counters.steps += 1;
    Trainable {
        student: model.student.clamp_logit_scales(),
        aux: model.aux,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::LinearConfig;

    #[test]
    fn gradient_sum_is_finite_for_finite_grads_and_flags_nan_and_inf() {
        let device = Device::default().autodiff();
        let linear = LinearConfig::new(3, 2).init(&device);
        let x = Tensor::<2>::ones([4, 3], &device);
        let loss = linear.forward(x).sum();
        let grads = GradientsParams::from_grads(loss.backward(), &linear);
        let g = gradient_abs_sum(&linear, &grads);
        // d(sum(xW + b))/dW = 4 per weight (6 of them), /db = 4 per bias (2): Σ|g| = 32.
        assert!((g - 32.0).abs() < 1e-4, "{g}");

        for bad in [f32::NAN, f32::INFINITY] {
            let mut grads = GradientsParams::new();
            let mut w = vec![0.5f32; 6];
            w[4] = bad;
            grads.register(
                linear.weight.id,
                Tensor::<1>::from_floats(w.as_slice(), &device).reshape([3, 2]),
            );
            assert!(!gradient_abs_sum(&linear, &grads).is_finite());
        }
    }

    /// A joint stage's tasks share one encoder forward, with the same terms as two forwards of
    /// the same clips (eval-mode model: the forwards are deterministic).
    #[test]
    fn a_joint_stage_runs_the_encoder_once_for_all_its_tasks() {
        use crate::strategies::MultiTask;
        use crate::testing::{
            run_multitask_stage, synthetic_batch, tiny_head_config, tiny_student,
        };
        let device = Device::default().autodiff();
        let student = tiny_student(&device)
            .ensure_head(TaskKind::AV, &tiny_head_config(), &device)
            .and_then(|s| s.ensure_head(TaskKind::AT, &tiny_head_config(), &device))
            .expect("heads");
        let model = Trainable {
            student: student.freeze(),
            aux: crate::strategy::NoAux {},
        };
        let av = synthetic_batch(TaskKind::AV, &device);
        let mut at = synthetic_batch(TaskKind::AT, &device);
        at.wave = av.wave.clone();
        at.meta = av.meta.clone();
        let batches = [av, at];
        let mut stage = run_multitask_stage();
        let terms = |stage: &StageInfo| {
            let mut c = StepCounters::default();
            let t = loss_terms(&MultiTask::default(), stage, &model, &batches, &mut c)
                .expect("terms")
                .values();
            (t, c.student_forwards)
        };
        let (apart, n_apart) = terms(&stage);
        stage.joint = true;
        let (joint, n_joint) = terms(&stage);
        assert_eq!((n_apart, n_joint), (2, 1));
        assert_eq!(apart, joint);
    }

    /// A batch that carries its host samples gets its log-mel from the process's memo: the
    /// terms are those of the batch without them, computed, added and served alike; host
    /// samples that do not match the waveform tensor are an error, not a silent other clip.
    #[test]
    fn host_samples_give_the_same_terms_through_the_log_mel_memo() {
        use crate::strategies::MultiTask;
        use crate::testing::{
            run_multitask_stage, synthetic_batch, tiny_head_config, tiny_student,
        };
        let device = Device::default().autodiff();
        let student = tiny_student(&device)
            .ensure_head(TaskKind::AV, &tiny_head_config(), &device)
            .expect("head");
        let model = Trainable {
            student: student.freeze(),
            aux: crate::strategy::NoAux {},
        };
        let stage = run_multitask_stage();
        let terms = |batch: &TaskBatch| {
            let mut c = StepCounters::default();
            loss_terms(
                &MultiTask::default(),
                &stage,
                &model,
                std::slice::from_ref(batch),
                &mut c,
            )
            .map(|t| t.values())
        };
        let mut batch = synthetic_batch(TaskKind::AV, &device);
        let host = batch
            .wave
            .clone()
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32");
        let computed = terms(&batch).expect("terms");
        batch.audio = Some(Arc::from(host.as_slice()));
        assert_eq!(terms(&batch).expect("terms, memo filled"), computed);
        assert_eq!(terms(&batch).expect("terms, memo served"), computed);
        // A replica's share of the batch keeps its rows of the host samples.
        let half = batch.slice_to(1, 2, &device.clone().inner());
        let l = host.len() / batch.len();
        assert_eq!(half.audio.as_deref(), Some(&host[l..3 * l]));
        batch.audio = Some(Arc::from(&host[..host.len() - 1]));
        let err = terms(&batch).expect_err("mismatched host samples");
        assert!(err.to_string().contains("host samples"), "{err}");
    }
}
