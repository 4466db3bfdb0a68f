//! Test helpers: a tiny student, synthetic batches, one real optimiser step, and probes of
//! gradients and bit-exact module state. Public (hidden) so that integration tests and the
//! custom-strategy example can reuse them.

use accrue_encoders::{AnyEncoder, AnyEncoderConfig, ResNet38Config};
use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{AdamConfig, GradientsParams};
use burn::store::ModuleSnapshot;
use burn::tensor::{Device, Distribution, Tensor};

use crate::model::{ProjectionHeadConfig, Student, TaskKind, Trainable};
use crate::step::{StepCounters, TaskBatch, apply_step, compute_step};
use crate::strategy::{BatchMeta, StageInfo, Strategy, Supervision};

/// Classes of the tiny encoder.
pub const CLASSES: usize = 10;
/// Output width of the tiny heads.
pub const PROJ: usize = 16;
/// Samples per clip in the synthetic batches (0.5 s at 32 kHz).
pub const SAMPLES: usize = 16_000;
/// Batch size.
pub const BATCH: usize = 4;

/// A tiny ResNet-38-topology encoder config (64-d embedding, 10 classes).
pub fn tiny_encoder_config() -> AnyEncoderConfig {
    AnyEncoderConfig::ResNet38(ResNet38Config::tiny().with_num_classes(CLASSES))
}

/// The tiny heads (64 → 32 → 16).
pub fn tiny_head_config() -> ProjectionHeadConfig {
    ProjectionHeadConfig::new(64)
        .with_d_hidden(32)
        .with_d_output(PROJ)
}

/// A tiny student.
pub fn tiny_student(device: &Device) -> Student {
    Student::new(tiny_encoder_config().init(device))
}

/// A synthetic batch of one task.
pub fn synthetic_batch(kind: TaskKind, device: &Device) -> TaskBatch {
    let plain = device.clone().inner();
    let wave = Tensor::<2>::random([BATCH, SAMPLES], Distribution::Uniform(-0.5, 0.5), &plain);
    let supervision = match kind {
        TaskKind::A => {
            let targets: Vec<f32> = (0..BATCH * CLASSES)
                .map(|i| {
                    if i % CLASSES == (i / CLASSES) % CLASSES {
                        1.0
                    } else {
                        0.0
                    }
                })
                .collect();
            Supervision::Labels {
                targets: Tensor::<1>::from_floats(targets.as_slice(), &plain)
                    .reshape([BATCH, CLASSES]),
                multi_label: true,
            }
        }
        _ => Supervision::Embeddings(Tensor::<2>::random(
            [BATCH, PROJ],
            Distribution::Normal(0.0, 1.0),
            &plain,
        )),
    };
    TaskBatch {
        kind,
        wave,
        audio: None,
        supervision: Some(supervision),
        meta: BatchMeta {
            epoch: 0,
            step: 0,
            clip_ids: (0..BATCH).map(|i| format!("clip{i}")).collect(),
            batch_size: BATCH,
        },
        replay: false,
    }
}

/// The raw bytes of every tensor (parameters and BN running statistics) of a module.
pub fn fingerprint<M: Module>(module: &M) -> Vec<(String, Vec<u8>)> {
    module
        .collect(None, None, false)
        .into_iter()
        .map(|t| {
            let bytes = t.to_bytes().map(|b| b.to_vec()).unwrap_or_default();
            (t.name, bytes)
        })
        .collect()
}

struct GradProbe<'a> {
    grads: &'a GradientsParams,
    sum: f64,
}

impl ModuleVisitor for GradProbe<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.get::<D>(param.id) {
            self.sum += g.abs().into_data().iter::<f64>().sum::<f64>();
        }
    }
}

/// Σ|grad| over the parameters of `module` (0 when none received a gradient).
pub fn grad_mass<M: Module>(module: &M, grads: &GradientsParams) -> f64 {
    let mut probe = GradProbe { grads, sum: 0.0 };
    module.visit(&mut probe);
    probe.sum
}

/// Gradient mass per part of the trainable module.
#[derive(Clone, Debug, Default)]
pub struct GradMass {
    /// Encoder body (everything except `fc_audioset`).
    pub encoder: f64,
    /// The encoder's classifier g^A (`fc_audioset`).
    pub classifier: f64,
    /// The current task's head.
    pub current_head: f64,
    /// The previous task's head (g^AV when training AT).
    pub previous_head: f64,
    /// The strategy's aux module.
    pub aux: f64,
}

/// What one step did.
#[derive(Debug)]
pub struct StepReport {
    /// Work counters.
    pub counters: StepCounters,
    /// Gradient mass per part.
    pub grads: GradMass,
    /// Teacher weights and BN statistics bit-identical before/after the step (true without a
    /// teacher).
    pub teacher_untouched: bool,
    /// Encoder state (weights and BN statistics) bit-identical before/after the step.
    pub encoder_untouched: bool,
    /// The aux module's parameters changed.
    pub aux_changed: bool,
    /// Term names.
    pub term_names: Vec<String>,
    /// The (unweighted) `distillation` term, if any.
    pub kd_value: Option<f64>,
}

fn encoder_grads(encoder: &AnyEncoder, grads: &GradientsParams) -> (f64, f64) {
    match encoder {
        AnyEncoder::ResNet38(m) => {
            let all = grad_mass(m, grads);
            let cls = grad_mass(&m.fc_audioset, grads);
            (all - cls, cls)
        }
        AnyEncoder::Cnn(m) => (grad_mass(m, grads), 0.0),
    }
}

/// Runs one real step (forward, backward, Adam update) for `strategy` on a stage of `kind`
/// after a stage of `previous`, and reports what moved.
pub fn run_one_step<S: Strategy>(
    strategy: S,
    kind: TaskKind,
    previous: Option<TaskKind>,
) -> StepReport {
    let stage = StageInfo::new(1, kind, previous, 0.3);
    run_stage_step(strategy, stage)
}

/// An MT-WC stage `[AV, AT]` after task A.
pub fn run_multitask_stage() -> StageInfo {
    StageInfo {
        index: 1,
        tasks: vec![TaskKind::AV, TaskKind::AT],
        previous: Some(TaskKind::A),
        lambda: 0.3,
        seed: 0,
        joint: false,
    }
}

/// As [`run_one_step`] for an MT-WC stage `[AV, AT]` after task A.
pub fn run_multitask_step<S: Strategy>(strategy: S) -> StepReport {
    run_stage_step(strategy, run_multitask_stage())
}

fn run_stage_step<S: Strategy>(mut strategy: S, stage: StageInfo) -> StepReport {
    let device = Device::default().autodiff();
    device.seed(11);
    let mut student = tiny_student(&device);
    if let Some(p) = stage.previous {
        student = student
            .ensure_head(p, &tiny_head_config(), &device)
            .expect("head");
    }
    // Warm the BN running statistics so that "untouched" is a strong check.
    let _ = student.encode(synthetic_batch(TaskKind::A, &device).wave);
    for &k in &stage.tasks {
        student = student
            .ensure_head(k, &tiny_head_config(), &device)
            .expect("head");
    }
    let caps = strategy.capabilities(&stage);
    if caps.freeze_encoder {
        student.encoder = student.encoder.freeze();
    }
    let aux = strategy
        .begin_stage(&stage, &student, &device)
        .expect("begin_stage");
    let model = Trainable { student, aux };
    let teacher_before = strategy.teacher().map(fingerprint);
    let encoder_before = fingerprint(&model.student.encoder);
    let aux_before = fingerprint(&model.aux);
    let batches: Vec<TaskBatch> = stage
        .tasks
        .iter()
        .map(|&k| synthetic_batch(k, &device))
        .collect();
    let mut counters = StepCounters::default();
    let computed = compute_step(&strategy, &stage, &model, &batches, &mut counters).expect("step");
    let (encoder, classifier) = encoder_grads(&model.student.encoder, &computed.grads);
    let head = |k: TaskKind| {
        model
            .student
            .head(k)
            .map_or(0.0, |h| grad_mass(h, &computed.grads))
    };
    let current = stage.kind();
    let previous_head = match (stage.tasks.get(1), stage.previous) {
        (Some(&second), _) => head(if second == current {
            TaskKind::AV
        } else {
            current
        }),
        (None, Some(p)) if p != current => head(p),
        _ => 0.0,
    };
    // For a multi-task stage [AV, AT], report AV as "previous" and AT as "current".
    let (current_head, previous_head) = if stage.tasks.len() > 1 {
        (head(TaskKind::AT), head(TaskKind::AV))
    } else {
        (head(current), previous_head)
    };
    let grads = GradMass {
        encoder,
        classifier,
        current_head,
        previous_head,
        aux: grad_mass(&model.aux, &computed.grads),
    };
    let term_names = computed.terms.iter().map(|t| t.name.clone()).collect();
    let kd_value = computed
        .terms
        .iter()
        .find(|t| t.name == "distillation")
        .map(|t| t.value);
    let mut optim = AdamConfig::new().init();
    let model = apply_step(model, &mut optim, 1e-2, computed, &mut counters);
    StepReport {
        counters,
        grads,
        teacher_untouched: teacher_before
            .is_none_or(|b| strategy.teacher().map(fingerprint) == Some(b)),
        encoder_untouched: fingerprint(&model.student.encoder) == encoder_before,
        aux_changed: fingerprint(&model.aux) != aux_before,
        term_names,
        kd_value,
    }
}
