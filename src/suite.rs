//! Declared evaluation suites: what `accrue eval` runs on every stage model of a run.
//!
//! A suite (TOML or JSON) lists linear-probe, zero-shot and retrieval tasks over accrue-data
//! manifests; frozen-tower embeddings come from supervision tables (built with `accrue embed`
//! or by `accrue demo`), so no tower runs during evaluation. Evaluation is eval mode (no
//! dropout, BatchNorm running statistics); the only thing trained is the probe head.
//!
//! ```toml
//! cache_dir = "embeddings"        # optional: keep each model's embeddings on disk
//!
//! [[probe]]                       # HEAR linear probe on f_a (method-spec §6.1)
//! name = "ESC-50"
//! train = { manifest = "esc50.jsonl", split = "train" }
//! valid = { manifest = "esc50.jsonl", split = "valid" }
//! test  = { manifest = "esc50.jsonl", split = "test" }
//! own_head = true                 # also score g^A (the model's own classifier)
//!
//! [[zero_shot]]                   # §6.2: prompts (AT) or class images (AV)
//! name = "ESC-50"
//! head = "AT"
//! data = { manifest = "esc50.jsonl" }
//! table = "text-table.json"
//! templates = ["this is a sound of {label}."]
//!
//! [[retrieval]]                   # §6.3: captions (AT, Clotho rule) or images (AV), both ways
//! name = "Clotho"
//! head = "AT"
//! data = { manifest = "clotho-eval.jsonl" }
//! table = "text-table.json"
//!
//! [continual.AT]                  # optional: the score standing for each task in the CL matrix
//! protocol = "retrieval"
//! task = "Clotho"
//! metric = "R@10"
//! direction = "T2A"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use accrue_continual::config::EncoderSpec;
use accrue_continual::{
    ExperimentConfig, Student, SupervisionTable, TaskKind, load_student_or_encoder,
    stage_model_path,
};
use accrue_data::readers::manifest::{self, ManifestOptions};
use accrue_data::{Dataset, ImageRef, Loader, LoaderConfig, Split};
use accrue_eval::classification::{accuracy, argmax_rows};
use accrue_eval::continual::{StageMatrix, summarize};
use accrue_eval::probe::{ProbeConfig, ProbeData, Targets, probe_with_extra_tests};
use accrue_eval::report::{
    ContinualReport, EvalArtifact, Protocol, Provenance, Score, StageEvaluation, retrieval_scores,
    sha256_file, sha256_tag,
};
use accrue_eval::retrieval::cross_modal_retrieval;
use accrue_eval::zero_shot::{ZeroShotConfig, class_weights, zero_shot_logits};
use accrue_eval::{BoxError, Matrix};
use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A manifest, optionally restricted to one split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Part {
    /// accrue-data JSONL/CSV manifest.
    pub manifest: PathBuf,
    /// Keep only this split (`train`, `valid`, `test` or a dataset's own name for them).
    #[serde(default)]
    pub split: Option<String>,
    /// Clips per forward pass. A batch is zero-padded to its longest clip, which changes the
    /// pooled embedding of shorter clips: keep 1 (the default, exact) unless every clip has
    /// the same length.
    #[serde(default = "one")]
    pub batch_size: usize,
}

fn one() -> usize {
    1
}

impl Part {
    /// A whole manifest.
    pub fn all(manifest: impl Into<PathBuf>) -> Self {
        Self {
            manifest: manifest.into(),
            split: None,
            batch_size: 1,
        }
    }

    /// One split of a manifest.
    pub fn split(manifest: impl Into<PathBuf>, split: &str) -> Self {
        Self {
            manifest: manifest.into(),
            split: Some(split.to_string()),
            batch_size: 1,
        }
    }

    /// The same clips embedded `n` at a time (all clips must have one length).
    pub fn batched(mut self, n: usize) -> Self {
        self.batch_size = n;
        self
    }

    /// Reads the clips.
    ///
    /// # Errors
    /// Unreadable manifest or an unknown split name.
    pub fn read(&self) -> Result<Dataset> {
        let ds = manifest::read(&self.manifest, &ManifestOptions::default())?;
        Ok(match &self.split {
            Some(name) => ds.split(Split::parse(name).ok_or_else(|| {
                Error::Other(format!(
                    "{}: unknown split `{name}`",
                    self.manifest.display()
                ))
            })?),
            None => ds,
        })
    }
}

/// An extra test set of a probe task, scored under its own name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedPart {
    /// Task name in the scores.
    pub name: String,
    /// The clips.
    #[serde(flatten)]
    pub part: Part,
}

fn default_probe_epochs() -> usize {
    500
}

/// A HEAR linear probe on the frozen encoder embedding (single-label top-1 accuracy).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeTask {
    /// Task name in the scores.
    pub name: String,
    /// Training clips.
    pub train: Part,
    /// Validation clips (grid selection, early stopping).
    pub valid: Part,
    /// Test clips.
    pub test: Part,
    /// Further test sets scored with the selected probe (e.g. a domain shift).
    #[serde(default)]
    pub extra_tests: Vec<NamedPart>,
    /// Maximum epochs per grid point (HEAR: 500).
    #[serde(default = "default_probe_epochs")]
    pub max_epochs: usize,
    /// Also score the model's own classifier g^A on `test` (classes in the order of the
    /// `train` manifest, as the trainer numbers them).
    #[serde(default)]
    pub own_head: bool,
}

/// Zero-shot classification through a contrastive head.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZeroShotTask {
    /// Task name in the scores.
    pub name: String,
    /// `AT`: class prompts through the text table; `AV`: class images through the image table.
    pub head: TaskKind,
    /// The labelled clips.
    pub data: Part,
    /// Supervision table holding the prompt (AT) or image (AV) embeddings.
    pub table: PathBuf,
    /// Candidate classes in order (default: the manifest's classes).
    #[serde(default)]
    pub classes: Option<Vec<String>>,
    /// Prompt templates with `{label}` (AT; ensembled).
    #[serde(default)]
    pub templates: Vec<String>,
    /// Class name → image files (AV; their embeddings are averaged).
    #[serde(default)]
    pub class_images: BTreeMap<String, Vec<PathBuf>>,
}

/// Cross-modal retrieval, both directions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrievalTask {
    /// Task name in the scores.
    pub name: String,
    /// `AT`: every caption of every clip (Clotho rule); `AV`: each clip's first image.
    pub head: TaskKind,
    /// The clips.
    pub data: Part,
    /// Supervision table of the captions / images.
    pub table: PathBuf,
}

/// The score that stands for a task in the stage × task matrix (method-spec §6.4).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreRef {
    /// Protocol of the score.
    pub protocol: Protocol,
    /// Task name of the score.
    pub task: String,
    /// Metric (`top1_acc`, `R@10`, …).
    pub metric: String,
    /// Retrieval direction, if any.
    #[serde(default)]
    pub direction: Option<String>,
}

impl ScoreRef {
    /// The value of the matching score among `scores`.
    pub fn value_in(&self, scores: &[Score]) -> Option<f64> {
        scores
            .iter()
            .find(|s| {
                s.matches(
                    self.protocol,
                    &self.task,
                    &self.metric,
                    self.direction.as_deref(),
                )
            })
            .map(|s| s.value)
    }
}

/// The stage × task matrix of an artifact: row `i` is its stage `i`, column `j` the score
/// `refs[tasks[j]]` after that stage (`None` when absent).
///
/// # Errors
/// A matrix that is not square (one task per stage).
pub fn stage_matrix(
    art: &EvalArtifact,
    tasks: &[String],
    refs: &BTreeMap<String, ScoreRef>,
) -> Result<StageMatrix> {
    let scores = art
        .stages
        .iter()
        .map(|st| {
            tasks
                .iter()
                .map(|k| refs.get(k).and_then(|r| r.value_in(&st.scores)))
                .collect()
        })
        .collect();
    Ok(StageMatrix::new(
        art.stages.iter().map(|s| s.stage.clone()).collect(),
        tasks.to_vec(),
        scores,
    )?)
}

/// An evaluation suite.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalSuite {
    /// Scores standing for the tasks `A`, `AV`, `AT` in the continual-learning matrix
    /// (e.g. `[continual.AT] protocol = "retrieval", task = "Clotho", metric = "R@10",
    /// direction = "T2A"`). With them, `accrue eval` adds the matrix, BWT, ACC and forgetting.
    #[serde(default)]
    pub continual: BTreeMap<String, ScoreRef>,
    /// Keep each model's embeddings of each dataset here (keyed by the sha256 of the model
    /// file and of the manifest, the split and the batch size), so that evaluating the same
    /// model again — another suite, another probe grid — never re-runs it. Default: none.
    #[serde(default)]
    pub cache_dir: Option<PathBuf>,
    /// Linear-probe tasks.
    #[serde(default)]
    pub probe: Vec<ProbeTask>,
    /// Zero-shot tasks.
    #[serde(default)]
    pub zero_shot: Vec<ZeroShotTask>,
    /// Retrieval tasks.
    #[serde(default)]
    pub retrieval: Vec<RetrievalTask>,
}

impl EvalSuite {
    /// Reads a suite (TOML, or JSON by extension); relative paths are relative to its folder.
    ///
    /// # Errors
    /// Unreadable or malformed file (unknown keys are rejected).
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut suite: Self = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(&text)
                .map_err(|e| Error::Other(format!("{}: {e}", path.display())))?
        } else {
            toml::from_str(&text).map_err(|e| Error::Other(format!("{}: {e}", path.display())))?
        };
        let base = path.parent().unwrap_or(Path::new("."));
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        for t in &mut suite.probe {
            for p in [&mut t.train, &mut t.valid, &mut t.test] {
                fix(&mut p.manifest);
            }
            for e in &mut t.extra_tests {
                fix(&mut e.part.manifest);
            }
        }
        for t in &mut suite.zero_shot {
            fix(&mut t.data.manifest);
            fix(&mut t.table);
            for imgs in t.class_images.values_mut() {
                imgs.iter_mut().for_each(fix);
            }
        }
        for t in &mut suite.retrieval {
            fix(&mut t.data.manifest);
            fix(&mut t.table);
        }
        if let Some(c) = suite.cache_dir.as_mut() {
            fix(c);
        }
        Ok(suite)
    }
}

/// Shortest evaluation input (1 s at 32 kHz): shorter clips are zero-padded to it (as PANNs
/// pads short clips), because the CNN's pooling needs a minimum number of frames.
pub const MIN_EVAL_SAMPLES: usize = 32_000;

/// Encoder embeddings, head outputs and logits of a dataset, row per clip.
pub struct Embedded {
    /// f_a (un-dropped embedding).
    pub embedding: Matrix,
    /// g^AV outputs, when the model has that head.
    pub av: Option<Matrix>,
    /// g^AT outputs, when the model has that head.
    pub at: Option<Matrix>,
    /// g^A logits.
    pub logits: Matrix,
}

impl Embedded {
    /// The head output of `kind` (`None` when the model has no such head).
    pub fn head(&self, kind: TaskKind) -> Option<&Matrix> {
        match kind {
            TaskKind::AV => self.av.as_ref(),
            TaskKind::AT => self.at.as_ref(),
            TaskKind::A => Some(&self.logits),
        }
    }
}

/// Per-batch outputs collected into [`Embedded`].
#[derive(Default)]
struct Acc {
    emb: Vec<Matrix>,
    av: Vec<Matrix>,
    at: Vec<Matrix>,
    logits: Vec<Matrix>,
}

impl Acc {
    fn push(&mut self, student: &Student, out: accrue_encoders::EncoderOutput) -> Result<()> {
        if let Some(h) = &student.head_av {
            self.av
                .push(Matrix::from_tensor(h.forward(out.embedding.clone()))?);
        }
        if let Some(h) = &student.head_at {
            self.at
                .push(Matrix::from_tensor(h.forward(out.embedding.clone()))?);
        }
        self.emb.push(Matrix::from_tensor(out.embedding)?);
        self.logits.push(Matrix::from_tensor(out.logits)?);
        Ok(())
    }

    fn finish(self) -> Result<Embedded> {
        Ok(Embedded {
            embedding: cat(self.emb)?,
            av: (!self.av.is_empty()).then(|| cat(self.av)).transpose()?,
            at: (!self.at.is_empty()).then(|| cat(self.at)).transpose()?,
            logits: cat(self.logits)?,
        })
    }
}

fn cat(parts: Vec<Matrix>) -> Result<Matrix> {
    let cols = parts.first().map_or(0, Matrix::cols);
    let rows = parts.iter().map(Matrix::rows).sum();
    let data = parts
        .iter()
        .flat_map(|m| m.data().iter().copied())
        .collect();
    Ok(Matrix::new(data, rows, cols)?)
}

/// Runs `student` (eval mode) over every clip of `ds`, whole clips, `batch` at a time
/// (zero-padded to the longest clip of the batch; use 1 for clips of different lengths).
///
/// # Errors
/// Unreadable audio or shape errors.
pub fn embed_dataset(
    student: &Student,
    ds: &Dataset,
    sample_rate: u32,
    batch: usize,
    device: &Device,
) -> Result<Embedded> {
    let mut cfg = LoaderConfig::eval(sample_rate, batch);
    cfg.prefetch = 2;
    let loader = Loader::new(ds.clone(), cfg)?;
    let mut acc = Acc::default();
    for b in loader.epoch(0) {
        let b = b?;
        let len = b.length.max(MIN_EVAL_SAMPLES);
        let mut audio = vec![0.0f32; b.len() * len];
        for (i, row) in b.audio.chunks(b.length.max(1)).enumerate() {
            audio[i * len..i * len + row.len()].copy_from_slice(row);
        }
        let wave = Tensor::<1>::from_floats(audio.as_slice(), device).reshape([b.len(), len]);
        let out = student.encode(wave);
        acc.push(student, out)?;
    }
    acc.finish()
}

/// Loads a stage model (encoder-only or student safetensors) into `preset`'s skeleton, in
/// eval mode on the plain (non-autodiff) device.
///
/// # Errors
/// Unknown preset, unreadable file or a key/shape mismatch (with the full report).
pub fn load_model(
    preset: &str,
    num_classes: Option<usize>,
    path: &Path,
    device: &Device,
) -> Result<Student> {
    let spec = EncoderSpec {
        preset: preset.to_string(),
        num_classes,
        checkpoint: None,
        trained_on: None,
    };
    let plain = device.clone().inner();
    let skeleton = Student::new(spec.config()?.init(&plain));
    let (student, _) = load_student_or_encoder(skeleton, path, &plain)?;
    Ok(student.valid())
}

/// Loads a stage model like [`load_model`], reading the number of classes of g^A from the
/// file (the `fc_audioset` weight's shape).
///
/// # Errors
/// As [`load_model`].
pub fn load_model_from_file(preset: &str, path: &Path, device: &Device) -> Result<Student> {
    let keys = accrue_encoders::checkpoint::safetensors_keys(path)?;
    let classes = keys
        .iter()
        .find(|(k, _)| k.ends_with("fc_audioset.weight"))
        .and_then(|(_, shape)| shape.get(1).copied());
    load_model(preset, classes, path, device)
}

/// Decodes audio files (any format symphonia reads), resamples them to `sample_rate` and runs
/// `student` on each whole clip (eval mode, one clip per pass).
///
/// # Errors
/// Unreadable or corrupt audio (the file is named), shape errors.
pub fn embed_files(
    student: &Student,
    files: &[PathBuf],
    sample_rate: u32,
    device: &Device,
) -> Result<Embedded> {
    let plain = device.clone().inner();
    let mut acc = Acc::default();
    for f in files {
        let d = accrue_audio::decode::decode_file(f)
            .map_err(|e| Error::Other(format!("{}: {e}", f.display())))?;
        let mut wave = accrue_audio::resample::resample(&d.samples, d.sample_rate, sample_rate)
            .map_err(|e| Error::Other(format!("{}: {e}", f.display())))?;
        wave.resize(wave.len().max(MIN_EVAL_SAMPLES), 0.0);
        let n = wave.len();
        let out = student.encode(Tensor::<1>::from_floats(wave.as_slice(), &plain).reshape([1, n]));
        acc.push(student, out)?;
    }
    acc.finish()
}

/// Class index (in `classes` order) of each clip's first label.
fn targets(ds: &Dataset, classes: &[String]) -> Result<Vec<usize>> {
    ds.examples
        .iter()
        .map(|e| {
            let name = e
                .labels
                .first()
                .and_then(|&l| ds.classes.get(l))
                .ok_or_else(|| Error::Other(format!("clip `{}` has no label", e.id)))?;
            classes
                .iter()
                .position(|c| c == name)
                .ok_or_else(|| Error::Other(format!("clip `{}`: unknown class `{name}`", e.id)))
        })
        .collect()
}

fn table_rows(table: &SupervisionTable, keys: &[String]) -> Result<Matrix> {
    let rows: Vec<Vec<f32>> = keys
        .iter()
        .map(|k| {
            table
                .entries
                .get(k)
                .cloned()
                .ok_or_else(|| Error::Missing(format!("no tower embedding for `{k}`")))
        })
        .collect::<Result<_>>()?;
    Ok(Matrix::from_rows(&rows)?)
}

fn normalized_mean(rows: &Matrix) -> Vec<f32> {
    let mut m = vec![0.0f32; rows.cols()];
    for i in 0..rows.rows() {
        let r = rows.view().row(i);
        let n = r.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
        m.iter_mut().zip(r).for_each(|(a, b)| *a += b / n);
    }
    let n = m.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
    m.iter_mut().for_each(|v| *v /= n);
    m
}

fn head_name(kind: TaskKind) -> &'static str {
    match kind {
        TaskKind::A => "g_A",
        TaskKind::AV => "g_AV",
        TaskKind::AT => "g_AT",
    }
}

fn write_embedded(path: &Path, e: &Embedded) -> Result<()> {
    let empty = Matrix::new(Vec::new(), 0, 0)?;
    let mut bytes = b"ACCRUE-EMB1".to_vec();
    for m in [
        &e.embedding,
        e.av.as_ref().unwrap_or(&empty),
        e.at.as_ref().unwrap_or(&empty),
        &e.logits,
    ] {
        bytes.extend_from_slice(&(m.rows() as u64).to_le_bytes());
        bytes.extend_from_slice(&(m.cols() as u64).to_le_bytes());
        for v in m.data() {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// Reads a cache entry; `None` (recompute) when it is missing or malformed.
fn read_embedded(path: &Path) -> Option<Embedded> {
    let bytes = std::fs::read(path).ok()?;
    let mut rest = bytes.strip_prefix(b"ACCRUE-EMB1")?;
    let mut take = |n: usize| -> Option<&[u8]> {
        let (a, b) = rest.split_at_checked(n)?;
        rest = b;
        Some(a)
    };
    let mut mats = Vec::new();
    for _ in 0..4 {
        let rows = u64::from_le_bytes(take(8)?.try_into().ok()?) as usize;
        let cols = u64::from_le_bytes(take(8)?.try_into().ok()?) as usize;
        let data: Vec<f32> = take(rows.checked_mul(cols)?.checked_mul(4)?)?
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        mats.push(Matrix::new(data, rows, cols).ok()?);
    }
    let logits = mats.pop()?;
    let at = mats.pop().filter(|m| m.rows() > 0);
    let av = mats.pop().filter(|m| m.rows() > 0);
    Some(Embedded {
        embedding: mats.pop()?,
        av,
        at,
        logits,
    })
}

/// Caches tables and embedded datasets within one model's evaluation.
struct Ctx<'a> {
    student: &'a Student,
    /// Disk cache of embeddings and the model's identity (file sha256), when enabled.
    disk: Option<(PathBuf, String)>,
    device: Device,
    sample_rate: u32,
    embedded: BTreeMap<String, (Dataset, Embedded)>,
    tables: BTreeMap<PathBuf, SupervisionTable>,
}

impl Ctx<'_> {
    fn data(&mut self, part: &Part) -> Result<&(Dataset, Embedded)> {
        let key = format!(
            "{}#{:?}#{}",
            part.manifest.display(),
            part.split,
            part.batch_size
        );
        if !self.embedded.contains_key(&key) {
            let ds = part.read()?;
            if ds.examples.is_empty() {
                return Err(Error::Other(format!("{key}: no clips")));
            }
            let batch = part.batch_size.max(1);
            let file = match &self.disk {
                Some((dir, model)) => {
                    let manifest = sha256_file(&part.manifest)?;
                    let id = sha256_tag(
                        format!(
                            "{model}|{manifest}|{:?}|{batch}|{}",
                            part.split, self.sample_rate
                        )
                        .as_bytes(),
                    );
                    let hex = id.trim_start_matches("sha256:");
                    Some(dir.join(format!("{}.emb", &hex[..32.min(hex.len())])))
                }
                None => None,
            };
            let cached = file.as_deref().and_then(read_embedded);
            let e = match cached {
                Some(e) if e.embedding.rows() == ds.examples.len() => e,
                _ => {
                    let e =
                        embed_dataset(self.student, &ds, self.sample_rate, batch, &self.device)?;
                    if let Some(f) = &file {
                        write_embedded(f, &e)?;
                    }
                    e
                }
            };
            self.embedded.insert(key.clone(), (ds, e));
        }
        Ok(&self.embedded[&key])
    }

    fn table(&mut self, path: &Path) -> Result<&SupervisionTable> {
        if !self.tables.contains_key(path) {
            let t = SupervisionTable::load(path)?;
            self.tables.insert(path.to_path_buf(), t);
        }
        Ok(&self.tables[path])
    }
}

/// Every score of `suite` for one loaded model. Tasks needing a head the model does not have
/// yet are skipped (e.g. retrieval before the first AT stage). `model_sha256` identifies the
/// model for the suite's embedding cache (no caching without it).
///
/// # Errors
/// Unreadable data or tables, missing embeddings, evaluation errors.
pub fn evaluate_model(
    suite: &EvalSuite,
    student: &Student,
    model_sha256: Option<&str>,
    sample_rate: u32,
    device: &Device,
) -> Result<Vec<Score>> {
    let mut ctx = Ctx {
        student,
        disk: suite
            .cache_dir
            .clone()
            .zip(model_sha256.map(str::to_string)),
        device: device.clone().inner(),
        sample_rate,
        embedded: BTreeMap::new(),
        tables: BTreeMap::new(),
    };
    let mut scores = Vec::new();
    for t in &suite.probe {
        let train_classes = t.train.read()?.classes;
        let classes = train_classes.clone();
        let pd = |ds: &Dataset, e: &Embedded| -> Result<ProbeData> {
            Ok(ProbeData::new(
                e.embedding.clone(),
                Targets::MultiClass {
                    labels: targets(ds, &classes)?,
                    n_classes: classes.len(),
                },
            )?)
        };
        let (ds, e) = ctx.data(&t.train)?;
        let train = pd(ds, e)?;
        let (ds, e) = ctx.data(&t.valid)?;
        let valid = pd(ds, e)?;
        let (ds, e) = ctx.data(&t.test)?;
        let test = pd(ds, e)?;
        let n_test = ds.examples.len();
        let own = if t.own_head {
            let y = targets(ds, &train_classes)?;
            (e.logits.cols() >= train_classes.len())
                .then(|| accuracy(&argmax_rows(e.logits.view()), &y))
                .transpose()?
        } else {
            None
        };
        let mut extras = Vec::new();
        for x in &t.extra_tests {
            let (ds, e) = ctx.data(&x.part)?;
            extras.push((x.name.clone(), ds.examples.len(), pd(ds, e)?));
        }
        let refs: Vec<&ProbeData> = extras.iter().map(|(_, _, p)| p).collect();
        let cfg = ProbeConfig::hear_linear().with_max_epochs(t.max_epochs);
        let (probe, extra) =
            probe_with_extra_tests(&train, &valid, &test, &refs, &cfg, &ctx.device)?;
        let mut s = Score::new(&t.name, Protocol::LinearProbe, "top1_acc", probe.test_score);
        s.n = Some(n_test);
        s.details = serde_json::to_value(probe.grid[probe.best].point).ok();
        scores.push(s);
        for ((name, n, _), v) in extras.iter().zip(extra) {
            let mut s = Score::new(name, Protocol::LinearProbe, "top1_acc", v);
            s.n = Some(*n);
            scores.push(s);
        }
        if let Some(acc) = own {
            let mut s = Score::new(&t.name, Protocol::OwnHead, "top1_acc", acc).with_head("g_A");
            s.n = Some(n_test);
            scores.push(s);
        }
    }
    for t in &suite.zero_shot {
        if student.head(t.head).is_none() {
            continue;
        }
        let (classes, weights) = {
            let ds = t.data.read()?;
            let classes = t.classes.clone().unwrap_or_else(|| ds.classes.clone());
            let table = ctx.table(&t.table)?.clone();
            let w = match t.head {
                TaskKind::AT => {
                    let lookup =
                        |texts: &[String]| -> std::result::Result<Vec<Vec<f32>>, BoxError> {
                            texts
                                .iter()
                                .map(|x| {
                                    table.entries.get(x).cloned().ok_or_else(|| {
                                        format!("no text embedding for prompt {x:?}").into()
                                    })
                                })
                                .collect()
                        };
                    let cfg = ZeroShotConfig {
                        templates: if t.templates.is_empty() {
                            ZeroShotConfig::default().templates
                        } else {
                            t.templates.clone()
                        },
                        underscores_to_spaces: true,
                    };
                    class_weights(&classes, &cfg, &lookup)?
                }
                _ => {
                    let rows = classes
                        .iter()
                        .map(|c| {
                            let imgs = t.class_images.get(c).filter(|v| !v.is_empty()).ok_or_else(
                                || Error::Other(format!("{}: no images for class `{c}`", t.name)),
                            )?;
                            let keys: Vec<String> = imgs
                                .iter()
                                .map(|p| p.to_string_lossy().into_owned())
                                .collect();
                            Ok(normalized_mean(&table_rows(&table, &keys)?))
                        })
                        .collect::<Result<Vec<_>>>()?;
                    Matrix::from_rows(&rows)?
                }
            };
            (classes, w)
        };
        let (ds, e) = ctx.data(&t.data)?;
        let y = targets(ds, &classes)?;
        let Some(audio) = e.head(t.head) else {
            continue;
        };
        let logits = zero_shot_logits(audio.view(), weights.view())?;
        let acc = accuracy(&argmax_rows(logits.view()), &y)?;
        let mut s =
            Score::new(&t.name, Protocol::ZeroShot, "top1_acc", acc).with_head(head_name(t.head));
        if t.head == TaskKind::AV {
            s.direction = Some("A2I".into());
        }
        s.n = Some(y.len());
        scores.push(s);
    }
    for t in &suite.retrieval {
        if student.head(t.head).is_none() {
            continue;
        }
        let table = ctx.table(&t.table)?.clone();
        let (ds, e) = ctx.data(&t.data)?;
        let Some(audio) = e.head(t.head) else {
            continue;
        };
        let mut keys = Vec::new();
        let mut clip_of = Vec::new();
        for (i, ex) in ds.examples.iter().enumerate() {
            match t.head {
                TaskKind::AT => {
                    for c in &ex.captions {
                        keys.push(c.clone());
                        clip_of.push(i);
                    }
                }
                _ => {
                    let key = match ex.images.first() {
                        Some(ImageRef::File(p)) => p.to_string_lossy().into_owned(),
                        Some(ImageRef::Embedding(id)) => id.clone(),
                        None => {
                            return Err(Error::Other(format!(
                                "{}: clip `{}` has no image",
                                t.name, ex.id
                            )));
                        }
                    };
                    keys.push(key);
                    clip_of.push(i);
                }
            }
        }
        let other = table_rows(&table, &keys)?;
        let r = cross_modal_retrieval(audio.view(), other.view(), &clip_of)?;
        let (a2o, o2a) = if t.head == TaskKind::AT {
            ("A2T", "T2A")
        } else {
            ("A2I", "I2A")
        };
        scores.extend(retrieval_scores(
            &t.name,
            &r,
            a2o,
            o2a,
            Some(head_name(t.head)),
        ));
    }
    Ok(scores)
}

/// The scores of one stage model, with timing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StageScores {
    /// The model file.
    pub model: PathBuf,
    /// Every score.
    pub scores: Vec<Score>,
    /// Evaluation time, seconds.
    pub seconds: f64,
}

/// Loads and evaluates one stage model.
///
/// # Errors
/// As [`load_model`] and [`evaluate_model`].
pub fn evaluate_stage_model(
    suite: &EvalSuite,
    preset: &str,
    num_classes: Option<usize>,
    model: &Path,
    device: &Device,
) -> Result<StageScores> {
    let t0 = Instant::now();
    let student = load_model(preset, num_classes, model, device)?;
    let hash = if suite.cache_dir.is_some() {
        Some(sha256_file(model)?)
    } else {
        None
    };
    let scores = evaluate_model(suite, &student, hash.as_deref(), 32_000, device)?;
    let seconds = t0.elapsed().as_secs_f64();
    tracing::info!(model = %model.display(), seconds, "stage model evaluated");
    Ok(StageScores {
        model: model.to_path_buf(),
        scores,
        seconds,
    })
}

/// The git commit of the working directory and whether tracked files are modified.
pub fn git_commit() -> (String, bool) {
    let run = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = run(&["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty =
        run(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    (commit, dirty)
}

/// `accrue eval`: evaluates every stage model of a finished (or partly finished) run on
/// `suite` and returns the artifact (stages in training order; stages without a model yet are
/// skipped). `run` is the experiment file, or a directory holding it as `experiment.toml`.
///
/// # Errors
/// No `experiment.toml` in `run_dir`, or as [`evaluate_stage_model`].
pub fn evaluate_run(
    run_dir: &Path,
    suite: &EvalSuite,
    method: Option<&str>,
    backend: &str,
    device: &Device,
) -> Result<EvalArtifact> {
    let exp_path = if run_dir.is_dir() {
        run_dir.join("experiment.toml")
    } else {
        run_dir.to_path_buf()
    };
    let exp = ExperimentConfig::load(&exp_path)?;
    let (commit, dirty) = git_commit();
    let bytes = std::fs::read(&exp_path).map_err(|e| Error::io(&exp_path, e))?;
    let seed = exp.stages.first().map_or(0, |s| s.seed);
    let mut prov = Provenance::new(commit, sha256_tag(&bytes), seed, backend, "f32");
    prov.git_dirty = dirty;
    for stage in &exp.stages {
        for t in &stage.tasks {
            if let Some(table) = &t.supervision
                && let Ok(h) = sha256_file(table)
            {
                prov.frozen_towers
                    .insert(format!("{} table {}", t.kind, table.display()), h);
            }
            if let Ok(h) = sha256_file(&t.manifest) {
                prov.datasets.insert(t.manifest.display().to_string(), h);
            }
        }
    }
    let method = method.map_or_else(
        || {
            exp.stages.last().map_or("unknown".into(), |s| {
                s.strategy.build().map_or("unknown".into(), |b| {
                    use accrue_continual::Strategy;
                    b.name()
                })
            })
        },
        str::to_string,
    );
    let mut art = EvalArtifact::new(method, exp.name.clone(), prov);
    for (i, stage) in exp.stages.iter().enumerate() {
        let model = stage_model_path(&exp.output_dir, i, &stage.name);
        if !model.is_file() {
            tracing::warn!(stage = stage.name, "no stage model yet; skipped");
            continue;
        }
        let s = evaluate_stage_model(
            suite,
            &exp.encoder.preset,
            exp.encoder.num_classes,
            &model,
            device,
        )?;
        art.stages.push(StageEvaluation {
            stage: stage.name.clone(),
            checkpoint: model.display().to_string(),
            checkpoint_hash: sha256_file(&model).ok(),
            scores: s.scores,
        });
    }
    if !suite.continual.is_empty() {
        art.continual = continual_section(&art, &exp, suite)?;
    }
    art.validate()?;
    Ok(art)
}

/// The stage × task matrix of a run: task `j` is stage `j`'s (first) task kind, scored by the
/// suite's [`ScoreRef`] for that kind; a missing score is `None`.
fn continual_section(
    art: &EvalArtifact,
    exp: &ExperimentConfig,
    suite: &EvalSuite,
) -> Result<Option<ContinualReport>> {
    let kinds: Vec<String> = exp
        .stages
        .iter()
        .filter(|s| art.stages.iter().any(|e| e.stage == s.name))
        .filter_map(|s| s.tasks.first().map(|t| t.kind.to_string()))
        .collect();
    if kinds.len() < 2 || kinds.iter().any(|k| !suite.continual.contains_key(k)) {
        return Ok(None);
    }
    let matrix = stage_matrix(art, &kinds, &suite.continual)?;
    let summary = summarize(&matrix, None, None, None)?;
    Ok(Some(ContinualReport { matrix, summary }))
}
