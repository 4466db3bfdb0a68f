//! Experiment files: the initial encoder, then a list of stages (method-spec §5).
//!
//! Every table rejects unknown keys; parse errors name the key and the line. Relative paths
//! are relative to the experiment file's directory. See `configs/a-av-at.toml`.

use std::path::{Path, PathBuf};

use accrue_encoders::{AnyEncoderConfig, Preset};
use serde::{Deserialize, Serialize};

use crate::error::{ContinualError, Result};
use crate::model::{ProjectionHeadConfig, TaskKind};
use crate::registry::{MethodSpec, Registry};

/// A whole experiment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// Run name (used in logs).
    pub name: String,
    /// Output directory (checkpoints, `metrics.jsonl`, the final model).
    pub output_dir: PathBuf,
    /// The initial encoder.
    pub encoder: EncoderSpec,
    /// Projection heads g^AV / g^AT.
    #[serde(default)]
    pub head: HeadSpec,
    /// Sample rate of the encoder's front end.
    #[serde(default = "default_sample_rate")]
    pub sample_rate: u32,
    /// The stages, trained in order.
    pub stages: Vec<StageConfig>,
}

fn default_sample_rate() -> u32 {
    32_000
}

/// The initial encoder: a preset and an optional checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncoderSpec {
    /// `resnet38`, `resnet38-tiny`, `cnn14` or `cnn14-tiny`.
    pub preset: Preset,
    /// Classes of `fc_audioset` (default: the preset's, 527).
    #[serde(default)]
    pub num_classes: Option<usize>,
    /// A PANNs `.pth` (loaded strictly with the PANNs key map) or one of accrue's own
    /// `.safetensors` checkpoints.
    #[serde(default)]
    pub checkpoint: Option<PathBuf>,
    /// The task the initial encoder was trained on (`"A"` for a PANNs AudioSet checkpoint):
    /// the first stage then distils from it (the paper's A → AV → AT with A = the released
    /// checkpoint). Default: none (the first stage has no teacher).
    #[serde(default)]
    pub trained_on: Option<TaskKind>,
    /// The training data of `trained_on` (its `kind` must be that task): not trained on, but
    /// handed to methods that replay earlier data ([`crate::Strategy::replay`]) as the data of
    /// the task before the first stage. `[encoder.trained_on_data]` with a task's keys.
    #[serde(default)]
    pub trained_on_data: Option<TaskConfig>,
    /// Front-end settings replacing the preset's (`[encoder.front_end]`).
    #[serde(default)]
    pub front_end: FrontEndSpec,
    /// SpecAugment during training (`[encoder.spec_augment]`; default: PANNs' stripes with the
    /// time widths scaled to each stage's crop).
    #[serde(default)]
    pub spec_augment: SpecAugmentSpec,
    /// Dropout probabilities replacing the preset's (`[encoder.dropout]`).
    #[serde(default)]
    pub dropout: DropoutSpec,
}

/// Dropout of the encoder, each probability replacing the preset's when given (PANNs: 0.2
/// inside the network, 0.5 before `fc1` and on the embedding).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DropoutSpec {
    /// Inside ResNet-38's residual blocks (ResNet-38 only).
    pub block: Option<f64>,
    /// After each stage of convolutions.
    pub stage: Option<f64>,
    /// Before `fc1` and on the returned embedding.
    #[serde(rename = "final")]
    pub last: Option<f64>,
}

/// Front-end settings of an experiment, each replacing the preset's when given. A changed
/// sample rate must also be the experiment's `sample_rate`; changed mel settings make the
/// preset's released weights inapplicable (a strict load then fails, naming the tensors).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FrontEndSpec {
    /// Sample rate of the input (Hz).
    pub sample_rate: Option<u32>,
    /// FFT size = window length (samples).
    pub n_fft: Option<usize>,
    /// Hop between frames (samples).
    pub hop_length: Option<usize>,
    /// Number of mel bins.
    pub n_mels: Option<usize>,
    /// Lowest mel edge (Hz).
    pub f_min: Option<f64>,
    /// Highest mel edge (Hz).
    pub f_max: Option<f64>,
}

/// How SpecAugment's stripes are set for a stage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpecAugmentMode {
    /// PANNs' stripes (time width 64, 2 stripes; mel width 8, 2 stripes), the time width scaled
    /// to the stage's crop: `round(64 · frames / 1001)` frames (at least 2), so the masked
    /// fraction is PANNs' on its 10-s clips (1,001 frames) for any crop. A 10-s crop gets
    /// exactly PANNs' setting; a 1-s crop (101 frames) a time width of 6.
    #[default]
    Scaled,
    /// PANNs' stripes as released, whatever the crop (two 64-frame time masks can hide most of
    /// a 1-s crop).
    Panns,
    /// No SpecAugment.
    Off,
}

/// SpecAugment of an experiment: a mode, and explicit widths that override it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpecAugmentSpec {
    /// How the stripes follow the crop.
    pub mode: SpecAugmentMode,
    /// Maximum time-stripe width + 1 (frames), overriding the mode's.
    pub time_drop_width: Option<usize>,
    /// Number of time stripes.
    pub time_stripes_num: Option<usize>,
    /// Maximum mel-stripe width + 1 (bins).
    pub freq_drop_width: Option<usize>,
    /// Number of mel stripes.
    pub freq_stripes_num: Option<usize>,
}

impl SpecAugmentSpec {
    /// The SpecAugment of a stage whose crops hold `frames` frames (`None`: off).
    pub fn for_frames(&self, frames: usize) -> Option<accrue_audio::frontend::SpecAugmentConfig> {
        let panns = accrue_audio::frontend::SpecAugmentConfig::panns();
        let time = match self.mode {
            SpecAugmentMode::Off => return None,
            SpecAugmentMode::Panns => panns.time_drop_width,
            SpecAugmentMode::Scaled => {
                ((panns.time_drop_width as f64 * frames as f64 / 1001.0).round() as usize).max(2)
            }
        };
        Some(
            panns
                .with_time_drop_width(self.time_drop_width.unwrap_or(time))
                .with_time_stripes_num(self.time_stripes_num.unwrap_or(2))
                .with_freq_drop_width(self.freq_drop_width.unwrap_or(8))
                .with_freq_stripes_num(self.freq_stripes_num.unwrap_or(2)),
        )
    }
}

impl EncoderSpec {
    /// A preset with its own front end, SpecAugment and dropout, no checkpoint.
    pub fn preset(preset: Preset, num_classes: Option<usize>) -> Self {
        Self {
            preset,
            num_classes,
            checkpoint: None,
            trained_on: None,
            trained_on_data: None,
            front_end: FrontEndSpec::default(),
            spec_augment: SpecAugmentSpec::default(),
            dropout: DropoutSpec::default(),
        }
    }

    /// The encoder configuration of the preset, validated.
    ///
    /// # Errors
    /// A configuration that cannot describe a network (e.g. `num_classes = 0`).
    pub fn config(&self) -> Result<AnyEncoderConfig> {
        let mut cfg = self.preset.config(self.num_classes).map_err(|e| {
            ContinualError::Config(format!("[encoder] preset `{}`: {e}", self.preset))
        })?;
        let f = &self.front_end;
        let fe = cfg.front_end_mut();
        if let Some(v) = f.sample_rate {
            fe.sample_rate = v;
        }
        if let Some(v) = f.n_fft {
            fe.n_fft = v;
        }
        if let Some(v) = f.hop_length {
            fe.hop_length = v;
        }
        if let Some(v) = f.n_mels {
            fe.n_mels = v;
        }
        if let Some(v) = f.f_min {
            fe.f_min = v;
        }
        if let Some(v) = f.f_max {
            fe.f_max = v;
        }
        let d = &self.dropout;
        cfg = match cfg {
            AnyEncoderConfig::ResNet38(mut c) => {
                c.dropout_block = d.block.unwrap_or(c.dropout_block);
                c.dropout_stage = d.stage.unwrap_or(c.dropout_stage);
                c.dropout_final = d.last.unwrap_or(c.dropout_final);
                AnyEncoderConfig::ResNet38(c)
            }
            AnyEncoderConfig::Cnn(mut c) => {
                if d.block.is_some() {
                    return Err(ContinualError::Config(format!(
                        "[encoder.dropout] block: the `{}` preset has no residual blocks",
                        self.preset
                    )));
                }
                c.dropout_stage = d.stage.unwrap_or(c.dropout_stage);
                c.dropout_final = d.last.unwrap_or(c.dropout_final);
                AnyEncoderConfig::Cnn(c)
            }
        };
        cfg.validate().map_err(|e| {
            ContinualError::Config(format!("[encoder.front_end] / [encoder.dropout]: {e}"))
        })?;
        Ok(cfg)
    }
}

/// Projection-head widths.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeadSpec {
    /// Hidden width.
    pub hidden: usize,
    /// Output width (the supervision space), for every head without its own width below.
    pub output: usize,
    /// Output width of g^AV when the image tower's width differs from the text tower's
    /// (e.g. EfficientNet-Lite0 1280 vs MiniLM 384). Default: `output`.
    pub output_av: Option<usize>,
    /// Output width of g^AT. Default: `output`.
    pub output_at: Option<usize>,
}

impl Default for HeadSpec {
    fn default() -> Self {
        Self {
            hidden: 512,
            output: 512,
            output_av: None,
            output_at: None,
        }
    }
}

impl HeadSpec {
    /// The output width of the head of `kind` (`output` for task A, which has no head).
    pub fn output_of(&self, kind: TaskKind) -> usize {
        match kind {
            TaskKind::AV => self.output_av.unwrap_or(self.output),
            TaskKind::AT => self.output_at.unwrap_or(self.output),
            TaskKind::A => self.output,
        }
    }

    /// The head config of task `kind` for an encoder of embedding width `d_input`.
    pub fn config(&self, kind: TaskKind, d_input: usize) -> ProjectionHeadConfig {
        ProjectionHeadConfig::new(d_input)
            .with_d_hidden(self.hidden)
            .with_d_output(self.output_of(kind))
    }
}

/// Parses a split name of a task config.
pub(crate) fn parse_split(name: &str) -> Result<accrue_data::Split> {
    accrue_data::Split::parse(name).ok_or_else(|| {
        ContinualError::Config(format!(
            "unknown split `{name}` (train/development, valid/validation, test/evaluation)"
        ))
    })
}

/// One stage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageConfig {
    /// Stage name (logs, checkpoints).
    pub name: String,
    /// The task(s): one, or several for a multi-task stage (MT-WC).
    pub tasks: Vec<TaskConfig>,
    /// The continual-learning method (default: fine-tuning).
    /// Built through the [`Registry`] the experiment runs with.
    #[serde(default)]
    pub strategy: MethodSpec,
    /// λ of `L = (1 − λ)·L_c + λ·L_kd`.
    #[serde(default = "default_lambda")]
    pub lambda: f64,
    /// Optimiser.
    #[serde(default)]
    pub optimizer: OptimizerConfig,
    /// Learning-rate schedule (stepped once per epoch).
    #[serde(default)]
    pub scheduler: SchedulerConfig,
    /// Maximum epochs.
    pub epochs: usize,
    /// Early stopping: epochs without improvement of the monitored loss (validation loss when
    /// the tasks have validation manifests, else the training loss). `None`: no early stopping.
    #[serde(default)]
    pub patience: Option<usize>,
    /// Clips per batch (per task).
    pub batch_size: usize,
    /// Training crop in seconds (random crop, zero-padded; method-spec §5).
    pub crop_seconds: f64,
    /// Seed of shuffling, crops, caption choice, dropout and SpecAugment.
    #[serde(default)]
    pub seed: u64,
    /// Also checkpoint every this many steps (0: only at epoch and stage ends).
    #[serde(default)]
    pub checkpoint_every_steps: usize,
    /// A multi-task stage on joint samples (MT-WC on WavCaps-style triplets: each clip has its
    /// images and its captions): every task reads the same clips, in the same order with the
    /// same crops, so each step is one batch with every task's loss on it and one encoder
    /// forward. The tasks must name the same manifest and split. Default: each task its own
    /// batches (the alternating form).
    #[serde(default)]
    pub joint: bool,
}

fn default_lambda() -> f64 {
    0.3
}

/// One task of a stage: its data and its supervision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskConfig {
    /// `A`, `AV` or `AT`.
    pub kind: TaskKind,
    /// Training manifest (accrue-data JSONL/CSV format).
    pub manifest: PathBuf,
    /// Validation manifest (optional; default: `manifest` itself when `valid_split` is set).
    #[serde(default)]
    pub valid_manifest: Option<PathBuf>,
    /// Train only on the clips of this split of `manifest` (`train`, `valid`, `test` or a
    /// dataset's own name for them, e.g. `development`). Default: every clip.
    #[serde(default)]
    pub split: Option<String>,
    /// Validate on the clips of this split of the validation manifest (or of `manifest`).
    #[serde(default)]
    pub valid_split: Option<String>,
    /// Supervision-embedding table (required for AV/AT; see [`crate::supervision`]).
    #[serde(default)]
    pub supervision: Option<PathBuf>,
    /// Task A: the class names in the order of the classifier's outputs (a JSON array of
    /// strings, or a text file with one name per line), e.g. AudioSet's 527 in
    /// `class_labels_indices.csv` order for the released PANNs head. A label outside the list
    /// is an error. Default: the manifest's class names, sorted.
    #[serde(default)]
    pub classes: Option<PathBuf>,
}

impl TaskConfig {
    /// The class list of `classes`, if given.
    ///
    /// # Errors
    /// An unreadable file, or one that is neither a JSON array of strings nor a text file.
    pub fn class_list(&self) -> Result<Option<Vec<String>>> {
        let Some(path) = &self.classes else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path).map_err(|e| ContinualError::io(path, e))?;
        let list: Vec<String> = if text.trim_start().starts_with('[') {
            serde_json::from_str(&text).map_err(|e| ContinualError::ConfigFile {
                path: path.clone(),
                message: format!("a class list must be a JSON array of strings: {e}"),
            })?
        } else {
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect()
        };
        if list.is_empty() {
            return Err(ContinualError::ConfigFile {
                path: path.clone(),
                message: "the class list is empty".into(),
            });
        }
        Ok(Some(list))
    }

    /// Reads the task's manifest `path` (this task's or its validation manifest) with its
    /// class list.
    ///
    /// # Errors
    /// Unreadable manifests or class lists; a label outside the class list.
    pub fn read_manifest(&self, path: &Path) -> Result<accrue_data::Dataset> {
        let options = accrue_data::readers::manifest::ManifestOptions {
            classes: self.class_list()?,
            ..Default::default()
        };
        Ok(accrue_data::readers::manifest::read(path, &options)?)
    }
}

/// Optimiser settings (Adam, method-spec §5).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimizerConfig {
    /// Learning rate.
    pub lr: f64,
    /// β₁.
    pub beta_1: f32,
    /// β₂.
    pub beta_2: f32,
    /// ε.
    pub epsilon: f32,
    /// AMSGrad.
    pub amsgrad: bool,
    /// L2 weight decay (0: none).
    pub weight_decay: f32,
    /// Clip gradients to this global L2 norm per parameter (Burn's `GradientClipping::Norm`).
    pub grad_clip_norm: Option<f32>,
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-8,
            amsgrad: false,
            weight_decay: 0.0,
            grad_clip_norm: None,
        }
    }
}

/// Epoch-level learning-rate schedules.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SchedulerConfig {
    /// Constant learning rate.
    #[default]
    Constant,
    /// `lr_e = lr₀·γ^⌊e/step⌋`.
    Step {
        /// Epochs per decay.
        step_size: usize,
        /// Decay factor.
        gamma: f64,
    },
    /// ReduceLROnPlateau (mode min, relative threshold).
    Plateau {
        /// Decay factor.
        factor: f64,
        /// Epochs without improvement before decaying.
        patience: usize,
        /// Lower bound of the learning rate.
        min_lr: f64,
        /// Relative improvement threshold.
        threshold: f64,
    },
}

impl OptimizerConfig {
    /// Checks Adam's settings (a β outside `[0, 1)` or a negative decay trains silently wrong).
    ///
    /// # Errors
    /// The first invalid value, named.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let finite_pos = |v: f64| v > 0.0 && v.is_finite();
        if !finite_pos(self.lr) {
            return Err(format!("optimizer.lr = {} must be positive", self.lr));
        }
        for (key, b) in [("beta_1", self.beta_1), ("beta_2", self.beta_2)] {
            if !(0.0..1.0).contains(&b) {
                return Err(format!("optimizer.{key} = {b} must be in [0, 1)"));
            }
        }
        if !finite_pos(f64::from(self.epsilon)) {
            return Err(format!(
                "optimizer.epsilon = {} must be positive",
                self.epsilon
            ));
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return Err(format!(
                "optimizer.weight_decay = {} must be ≥ 0",
                self.weight_decay
            ));
        }
        if let Some(n) = self.grad_clip_norm
            && !finite_pos(f64::from(n))
        {
            return Err(format!("optimizer.grad_clip_norm = {n} must be positive"));
        }
        Ok(())
    }
}

impl SchedulerConfig {
    /// Checks the schedule's values: a decay factor outside `(0, 1)` would raise the learning
    /// rate or flip its sign, a negative floor would let it go below zero.
    ///
    /// # Errors
    /// The first invalid value, named.
    pub fn validate(&self) -> std::result::Result<(), String> {
        match *self {
            Self::Constant => Ok(()),
            Self::Step { step_size, gamma } => {
                if step_size == 0 {
                    Err("scheduler.step_size must be ≥ 1".into())
                } else if !(gamma > 0.0 && gamma <= 1.0) {
                    Err(format!("scheduler.gamma = {gamma} must be in (0, 1]"))
                } else {
                    Ok(())
                }
            }
            Self::Plateau {
                factor,
                min_lr,
                threshold,
                ..
            } => {
                if !(factor > 0.0 && factor < 1.0) {
                    Err(format!("scheduler.factor = {factor} must be in (0, 1)"))
                } else if !(min_lr >= 0.0 && min_lr.is_finite()) {
                    Err(format!("scheduler.min_lr = {min_lr} must be ≥ 0"))
                } else if !(threshold >= 0.0 && threshold.is_finite()) {
                    Err(format!("scheduler.threshold = {threshold} must be ≥ 0"))
                } else {
                    Ok(())
                }
            }
        }
    }
}

/// The largest waveform batch a stage may ask for (one task's `[batch_size, crop]` buffer of
/// `f32`): beyond it a typo such as `crop_seconds = 1e6` would try to allocate hundreds of GB.
pub const MAX_BATCH_BYTES: f64 = 4.0 * 1024.0 * 1024.0 * 1024.0;

impl ExperimentConfig {
    /// Reads and validates an experiment file; relative paths become relative to its directory.
    ///
    /// # Errors
    /// Unreadable file, TOML errors (unknown keys are reported with the key, line and column),
    /// or invalid values.
    #[cfg(feature = "toml")]
    pub fn load(path: &Path) -> Result<Self> {
        Self::load_with(path, &Registry::builtin())
    }

    /// As [`Self::load`], with the methods of `registry` (a user's own `kind`s).
    ///
    /// # Errors
    /// As [`Self::load`]; a method kind `registry` does not know.
    #[cfg(feature = "toml")]
    pub fn load_with(path: &Path, registry: &Registry) -> Result<Self> {
        Self::load_inner(path, Some(registry))
    }

    /// As [`Self::load`] for tools that read a run and never train it (evaluation): every
    /// value is validated except the stages' methods, which need not be registered here (a
    /// user's method trained by the user's own program).
    ///
    /// # Errors
    /// As [`Self::load`], method kinds and options aside.
    #[cfg(feature = "toml")]
    pub fn load_any_method(path: &Path) -> Result<Self> {
        Self::load_inner(path, None)
    }

    #[cfg(feature = "toml")]
    fn load_inner(path: &Path, registry: Option<&Registry>) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| ContinualError::io(path, e))?;
        let mut cfg = Self::parse(&text).map_err(|message| ContinualError::ConfigFile {
            path: path.to_path_buf(),
            message,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        cfg.resolve_paths(base);
        cfg.check(registry)?;
        Ok(cfg)
    }

    /// Parses TOML text; the error message carries line and column.
    #[cfg(feature = "toml")]
    ///
    /// # Errors
    /// The parser's message.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let located = |e: toml::de::Error| {
            let mut msg = e.message().to_string();
            if let Some(span) = e.span() {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                msg = format!("line {line}, column {col}: {msg}");
            }
            msg
        };
        let mut cfg: Self = toml::from_str(text).map_err(located)?;
        // Where each stage's method table is written, so that the method's own option
        // errors (found later, by its registered constructor) name their line.
        #[derive(Deserialize)]
        struct Doc {
            #[serde(default)]
            stages: Vec<SpannedStage>,
        }
        #[derive(Deserialize)]
        struct SpannedStage {
            strategy: Option<toml::Spanned<toml::Value>>,
        }
        let doc: Doc = toml::from_str(text).map_err(located)?;
        for (stage, spanned) in cfg.stages.iter_mut().zip(doc.stages) {
            if let Some(span) = spanned.strategy.map(|s| s.span())
                && let Some(table) = text.get(span.clone())
            {
                let line = text[..span.start].matches('\n').count() + 1;
                stage.strategy.set_origin(line, table);
            }
        }
        Ok(cfg)
    }

    /// Every path the experiment names (output folder, initial checkpoint, manifests,
    /// supervision tables), mutably, with the key it comes from.
    fn paths_mut(&mut self) -> Vec<(String, &mut PathBuf)> {
        let mut out = vec![("output_dir".to_string(), &mut self.output_dir)];
        if let Some(c) = self.encoder.checkpoint.as_mut() {
            out.push(("[encoder] checkpoint".into(), c));
        }
        if let Some(t) = self.encoder.trained_on_data.as_mut() {
            out.push(("[encoder.trained_on_data] manifest".into(), &mut t.manifest));
            if let Some(s) = t.supervision.as_mut() {
                out.push(("[encoder.trained_on_data] supervision".into(), s));
            }
        }
        for stage in &mut self.stages {
            for task in &mut stage.tasks {
                let at = format!("stage `{}` task {}", stage.name, task.kind);
                out.push((format!("{at} manifest"), &mut task.manifest));
                if let Some(v) = task.valid_manifest.as_mut() {
                    out.push((format!("{at} valid_manifest"), v));
                }
                if let Some(s) = task.supervision.as_mut() {
                    out.push((format!("{at} supervision"), s));
                }
                if let Some(c) = task.classes.as_mut() {
                    out.push((format!("{at} classes"), c));
                }
            }
        }
        out
    }

    /// Checks that every input file the experiment names exists (initial checkpoint,
    /// manifests, supervision tables) before anything is trained or deleted.
    ///
    /// # Errors
    /// [`ContinualError::Config`] naming the key and the missing file.
    pub fn check_inputs(&self) -> Result<()> {
        let mut copy = self.clone();
        for (key, path) in copy.paths_mut().into_iter().skip(1) {
            if !path.is_file() {
                return Err(ContinualError::Config(format!(
                    "{key}: {} is not a file",
                    path.display()
                )));
            }
        }
        Ok(())
    }

    /// The experiment as a TOML document with every path absolute, so that it can be read
    /// back from any folder (the copy a run keeps in its own folder).
    ///
    /// # Errors
    /// A path that cannot be made absolute, or a value TOML cannot hold.
    #[cfg(feature = "toml")]
    pub fn to_toml_absolute(&self) -> Result<String> {
        let mut copy = self.clone();
        for (key, path) in copy.paths_mut() {
            *path = std::path::absolute(&*path)
                .map_err(|e| ContinualError::Config(format!("{key}: {}: {e}", path.display())))?;
        }
        toml::to_string(&copy).map_err(|e| ContinualError::Config(format!("experiment: {e}")))
    }

    /// Makes every relative path (output folder, checkpoint, manifests, tables) relative to
    /// `base`, the experiment file's folder.
    pub fn resolve_paths(&mut self, base: &Path) {
        for (_, p) in self.paths_mut() {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }

    /// Checks values that serde cannot, with the shipped methods ([`Registry::builtin`]).
    ///
    /// # Errors
    /// The first invalid value, named.
    pub fn validate(&self) -> Result<()> {
        self.validate_with(&Registry::builtin())
    }

    /// As [`Self::validate`]; each stage's method is built by `registry` (which checks its
    /// kind and options).
    ///
    /// # Errors
    /// The first invalid value, named.
    pub fn validate_with(&self, registry: &Registry) -> Result<()> {
        self.check(Some(registry))
    }

    fn check(&self, registry: Option<&Registry>) -> Result<()> {
        let bad = |msg: String| Err(ContinualError::Config(msg));
        if self.stages.is_empty() {
            return bad("an experiment needs at least one stage".into());
        }
        let encoder = self.encoder.config()?;
        let rate = encoder.front_end().sample_rate;
        if self.sample_rate != rate {
            return bad(format!(
                "sample_rate = {} but the `{}` front end expects {rate} Hz audio (set \
                 sample_rate = {rate}; audio is resampled to it)",
                self.sample_rate, self.encoder.preset
            ));
        }
        if self.head.hidden == 0
            || self.head.output == 0
            || self.head.output_av == Some(0)
            || self.head.output_at == Some(0)
        {
            return bad(format!(
                "[head] widths must be ≥ 1 (hidden {}, output {}, output_av {:?}, output_at {:?})",
                self.head.hidden, self.head.output, self.head.output_av, self.head.output_at
            ));
        }
        if let Some(t) = &self.encoder.trained_on_data
            && Some(t.kind) != self.encoder.trained_on
        {
            return bad(format!(
                "[encoder.trained_on_data] kind = \"{}\" but [encoder] trained_on = {:?}: the \
                 data must be that of the task the initial encoder was trained on",
                t.kind, self.encoder.trained_on
            ));
        }
        for (i, s) in self.stages.iter().enumerate() {
            let at = format!("stage {i} (`{}`)", s.name);
            if let Some(j) = self.stages[..i].iter().position(|p| p.name == s.name) {
                return bad(format!(
                    "{at}: the name is already used by stage {j} (stage models are named by it)"
                ));
            }
            if s.tasks.is_empty() {
                return bad(format!("{at}: no tasks"));
            }
            if s.joint
                && let Some(t) = s
                    .tasks
                    .iter()
                    .find(|t| (&t.manifest, &t.split) != (&s.tasks[0].manifest, &s.tasks[0].split))
            {
                return bad(format!(
                    "{at}: `joint = true` needs every task on the same clips, but task {} reads \
                     {} (split {:?}) and task {} reads {} (split {:?})",
                    s.tasks[0].kind,
                    s.tasks[0].manifest.display(),
                    s.tasks[0].split,
                    t.kind,
                    t.manifest.display(),
                    t.split
                ));
            }
            if !(0.0..=1.0).contains(&s.lambda) {
                return bad(format!("{at}: lambda {} is not in [0, 1]", s.lambda));
            }
            if s.batch_size < 2 || s.epochs == 0 {
                return bad(format!("{at}: batch_size must be ≥ 2 and epochs ≥ 1"));
            }
            if !(s.crop_seconds > 0.0 && s.crop_seconds.is_finite()) {
                return bad(format!("{at}: crop_seconds must be positive"));
            }
            let batch_bytes =
                s.batch_size as f64 * s.crop_seconds * f64::from(self.sample_rate) * 4.0;
            if batch_bytes > MAX_BATCH_BYTES {
                return bad(format!(
                    "{at}: batch_size {} × crop_seconds {} at {} Hz is {:.1} GiB of audio per \
                     batch (at most {:.0} GiB)",
                    s.batch_size,
                    s.crop_seconds,
                    self.sample_rate,
                    batch_bytes / 1024f64.powi(3),
                    MAX_BATCH_BYTES / 1024f64.powi(3)
                ));
            }
            s.optimizer
                .validate()
                .map_err(|m| ContinualError::Config(format!("{at}: {m}")))?;
            s.scheduler
                .validate()
                .map_err(|m| ContinualError::Config(format!("{at}: {m}")))?;
            for t in &s.tasks {
                for name in t.split.iter().chain(&t.valid_split) {
                    parse_split(name)?;
                }
                if t.kind.is_contrastive() && t.supervision.is_none() {
                    return bad(format!("{at}: task {} needs a `supervision` table", t.kind));
                }
            }
            if let Some(registry) = registry {
                registry.build(&s.strategy)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
name = "t"
output_dir = "out"
[encoder]
preset = "resnet38-tiny"
[[stages]]
name = "av"
epochs = 1
batch_size = 4
crop_seconds = 1.0
strategy = { kind = "lwf" }
[[stages.tasks]]
kind = "AV"
manifest = "m.jsonl"
supervision = "s.json"
"#;

    #[test]
    fn spec_augment_follows_the_crop_unless_told_otherwise() {
        let widths = |spec: &SpecAugmentSpec, frames| {
            spec.for_frames(frames)
                .map(|c| (c.time_drop_width, c.time_stripes_num, c.freq_drop_width))
        };
        let scaled = SpecAugmentSpec::default();
        // PANNs' 10-s clips keep PANNs' setting; a 1-s crop gets stripes of its size.
        assert_eq!(widths(&scaled, 1001), Some((64, 2, 8)));
        assert_eq!(widths(&scaled, 101), Some((6, 2, 8)));
        assert_eq!(widths(&scaled, 11), Some((2, 2, 8)));
        let panns = SpecAugmentSpec {
            mode: SpecAugmentMode::Panns,
            ..Default::default()
        };
        assert_eq!(widths(&panns, 101), Some((64, 2, 8)));
        let off = SpecAugmentSpec {
            mode: SpecAugmentMode::Off,
            ..Default::default()
        };
        assert_eq!(widths(&off, 101), None);
        let explicit = SpecAugmentSpec {
            time_drop_width: Some(10),
            time_stripes_num: Some(1),
            ..Default::default()
        };
        assert_eq!(widths(&explicit, 1001), Some((10, 1, 8)));

        // From the experiment file, with unknown keys named.
        let text = MINIMAL.replace(
            "[[stages]]",
            "[encoder.spec_augment]\nmode = \"off\"\n[encoder.front_end]\nn_mels = 32\n[[stages]]",
        );
        let c = ExperimentConfig::parse(&text).expect("parses");
        assert_eq!(c.encoder.spec_augment.mode, SpecAugmentMode::Off);
        assert_eq!(c.encoder.config().expect("config").front_end().n_mels, 32);
        let err =
            ExperimentConfig::parse(&text.replace("mode =", "mood =")).expect_err("unknown key");
        assert!(err.contains("mood") && err.contains("line"), "{err}");
        // Dropout from the file; an impossible probability is refused, naming the table.
        let text = MINIMAL.replace(
            "[[stages]]",
            "[encoder.dropout]\nfinal = 0.1\nblock = 0.0\n[[stages]]",
        );
        let c = ExperimentConfig::parse(&text).expect("parses");
        match c.encoder.config().expect("config") {
            AnyEncoderConfig::ResNet38(r) => {
                assert_eq!(
                    (r.dropout_final, r.dropout_block, r.dropout_stage),
                    (0.1, 0.0, 0.2)
                );
            }
            other => panic!("{other:?}"),
        }
        let c = ExperimentConfig::parse(&text.replace("final = 0.1", "final = 1.5")).expect("p");
        let err = c.validate().expect_err("p = 1.5").to_string();
        assert!(err.contains("[encoder.dropout]"), "{err}");
        // A front end that cannot work is refused, naming the table.
        let text = MINIMAL.replace(
            "[[stages]]",
            "[encoder.front_end]\nf_max = 99000.0\n[[stages]]",
        );
        let c = ExperimentConfig::parse(&text).expect("parses");
        let err = c.validate().expect_err("f_max above Nyquist").to_string();
        assert!(err.contains("[encoder.front_end]"), "{err}");
    }

    #[test]
    fn parses_and_resolves() {
        let mut c = ExperimentConfig::parse(MINIMAL).expect("parses");
        c.resolve_paths(Path::new("/exp"));
        assert_eq!(c.output_dir, PathBuf::from("/exp/out"));
        assert_eq!(c.stages[0].lambda, 0.3);
        assert_eq!(c.stages[0].tasks[0].kind, TaskKind::AV);
        c.validate().expect("valid");
    }

    #[test]
    fn unknown_keys_are_named_with_their_line() {
        let text = MINIMAL.replace("epochs = 1", "epochs = 1\nlearning_rate = 0.1");
        let err = ExperimentConfig::parse(&text).expect_err("unknown key");
        assert!(err.contains("learning_rate"), "{err}");
        assert!(err.contains("line 9,"), "{err}");
        // A method's options are its own: parsed by its registered constructor, whose error
        // still names the key and its line.
        let text = MINIMAL.replace("kind = \"lwf\"", "kind = \"lwf\", temprature = 2.0");
        let cfg = ExperimentConfig::parse(&text).expect("the experiment parses");
        let err = cfg
            .validate()
            .expect_err("unknown strategy key")
            .to_string();
        assert!(
            err.contains("temprature") && err.contains("line 11"),
            "{err}"
        );
    }

    #[test]
    fn shipped_configs_parse_and_validate() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).expect("configs dir").flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "toml") {
                let c = ExperimentConfig::load(&path).unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(
                    c.encoder.trained_on,
                    Some(TaskKind::A),
                    "{}",
                    path.display()
                );
                // The copy a run keeps in its folder reads back as the same experiment.
                let text = c.to_toml_absolute().expect("serialises");
                let back = ExperimentConfig::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
                assert_eq!(back, c, "{}", path.display());
                n += 1;
            }
        }
        assert!(n >= 10, "expected the shipped configs, found {n}");
    }

    #[test]
    fn missing_inputs_are_named_before_anything_runs() {
        let c = ExperimentConfig::parse(MINIMAL).expect("parses");
        let err = c.check_inputs().expect_err("no such files").to_string();
        assert!(err.contains("stage `av` task AV manifest"), "{err}");
    }

    #[test]
    fn values_that_would_train_silently_wrong_are_refused_by_name() {
        // (what to append to / replace in the minimal experiment, what the error names)
        let stage_extra = |extra: &str| format!("{MINIMAL}\n{extra}\n");
        let cases: Vec<(String, &str)> = vec![
            (
                MINIMAL.replace("[encoder]", "sample_rate = 16000\n[encoder]"),
                "sample_rate = 16000",
            ),
            (
                MINIMAL.replace("crop_seconds = 1.0", "crop_seconds = 1e6"),
                "GiB of audio",
            ),
            (
                stage_extra(
                    "[stages.scheduler]\nkind = \"plateau\"\nfactor = nan\npatience = 1\nmin_lr = 0.0\nthreshold = 0.0",
                ),
                "scheduler.factor",
            ),
            (
                stage_extra(
                    "[stages.scheduler]\nkind = \"plateau\"\nfactor = 10.0\npatience = 1\nmin_lr = 0.0\nthreshold = 0.0",
                ),
                "scheduler.factor = 10",
            ),
            (
                stage_extra(
                    "[stages.scheduler]\nkind = \"plateau\"\nfactor = 0.5\npatience = 1\nmin_lr = -1.0\nthreshold = 0.0",
                ),
                "scheduler.min_lr = -1",
            ),
            (
                stage_extra("[stages.scheduler]\nkind = \"step\"\nstep_size = 1\ngamma = -1.0"),
                "scheduler.gamma = -1",
            ),
            (
                stage_extra("[stages.scheduler]\nkind = \"step\"\nstep_size = 0\ngamma = 0.5"),
                "scheduler.step_size",
            ),
            (
                stage_extra("[stages.optimizer]\nbeta_1 = 1.5"),
                "optimizer.beta_1 = 1.5",
            ),
            (
                stage_extra("[stages.optimizer]\nweight_decay = -0.1"),
                "optimizer.weight_decay",
            ),
        ];
        for (text, named) in cases {
            let c = ExperimentConfig::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
            let err = c.validate().expect_err(named).to_string();
            assert!(err.contains(named), "expected `{named}` in: {err}");
        }
        // Two stages with one name would write one stage model over the other.
        let mut c = ExperimentConfig::parse(MINIMAL).expect("parses");
        c.stages.push(c.stages[0].clone());
        let err = c.validate().expect_err("duplicate name").to_string();
        assert!(err.contains("already used by stage 0"), "{err}");
        // The unchanged experiment is valid.
        ExperimentConfig::parse(MINIMAL)
            .expect("parses")
            .validate()
            .expect("valid");
    }

    #[test]
    fn invalid_values_are_rejected() {
        let c = ExperimentConfig::parse(&MINIMAL.replace("supervision = \"s.json\"", ""))
            .expect("parses");
        assert!(c.validate().is_err());
        // An unknown preset is refused by the parser, with its line.
        let err = ExperimentConfig::parse(&MINIMAL.replace("resnet38-tiny", "vit"))
            .expect_err("unknown preset");
        assert!(err.contains("line 5") && err.contains("`vit`"), "{err}");
        // Every component's own validation runs: 0 classes or a 0-wide head would panic in
        // `init`; here they are errors naming the key.
        let c = ExperimentConfig::parse(&MINIMAL.replace(
            "preset = \"resnet38-tiny\"",
            "preset = \"resnet38-tiny\"\nnum_classes = 0",
        ))
        .expect("parses");
        let err = c.validate().expect_err("0 classes").to_string();
        assert!(err.contains("num_classes"), "{err}");
        let mut c = ExperimentConfig::parse(MINIMAL).expect("parses");
        c.head.hidden = 0;
        let err = c.validate().expect_err("0-wide head").to_string();
        assert!(err.contains("[head]"), "{err}");
    }
}
