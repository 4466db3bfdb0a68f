//! The native part of the Python package `accrue` (`accrue._native`): load an accrue encoder or
//! stage model and embed audio given as numpy arrays. The Python layer (`python/accrue/`)
//! normalises inputs and adds the HEAR 2021 API (`accrue.hear`).
//!
//! Every model file that `accrue info` understands loads here, strictly and with the same key
//! report: accrue's safetensors (an encoder, a student, a stage model of a run) and PANNs
//! PyTorch checkpoints. The embeddings are those of `accrue eval` / `accrue encode`: each clip
//! whole, resampled to the model's rate, zero-padded to 1 s when shorter, in eval mode
//! ([`accrue_suite::suite::embed_waveforms`]).
//!
//! Errors cross into Python as `accrue.AccrueError` (bad files, bad models) or `ValueError`
//! (bad arguments) carrying the Rust message; a panic inside accrue is caught and raised as
//! `AccrueError` too, so none reaches the interpreter as `PanicException`.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use accrue::continual::Student;
use accrue::continual::config::EncoderSpec;
use accrue::encoders::{AudioBody, Preset};
use burn::tensor::Device;
use numpy::ndarray::{Array1, Array2, Array3};
use numpy::{IntoPyArray, PyArray1, PyArray2, PyArray3, PyReadonlyArray2};
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;

create_exception!(
    _native,
    AccrueError,
    PyException,
    "An error reported by accrue: an unreadable, corrupt or mismatched model file, or audio \
     it cannot embed. The message is accrue's own (it names the file, key or row)."
);

/// Runs `f`, turning a panic into an [`AccrueError`] (a bug in accrue: the message says so).
fn guarded<T>(what: &str, f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let detail = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_string()))
                .unwrap_or_else(|| "unknown panic".to_string());
            Err(AccrueError::new_err(format!(
                "{what}: internal error in accrue (please report it): {detail}"
            )))
        }
    }
}

fn accrue_err(e: impl std::fmt::Display) -> PyErr {
    AccrueError::new_err(e.to_string())
}

/// What the model outputs for each clip.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Output {
    /// f_a, the encoder's embedding.
    Embedding,
    /// g^AV(f_a).
    Av,
    /// g^AT(f_a).
    At,
    /// g^A logits.
    Logits,
}

impl Output {
    fn parse(s: &str) -> PyResult<Self> {
        match s {
            "embedding" => Ok(Self::Embedding),
            "av" => Ok(Self::Av),
            "at" => Ok(Self::At),
            "logits" => Ok(Self::Logits),
            _ => Err(PyValueError::new_err(format!(
                "unknown output `{s}` (embedding, av, at, logits)"
            ))),
        }
    }
}

/// An accrue audio encoder (or a stage model with its projection heads), in eval mode on the
/// CPU (`flex` backend).
// Boxed: Burn's device and tensors carry 64-byte alignment, which a Python object's memory
// does not guarantee (pyo3 places the struct inside it).
#[pyclass(frozen, module = "accrue._native")]
struct Encoder(Box<Inner>);

struct Inner {
    student: Mutex<Student>,
    spec: EncoderSpec,
    path: PathBuf,
    sample_rate: u32,
    device: Device,
}

impl std::ops::Deref for Encoder {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl Inner {
    fn with_student<T>(&self, f: impl FnOnce(&Student) -> PyResult<T>) -> PyResult<T> {
        let guard = self
            .student
            .lock()
            .map_err(|_| AccrueError::new_err("the model is unusable after an earlier failure"))?;
        f(&guard)
    }

    /// The `[n, L]` array as rows at the model's rate, checked (finite, within ±1e6).
    fn prepare(&self, audio: &PyReadonlyArray2<'_, f32>, sample_rate: u32) -> PyResult<Prepared> {
        let view = audio.as_array();
        let (rows, len) = view.dim();
        if rows == 0 {
            return Err(PyValueError::new_err("audio has no clips (shape [0, L])"));
        }
        if len == 0 {
            return Err(PyValueError::new_err(
                "audio clips are empty (shape [n, 0])",
            ));
        }
        let mut out = Vec::new();
        for (i, row) in view.rows().into_iter().enumerate() {
            let row: Vec<f32> = row.iter().copied().collect();
            let name = format!("<numpy input, row {i}>");
            accrue::audio::decode::check_samples(&row, Path::new(&name)).map_err(accrue_err)?;
            let wave = accrue::audio::resample::resample(&row, sample_rate, self.sample_rate)
                .map_err(|e| PyValueError::new_err(format!("{name}: {e}")))?;
            out.extend_from_slice(&wave);
        }
        Ok(Prepared { samples: out, rows })
    }
}

/// Clips at the model's rate, row-major.
struct Prepared {
    samples: Vec<f32>,
    rows: usize,
}

fn check_batch(batch_size: usize) -> PyResult<usize> {
    if batch_size == 0 {
        return Err(PyValueError::new_err("batch_size must be at least 1"));
    }
    Ok(batch_size)
}

#[pymethods]
impl Encoder {
    /// Loads a model file: accrue's safetensors (encoder, student, stage model) or a PANNs
    /// PyTorch checkpoint, strictly. `preset` names the encoder (`resnet38`,
    /// `resnet38-tiny`, `cnn14`, `cnn14-tiny`); without it the encoder is read from the run
    /// folder the file belongs to (`experiment.toml` beside it or one level up), front-end
    /// settings included.
    #[staticmethod]
    #[pyo3(signature = (path, preset = None))]
    fn load(py: Python<'_>, path: PathBuf, preset: Option<&str>) -> PyResult<Self> {
        let preset: Option<Preset> = preset
            .map(str::parse)
            .transpose()
            .map_err(|e: accrue::encoders::EncoderError| PyValueError::new_err(e.to_string()))?;
        let what = format!("loading {}", path.display());
        py.detach(|| {
            guarded(&what, || {
                let device = Device::flex();
                let (student, spec) = accrue_suite::suite::load_any_model(&path, preset, &device)
                    .map_err(accrue_err)?;
                let sample_rate = spec.config().map_err(accrue_err)?.front_end().sample_rate;
                Ok(Self(Box::new(Inner {
                    student: Mutex::new(student),
                    spec,
                    path,
                    sample_rate,
                    device,
                })))
            })
        })
    }

    /// The sample rate the model runs at (Hz); `embed` resamples other rates to it.
    #[getter]
    fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// Width of the embedding f_a (2048 for PANNs ResNet-38).
    #[getter]
    fn embedding_dim(&self) -> PyResult<usize> {
        self.with_student(|s| Ok(s.encoder.embedding_dim()))
    }

    /// Classes of the g^A head (`fc_audioset`).
    #[getter]
    fn num_classes(&self) -> PyResult<usize> {
        self.with_student(|s| Ok(s.encoder.num_classes()))
    }

    /// The encoder preset's name.
    #[getter]
    fn preset(&self) -> &'static str {
        self.spec.preset.name()
    }

    /// The model file.
    #[getter]
    fn path(&self) -> PathBuf {
        self.path.clone()
    }

    /// Projection heads the model has (`"av"`, `"at"`), with their output widths.
    #[getter]
    fn heads(&self) -> PyResult<Vec<(String, usize)>> {
        self.with_student(|s| {
            let mut out = Vec::new();
            for (name, head) in [("av", &s.head_av), ("at", &s.head_at)] {
                if let Some(h) = head {
                    out.push((name.to_string(), h.d_output()));
                }
            }
            Ok(out)
        })
    }

    /// Seconds between consecutive frame embeddings (`embed_frames`): 0.32 s for PANNs.
    #[getter]
    fn frame_hop_seconds(&self) -> PyResult<f64> {
        self.with_student(|s| Ok(s.encoder.frame_timing().hop_seconds()))
    }

    /// Scene embeddings: one row per clip.
    ///
    /// `audio`: float32 `[n, samples]` at `sample_rate` Hz, mono, in [-1, 1]; every row is
    /// one clip of the array's length. Each clip is resampled to the model's rate and, when
    /// shorter than 1 s there, zero-padded to 1 s, as `accrue eval` does; nothing else is
    /// padded, so the batch size changes only the order of floating-point sums.
    /// `output`: `embedding` (f_a, `[n, D]`), `av` / `at` (the projection head's output) or
    /// `logits` (g^A).
    #[pyo3(signature = (audio, sample_rate, batch_size = 16, output = "embedding"))]
    fn embed<'py>(
        &self,
        py: Python<'py>,
        audio: PyReadonlyArray2<'py, f32>,
        sample_rate: u32,
        batch_size: usize,
        output: &str,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let output = Output::parse(output)?;
        let batch = check_batch(batch_size)?;
        let prepared = self.prepare(&audio, sample_rate)?;
        drop(audio);
        let (data, rows, cols) = py.detach(|| {
            guarded("embedding", || {
                self.with_student(|s| {
                    let e = accrue_suite::suite::embed_waveforms(
                        s,
                        &prepared.samples,
                        prepared.rows,
                        batch,
                    )
                    .map_err(accrue_err)?;
                    let m = match output {
                        Output::Embedding => e.embedding,
                        Output::Logits => e.logits,
                        Output::Av => e.av.ok_or_else(|| {
                            PyValueError::new_err("this model has no AV head (heads: see .heads)")
                        })?,
                        Output::At => e.at.ok_or_else(|| {
                            PyValueError::new_err("this model has no AT head (heads: see .heads)")
                        })?,
                    };
                    Ok((m.data().to_vec(), m.rows(), m.cols()))
                })
            })
        })?;
        let arr = Array2::from_shape_vec((rows, cols), data).map_err(accrue_err)?;
        Ok(arr.into_pyarray(py))
    }

    /// Frame-level embeddings and their centre times.
    ///
    /// Returns `(embeddings [n, T, D], centres [T])`: frame `i` is `fc1` + ReLU of the trunk's
    /// output frame `i` (averaged over frequency), the same space as the scene embedding; its
    /// centre is `(P·i + (P−1)/2)·hop / rate` seconds (P = 32 front-end frames, hop 10 ms for
    /// PANNs: one frame per 0.32 s). Inputs as for `embed`.
    #[pyo3(signature = (audio, sample_rate, batch_size = 16))]
    fn embed_frames<'py>(
        &self,
        py: Python<'py>,
        audio: PyReadonlyArray2<'py, f32>,
        sample_rate: u32,
        batch_size: usize,
    ) -> PyResult<(Bound<'py, PyArray3<f32>>, Bound<'py, PyArray1<f64>>)> {
        let batch = check_batch(batch_size)?;
        let prepared = self.prepare(&audio, sample_rate)?;
        drop(audio);
        let (data, frames, dim, centres) = py.detach(|| {
            guarded("embedding frames", || {
                self.with_student(|s| frames_of(s, &prepared, batch, &self.device))
            })
        })?;
        let rows = prepared.rows;
        let arr = Array3::from_shape_vec((rows, frames, dim), data).map_err(accrue_err)?;
        Ok((
            arr.into_pyarray(py),
            Array1::from_vec(centres).into_pyarray(py),
        ))
    }

    fn __repr__(&self) -> String {
        format!(
            "Encoder(path={:?}, preset={:?}, sample_rate={})",
            self.path.display().to_string(),
            self.spec.preset.name(),
            self.sample_rate
        )
    }
}

/// Frame embeddings of prepared clips: `(values [n·T·D], T, D, centres [T])`.
fn frames_of(
    s: &Student,
    p: &Prepared,
    batch: usize,
    device: &Device,
) -> PyResult<(Vec<f32>, usize, usize, Vec<f64>)> {
    let mut data = Vec::new();
    let mut shape = (0, 0);
    let mut centres = Vec::new();
    for wave in accrue_suite::suite::eval_batches(&p.samples, p.rows, batch, device) {
        let f = s.encoder.frame_embeddings(wave);
        let [_, t, d] = f.embeddings.dims();
        shape = (t, d);
        centres = (0..t).map(|i| f.timing.centre_seconds(i)).collect();
        let values = f
            .embeddings
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .map_err(|e| AccrueError::new_err(format!("reading frame embeddings: {e:?}")))?;
        data.extend_from_slice(&values);
    }
    Ok((data, shape.0, shape.1, centres))
}

/// The native module: `Encoder`, `AccrueError`, `presets()`.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Encoder>()?;
    m.add("AccrueError", m.py().get_type::<AccrueError>())?;
    m.add_function(wrap_pyfunction!(presets, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}

/// The encoder presets `Encoder.load` accepts.
#[pyfunction]
fn presets() -> Vec<&'static str> {
    Preset::ALL.iter().map(|p| p.name()).collect()
}
