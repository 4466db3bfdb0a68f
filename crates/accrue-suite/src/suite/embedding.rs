//! Running a model over a dataset once: embeddings, head outputs and logits, cached on disk
//! per model file (the project's one array format) and in memory per evaluation.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use accrue_continual::config::EncoderSpec;
use accrue_continual::{Student, SupervisionTable, TaskKind, load_model_file};
use accrue_data::{Dataset, Loader, LoaderConfig};
use accrue_encoders::{AudioEncoder, Preset};
use accrue_eval::Matrix;
use accrue_eval::report::{sha256_file, sha256_tag};
use burn::module::Module;
use burn::tensor::{Device, Tensor};

use super::schema::Part;
use crate::error::{Error, Result};

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

/// Runs `student` (eval mode) over every clip of `ds`, whole clips, row per clip in `ds`
/// order. Each clip is processed as on its own: zero-padded only to [`MIN_EVAL_SAMPLES`] when
/// shorter, never to a longer batch mate. Clips of one length share a forward pass of at most
/// `batch` clips (a loader batch of mixed lengths is split by length), so `batch` changes
/// speed, not embeddings (only the order of floating-point sums inside the kernels).
///
/// # Errors
/// Unreadable audio or shape errors.
pub fn embed_dataset(
    student: &Student,
    ds: &Dataset,
    sample_rate: u32,
    batch: usize,
) -> Result<Embedded> {
    let mut memo = ClipMemo::default();
    memo.embed_missing(student, ds, sample_rate, batch)?;
    memo.gather(ds)
}

/// Every clip one model has embedded so far during one evaluation, keyed by audio file: a clip
/// that several parts of a suite share (the downstream suite re-uses the test clips) runs
/// through the model once.
#[derive(Default)]
struct ClipMemo {
    /// Embedded groups, in the order they were computed.
    parts: Vec<Embedded>,
    /// Audio file → (group, row).
    index: HashMap<PathBuf, (usize, usize)>,
}

impl ClipMemo {
    /// Embeds the clips of `ds` not embedded yet (each distinct file once).
    fn embed_missing(
        &mut self,
        student: &Student,
        ds: &Dataset,
        sample_rate: u32,
        batch: usize,
    ) -> Result<()> {
        let mut seen = HashSet::new();
        let missing: Vec<accrue_data::Example> = ds
            .examples
            .iter()
            .filter(|e| !self.index.contains_key(&e.audio) && seen.insert(e.audio.clone()))
            .cloned()
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        tracing::debug!(
            dataset = %ds.name,
            clips = ds.examples.len(),
            new = missing.len(),
            "embedding clips"
        );
        let sub = Dataset {
            examples: missing,
            ..ds.clone()
        };
        let mut cfg = LoaderConfig::eval(sample_rate, batch.max(1));
        cfg.prefetch = 2;
        let loader = Loader::new(sub.clone(), cfg)?;
        for b in loader.epoch(0) {
            let b = b?;
            // Clips of one length, in batch order.
            let mut by_len: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
            for (i, &len) in b.lengths.iter().enumerate() {
                by_len.entry(len).or_default().push(i);
            }
            for (len, rows) in by_len {
                // The group's clips unpadded, row-major; `embed_waveforms` pads each to 1 s.
                let audio: Vec<f32> = rows
                    .iter()
                    .flat_map(|&i| &b.audio[i * b.length..i * b.length + len])
                    .copied()
                    .collect();
                let group = self.parts.len();
                self.parts
                    .push(embed_waveforms(student, &audio, rows.len(), rows.len())?);
                for (j, &i) in rows.iter().enumerate() {
                    let file = sub.examples[b.examples[i]].audio.clone();
                    self.index.insert(file, (group, j));
                }
            }
        }
        Ok(())
    }

    /// Records the rows of an already embedded dataset (an on-disk cache entry).
    fn insert(&mut self, ds: &Dataset, e: Embedded) {
        let group = self.parts.len();
        for (j, ex) in ds.examples.iter().enumerate() {
            self.index.entry(ex.audio.clone()).or_insert((group, j));
        }
        self.parts.push(e);
    }

    /// The rows of `ds`'s clips, in `ds` order (every clip must have been embedded).
    fn gather(&self, ds: &Dataset) -> Result<Embedded> {
        let locs: Vec<(usize, usize)> =
            ds.examples
                .iter()
                .map(|e| {
                    self.index.get(&e.audio).copied().ok_or_else(|| {
                        Error::Missing(format!("{}: not embedded", e.audio.display()))
                    })
                })
                .collect::<Result<_>>()?;
        let take = |pick: &dyn Fn(&Embedded) -> Option<&Matrix>| -> Result<Option<Matrix>> {
            let Some(cols) = self.parts.iter().find_map(|p| pick(p).map(Matrix::cols)) else {
                return Ok(None);
            };
            let mut data = Vec::with_capacity(locs.len() * cols);
            for &(g, r) in &locs {
                let m = pick(&self.parts[g]).ok_or_else(|| {
                    Error::Other("embedded clips disagree on the model's heads".into())
                })?;
                data.extend_from_slice(m.row(r));
            }
            Ok(Some(Matrix::new(data, locs.len(), cols)?))
        };
        let empty = || Error::Other(format!("{}: no clips", ds.name));
        Ok(Embedded {
            embedding: take(&|p| Some(&p.embedding))?.ok_or_else(empty)?,
            av: take(&|p| p.av.as_ref())?,
            at: take(&|p| p.at.as_ref())?,
            logits: take(&|p| Some(&p.logits))?.ok_or_else(empty)?,
        })
    }
}

/// Loads a stage model (encoder-only or student safetensors, or a PANNs PyTorch checkpoint)
/// into `preset`'s skeleton, in eval mode on the plain (non-autodiff) device.
///
/// # Errors
/// Unknown preset, unreadable file or a key/shape mismatch (with the full report).
pub fn load_model(
    preset: Preset,
    num_classes: Option<usize>,
    path: &Path,
    device: &Device,
) -> Result<Student> {
    let spec = EncoderSpec::preset(preset, num_classes);
    load_model_spec(&spec, path, device)
}

/// As [`load_model`] with an experiment's whole encoder spec (its front-end settings included:
/// a model must be evaluated with the front end it was trained with).
///
/// # Errors
/// As [`load_model`].
pub fn load_model_spec(spec: &EncoderSpec, path: &Path, device: &Device) -> Result<Student> {
    let plain = device.clone().inner();
    let skeleton = Student::new(spec.config()?.init(&plain));
    let (student, _) = load_model_file(skeleton, path, &plain)?;
    Ok(student.valid())
}

/// Loads a stage model like [`load_model`], reading the number of classes of g^A from the
/// file (the `fc_audioset` weight's shape).
///
/// # Errors
/// As [`load_model`].
pub fn load_model_from_file(preset: Preset, path: &Path, device: &Device) -> Result<Student> {
    load_model(preset, classes_in_file(path)?, path, device)
}

/// The width of g^A in an accrue safetensors file (its `fc_audioset` weight), when it has one.
fn classes_in_file(path: &Path) -> Result<Option<usize>> {
    Ok(accrue_encoders::checkpoint::safetensors_keys(path)?
        .iter()
        .find(|(k, _)| k.ends_with("fc_audioset.weight"))
        .and_then(|(_, shape)| shape.get(1).copied()))
}

/// The encoder a model file needs: `preset` when given (with g^A's width read from the file's
/// `fc_audioset` weight), else the encoder of the run the file belongs to (the whole spec of
/// the `experiment.toml` beside it or one level up, front-end settings included: a model must
/// be run with the front end it was trained with).
///
/// # Errors
/// No preset and no run folder (the presets are listed), an unreadable or malformed
/// experiment file (named), an unreadable checkpoint header.
pub fn model_spec(path: &Path, preset: Option<Preset>) -> Result<EncoderSpec> {
    let is_st = path.extension().is_some_and(|e| e == "safetensors");
    if let Some(preset) = preset {
        let classes = if is_st { classes_in_file(path)? } else { None };
        return Ok(EncoderSpec::preset(preset, classes));
    }
    let abs = std::fs::canonicalize(path).map_err(|e| Error::io(path, e))?;
    let run = accrue_continual::RunDir::of_checkpoint(&abs).ok_or_else(|| {
        let presets: Vec<&str> = Preset::ALL.iter().map(|p| p.name()).collect();
        Error::Missing(format!(
            "{}: no run folder (experiment.toml) beside the file or one level up, so its \
             encoder is unknown; name its preset ({})",
            path.display(),
            presets.join(", ")
        ))
    })?;
    let experiment = run.experiment();
    let text = std::fs::read_to_string(&experiment).map_err(|e| Error::io(&experiment, e))?;
    let cfg = accrue_continual::ExperimentConfig::parse(&text)
        .map_err(|e| Error::Other(format!("{}: {e}", experiment.display())))?;
    cfg.encoder
        .config()
        .map_err(|e| Error::Other(format!("{}: [encoder]: {e}", experiment.display())))?;
    Ok(cfg.encoder)
}

/// Loads any model file `accrue info` understands, in eval mode: accrue's safetensors (an
/// encoder, a student, a stage model) or a PANNs PyTorch checkpoint, strictly, with the
/// encoder of [`model_spec`]. Returns the model and the spec it was built from.
///
/// # Errors
/// As [`model_spec`] and [`load_model_spec`] (a mismatch carries the full key report).
pub fn load_any_model(
    path: &Path,
    preset: Option<Preset>,
    device: &Device,
) -> Result<(Student, EncoderSpec)> {
    let spec = model_spec(path, preset)?;
    let student = load_model_spec(&spec, path, device)?;
    Ok((student, spec))
}

/// Runs `student` (eval mode) over `rows` clips of equal length stored row-major in `audio`
/// (already at the model's sample rate), `batch` clips per forward pass. A clip shorter than
/// [`MIN_EVAL_SAMPLES`] is zero-padded to it, as [`embed_files`] and [`embed_dataset`] pad;
/// nothing else is padded, so every clip is processed exactly as on its own (a batch changes
/// only the order of floating-point sums inside the kernels). Log-mels come from the process's
/// memo (`accrue_audio::memo`) where an earlier pass computed them; the batches run on the
/// student's device.
///
/// # Errors
/// `audio.len()` not a multiple of `rows`, shape errors.
pub fn embed_waveforms(
    student: &Student,
    audio: &[f32],
    rows: usize,
    batch: usize,
) -> Result<Embedded> {
    if rows == 0 || audio.len() % rows != 0 {
        return Err(Error::Other(format!(
            "{} samples do not split into {rows} clips of equal length",
            audio.len()
        )));
    }
    let front = student.encoder.front_end();
    let mut acc = Acc::default();
    for (wave, n) in eval_rows(audio, rows, batch) {
        // Each clip's log-mel from the process's memo when an earlier pass (training, another
        // stage model of this process) computed it; equal to the bit to computing it here.
        let logmel = front
            .logmel_memoized(&wave, n)
            .map_err(|e| Error::Other(format!("evaluation batch: {e}")))?;
        acc.push(student, student.encode_logmel(logmel))?;
    }
    acc.finish()
}

/// [`eval_batches`] on the host: each batch's `n` clips, padded, row-major, and `n`.
fn eval_rows(audio: &[f32], rows: usize, batch: usize) -> impl Iterator<Item = (Vec<f32>, usize)> {
    let len = (audio.len() / rows.max(1)).max(1);
    let padded = len.max(MIN_EVAL_SAMPLES);
    audio.chunks(len * batch.max(1)).map(move |chunk| {
        let n = chunk.len() / len;
        let mut wave = vec![0.0f32; n * padded];
        for (i, row) in chunk.chunks(len).enumerate() {
            wave[i * padded..i * padded + len].copy_from_slice(row);
        }
        (wave, n)
    })
}

/// `rows` clips of equal length (row-major in `audio`) as `[n, L']` eval batches of at most
/// `batch` clips, each clip zero-padded to [`MIN_EVAL_SAMPLES`] when shorter (the padding rule
/// of every evaluation path). `audio.len()` must be a multiple of `rows` (`rows ≥ 1`).
pub fn eval_batches<'a>(
    audio: &'a [f32],
    rows: usize,
    batch: usize,
    device: &'a Device,
) -> impl Iterator<Item = Tensor<2>> + 'a {
    eval_rows(audio, rows, batch).map(move |(wave, n)| {
        let padded = wave.len() / n.max(1);
        Tensor::<1>::from_floats(wave.as_slice(), device).reshape([n, padded])
    })
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
        let wave = accrue_audio::resample::resample(&d.samples, d.sample_rate, sample_rate)
            .map_err(|e| Error::Other(format!("{}: {e}", f.display())))?;
        for batch in eval_batches(&wave, 1, 1, &plain) {
            acc.push(student, student.encode(batch))?;
        }
    }
    acc.finish()
}

pub(crate) fn table_rows(table: &SupervisionTable, keys: &[String]) -> Result<Matrix> {
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

pub(crate) fn head_name(kind: TaskKind) -> &'static str {
    match kind {
        TaskKind::A => "g_A",
        TaskKind::AV => "g_AV",
        TaskKind::AT => "g_AT",
    }
}

/// The four matrices of an [`Embedded`] in the project's one array format (empty heads stored
/// as `[0, 0]`).
fn write_embedded(path: &Path, e: &Embedded) -> Result<()> {
    let empty = Matrix::new(Vec::new(), 0, 0)?;
    let mats = [
        ("embedding", &e.embedding),
        ("g_AV", e.av.as_ref().unwrap_or(&empty)),
        ("g_AT", e.at.as_ref().unwrap_or(&empty)),
        ("logits", &e.logits),
    ];
    let shapes: Vec<[usize; 2]> = mats.iter().map(|(_, m)| [m.rows(), m.cols()]).collect();
    let arrays: Vec<(&str, &[usize], &[f32])> = mats
        .iter()
        .zip(&shapes)
        .map(|((name, m), shape)| (*name, shape.as_slice(), m.data()))
        .collect();
    accrue_core::arrays::write(path, &arrays, &Default::default())?;
    Ok(())
}

/// Reads a cache entry; `None` (recompute) when it is missing or malformed.
fn read_embedded(path: &Path) -> Option<Embedded> {
    if !path.is_file() {
        return None;
    }
    let mut file = match accrue_core::arrays::read(path) {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!("ignoring an unreadable embedding cache entry: {e}");
            return None;
        }
    };
    let mut take = |name: &str| -> Option<Matrix> {
        let a = file.take(path, name).ok()?;
        let [rows, cols] = a.shape[..] else {
            return None;
        };
        Matrix::new(a.data, rows, cols).ok()
    };
    Some(Embedded {
        embedding: take("embedding")?,
        av: take("g_AV").filter(|m| m.rows() > 0),
        at: take("g_AT").filter(|m| m.rows() > 0),
        logits: take("logits")?,
    })
}

/// Caches tables and embedded datasets within one model's evaluation.
pub(crate) struct Ctx<'a> {
    pub(crate) student: &'a Student,
    /// Disk cache of embeddings and the model's identity (file sha256), when enabled.
    disk: Option<(PathBuf, String)>,
    pub(crate) device: Device,
    sample_rate: u32,
    embedded: BTreeMap<String, (Dataset, Embedded)>,
    /// Every clip embedded so far, shared by the parts (each distinct file runs once).
    clips: ClipMemo,
    tables: BTreeMap<PathBuf, SupervisionTable>,
    /// The suite's head rule and the latest contrastive task the model was trained on.
    heads: (super::schema::HeadChoice, Option<TaskKind>),
}

impl<'a> Ctx<'a> {
    /// A context for one model; `disk` is the cache folder and the model's identity.
    pub(crate) fn new(
        student: &'a Student,
        disk: Option<(PathBuf, String)>,
        device: Device,
        sample_rate: u32,
    ) -> Self {
        Self {
            student,
            disk,
            device,
            sample_rate,
            embedded: BTreeMap::new(),
            clips: ClipMemo::default(),
            tables: BTreeMap::new(),
            heads: (super::schema::HeadChoice::Own, None),
        }
    }

    /// Sets the head rule and the latest contrastive task of the model.
    pub(crate) fn with_heads(
        mut self,
        choice: super::schema::HeadChoice,
        latest: Option<TaskKind>,
    ) -> Self {
        self.heads = (choice, latest);
        self
    }

    /// The head that scores a `task_head` task against supervision of width `dim`: the own
    /// head, or with [`super::schema::HeadChoice::Latest`] the latest contrastive stage's head
    /// when it outputs that width.
    pub(crate) fn scoring_head(&self, task_head: TaskKind, dim: usize) -> TaskKind {
        match self.heads {
            (super::schema::HeadChoice::Latest, Some(latest))
                if latest.is_contrastive()
                    && latest != task_head
                    && self
                        .student
                        .head(latest)
                        .is_some_and(|h| h.d_output() == dim) =>
            {
                latest
            }
            _ => task_head,
        }
    }

    pub(crate) fn data(&mut self, part: &Part) -> Result<&(Dataset, Embedded)> {
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
                    Some(dir.join(format!("{}.safetensors", &hex[..32.min(hex.len())])))
                }
                None => None,
            };
            let cached = file.as_deref().and_then(read_embedded);
            let e = match cached {
                Some(e) if e.embedding.rows() == ds.examples.len() => {
                    self.clips.insert(&ds, e);
                    self.clips.gather(&ds)?
                }
                _ => {
                    self.clips
                        .embed_missing(self.student, &ds, self.sample_rate, batch)?;
                    let e = self.clips.gather(&ds)?;
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

    pub(crate) fn table(&mut self, path: &Path) -> Result<&SupervisionTable> {
        if !self.tables.contains_key(path) {
            let t = SupervisionTable::load(path)?;
            self.tables.insert(path.to_path_buf(), t);
        }
        Ok(&self.tables[path])
    }
}
