//! The stage trainer: runs an [`ExperimentConfig`] stage by stage, any [`Strategy`] through the
//! same loop.
//!
//! ```text
//! Experiment::new(config).registry(r).observer(o).run(resume)
//!   └─ for each stage: registry.build(stage.strategy) ─► Method::train_stage ─► StageRunner::run::<S>
//!        begin   heads, teacher snapshot + aux (Strategy::begin_stage), replay streams, or the
//!                checkpoint's state on a resume                                     (checkpoint.rs)
//!        epochs  step*: seed ─► batches (data.rs) ─► compute_step ─► apply_step ─► observers
//!                       └─ every `checkpoint_every_steps`: checkpoint
//!                epoch end: validation ─► LR schedule + early stopping (schedule.rs) ─► observers
//!                           ─► checkpoint
//!        finish  best epoch restored ─► Strategy::end_stage ─► observers (stage export) ─►
//!                stage-end checkpoint
//! ```
//!
//! The method's type is erased only at the registry ([`crate::Method`]); the stage loop is
//! generic over it, so a user's method, its auxiliary module and its loss terms run exactly as
//! the shipped ones do, with every feature of the loop: loaders, supervision tables, Adam or
//! AMSGrad, StepLR / ReduceLROnPlateau, early stopping keeping the best weights, gradient
//! clipping, checkpoints and bit-identical kill-and-resume, data-parallel replicas, NaN/inf stops
//! naming the term, observers and stage models that `accrue eval` scores.
//!
//! **Determinism.** Every random draw is re-seeded from `(seed, stage, epoch, step)` right
//! before it happens (Burn's device RNG for dropout / SpecAugment, the loader's own seeded
//! order, crops and captions), so a run resumed from any checkpoint continues exactly as the
//! uninterrupted run: on the CPU backend the final weights are bit-identical. Burn's device
//! RNG is process-global, so two runs training concurrently in one process (e.g. parallel
//! tests) interleave their draws and lose this property; run them one at a time.
//!
//! **Multi-device.** [`Experiment::devices`] trains data-parallel over several devices
//! ([`crate::parallel`]): replicas take shards of each batch, their gradients are summed on the
//! first device and one optimiser steps there.

mod checkpoint;
mod data;
mod schedule;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use accrue_core::seed;
use accrue_encoders::checkpoint::{load_safetensors, save_safetensors as export_safetensors};
use accrue_encoders::{AudioBody, LoadOptions};
use accrue_losses::LossError;
use burn::module::Module;
use burn::optim::{AdamConfig, ModuleOptimizer, decay::WeightDecayConfig};
use burn::tensor::{Bytes, Device};
use serde::{Deserialize, Serialize};

use self::checkpoint::{Checkpoints, RunState, Snapshot, ckpt_err, load_module, save_module};
use self::data::{ReplayFeed, TaskData, Wiring};
use self::schedule::{EarlyStopping, LrState};
use crate::config::{ExperimentConfig, StageConfig};
use crate::error::{ContinualError, Result};
use crate::model::{Student, TaskKind, Trainable};
use crate::observe::{
    EpochEnd, MetricsLog, Observer, Observers, Progress, StageEnd, StageExport, StageStart,
    StepEnd, TracingLog,
};
use crate::parallel::DataParallel;
use crate::registry::Registry;
use crate::run_dir::RunDir;
use crate::step::{
    ComputedStep, StepCounters, TaskBatch, apply_step, compute_step, initialize_params, loss_terms,
};
use crate::strategy::{Capabilities, StageInfo, Strategy};

/// What a finished run reports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// Experiment name.
    pub name: String,
    /// The final student (encoder + heads), safetensors.
    pub final_model: PathBuf,
    /// The JSONL metrics log.
    pub metrics: PathBuf,
    /// Per-stage results.
    pub stages: Vec<StageSummary>,
}

/// One stage's results.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StageSummary {
    /// Stage name.
    pub name: String,
    /// Strategy name.
    pub strategy: String,
    /// Epochs run.
    pub epochs: usize,
    /// Epoch (0-based) whose weights were kept.
    pub best_epoch: usize,
    /// Monitored loss of that epoch.
    pub best_loss: f64,
    /// Stopped by early stopping.
    pub stopped_early: bool,
    /// Optimiser steps.
    pub steps: u64,
    /// Teacher forwards (0 for strategies without a teacher).
    pub teacher_forwards: u64,
    /// Student encoder forwards, validation included (one per step and task, one per step in
    /// a joint stage).
    #[serde(default)]
    pub student_forwards: u64,
}

/// Loads accrue's own safetensors checkpoint into `student`: an encoder-only file, or a
/// student file (`encoder.*` plus the heads it has, e.g. the `final.safetensors` or a
/// stage model of an earlier run). Strict: the keys must match one of those layouts exactly.
///
/// # Errors
/// The file matches none of them (the encoder-only report is returned), or I/O errors.
pub fn load_student_or_encoder(
    student: Student,
    path: &Path,
    device: &Device,
) -> Result<(Student, accrue_encoders::LoadReport)> {
    let keys = accrue_encoders::checkpoint::safetensors_keys(path)?;
    let is_student = keys.keys().any(|k| k.starts_with("encoder."));
    if !is_student {
        let (encoder, report) = load_safetensors(student.encoder, path, false)?;
        return Ok((
            Student {
                encoder,
                head_av: None,
                head_at: None,
            },
            report,
        ));
    }
    let d = student.encoder.embedding_dim();
    let mut skeleton = Student::new(student.encoder);
    for (kind, slot) in [(TaskKind::AV, "head_av."), (TaskKind::AT, "head_at.")] {
        if let Some(width) = head_width(&keys, slot, path)? {
            let (hidden, output) = width;
            let cfg = crate::model::ProjectionHeadConfig::new(d)
                .with_d_hidden(hidden)
                .with_d_output(output);
            skeleton = skeleton.ensure_head(kind, &cfg, device)?;
        }
    }
    Ok(load_safetensors(skeleton, path, false)?)
}

/// Loads any model file the project reads into `student`, strictly: accrue's safetensors (an
/// encoder or a student, [`load_student_or_encoder`]) or, for any other extension, a PANNs
/// PyTorch checkpoint (`.pth`, `.pt`; the encoder only, through the PANNs key map).
///
/// # Errors
/// As [`load_student_or_encoder`]; for PyTorch files an unreadable pickle, an unsupported
/// dtype or a key/shape mismatch (the full report).
pub fn load_model_file(
    mut student: Student,
    path: &Path,
    device: &Device,
) -> Result<(Student, accrue_encoders::LoadReport)> {
    if path.extension().is_some_and(|e| e == "safetensors") {
        return load_student_or_encoder(student, path, device);
    }
    let opts = LoadOptions::panns(student.encoder.pytorch_key_remaps());
    let (encoder, report) =
        accrue_encoders::checkpoint::load_pytorch(student.encoder, path, &opts)?;
    student.encoder = encoder;
    Ok((student, report))
}

/// `(hidden, output)` of a head stored under `prefix`, read from the file's tensor shapes.
fn head_width(
    keys: &std::collections::BTreeMap<String, Vec<usize>>,
    prefix: &str,
    path: &Path,
) -> Result<Option<(usize, usize)>> {
    if !keys.keys().any(|k| k.starts_with(prefix)) {
        return Ok(None);
    }
    let shape = |name: &str| {
        keys.get(&format!("{prefix}{name}"))
            .cloned()
            .ok_or_else(|| ckpt_err(path, format!("head `{prefix}` has no `{name}` tensor")))
    };
    let fc1 = shape("fc1.weight")?;
    let fc2 = shape("fc2.weight")?;
    match (fc1.as_slice(), fc2.as_slice()) {
        ([_, h], [_, o]) => Ok(Some((*h, *o))),
        _ => Err(ckpt_err(
            path,
            format!("head `{prefix}` has malformed weights"),
        )),
    }
}

/// Runs an experiment file with the shipped methods. `resume`: continue from
/// `<output_dir>/checkpoints/latest` (starts from scratch when there is none).
///
/// # Errors
/// Configuration, data, checkpoint errors, or [`ContinualError::Diverged`] on NaN/inf.
#[cfg(feature = "toml")]
pub fn run_experiment(path: &Path, resume: bool) -> Result<RunSummary> {
    Experiment::new(ExperimentConfig::load(path)?).run(resume)
}

/// As [`run_experiment`] with a parsed config and an explicit (non-autodiff) device.
///
/// # Errors
/// As [`run_experiment`].
pub fn run_experiment_config(
    config: &ExperimentConfig,
    device: &Device,
    resume: bool,
) -> Result<RunSummary> {
    run_experiment_on(config, std::slice::from_ref(device), resume)
}

/// As [`run_experiment_config`], data-parallel over `devices` (see [`Experiment::devices`]).
///
/// # Errors
/// As [`run_experiment`]; no device; a batch size below two clips per replica.
pub fn run_experiment_on(
    config: &ExperimentConfig,
    devices: &[Device],
    resume: bool,
) -> Result<RunSummary> {
    Experiment::new(config.clone()).devices(devices).run(resume)
}

/// An experiment ready to run: its configuration, the [`Registry`] its stages' methods are
/// built from, the [`Observer`]s that watch it and the devices it trains on.
///
/// ```ignore
/// let mut registry = Registry::builtin();
/// registry.register("feature_l2", FeatureL2::from_spec)?;
/// let config = ExperimentConfig::load_with(Path::new("experiment.toml"), &registry)?;
/// let summary = Experiment::new(config).registry(registry).observer(MyLogger).run(resume)?;
/// ```
///
/// The built-in observers always run first: progress bar ([`crate::observe::Progress`]),
/// metrics log ([`MetricsLog`]), `tracing` lines ([`TracingLog`]) and stage export
/// ([`StageExport`]).
pub struct Experiment {
    config: ExperimentConfig,
    registry: Registry,
    observers: Vec<Box<dyn Observer>>,
    devices: Vec<Device>,
}

impl Experiment {
    /// `config` with the shipped methods, on the default device.
    pub fn new(config: ExperimentConfig) -> Self {
        Self {
            config,
            registry: Registry::builtin(),
            observers: Vec::new(),
            devices: vec![Device::default()],
        }
    }

    /// Builds the stages' methods from `registry` (usually [`Registry::builtin`] plus your own).
    #[must_use]
    pub fn registry(mut self, registry: Registry) -> Self {
        self.registry = registry;
        self
    }

    /// Adds an observer (after the built-in ones).
    #[must_use]
    pub fn observer(mut self, observer: impl Observer + 'static) -> Self {
        self.observers.push(Box::new(observer));
        self
    }

    /// Trains on `devices` (plain, non-autodiff handles); the first is the main device
    /// (optimiser, validation, checkpoints), more than one trains data-parallel
    /// ([`crate::parallel`]). Several handles of the same device are allowed (they take turns).
    #[must_use]
    pub fn devices(mut self, devices: &[Device]) -> Self {
        self.devices = devices.iter().map(|d| d.clone().inner()).collect();
        self
    }

    /// Runs the experiment. `resume`: continue from the run folder's newest usable checkpoint
    /// (from scratch when there is none); without it, a folder that already holds a run is
    /// refused ([`ContinualError::RunExists`]).
    ///
    /// # Errors
    /// Configuration (a method kind the registry lacks, its options), data, checkpoint
    /// errors, [`ContinualError::Diverged`] on NaN/inf, or an observer's error.
    pub fn run(self, resume: bool) -> Result<RunSummary> {
        let Self {
            config,
            registry,
            observers,
            devices,
        } = self;
        config.validate_with(&registry)?;
        let main = devices
            .first()
            .cloned()
            .ok_or_else(|| ContinualError::Config("no device to train on".into()))?;
        if devices.len() > 1 {
            for stage in &config.stages {
                if stage.batch_size < 2 * devices.len() {
                    return Err(ContinualError::Config(format!(
                        "stage `{}`: batch_size {} is below 2 clips per replica for {} replicas",
                        stage.name,
                        stage.batch_size,
                        devices.len()
                    )));
                }
            }
        }
        let run = RunDir::new(&config.output_dir);
        let ckpt_dir = run.checkpoints();
        fs::create_dir_all(&ckpt_dir).map_err(|e| ContinualError::io(&ckpt_dir, e))?;
        let mut all: Vec<Box<dyn Observer>> = vec![
            Box::new(Progress::default()),
            Box::new(MetricsLog::new(run.metrics())),
            Box::new(TracingLog),
            Box::new(StageExport::new(run.clone())),
        ];
        all.extend(observers);
        let trainer = Trainer {
            ckpts: Checkpoints {
                run: run.clone(),
                replicas: devices.len(),
            },
            config,
            device: main,
            replicas: devices,
            run,
            registry,
        };
        trainer.run(resume, &mut Observers(all))
    }
}

struct Trainer {
    config: ExperimentConfig,
    device: Device,
    /// Data-parallel replicas' (plain) devices; `[device]` for one device.
    replicas: Vec<Device>,
    /// The run folder (`config.output_dir`): checkpoints, metrics log, stage models.
    run: RunDir,
    ckpts: Checkpoints,
    registry: Registry,
}

const INIT: u64 = u64::MAX;
/// Seed-derivation tag of data-parallel replicas.
const REPLICA: u64 = u64::MAX - 1;

impl Trainer {
    fn wiring(&self) -> Wiring<'_> {
        Wiring {
            config: &self.config,
            device: &self.device,
        }
    }

    /// What stage `s` trains on, as its method sees it.
    fn stage_info(&self, s: usize) -> StageInfo {
        let sc = &self.config.stages[s];
        StageInfo {
            index: s,
            tasks: sc.tasks.iter().map(|t| t.kind).collect(),
            previous: match s.checked_sub(1) {
                Some(p) => Some(self.config.stages[p].tasks[0].kind),
                None => self.config.encoder.trained_on,
            },
            lambda: sc.lambda,
            seed: sc.seed,
            joint: sc.joint,
        }
    }

    fn skeleton(&self, heads_upto: usize, device: &Device) -> Result<Student> {
        let mut student = Student::new(self.config.encoder.config()?.init(device));
        let d = student.encoder.embedding_dim();
        for stage in self.config.stages.iter().take(heads_upto) {
            for t in &stage.tasks {
                student =
                    student.ensure_head(t.kind, &self.config.head.config(t.kind, d), device)?;
            }
        }
        Ok(student)
    }

    fn initial_student(&self, device: &Device) -> Result<Student> {
        device.seed(seed::derive(&[self.config.stages[0].seed, INIT, INIT]));
        let mut student = self.skeleton(0, device)?;
        if let Some(path) = &self.config.encoder.checkpoint {
            let (loaded, report) = load_model_file(student, path, device)?;
            tracing::info!(path = %path.display(), %report, "initial model loaded");
            student = loaded;
        }
        Ok(student)
    }

    fn optimizer(stage: &StageConfig) -> ModuleOptimizer {
        let o = &stage.optimizer;
        let mut cfg = AdamConfig::new()
            .with_beta_1(o.beta_1)
            .with_beta_2(o.beta_2)
            .with_epsilon(o.epsilon)
            .with_amsgrad(o.amsgrad);
        if o.weight_decay > 0.0 {
            cfg = cfg.with_weight_decay(Some(WeightDecayConfig::new(o.weight_decay)));
        }
        if let Some(n) = o.grad_clip_norm {
            cfg =
                cfg.with_grad_clipping(Some(burn::grad_clipping::GradientClippingConfig::Norm(n)));
        }
        cfg.init()
    }

    fn run(&self, resume: bool, observers: &mut Observers) -> Result<RunSummary> {
        if !resume {
            self.run.refuse_overwrite()?;
        }
        #[cfg(feature = "toml")]
        self.record_experiment(resume)?;
        let ad = self.device.clone().autodiff();
        let latest = if resume { self.ckpts.latest()? } else { None };
        let (mut state, mut student, mut resume_dir) = match latest {
            Some((dir, state)) => {
                let heads = if state.mid_stage() {
                    state.stage + 1
                } else {
                    state.stage
                };
                let skeleton = self.skeleton(heads.min(self.config.stages.len()), &ad)?;
                let student = load_module(skeleton, &dir.join("student.bpk")).map_err(|e| {
                    ckpt_err(
                        &dir,
                        format!(
                            "this run's checkpoint does not fit the experiment's model: were \
                             `[encoder]` or `[head]` changed since the run started? Restore \
                             them, or start afresh with `--fresh` ({e})"
                        ),
                    )
                })?;
                tracing::info!(checkpoint = %dir.display(), stage = state.stage, epoch = state.epoch, batch = state.next_batch, "resuming");
                let written_by = state.replicas.max(1);
                if written_by != self.replicas.len() {
                    tracing::warn!(
                        written_by,
                        now = self.replicas.len(),
                        "resuming with a different number of data-parallel replicas: the rest of the run is not the run that was interrupted (per-replica negatives and BatchNorm statistics change)"
                    );
                }
                // Drop what was logged after the checkpoint: those steps run again.
                self.ckpts.rewind_metrics(&state)?;
                if !state.mid_stage() {
                    self.repair_stage_model(&state, &student)?;
                }
                let mid = state.mid_stage().then_some(dir);
                (state, student, mid)
            }
            None => {
                // A fresh start (also `--resume` killed before the first checkpoint): the
                // log starts empty. A new run never gets here over a previous one (refused
                // above), so nothing of value is deleted.
                let _ = fs::remove_file(self.run.metrics());
                (RunState::default(), self.initial_student(&ad)?, None)
            }
        };
        while state.stage < self.config.stages.len() {
            let method = self
                .registry
                .build(&self.config.stages[state.stage].strategy)?;
            let mut runner = StageRunner {
                trainer: self,
                state: &mut state,
                resume_dir: resume_dir.take(),
                ad: &ad,
                observers,
            };
            student = method.train_stage(&mut runner, student)?;
        }
        let final_model = self.run.final_model();
        export_safetensors(&student.valid(), &final_model)?;
        let summary = RunSummary {
            name: self.config.name.clone(),
            final_model,
            metrics: self.run.metrics(),
            stages: state.completed.clone(),
        };
        observers.each(|o| o.run_end(&summary))?;
        Ok(summary)
    }

    /// Keeps a copy of the experiment in the run folder (`experiment.toml`, paths absolute), so
    /// that every run describes itself (`accrue eval <run folder>`). A copy that already reads
    /// as this experiment is left alone (the main job's own files); a resumed run whose
    /// experiment changed since it started is warned about.
    #[cfg(feature = "toml")]
    fn record_experiment(&self, resume: bool) -> Result<()> {
        let copy = self.run.experiment();
        let text = self.config.to_toml_absolute()?;
        if let Ok(old) = ExperimentConfig::load_any_method(&copy) {
            if old == self.config {
                return Ok(());
            }
            if resume && old.to_toml_absolute().ok().as_ref() != Some(&text) {
                tracing::warn!(
                    run = %copy.display(),
                    "the experiment differs from the one this run started with: the resumed run is not that run"
                );
            }
        }
        accrue_core::atomic::write(&copy, text.as_bytes())?;
        Ok(())
    }

    /// At a resume from a stage boundary, exports the previous stage's model if it is missing
    /// (a run interrupted between its stage-end checkpoint and the export by an older
    /// version): the checkpoint's student is exactly that model.
    fn repair_stage_model(&self, state: &RunState, student: &Student) -> Result<()> {
        let Some(prev) = state.stage.checked_sub(1) else {
            return Ok(());
        };
        let Some(sc) = self.config.stages.get(prev) else {
            return Ok(());
        };
        let path = self.run.stage_model(prev, &sc.name);
        if !path.is_file() {
            tracing::warn!(stage = sc.name, model = %path.display(), "stage model missing: exported again from the checkpoint");
            export_safetensors(&student.valid(), &path)?;
        }
        Ok(())
    }
}

/// Runs one stage of an experiment with one method (the generic stage loop). Handed to
/// [`crate::Method::train_stage`]; not constructible outside the trainer.
#[doc(hidden)]
pub struct StageRunner<'a> {
    trainer: &'a Trainer,
    state: &'a mut RunState,
    resume_dir: Option<PathBuf>,
    ad: &'a Device,
    observers: &'a mut Observers,
}

/// One stage's loop state besides the model.
struct StageLoop<'t, S: Strategy> {
    strategy: S,
    sc: &'t StageConfig,
    info: StageInfo,
    caps: Capabilities,
    data: Vec<TaskData>,
    replay: Vec<ReplayFeed>,
    steps_per_epoch: usize,
    /// The stage-start student (checkpointed mid-stage: the teacher is re-made from it).
    start: Student,
    optim: ModuleOptimizer,
    parallel: Option<DataParallel<S>>,
    /// The best epoch's weights so far.
    best: Option<PathBuf>,
    counters: StepCounters,
    /// The newest checkpoint, named in divergence errors.
    last_ckpt: String,
}

impl<'a> StageRunner<'a> {
    /// The stage loop: set-up, epochs, finish.
    pub(crate) fn run<S>(&mut self, strategy: S, student: Student) -> Result<Student>
    where
        S: Strategy + Sync,
        S::Aux: Send,
    {
        let (mut st, mut model) = self.begin(strategy, student)?;
        let start = StageStart {
            index: st.info.index,
            name: st.sc.name.clone(),
            strategy: st.strategy.name(),
            capabilities: st.caps,
            epochs: st.sc.epochs,
            steps_per_epoch: st.steps_per_epoch,
            done: self.state.epoch * st.steps_per_epoch + self.state.next_batch,
            replicas: self.trainer.replicas.len(),
        };
        self.observers.each(|o| o.stage_start(&start))?;
        let mut epochs_run = self.state.epoch;
        let mut stopped_early = false;
        while self.state.epoch < st.sc.epochs {
            let t0 = Instant::now();
            let (trained, data_wait) = self.train_epoch(&mut st, model)?;
            model = trained;
            epochs_run = self.state.epoch + 1;
            stopped_early = self.end_epoch(&mut st, &model, t0, data_wait)?;
        }
        self.finish(st, model, epochs_run, stopped_early)
    }

    /// Stage set-up: new heads, the method's teacher snapshot and aux modules (seeded, so a
    /// resumed run re-creates exactly the same modules before loading their state), its replay
    /// streams, replicas, and the state of a checkpoint part-way through the stage.
    fn begin<S>(
        &mut self,
        mut strategy: S,
        student: Student,
    ) -> Result<(StageLoop<'a, S>, Trainable<S::Aux>)>
    where
        S: Strategy + Sync,
        S::Aux: Send,
    {
        let t: &'a Trainer = self.trainer;
        let s = self.state.stage;
        let sc = &t.config.stages[s];
        let info = t.stage_info(s);
        let caps = strategy.capabilities(&info);
        let wiring = t.wiring();
        let data = wiring.stage(s)?;
        let steps_per_epoch = data
            .iter()
            .map(|d| d.train.num_batches())
            .min()
            .unwrap_or(0);
        if steps_per_epoch == 0 {
            return Err(ContinualError::Config(format!(
                "stage `{}`: a task has fewer clips than one batch ({})",
                sc.name, sc.batch_size
            )));
        }
        let ad = self.ad;
        ad.seed(seed::derive(&[sc.seed, s as u64, INIT]));
        let (start, mut model, optim) = match &self.resume_dir {
            Some(dir) => {
                let start = load_module(t.skeleton(s + 1, ad)?, &dir.join("start.bpk"))?;
                let aux = strategy.begin_stage(&info, &start, ad)?;
                let aux = load_module(aux, &dir.join("aux.bpk"))?;
                let p = dir.join("optim.bin");
                let bytes = fs::read(&p).map_err(|e| ContinualError::io(&p, e))?;
                let optim = Trainer::optimizer(sc)
                    .from_bytes(Bytes::from_bytes_vec(bytes))
                    .map_err(|e| ckpt_err(&p, format!("{e:?}")))?;
                (start, Trainable { student, aux }, optim)
            }
            None => {
                let d_embed = student.encoder.embedding_dim();
                let mut student = student;
                for &k in &info.tasks {
                    student = student.ensure_head(k, &t.config.head.config(k, d_embed), ad)?;
                }
                // Initialise the new heads and the aux modules now, from the stage's seed,
                // not at the first step or in whichever data-parallel replica touches them first.
                initialize_params(&student);
                let aux = strategy.begin_stage(&info, &student, ad)?;
                initialize_params(&aux);
                *self.state = RunState {
                    stage: s,
                    lr: LrState::start(sc.optimizer.lr),
                    stop: EarlyStopping::default(),
                    completed: std::mem::take(&mut self.state.completed),
                    seq: self.state.seq,
                    ..RunState::default()
                };
                // `valid()` copies the running statistics (a clone would share them with the
                // student and drift while it trains).
                (
                    student.valid(),
                    Trainable { student, aux },
                    Trainer::optimizer(sc),
                )
            }
        };
        let replay = if caps.replay {
            let streams = strategy.replay(&info, &wiring.earlier(s)?)?;
            wiring.replay(s, &strategy.name(), streams)?
        } else {
            Vec::new()
        };
        // SpecAugment for this stage's crop (it holds no state: set again on every resume).
        let hop = t.config.encoder.config()?.front_end().hop_length.max(1);
        let crop = (sc.crop_seconds * f64::from(t.config.sample_rate)).round() as usize;
        model
            .student
            .encoder
            .set_spec_augment(t.config.encoder.spec_augment.for_frames(1 + crop / hop));
        if caps.freeze_encoder {
            model.student.encoder = model.student.encoder.freeze();
        }
        let parallel = match t.replicas.len() {
            0 | 1 => None,
            _ => {
                initialize_params(&model);
                Some(DataParallel::new(
                    &strategy,
                    t.replicas.iter().map(|d| d.clone().autodiff()).collect(),
                )?)
            }
        };
        // Copy a resumed best out of the checkpoint folder (which may be pruned).
        let mut best = None;
        if let Some(b) = self.resume_dir.as_ref().map(|d| d.join("best.bpk")) {
            if b.exists() {
                let keep = t.ckpts.best_of_stage(s);
                fs::copy(&b, &keep).map_err(|e| ContinualError::io(&b, e))?;
                best = Some(keep);
            }
        }
        let last_ckpt = t
            .ckpts
            .pointed()?
            .map_or_else(|| "none".to_string(), |p| p.display().to_string());
        let st = StageLoop {
            strategy,
            sc,
            info,
            caps,
            data,
            replay,
            steps_per_epoch,
            start,
            optim,
            parallel,
            best,
            counters: self.state.step_counters(),
            last_ckpt,
        };
        Ok((st, model))
    }

    /// The steps of the current epoch from the state's position; returns the model and the
    /// fraction of the epoch spent waiting for batches.
    fn train_epoch<S>(
        &mut self,
        st: &mut StageLoop<'a, S>,
        mut model: Trainable<S::Aux>,
    ) -> Result<(Trainable<S::Aux>, f64)>
    where
        S: Strategy + Sync,
        S::Aux: Send,
    {
        let (s, epoch) = (self.state.stage, self.state.epoch);
        let wiring = self.trainer.wiring();
        let mut iters: Vec<_> = st
            .data
            .iter()
            .map(|d| d.train.epoch_from(epoch as u64, self.state.next_batch))
            .collect();
        for step in self.state.next_batch..st.steps_per_epoch {
            self.ad.seed(seed::derive(&[
                st.sc.seed,
                s as u64,
                epoch as u64,
                step as u64,
            ]));
            let mut batches = Vec::with_capacity(st.data.len() + st.replay.len());
            for (d, it) in st.data.iter().zip(iters.iter_mut()) {
                let raw = it.next().ok_or_else(|| {
                    ContinualError::Config(format!("loader of task {} ended early", d.kind))
                })??;
                batches.push(wiring.batch(d, &d.train, &raw, (epoch, step))?);
            }
            let g = epoch * st.steps_per_epoch + step;
            for feed in &mut st.replay {
                batches.push(feed.next(&wiring, g, (epoch, step))?);
            }
            let computed = self.compute(st, &model, &batches, step)?;
            let (total, terms) = (computed.total, computed.terms.clone());
            let lr = self.state.lr.lr;
            model = apply_step(model, &mut st.optim, lr, computed, &mut st.counters);
            self.state.epoch_loss_sum += total;
            self.state.epoch_steps += 1;
            self.state.next_batch = step + 1;
            let event = StepEnd {
                stage: s,
                epoch,
                step,
                loss: total,
                lr,
                terms: &terms,
            };
            self.observers.each(|o| o.step(&event))?;
            let every = st.sc.checkpoint_every_steps;
            if every > 0 && (step + 1) % every == 0 && step + 1 < st.steps_per_epoch {
                self.checkpoint_mid(st, &model)?;
            }
        }
        let data_wait = iters
            .iter()
            .map(|it| it.timing().wait_fraction())
            .fold(0.0_f64, f64::max);
        Ok((model, data_wait))
    }

    /// One step's gradients, on one device or data-parallel; a non-finite term stops the run
    /// naming it and the newest checkpoint.
    fn compute<S>(
        &self,
        st: &mut StageLoop<'a, S>,
        model: &Trainable<S::Aux>,
        batches: &[TaskBatch],
        step: usize,
    ) -> Result<ComputedStep>
    where
        S: Strategy + Sync,
        S::Aux: Send,
    {
        let (s, epoch, seed) = (self.state.stage, self.state.epoch, st.sc.seed);
        let computed = match &st.parallel {
            None => compute_step(&st.strategy, &st.info, model, batches, &mut st.counters),
            Some(dp) => dp.compute_step(
                &st.strategy,
                &st.info,
                model,
                batches,
                &mut st.counters,
                |r| seed::derive(&[seed, s as u64, epoch as u64, step as u64, REPLICA, r as u64]),
            ),
        };
        match computed {
            Err(ContinualError::Loss(LossError::NonFinite { term, value })) => {
                tracing::error!(term, value, "non-finite loss term; stopping");
                Err(ContinualError::Diverged {
                    stage: s,
                    epoch,
                    step,
                    term,
                    value,
                    checkpoint: st.last_ckpt.clone(),
                })
            }
            other => other,
        }
    }

    /// Epoch end: monitored loss, LR schedule, early stopping (saving a new best), observers,
    /// checkpoint. Returns whether early stopping ended the stage.
    fn end_epoch<S>(
        &mut self,
        st: &mut StageLoop<'a, S>,
        model: &Trainable<S::Aux>,
        t0: Instant,
        data_wait: f64,
    ) -> Result<bool>
    where
        S: Strategy + Sync,
        S::Aux: Send,
    {
        let (s, epoch) = (self.state.stage, self.state.epoch);
        let train_loss = self.state.epoch_loss_sum / self.state.epoch_steps.max(1) as f64;
        let valid_loss = self.validate(st, model)?;
        let monitored = valid_loss.unwrap_or(train_loss);
        let sc = st.sc;
        self.state
            .lr
            .epoch_end(&sc.scheduler, sc.optimizer.lr, monitored, epoch);
        let verdict = self.state.stop.epoch_end(monitored, epoch, sc.patience);
        if verdict.improved {
            let p = self.trainer.ckpts.best_of_stage(s);
            save_module(model, &p)?;
            st.best = Some(p);
        }
        let event = EpochEnd {
            stage: s,
            epoch,
            train_loss,
            valid_loss,
            lr: self.state.lr.lr,
            seconds: t0.elapsed().as_secs_f64(),
            data_wait_fraction: data_wait,
            improved: verdict.improved,
            stop: verdict.stop,
        };
        self.observers.each(|o| o.epoch_end(&event))?;
        self.state.epoch = if verdict.stop { sc.epochs } else { epoch + 1 };
        self.state.next_batch = 0;
        self.state.epoch_loss_sum = 0.0;
        self.state.epoch_steps = 0;
        self.checkpoint_mid(st, model)?;
        Ok(verdict.stop)
    }

    /// A checkpoint inside the stage (every N steps, every epoch end).
    fn checkpoint_mid<S: Strategy>(
        &mut self,
        st: &mut StageLoop<'a, S>,
        model: &Trainable<S::Aux>,
    ) -> Result<()> {
        self.state.set_counters(&st.counters);
        let snap = Snapshot {
            model,
            start: Some(&st.start),
            best: st.best.as_deref(),
            optim: Some(&st.optim),
        };
        let dir = self.trainer.ckpts.write(self.state, &snap)?;
        st.last_ckpt = dir.display().to_string();
        Ok(())
    }

    /// The stage's end: best epoch restored (with early stopping), the method's `end_stage`,
    /// observers (stage export among them), then the stage-end checkpoint.
    fn finish<S>(
        &mut self,
        mut st: StageLoop<'a, S>,
        model: Trainable<S::Aux>,
        epochs: usize,
        stopped_early: bool,
    ) -> Result<Student>
    where
        S: Strategy + Sync,
        S::Aux: Send,
    {
        let s = self.state.stage;
        let mut model = model;
        if let (true, Some(p)) = (
            st.sc.patience.is_some() && self.state.stop.has_best,
            st.best.as_ref(),
        ) {
            model = load_module(model, p)?;
        }
        let Trainable { student, aux } = model;
        let student = st.strategy.end_stage(&st.info, student, &aux)?;
        let summary = StageSummary {
            name: st.sc.name.clone(),
            strategy: st.strategy.name(),
            epochs,
            best_epoch: self.state.stop.best_epoch,
            best_loss: self.state.stop.best_loss,
            stopped_early,
            steps: st.counters.steps,
            teacher_forwards: st.counters.teacher_forwards,
            student_forwards: st.counters.student_forwards,
        };
        // The stage-end model goes to the observers (the stage export) before the stage-end
        // checkpoint: a run killed in between resumes from the last epoch's checkpoint and
        // exports it again, so no stage model is ever lost.
        let event = StageEnd {
            index: s,
            name: &st.sc.name,
            summary: &summary,
            student: &student,
        };
        self.observers.each(|o| o.stage_end(&event))?;
        let mut completed = std::mem::take(&mut self.state.completed);
        completed.push(summary);
        *self.state = RunState {
            stage: s + 1,
            completed,
            seq: self.state.seq,
            ..RunState::default()
        };
        let end = Trainable {
            student,
            aux: crate::strategy::NoAux {},
        };
        let snap = Snapshot {
            model: &end,
            start: None,
            best: None,
            optim: None,
        };
        self.trainer.ckpts.write(self.state, &snap)?;
        let _ = fs::remove_file(self.trainer.ckpts.best_of_stage(s));
        st.replay.clear();
        Ok(end.student)
    }

    /// Mean loss over the validation batches (the stage's tasks; no replay), `None` without
    /// validation data.
    fn validate<S: Strategy>(
        &self,
        st: &mut StageLoop<'a, S>,
        model: &Trainable<S::Aux>,
    ) -> Result<Option<f64>> {
        if st.data.iter().any(|d| d.valid.is_none()) {
            return Ok(None);
        }
        let wiring = self.trainer.wiring();
        let eval = model.valid();
        let mut iters: Vec<_> = st
            .data
            .iter()
            .filter_map(|d| d.valid.as_ref().map(|l| (d, l, l.epoch(0))))
            .collect();
        let (mut sum, mut n) = (0.0, 0usize);
        'outer: loop {
            let mut batches = Vec::new();
            for (d, loader, it) in &mut iters {
                match it.next() {
                    Some(b) => {
                        let b = b?;
                        if b.len() < 2 {
                            break 'outer;
                        }
                        batches.push(wiring.batch(d, loader, &b, (0, n))?);
                    }
                    None => break 'outer,
                }
            }
            let terms = loss_terms(&st.strategy, &st.info, &eval, &batches, &mut st.counters)?;
            let total = terms
                .total()?
                .into_data()
                .iter::<f64>()
                .next()
                .unwrap_or(f64::NAN);
            sum += total;
            n += 1;
        }
        Ok((n > 0).then(|| sum / n as f64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{fingerprint, synthetic_batch, tiny_student};
    use burn::tensor::Tensor;

    #[test]
    fn burnpack_round_trip_keeps_weights_running_stats_and_param_ids() {
        let device = Device::default().autodiff();
        device.seed(5);
        let student = tiny_student(&device);
        let _ = student.encode(synthetic_batch(TaskKind::A, &device).wave);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.bpk");
        save_module(&student, &path).expect("save");
        device.seed(6);
        let loaded = load_module(tiny_student(&device), &path).expect("load");
        assert!(
            fingerprint(&loaded) == fingerprint(&student),
            "weights or running statistics differ"
        );
        // Trainable parameters keep their ids (the optimiser state is keyed by them); BN running
        // statistics are buffers the optimiser never sees.
        struct Ids(Vec<u64>);
        impl burn::module::ModuleVisitor for Ids {
            fn visit_float<const D: usize>(&mut self, p: &burn::module::Param<Tensor<D>>) {
                if p.val().is_require_grad() {
                    self.0.push(p.id.val());
                }
            }
        }
        let ids = |m: &Student| {
            let mut v = Ids(Vec::new());
            m.visit(&mut v);
            v.0
        };
        assert!(!ids(&student).is_empty());
        assert_eq!(
            ids(&loaded),
            ids(&student),
            "parameter ids were not restored"
        );
    }
}
