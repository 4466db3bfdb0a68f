//! The stage trainer: runs an [`ExperimentConfig`] stage by stage on Burn's optimisers.
//!
//! Per stage: create the new task heads, ask the strategy to begin (teacher snapshot, aux
//! modules), then epochs of [`compute_step`] / [`apply_step`] with Adam (or AMSGrad), an
//! epoch-level scheduler (StepLR, ReduceLROnPlateau), early stopping on the validation loss
//! (or the training loss without validation data) that restores the best weights, and
//! checkpoints at every epoch end, every `checkpoint_every_steps` steps and at the stage end.
//!
//! **Determinism.** Every random draw is re-seeded from `(seed, stage, epoch, step)` right
//! before it happens (Burn's device RNG for dropout / SpecAugment, the loader's own seeded
//! order, crops and captions), so a run resumed from any checkpoint continues exactly as the
//! uninterrupted run: on the CPU backend the final weights are bit-identical. Burn's device
//! RNG is process-global, so two runs training concurrently in one process (e.g. parallel
//! tests) interleave their draws and lose this property; run them one at a time.
//!
//! **Checkpoints** live in `<output_dir>/checkpoints/ckpt-NNNNNN/` (`state.json` with the
//! stage / epoch / loader position, scheduler and early-stopping state; `student`, `aux`,
//! `start` (the stage-start student the teacher is re-made from) and `best` as safetensors;
//! `optim.bin`, Burn's optimiser record). A directory is written under a temporary name and
//! renamed, then the `latest` pointer is replaced by rename: a kill at any point leaves the
//! previous checkpoint intact.
//!
//! **Multi-device.** [`run_experiment_on`] trains data-parallel over several devices
//! ([`crate::parallel`]): replicas take shards of each batch, their gradients are summed on the
//! first device and one optimiser steps there.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use accrue_core::seed;
use accrue_data::{Crop, Dataset, Loader, LoaderConfig, readers};
use accrue_encoders::checkpoint::{load_safetensors, save_safetensors as export_safetensors};
use accrue_encoders::{AudioBody, LoadOptions};
use accrue_losses::LossError;
use burn::module::{Module, ModuleDisplay};
use burn::optim::{AdamConfig, ModuleOptimizer, decay::WeightDecayConfig};
use burn::store::{BurnpackStore, ModuleSnapshot};
use burn::tensor::{Bytes, Device, Tensor};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::config::{ExperimentConfig, SchedulerConfig, StageConfig};
use crate::error::{ContinualError, Result};
use crate::model::{Student, TaskKind, Trainable};
use crate::parallel::DataParallel;
use crate::run_dir::RunDir;
use crate::step::{
    StepCounters, TaskBatch, apply_step, compute_step, initialize_params, loss_terms,
};
use crate::strategies::AnyStrategy;
use crate::strategy::{BatchMeta, StageInfo, Strategy, Supervision};
use crate::supervision::SupervisionTable;

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

/// Runs an experiment file. `resume`: continue from `<output_dir>/checkpoints/latest`
/// (starts from scratch when there is none).
///
/// # Errors
/// Configuration, data, checkpoint errors, or [`ContinualError::Diverged`] on NaN/inf.
#[cfg(feature = "toml")]
pub fn run_experiment(path: &Path, resume: bool) -> Result<RunSummary> {
    let config = ExperimentConfig::load(path)?;
    run_experiment_config(&config, &Device::default(), resume)
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

/// As [`run_experiment_config`], data-parallel over `devices` (the first is the main device:
/// optimiser, validation, checkpoints); see [`crate::parallel`] for what differs from one
/// device. Several handles of the same device are allowed (they take turns).
///
/// # Errors
/// As [`run_experiment`]; no device; a batch size below two clips per replica.
pub fn run_experiment_on(
    config: &ExperimentConfig,
    devices: &[Device],
    resume: bool,
) -> Result<RunSummary> {
    let replicas: Vec<Device> = devices.iter().map(|d| d.clone().inner()).collect();
    let main = replicas
        .first()
        .cloned()
        .ok_or_else(|| ContinualError::Config("no device to train on".into()))?;
    if replicas.len() > 1 {
        for stage in &config.stages {
            if stage.batch_size < 2 * replicas.len() {
                return Err(ContinualError::Config(format!(
                    "stage `{}`: batch_size {} is below 2 clips per replica for {} replicas",
                    stage.name,
                    stage.batch_size,
                    replicas.len()
                )));
            }
        }
    }
    let mut trainer = Trainer::new(config.clone(), main)?;
    trainer.replicas = replicas;
    trainer.run(resume)
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct RunState {
    stage: usize,
    epoch: usize,
    next_batch: usize,
    #[serde(with = "f64_bits")]
    lr: f64,
    #[serde(with = "f64_bits")]
    plateau_best: f64,
    plateau_bad: usize,
    #[serde(with = "f64_bits")]
    best_loss: f64,
    best_epoch: usize,
    bad_epochs: usize,
    has_best: bool,
    #[serde(with = "f64_bits")]
    epoch_loss_sum: f64,
    epoch_steps: usize,
    counters: (u64, u64, u64),
    completed: Vec<StageSummary>,
    seq: u64,
    /// Length in bytes of `metrics.jsonl` when the checkpoint was written: a resumed run
    /// truncates the log to it, so the steps it replays are not logged twice.
    #[serde(default)]
    metrics_len: u64,
    /// Data-parallel replicas of the run that wrote the checkpoint (0 in older checkpoints:
    /// one).
    #[serde(default)]
    replicas: usize,
    /// Sizes in bytes of the checkpoint's other files when it was written: a resume does not
    /// trust a checkpoint whose files were truncated since (empty in older checkpoints).
    #[serde(default)]
    files: std::collections::BTreeMap<String, u64>,
}

/// The state of the checkpoint in `dir`, after checking that its files still have the sizes
/// they were written with.
fn read_checkpoint_state(dir: &Path) -> std::result::Result<RunState, String> {
    let sp = dir.join("state.json");
    let text = fs::read_to_string(&sp).map_err(|e| format!("state.json: {e}"))?;
    let state: RunState = serde_json::from_str(&text).map_err(|e| format!("state.json: {e}"))?;
    for (file, written) in &state.files {
        let now = fs::metadata(dir.join(file)).map_or(0, |m| m.len());
        if now != *written {
            return Err(format!(
                "`{file}` is {now} bytes but was written with {written} (truncated or replaced)"
            ));
        }
    }
    Ok(state)
}

/// Floats of the run state are stored as their bit patterns: exact (JSON decimal parsing is
/// not guaranteed to round-trip) and able to hold infinities.
mod f64_bits {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(v.to_bits())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        u64::deserialize(d).map(f64::from_bits)
    }
}

struct Trainer {
    config: ExperimentConfig,
    device: Device,
    /// Data-parallel replicas' (plain) devices; `[device]` for one device.
    replicas: Vec<Device>,
    /// The run folder (`config.output_dir`): checkpoints, metrics log, stage models.
    run: RunDir,
}

const INIT: u64 = u64::MAX;
/// Seed-derivation tag of data-parallel replicas.
const REPLICA: u64 = u64::MAX - 1;

/// Saves a module in Burn's own burnpack format, which (unlike safetensors) keeps parameter
/// ids: the optimiser state, keyed by parameter id, re-attaches after a resume.
///
/// Burn's `RunningState` (BatchNorm statistics) applies its latest update lazily and
/// `collect` reads the value without synchronising, so the module is first synchronised through
/// `valid()` (which keeps parameter ids); otherwise the saved statistics lag one step behind.
fn save_module<M: Module>(module: &M, path: &Path) -> Result<()> {
    let mut store = BurnpackStore::from_file(path)
        .overwrite(true)
        .auto_extension(false);
    module
        .valid()
        .save_into(&mut store)
        .map_err(|e| ckpt_err(path, format!("{e:?}")))
}

/// Loads a module written by [`save_module`], strictly (missing, unused or mismatched tensors
/// are an error).
fn load_module<M: Module>(mut module: M, path: &Path) -> Result<M> {
    let mut store = BurnpackStore::from_file(path).auto_extension(false);
    let r = module
        .load_from(&mut store)
        .map_err(|e| ckpt_err(path, format!("{e:?}")))?;
    if !r.errors.is_empty() || !r.missing.is_empty() || !r.unused.is_empty() {
        return Err(ckpt_err(
            path,
            format!(
                "does not match the model: missing {:?}, unused {:?}, errors {:?}",
                r.missing, r.unused, r.errors
            ),
        ));
    }
    Ok(module)
}

fn ckpt_err(path: &Path, detail: impl ToString) -> ContinualError {
    ContinualError::Checkpoint {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    }
}

struct TaskData {
    kind: TaskKind,
    train: Loader,
    valid: Option<Loader>,
    table: Option<SupervisionTable>,
}

impl Trainer {
    fn new(config: ExperimentConfig, device: Device) -> Result<Self> {
        let run = RunDir::new(&config.output_dir);
        let ckpt_dir = run.checkpoints();
        fs::create_dir_all(&ckpt_dir).map_err(|e| ContinualError::io(&ckpt_dir, e))?;
        Ok(Self {
            config,
            replicas: vec![device.clone()],
            device,
            run,
        })
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
            let is_st = path.extension().is_some_and(|e| e == "safetensors");
            if is_st {
                let (loaded, report) = load_student_or_encoder(student, path, device)?;
                tracing::info!(path = %path.display(), %report, "initial model loaded");
                return Ok(loaded);
            }
            let (encoder, report) = {
                let opts = match &student.encoder {
                    accrue_encoders::AnyEncoder::ResNet38(_) => {
                        LoadOptions::panns(accrue_encoders::ResNet38::pytorch_key_remaps())
                    }
                    accrue_encoders::AnyEncoder::Cnn(m) => {
                        LoadOptions::panns(m.pytorch_key_remaps())
                    }
                };
                accrue_encoders::checkpoint::load_pytorch(student.encoder, path, &opts)?
            };
            tracing::info!(path = %path.display(), %report, "initial encoder loaded");
            student.encoder = encoder;
        }
        Ok(student)
    }

    fn task_data(&self, stage: &StageConfig) -> Result<Vec<TaskData>> {
        let sr = self.config.sample_rate;
        let crop = (stage.crop_seconds * f64::from(sr)).round() as usize;
        let num_classes = self.config.encoder.config()?.num_classes();
        let mut out = Vec::new();
        for (i, t) in stage.tasks.iter().enumerate() {
            let read = |p: &Path| -> Result<Dataset> {
                Ok(readers::manifest::read(
                    p,
                    &readers::manifest::ManifestOptions::default(),
                )?)
            };
            let split_of = |name: &Option<String>, ds: Dataset| -> Result<Dataset> {
                Ok(match name {
                    Some(n) => ds.split(crate::config::parse_split(n)?),
                    None => ds,
                })
            };
            let train_ds = split_of(&t.split, read(&t.manifest)?)?;
            if train_ds.examples.is_empty() {
                return Err(ContinualError::Config(format!(
                    "{}: no clips{}",
                    t.manifest.display(),
                    t.split
                        .as_ref()
                        .map(|s| format!(" in split `{s}`"))
                        .unwrap_or_default()
                )));
            }
            // A classification task needs every clip labelled: an unlabelled clip has no target
            // and would train at a loss of zero.
            if t.kind == TaskKind::A
                && let Some(e) = train_ds.examples.iter().find(|e| e.labels.is_empty())
            {
                return Err(ContinualError::Config(format!(
                    "{}: clip `{}` has no label, but task A (classification) needs one for \
                     every clip",
                    t.manifest.display(),
                    e.id
                )));
            }
            if t.kind == TaskKind::A && train_ds.classes.len() > num_classes {
                return Err(ContinualError::Config(format!(
                    "{}: {} classes but the encoder head has {num_classes}",
                    t.manifest.display(),
                    train_ds.classes.len()
                )));
            }
            let mut lc = LoaderConfig::train(sr, stage.batch_size, crop);
            lc.seed = seed::derive(&[stage.seed, i as u64]);
            lc.memory_cache = true;
            let train = Loader::new(train_ds, lc)?;
            let valid_path = match (&t.valid_manifest, &t.valid_split) {
                (Some(p), _) => Some(p),
                (None, Some(_)) => Some(&t.manifest),
                (None, None) => None,
            };
            let valid = match valid_path {
                Some(p) => {
                    let mut vc = LoaderConfig::eval(sr, stage.batch_size);
                    vc.crop = Crop::Centre(crop);
                    vc.memory_cache = true;
                    Some(Loader::new(split_of(&t.valid_split, read(p)?)?, vc)?)
                }
                None => None,
            };
            let table = t
                .supervision
                .as_deref()
                .map(SupervisionTable::load)
                .transpose()?;
            if let Some(table) = &table {
                let want = self.config.head.output_of(t.kind);
                if t.kind.is_contrastive() && table.dim != want {
                    return Err(ContinualError::Config(format!(
                        "{}: the supervision table has width {} but the {} head outputs {want} \
                         (set `head.output_{}`)",
                        t.supervision.as_deref().unwrap_or(Path::new("?")).display(),
                        table.dim,
                        t.kind,
                        t.kind.to_string().to_ascii_lowercase(),
                    )));
                }
            }
            out.push(TaskData {
                kind: t.kind,
                train,
                valid,
                table,
            });
        }
        Ok(out)
    }

    fn to_task_batch(
        &self,
        data: &TaskData,
        loader: &Loader,
        batch: &accrue_data::Batch,
        epoch: usize,
        step: usize,
    ) -> Result<TaskBatch> {
        let plain = &self.device;
        let b = batch.len();
        let wave =
            Tensor::<1>::from_floats(batch.audio.as_slice(), plain).reshape([b, batch.length]);
        let supervision = match data.kind {
            TaskKind::A => {
                let d = self.config.encoder.config()?.num_classes();
                let multi = loader.dataset().multi_label;
                let targets =
                    Tensor::<1>::from_floats(batch.multi_hot(d).as_slice(), plain).reshape([b, d]);
                Supervision::Labels {
                    targets,
                    multi_label: multi,
                }
            }
            kind => {
                let table = data.table.as_ref().ok_or_else(|| {
                    ContinualError::Config(format!("task {kind} has no supervision table"))
                })?;
                let rows = table.batch_embeddings(kind, batch, loader.dataset())?;
                Supervision::Embeddings(
                    Tensor::<1>::from_floats(rows.as_slice(), plain).reshape([b, table.dim]),
                )
            }
        };
        Ok(TaskBatch {
            kind: data.kind,
            wave,
            supervision: Some(supervision),
            meta: BatchMeta {
                epoch,
                step,
                clip_ids: batch.clip_ids.clone(),
            },
        })
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

    /// The file naming the newest complete checkpoint.
    fn latest_pointer(&self) -> PathBuf {
        self.run.checkpoints().join("latest")
    }

    /// The newest usable checkpoint and its state: the one `latest` names or, when that one
    /// is unreadable or truncated, the one before it (two are kept), with a warning saying
    /// why. `None` when the run has no checkpoint yet.
    fn latest(&self) -> Result<Option<(PathBuf, RunState)>> {
        let Some(newest) = self.pointed()? else {
            return Ok(None);
        };
        let seq = newest
            .file_name()
            .and_then(|n| n.to_str()?.strip_prefix("ckpt-")?.parse::<u64>().ok());
        let mut candidates = vec![newest];
        if let Some(seq) = seq.filter(|s| *s > 1) {
            candidates.push(self.run.checkpoints().join(format!("ckpt-{:06}", seq - 1)));
        }
        let mut problems = Vec::new();
        for dir in candidates {
            match read_checkpoint_state(&dir) {
                Ok(state) => {
                    if !problems.is_empty() {
                        tracing::warn!(
                            checkpoint = %dir.display(),
                            skipped = problems.join("; "),
                            "the newest checkpoint is unusable: resuming from the one before it"
                        );
                    }
                    return Ok(Some((dir, state)));
                }
                Err(why) => problems.push(format!("{}: {why}", dir.display())),
            }
        }
        Err(ckpt_err(
            &self.latest_pointer(),
            format!("no usable checkpoint: {}", problems.join("; ")),
        ))
    }

    /// The checkpoint folder the `latest` pointer names (unchecked), if any.
    fn pointed(&self) -> Result<Option<PathBuf>> {
        let pointer = self.latest_pointer();
        if !pointer.exists() {
            return Ok(None);
        }
        let name = fs::read_to_string(&pointer).map_err(|e| ContinualError::io(&pointer, e))?;
        Ok(Some(self.run.checkpoints().join(name.trim())))
    }

    /// A mid-stage checkpoint (every N steps, every epoch end): the step counters go into the
    /// state, then [`Self::checkpoint`]; returns the checkpoint's path for the metrics log.
    fn checkpoint_progress<A: Module + ModuleDisplay>(
        &self,
        state: &mut RunState,
        counters: &StepCounters,
        model: &Trainable<A>,
        start: &Student,
        best: Option<&Path>,
        optim: &ModuleOptimizer,
    ) -> Result<String> {
        state.counters = (
            counters.student_forwards,
            counters.teacher_forwards,
            counters.steps,
        );
        Ok(self
            .checkpoint(state, model, Some(start), best, Some(optim))?
            .display()
            .to_string())
    }

    #[allow(clippy::too_many_arguments)]
    fn checkpoint<A: Module + ModuleDisplay>(
        &self,
        state: &mut RunState,
        model: &Trainable<A>,
        start: Option<&Student>,
        best: Option<&Path>,
        optim: Option<&ModuleOptimizer>,
    ) -> Result<PathBuf> {
        state.seq += 1;
        state.metrics_len = fs::metadata(&self.run.metrics()).map_or(0, |m| m.len());
        state.replicas = self.replicas.len();
        let name = format!("ckpt-{:06}", state.seq);
        let tmp = self.run.checkpoints().join(format!("{name}.tmp"));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp).map_err(|e| ContinualError::io(&tmp, e))?;
        save_module(&model.student, &tmp.join("student.bpk"))?;
        save_module(&model.aux, &tmp.join("aux.bpk"))?;
        if let Some(s) = start {
            save_module(s, &tmp.join("start.bpk"))?;
        }
        if let Some(b) = best {
            let dst = tmp.join("best.bpk");
            if b != dst {
                fs::copy(b, &dst).map_err(|e| ContinualError::io(b, e))?;
            }
        }
        if let Some(o) = optim {
            let bytes = o
                .into_bytes()
                .map_err(|e| ckpt_err(&tmp, format!("optimizer: {e:?}")))?;
            let p = tmp.join("optim.bin");
            fs::write(&p, &bytes[..]).map_err(|e| ContinualError::io(&p, e))?;
        }
        state.files = fs::read_dir(&tmp)
            .map_err(|e| ContinualError::io(&tmp, e))?
            .flatten()
            .filter_map(|e| Some((e.file_name().into_string().ok()?, e.metadata().ok()?.len())))
            .collect();
        let sp = tmp.join("state.json");
        let json = serde_json::to_string_pretty(state).map_err(|e| ckpt_err(&sp, e))?;
        fs::write(&sp, json).map_err(|e| ContinualError::io(&sp, e))?;
        let dir = self.run.checkpoints().join(&name);
        // A same-numbered folder is a newer checkpoint found unusable at resume (see
        // `latest`): the pointer falls back past it, so it can go.
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(|e| ContinualError::io(&dir, e))?;
        }
        fs::rename(&tmp, &dir).map_err(|e| ContinualError::io(&dir, e))?;
        accrue_core::atomic::write(&self.latest_pointer(), name.as_bytes())?;
        // Keep the newest two checkpoints.
        if state.seq > 2 {
            let old = self
                .run
                .checkpoints()
                .join(format!("ckpt-{:06}", state.seq - 2));
            let _ = fs::remove_dir_all(old);
        }
        Ok(dir)
    }

    fn log(&self, value: serde_json::Value) -> Result<()> {
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.run.metrics())
            .map_err(|e| ContinualError::io(&self.run.metrics(), e))?;
        writeln!(f, "{value}").map_err(|e| ContinualError::io(&self.run.metrics(), e))
    }

    fn run(self, resume: bool) -> Result<RunSummary> {
        if !resume {
            self.run.refuse_overwrite()?;
        }
        let ad = self.device.clone().autodiff();
        let latest = if resume { self.latest()? } else { None };
        let (mut state, mut student, resume_dir) = match latest {
            Some((dir, state)) => {
                let heads = if state.epoch == 0 && state.next_batch == 0 {
                    state.stage
                } else {
                    state.stage + 1
                };
                let skeleton = self.skeleton(heads.min(self.config.stages.len()), &ad)?;
                let student = load_module(skeleton, &dir.join("student.bpk"))?;
                tracing::info!(checkpoint = %dir.display(), stage = state.stage, epoch = state.epoch, batch = state.next_batch, "resuming");
                let written_by = state.replicas.max(1);
                if written_by != self.replicas.len() {
                    tracing::warn!(
                        written_by,
                        now = self.replicas.len(),
                        "resuming with a different number of data-parallel replicas: the rest of the run is not the run that was interrupted (per-replica negatives and BatchNorm statistics change)"
                    );
                }
                // Drop what was logged after the checkpoint: those steps run again. A log
                // shorter than at the checkpoint lost lines that cannot be rebuilt: say so.
                let logged = fs::metadata(self.run.metrics()).map_or(0, |m| m.len());
                if logged < state.metrics_len {
                    tracing::warn!(
                        metrics = %self.run.metrics().display(),
                        bytes = logged,
                        at_checkpoint = state.metrics_len,
                        "the metrics log is shorter than when the checkpoint was written: lines before the resume point are missing"
                    );
                }
                if logged > state.metrics_len {
                    fs::OpenOptions::new()
                        .write(true)
                        .open(&self.run.metrics())
                        .and_then(|f| f.set_len(state.metrics_len))
                        .map_err(|e| ContinualError::io(&self.run.metrics(), e))?;
                }
                let mid = state.epoch > 0 || state.next_batch > 0;
                if !mid {
                    self.repair_stage_model(&state, &student)?;
                }
                (state, student, mid.then_some(dir))
            }
            None => {
                // A fresh start (also `--resume` killed before the first checkpoint): the
                // log starts empty. A new run never gets here over a previous one (refused
                // above), so nothing of value is deleted.
                let _ = fs::remove_file(self.run.metrics());
                (RunState::default(), self.initial_student(&ad)?, None)
            }
        };
        let mut resume_dir = resume_dir;
        while state.stage < self.config.stages.len() {
            student = self.run_stage(&mut state, student, resume_dir.take(), &ad)?;
        }
        let final_model = self.run.final_model();
        export_safetensors(&student.valid(), &final_model)?;
        Ok(RunSummary {
            name: self.config.name.clone(),
            final_model,
            metrics: self.run.metrics(),
            stages: state.completed.clone(),
        })
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

    fn run_stage(
        &self,
        state: &mut RunState,
        student: Student,
        resume_dir: Option<PathBuf>,
        ad: &Device,
    ) -> Result<Student> {
        let s = state.stage;
        let sc = &self.config.stages[s];
        let info = StageInfo {
            index: s,
            tasks: sc.tasks.iter().map(|t| t.kind).collect(),
            previous: match s.checked_sub(1) {
                Some(p) => Some(self.config.stages[p].tasks[0].kind),
                None => self.config.encoder.trained_on,
            },
            lambda: sc.lambda,
        };
        let mut strategy: AnyStrategy = sc.strategy.build()?;
        let caps = strategy.capabilities(&info);
        let data = self.task_data(sc)?;
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
        let d_embed = student.encoder.embedding_dim();

        // Stage set-up: new heads, teacher snapshot, aux modules (seeded, so a resumed run
        // re-creates exactly the same modules before loading their state).
        ad.seed(seed::derive(&[sc.seed, s as u64, INIT]));
        let (start, model, mut optim) = match &resume_dir {
            Some(dir) => {
                let skeleton = self.skeleton(s + 1, ad)?;
                let start = load_module(skeleton, &dir.join("start.bpk"))?;
                let aux = strategy.begin_stage(&info, &start, ad)?;
                let aux = load_module(aux, &dir.join("aux.bpk"))?;
                let p = dir.join("optim.bin");
                let bytes = fs::read(&p).map_err(|e| ContinualError::io(&p, e))?;
                let optim = Self::optimizer(sc)
                    .from_bytes(Bytes::from_bytes_vec(bytes))
                    .map_err(|e| ckpt_err(&p, format!("{e:?}")))?;
                (start, Trainable { student, aux }, optim)
            }
            None => {
                let mut student = student;
                for &k in &info.tasks {
                    student = student.ensure_head(k, &self.config.head.config(k, d_embed), ad)?;
                }
                // Initialise the new heads and the aux modules now, from the stage's seed,
                // not at the first step or in whichever data-parallel replica touches them first.
                initialize_params(&student);
                let aux = strategy.begin_stage(&info, &student, ad)?;
                initialize_params(&aux);
                *state = RunState {
                    stage: s,
                    lr: sc.optimizer.lr,
                    plateau_best: f64::INFINITY,
                    best_loss: f64::INFINITY,
                    completed: std::mem::take(&mut state.completed),
                    seq: state.seq,
                    ..RunState::default()
                };
                // `valid()` copies the running statistics (a clone would share them with the
                // student and drift while it trains).
                (
                    student.valid(),
                    Trainable { student, aux },
                    Self::optimizer(sc),
                )
            }
        };
        let mut model = model;
        if caps.freeze_encoder {
            model.student.encoder = model.student.encoder.freeze();
        }
        let parallel = match self.replicas.len() {
            0 | 1 => None,
            _ => {
                initialize_params(&model);
                Some(DataParallel::new(
                    &strategy,
                    self.replicas.iter().map(|d| d.clone().autodiff()).collect(),
                )?)
            }
        };
        let mut best_path = resume_dir
            .as_ref()
            .map(|d| d.join("best.bpk"))
            .filter(|p| p.exists());
        // Copy the resumed best out of the checkpoint dir (which may be pruned).
        if let Some(b) = best_path.take() {
            let keep = self.run.checkpoints().join(format!("best-stage{s}.bpk"));
            fs::copy(&b, &keep).map_err(|e| ContinualError::io(&b, e))?;
            best_path = Some(keep);
        }
        let mut counters = StepCounters {
            student_forwards: state.counters.0,
            teacher_forwards: state.counters.1,
            steps: state.counters.2,
        };
        tracing::info!(
            stage = s,
            name = sc.name,
            strategy = strategy.name(),
            ?caps,
            replicas = self.replicas.len(),
            "stage start"
        );
        let bar = ProgressBar::new((sc.epochs * steps_per_epoch) as u64);
        bar.set_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_prefix(format!("stage {s} {}", sc.name));
        if std::env::var_os("ACCRUE_NO_PROGRESS").is_some() {
            bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        bar.set_position((state.epoch * steps_per_epoch + state.next_batch) as u64);
        let mut last_ckpt = self
            .pointed()?
            .map_or_else(|| "none".to_string(), |p| p.display().to_string());
        let mut stopped_early = false;
        let mut epochs_run = state.epoch;
        while state.epoch < sc.epochs {
            let epoch = state.epoch;
            let t0 = Instant::now();
            let mut iters: Vec<_> = data
                .iter()
                .map(|d| d.train.epoch_from(epoch as u64, state.next_batch))
                .collect();
            for step in state.next_batch..steps_per_epoch {
                ad.seed(seed::derive(&[
                    sc.seed,
                    s as u64,
                    epoch as u64,
                    step as u64,
                ]));
                let mut batches = Vec::with_capacity(data.len());
                for (d, it) in data.iter().zip(iters.iter_mut()) {
                    let raw = it.next().ok_or_else(|| {
                        ContinualError::Config(format!("loader of task {} ended early", d.kind))
                    })??;
                    batches.push(self.to_task_batch(d, &d.train, &raw, epoch, step)?);
                }
                let computed = match &parallel {
                    None => compute_step(&strategy, &info, &model, &batches, &mut counters),
                    Some(dp) => {
                        dp.compute_step(&strategy, &info, &model, &batches, &mut counters, |r| {
                            seed::derive(&[
                                sc.seed,
                                s as u64,
                                epoch as u64,
                                step as u64,
                                REPLICA,
                                r as u64,
                            ])
                        })
                    }
                };
                let computed = match computed {
                    Ok(c) => c,
                    Err(ContinualError::Loss(LossError::NonFinite { term, value })) => {
                        tracing::error!(term, value, "non-finite loss term; stopping");
                        return Err(ContinualError::Diverged {
                            stage: s,
                            epoch,
                            step,
                            term,
                            value,
                            checkpoint: last_ckpt,
                        });
                    }
                    Err(e) => return Err(e),
                };
                state.epoch_loss_sum += computed.total;
                state.epoch_steps += 1;
                let terms: serde_json::Map<String, serde_json::Value> = computed
                    .terms
                    .iter()
                    .map(|t| (t.name.clone(), serde_json::json!(t.value)))
                    .collect();
                bar.set_message(format!("loss {:.4} lr {:.1e}", computed.total, state.lr));
                self.log(serde_json::json!({
                    "event": "step", "stage": s, "epoch": epoch, "step": step,
                    "loss": computed.total, "lr": state.lr, "terms": terms,
                }))?;
                model = apply_step(model, &mut optim, state.lr, computed, &mut counters);
                bar.inc(1);
                state.next_batch = step + 1;
                if sc.checkpoint_every_steps > 0
                    && (step + 1) % sc.checkpoint_every_steps == 0
                    && step + 1 < steps_per_epoch
                {
                    last_ckpt = self.checkpoint_progress(
                        state,
                        &counters,
                        &model,
                        &start,
                        best_path.as_deref(),
                        &optim,
                    )?;
                }
            }
            // Data-bound check (issue 6): time the consumer spent waiting for batches.
            let data_wait = iters
                .iter()
                .map(|it| it.timing().wait_fraction())
                .fold(0.0_f64, f64::max);
            drop(iters);
            if data_wait > 0.25 {
                tracing::warn!(
                    stage = s,
                    epoch,
                    data_wait,
                    "data-bound epoch: the model waited for batches (raise prefetch/threads or cache decoded audio)"
                );
            }
            // Epoch end: monitored loss, scheduler, early stopping, checkpoint.
            let train_loss = state.epoch_loss_sum / state.epoch_steps.max(1) as f64;
            let valid_loss = self.validate(&strategy, &info, &model, &data, &mut counters)?;
            let monitored = valid_loss.unwrap_or(train_loss);
            step_scheduler(state, &sc.scheduler, sc.optimizer.lr, monitored, epoch);
            epochs_run = epoch + 1;
            if monitored < state.best_loss {
                state.best_loss = monitored;
                state.best_epoch = epoch;
                state.bad_epochs = 0;
                let p = self.run.checkpoints().join(format!("best-stage{s}.bpk"));
                save_module(&model, &p)?;
                best_path = Some(p);
                state.has_best = true;
            } else {
                state.bad_epochs += 1;
            }
            self.log(serde_json::json!({
                "event": "epoch", "stage": s, "epoch": epoch, "train_loss": train_loss,
                "valid_loss": valid_loss, "lr": state.lr, "seconds": t0.elapsed().as_secs_f64(),
                "data_wait_fraction": data_wait,
            }))?;
            tracing::info!(
                stage = s,
                epoch,
                train_loss,
                ?valid_loss,
                lr = state.lr,
                "epoch end"
            );
            state.epoch += 1;
            state.next_batch = 0;
            state.epoch_loss_sum = 0.0;
            state.epoch_steps = 0;
            let stop = sc.patience.is_some_and(|p| state.bad_epochs >= p);
            if stop {
                stopped_early = true;
                state.epoch = sc.epochs;
            }
            last_ckpt = self.checkpoint_progress(
                state,
                &counters,
                &model,
                &start,
                best_path.as_deref(),
                &optim,
            )?;
        }
        bar.finish_and_clear();
        // Keep the best epoch's weights.
        if let (true, Some(p)) = (sc.patience.is_some() && state.has_best, best_path.as_ref()) {
            model = load_module(model, p)?;
        }
        strategy.end_stage(&info, &model.student, &model.aux)?;
        state.completed.push(StageSummary {
            name: sc.name.clone(),
            strategy: strategy.name(),
            epochs: epochs_run,
            best_epoch: state.best_epoch,
            best_loss: state.best_loss,
            stopped_early,
            steps: counters.steps,
            teacher_forwards: counters.teacher_forwards,
        });
        let student = model.student;
        *state = RunState {
            stage: s + 1,
            completed: std::mem::take(&mut state.completed),
            seq: state.seq,
            ..RunState::default()
        };
        let end = Trainable {
            student,
            aux: crate::strategy::NoAux {},
        };
        // The stage-end model, for evaluating every stage (the CL matrix). Exported before the
        // stage-end checkpoint: a run killed in between resumes from the last epoch's
        // checkpoint and exports it again, so no stage model is ever lost.
        export_safetensors(&end.student.valid(), &self.run.stage_model(s, &sc.name))?;
        self.checkpoint(state, &end, None, None, None)?;
        let _ = fs::remove_file(self.run.checkpoints().join(format!("best-stage{s}.bpk")));
        Ok(end.student)
    }

    fn validate(
        &self,
        strategy: &AnyStrategy,
        info: &StageInfo,
        model: &Trainable<<AnyStrategy as Strategy>::Aux>,
        data: &[TaskData],
        counters: &mut StepCounters,
    ) -> Result<Option<f64>> {
        if data.iter().any(|d| d.valid.is_none()) {
            return Ok(None);
        }
        let eval = model.valid();
        let mut iters: Vec<_> = data
            .iter()
            .filter_map(|d| d.valid.as_ref().map(|l| (d, l, l.epoch(0))))
            .collect();
        let (mut sum, mut n) = (0.0, 0usize);
        'outer: loop {
            let mut batches = Vec::new();
            for (d, loader, it) in iters.iter_mut() {
                match it.next() {
                    Some(b) => {
                        let b = b?;
                        if b.len() < 2 {
                            break 'outer;
                        }
                        batches.push(self.to_task_batch(d, loader, &b, 0, n)?);
                    }
                    None => break 'outer,
                }
            }
            let terms = loss_terms(strategy, info, &eval, &batches, counters)?;
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

/// Epoch-end learning-rate update (method-spec §5): StepLR `lr_e = lr₀·γ^⌊e/step⌋` for the
/// next epoch; ReduceLROnPlateau (mode min) decays after more than `patience` epochs without a
/// relative improvement of `threshold`.
fn step_scheduler(
    state: &mut RunState,
    sched: &SchedulerConfig,
    lr0: f64,
    monitored: f64,
    epoch: usize,
) {
    match *sched {
        SchedulerConfig::Constant => {}
        SchedulerConfig::Step { step_size, gamma } => {
            let k = (epoch + 1) / step_size.max(1);
            state.lr = lr0 * gamma.powi(k as i32);
        }
        SchedulerConfig::Plateau {
            factor,
            patience,
            min_lr,
            threshold,
        } => {
            if monitored < state.plateau_best * (1.0 - threshold) {
                state.plateau_best = monitored;
                state.plateau_bad = 0;
            } else {
                state.plateau_bad += 1;
                if state.plateau_bad > patience {
                    state.lr = (state.lr * factor).max(min_lr);
                    state.plateau_bad = 0;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{fingerprint, synthetic_batch, tiny_student};

    #[test]
    fn step_lr_and_plateau_follow_the_spec() {
        let mut st = RunState {
            lr: 1e-4,
            ..RunState::default()
        };
        let step = SchedulerConfig::Step {
            step_size: 10,
            gamma: 0.1,
        };
        let lrs: Vec<f64> = (0..21)
            .map(|e| {
                step_scheduler(&mut st, &step, 1e-4, 1.0, e);
                st.lr
            })
            .collect();
        assert_eq!(lrs[8], 1e-4);
        assert!(
            (lrs[9] - 1e-5).abs() < 1e-18,
            "epoch 10 starts at lr·γ: {lrs:?}"
        );
        assert!((lrs[19] - 1e-6).abs() < 1e-18);

        let plateau = SchedulerConfig::Plateau {
            factor: 0.1,
            patience: 5,
            min_lr: 1e-6,
            threshold: 1e-4,
        };
        let mut st = RunState {
            lr: 1e-3,
            plateau_best: f64::MAX,
            ..RunState::default()
        };
        step_scheduler(&mut st, &plateau, 1e-3, 1.0, 0);
        // Improvements smaller than 1e-4 relative do not count.
        for e in 1..=5 {
            step_scheduler(&mut st, &plateau, 1e-3, 0.99995, e);
            assert_eq!(st.lr, 1e-3, "epoch {e}");
        }
        step_scheduler(&mut st, &plateau, 1e-3, 0.99995, 6);
        assert!(
            (st.lr - 1e-4).abs() < 1e-15,
            "6th bad epoch decays: {}",
            st.lr
        );
        for e in 7..40 {
            step_scheduler(&mut st, &plateau, 1e-3, 2.0, e);
        }
        assert_eq!(st.lr, 1e-6, "clamped at min_lr");
    }

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
