//! The library side of the small `accrue` tools: `accrue embed` (a dataset's supervision
//! table through a frozen tower), `accrue info` (what a checkpoint is) and `accrue import`
//! (a released PANNs PyTorch checkpoint as accrue's own safetensors).
//!
//! Each tool is one function that returns a serialisable summary, so that it can be tested
//! and scripted without the command line. Model-facing functions take an explicit
//! [`AnyEncoderConfig`]; `Preset::config` maps the command line's preset names to one.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use accrue::continual::config::ExperimentConfig;
use accrue::continual::{ContinualError, RunDir, Student, load_student_or_encoder};
use accrue::data::Split;
use accrue::data::readers::manifest::{self, ManifestOptions};
use accrue::encoders::checkpoint::{LoadOptions, load_pytorch, safetensors_keys, save_safetensors};
use accrue::encoders::{
    AnyEncoder, AnyEncoderConfig, AudioEncoder, EncoderError, LoadReport, Preset,
};
use accrue::towers::cache::EmbeddingCache;
use accrue::towers::efficientnet::EfficientNetTower;
use accrue::towers::minilm::{MiniLmFiles, MiniLmTower};
use accrue::towers::{FrozenTower, TowerIdentity};
use burn::module::Module;
use burn::store::pytorch_reader::PytorchReader;
use burn::tensor::Device;
use serde::{Serialize, Serializer};

use accrue_suite::supervision::{dataset_captions, dataset_images, image_table, text_table};
use accrue_suite::{Error, Result};

/// Builds the encoder of `cfg` (validated first) on `device` without autodiff.
fn build(cfg: &AnyEncoderConfig, device: &Device) -> Result<AnyEncoder> {
    cfg.validate()?;
    Ok(cfg.init(&device.clone().without_autodiff()))
}

// ---------------------------------------------------------------------------------------------
// accrue embed
// ---------------------------------------------------------------------------------------------

/// The frozen tower `accrue embed` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum TowerChoice {
    /// all-MiniLM-L6-v2 (384-d): embeds the manifest's captions.
    Minilm,
    /// EfficientNet-Lite0 (1280-d): embeds the manifest's image files.
    Efficientnet,
}

impl fmt::Display for TowerChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Minilm => "minilm",
            Self::Efficientnet => "efficientnet",
        })
    }
}

/// What `accrue embed` does.
#[derive(Debug, Clone)]
pub struct EmbedOptions {
    /// The dataset manifest (JSON Lines or CSV, see `accrue::data::readers::manifest`).
    pub manifest: PathBuf,
    /// Which tower (and so which inputs: captions or image files).
    pub tower: TowerChoice,
    /// Where `scripts/fetch_towers.sh` put the towers (`minilm/`, `efficientnet/`).
    pub towers_dir: PathBuf,
    /// The on-disk embedding cache; default: `cache/towers` beside [`EmbedOptions::out`].
    pub cache_dir: Option<PathBuf>,
    /// The supervision table to write (JSON).
    pub out: PathBuf,
    /// Only the clips of this split (`train`, `valid`, `test` and their aliases).
    pub split: Option<String>,
    /// Inputs per tower batch.
    pub batch_size: usize,
    /// Show a progress bar while embedding.
    pub progress: bool,
}

impl EmbedOptions {
    /// Options with the defaults: towers in `data/towers`, the cache beside the output,
    /// every split, batches of 32, no progress bar.
    pub fn new(manifest: impl Into<PathBuf>, tower: TowerChoice, out: impl Into<PathBuf>) -> Self {
        Self {
            manifest: manifest.into(),
            tower,
            towers_dir: PathBuf::from("data/towers"),
            cache_dir: None,
            out: out.into(),
            split: None,
            batch_size: 32,
            progress: false,
        }
    }

    /// The cache directory used.
    pub fn cache_dir(&self) -> PathBuf {
        self.cache_dir.clone().unwrap_or_else(|| {
            self.out
                .parent()
                .unwrap_or(Path::new(""))
                .join("cache")
                .join("towers")
        })
    }
}

/// What `accrue embed` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct EmbedSummary {
    /// The supervision table.
    pub out: PathBuf,
    /// Rows written (distinct captions or image files).
    pub rows: usize,
    /// Embedding width.
    pub dim: usize,
    /// Inputs the tower actually ran on (the rest came from the cache).
    pub computed: usize,
    /// The tower that produced the rows.
    pub tower: TowerIdentity,
    /// The embedding cache used.
    pub cache_dir: PathBuf,
}

fn cache_len<T: FrozenTower>(tower: &T, root: &Path) -> Result<usize> {
    Ok(EmbeddingCache::open(root, tower.identity(), tower.embed_dim())?.len())
}

/// Builds the trainer's supervision table for a manifest: MiniLM embeds its distinct
/// captions, EfficientNet-Lite0 its distinct image files, through the on-disk embedding cache
/// (a second call computes nothing). The table is written atomically to
/// [`EmbedOptions::out`].
///
/// # Errors
/// An unreadable manifest (file and line named), an unknown split, a manifest without
/// captions / image files, missing tower files (with the script that fetches them), tower,
/// image or cache errors, or an unwritable output.
pub fn embed_manifest(opts: &EmbedOptions, device: &Device) -> Result<EmbedSummary> {
    let mut ds = manifest::read(&opts.manifest, &ManifestOptions::default())?;
    let split_note = match &opts.split {
        Some(name) => {
            let split = Split::parse(name).ok_or_else(|| {
                Error::Other(format!(
                    "unknown split `{name}` (train/development, valid/validation, test/evaluation)"
                ))
            })?;
            ds = ds.split(split);
            format!(" in split `{name}`")
        }
        None => String::new(),
    };
    let cache = opts.cache_dir();
    let batch = opts.batch_size.max(1);
    let (table, identity, computed) = match opts.tower {
        TowerChoice::Minilm => {
            let texts = dataset_captions(&ds);
            if texts.is_empty() {
                return Err(Error::Missing(format!(
                    "{}: no captions{split_note} to embed with MiniLM",
                    opts.manifest.display()
                )));
            }
            let dir = opts.towers_dir.join("minilm");
            let files = MiniLmFiles::in_dir(&dir);
            if !(files.weights.is_file() && files.tokenizer.is_file() && files.config.is_file()) {
                return Err(Error::Missing(format!(
                    "the MiniLM tower is not in {} (run scripts/fetch_towers.sh)",
                    dir.display()
                )));
            }
            let tower = MiniLmTower::load(&files, device)?;
            let before = cache_len(&tower, &cache)?;
            tracing::info!(texts = texts.len(), tower = %tower.identity(), "embedding captions");
            let table = text_table(&tower, &cache, &texts, batch, opts.progress)?;
            let computed = cache_len(&tower, &cache)?.saturating_sub(before);
            (table, tower.identity().clone(), computed)
        }
        TowerChoice::Efficientnet => {
            let images = dataset_images(&ds);
            if images.is_empty() {
                return Err(Error::Missing(format!(
                    "{}: no image files{split_note} to embed with EfficientNet",
                    opts.manifest.display()
                )));
            }
            let weights = EfficientNetTower::weights_in(&opts.towers_dir.join("efficientnet"));
            if !weights.is_file() {
                return Err(Error::Missing(format!(
                    "the EfficientNet-Lite0 tower is not at {} (run scripts/fetch_towers.sh)",
                    weights.display()
                )));
            }
            let tower = EfficientNetTower::load(&weights, device)?;
            let before = cache_len(&tower, &cache)?;
            tracing::info!(images = images.len(), tower = %tower.identity(), "embedding images");
            let table = image_table(&tower, &cache, &images, batch, opts.progress)?;
            let computed = cache_len(&tower, &cache)?.saturating_sub(before);
            (table, tower.identity().clone(), computed)
        }
    };
    // Atomic, and creates the folder: a failed write keeps the previous table.
    table.save(&opts.out)?;
    tracing::info!(out = %opts.out.display(), rows = table.entries.len(), computed, "supervision table written");
    Ok(EmbedSummary {
        out: opts.out.clone(),
        rows: table.entries.len(),
        dim: table.dim,
        computed,
        tower: identity,
        cache_dir: cache,
    })
}

// ---------------------------------------------------------------------------------------------
// accrue encode
// ---------------------------------------------------------------------------------------------

/// Embeds `files` with the model at `model` (its encoder from `preset` or its run folder) and
/// writes the outputs to `out` (an array file: `embedding`, the heads it has, `logits`; the
/// metadata key `files` holds the inputs as a JSON list). Returns the number of clips.
///
/// # Errors
/// As [`accrue_suite::suite::load_any_model`] and [`accrue_suite::suite::embed_files`]; an
/// unwritable output.
pub fn encode_files(
    model: &Path,
    files: &[PathBuf],
    preset: Option<Preset>,
    out: &Path,
    device: &Device,
) -> Result<usize> {
    let (student, spec) = accrue_suite::suite::load_any_model(model, preset, device)?;
    let sample_rate = spec.config()?.front_end().sample_rate;
    let e = accrue_suite::suite::embed_files(&student, files, sample_rate, device)?;
    let mut arrays: Vec<(&str, [usize; 2], &[f32])> = vec![(
        "embedding",
        [e.embedding.rows(), e.embedding.cols()],
        e.embedding.data(),
    )];
    for (name, m) in [("g_AV", &e.av), ("g_AT", &e.at)] {
        if let Some(m) = m {
            arrays.push((name, [m.rows(), m.cols()], m.data()));
        }
    }
    arrays.push((
        "logits",
        [e.logits.rows(), e.logits.cols()],
        e.logits.data(),
    ));
    let views: Vec<(&str, &[usize], &[f32])> = arrays
        .iter()
        .map(|(n, shape, d)| (*n, shape.as_slice(), *d))
        .collect();
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let metadata = BTreeMap::from([
        (
            "files".to_string(),
            serde_json::to_string(&names).map_err(|e| Error::Other(e.to_string()))?,
        ),
        ("model".to_string(), model.display().to_string()),
    ]);
    accrue::core::arrays::write(out, &views, &metadata)?;
    Ok(files.len())
}

// ---------------------------------------------------------------------------------------------
// accrue info
// ---------------------------------------------------------------------------------------------

/// A checkpoint's file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckpointFormat {
    /// accrue's own checkpoints (Burn names and layout).
    Safetensors,
    /// A PyTorch `.pth` / `.pt` (zip or legacy pickle).
    Pytorch,
}

/// How the tensors of a checkpoint are organised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// An accrue encoder on its own (`ResNet38.*` or `Cnn.*`), e.g. from `accrue import`.
    Encoder,
    /// An accrue student: `encoder.*` plus the projection heads it has (`head_av.`,
    /// `head_at.`), e.g. a stage model or `final.safetensors`.
    Student,
    /// A PyTorch state dict (PANNs names).
    PytorchStateDict,
    /// Anything else.
    Other,
}

/// A projection head found in a student checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeadInfo {
    /// `head_av` or `head_at`.
    pub name: String,
    /// Input width (the encoder's embedding width).
    pub input: Option<usize>,
    /// Hidden width.
    pub hidden: Option<usize>,
    /// Output width (the supervision space).
    pub output: Option<usize>,
}

/// The run directory a checkpoint belongs to (an `experiment.toml` beside it or one level up).
#[derive(Debug, Clone, Serialize)]
pub struct RunProvenance {
    /// The experiment file.
    pub experiment: PathBuf,
    /// `sha256:<hex>` of the experiment file.
    pub sha256: String,
    /// The run's name (`None` when the file does not parse as an experiment).
    pub name: Option<String>,
    /// The run's encoder preset.
    pub preset: Option<Preset>,
    /// The run's number of classes, when set.
    pub num_classes: Option<usize>,
}

/// The result of loading the checkpoint into a model built from a configuration.
#[derive(Debug, Clone, Serialize)]
pub struct ModelCheck {
    /// Whether a strict load succeeded (every tensor matched).
    pub loaded: bool,
    /// Parameters of the model (every tensor, BN statistics and frozen front end included;
    /// with the checkpoint's heads when it is a student that loaded).
    pub num_params: usize,
    /// Trainable parameters of the encoder (no BN statistics, no STFT / mel kernels).
    pub trainable_params: usize,
    /// What matched and what did not.
    #[serde(serialize_with = "serialize_report")]
    pub report: LoadReport,
}

/// What a checkpoint is.
#[derive(Debug, Clone, Serialize)]
pub struct CheckpointInfo {
    /// The file.
    pub path: PathBuf,
    /// Its format.
    pub format: CheckpointFormat,
    /// Number of tensors (PyTorch: without the `num_batches_tracked` counters).
    pub tensors: usize,
    /// Total number of values in those tensors.
    pub parameters: usize,
    /// PyTorch: `num_batches_tracked` counters (ignored on import).
    pub ignored: usize,
    /// PyTorch: the key of the state dict inside the file (`model` for PANNs).
    pub top_level_key: Option<String>,
    /// How the tensors are organised.
    pub layout: Layout,
    /// The encoder architecture (`ResNet38` or `Cnn`), when the layout names it.
    pub architecture: Option<String>,
    /// The encoder's embedding width (from `fc1`), when found.
    pub embedding_dim: Option<usize>,
    /// The encoder's number of classes (from `fc_audioset`), when found.
    pub num_classes: Option<usize>,
    /// The student's projection heads.
    pub heads: Vec<HeadInfo>,
    /// The run the file belongs to.
    pub run: Option<RunProvenance>,
    /// The load into a configured model, when a configuration was given.
    pub model: Option<ModelCheck>,
}

#[derive(Serialize)]
struct MismatchOut<'a> {
    key: &'a str,
    expected: &'a [usize],
    found: &'a [usize],
}

#[derive(Serialize)]
struct ReportOut<'a> {
    clean: bool,
    applied: usize,
    missing: &'a [String],
    unexpected: &'a [String],
    mismatched: Vec<MismatchOut<'a>>,
    errors: &'a [String],
    ignored: usize,
}

fn serialize_report<S: Serializer>(
    report: &LoadReport,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    ReportOut {
        clean: report.is_clean(),
        applied: report.applied.len(),
        missing: &report.missing,
        unexpected: &report.unexpected,
        mismatched: report
            .mismatched
            .iter()
            .map(|m| MismatchOut {
                key: &m.key,
                expected: &m.expected,
                found: &m.found,
            })
            .collect(),
        errors: &report.errors,
        ignored: report.ignored.len(),
    }
    .serialize(s)
}

fn format_of(path: &Path) -> Result<CheckpointFormat> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("safetensors") => return Ok(CheckpointFormat::Safetensors),
        Some("pth" | "pt" | "ckpt" | "bin") => return Ok(CheckpointFormat::Pytorch),
        _ => {}
    }
    // Sniff: a zip archive (torch ≥ 1.6) or a pickle (legacy) is PyTorch, else try safetensors.
    use std::io::Read;
    let mut head = [0u8; 4];
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let n = file.read(&mut head).map_err(|e| Error::io(path, e))?;
    Ok(match &head[..n] {
        [b'P', b'K', 3, 4] | [0x80, ..] => CheckpointFormat::Pytorch,
        _ => CheckpointFormat::Safetensors,
    })
}

/// The encoder variant (`ResNet38` or `Cnn`) that every key starts with after `outer`.
fn encoder_prefix<'a, I: Iterator<Item = &'a String>>(keys: I, outer: &str) -> Option<String> {
    let mut found: Option<String> = None;
    for key in keys {
        let rest = key.strip_prefix(outer)?;
        let first = rest.split('.').next()?;
        match &found {
            None => found = Some(first.to_string()),
            Some(f) if f == first => {}
            Some(_) => return None,
        }
    }
    found.filter(|f| f == "ResNet38" || f == "Cnn")
}

fn last_dim(keys: &BTreeMap<String, Vec<usize>>, key: &str) -> Option<usize> {
    keys.get(key).and_then(|s| s.last().copied())
}

fn head_info(keys: &BTreeMap<String, Vec<usize>>, name: &str) -> Option<HeadInfo> {
    let prefix = format!("{name}.");
    if !keys.keys().any(|k| k.starts_with(&prefix)) {
        return None;
    }
    let fc1 = keys.get(&format!("{prefix}fc1.weight"));
    let fc2 = keys.get(&format!("{prefix}fc2.weight"));
    Some(HeadInfo {
        name: name.to_string(),
        input: fc1.and_then(|s| s.first().copied()),
        hidden: fc1.and_then(|s| s.get(1).copied()),
        output: fc2.and_then(|s| s.get(1).copied()),
    })
}

/// Finds the run an accrue checkpoint belongs to: an `experiment.toml` in the file's
/// directory or its parent (`<run>/final.safetensors`, `<run>/stages/<i>-<name>.safetensors`).
///
/// # Errors
/// An experiment file that exists but cannot be read.
pub fn run_provenance(checkpoint: &Path) -> Result<Option<RunProvenance>> {
    let abs = std::fs::canonicalize(checkpoint).unwrap_or_else(|_| checkpoint.to_path_buf());
    if let Some(run) = RunDir::of_checkpoint(&abs) {
        let experiment = run.experiment();
        let text = std::fs::read_to_string(&experiment).map_err(|e| Error::io(&experiment, e))?;
        let sha256 = accrue::eval::report::sha256_tag(text.as_bytes());
        let parsed = match ExperimentConfig::parse(&text) {
            Ok(cfg) => Some(cfg),
            Err(e) => {
                tracing::warn!(file = %experiment.display(), error = %e, "not an accrue experiment file");
                None
            }
        };
        return Ok(Some(RunProvenance {
            experiment,
            sha256,
            name: parsed.as_ref().map(|c| c.name.clone()),
            preset: parsed.as_ref().map(|c| c.encoder.preset),
            num_classes: parsed.as_ref().and_then(|c| c.encoder.num_classes),
        }));
    }
    Ok(None)
}

/// Describes a checkpoint: format, tensor and parameter counts, layout (encoder only or
/// student with its heads), the run it belongs to and, when `config` is given, the result of
/// loading it strictly into that model (safetensors: as the trainer loads an initial model,
/// [`load_student_or_encoder`]; PyTorch: with the PANNs key map). A mismatch is not an
/// error: it is reported in [`CheckpointInfo::model`] (`loaded: false` and the report).
///
/// # Errors
/// A missing or unreadable file, a malformed header / pickle, an invalid configuration.
pub fn checkpoint_info(
    path: &Path,
    config: Option<&AnyEncoderConfig>,
    device: &Device,
) -> Result<CheckpointInfo> {
    std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    let run = run_provenance(path)?;
    let info = match format_of(path)? {
        CheckpointFormat::Safetensors => safetensors_info(path, config, device)?,
        CheckpointFormat::Pytorch => pytorch_info(path, config, device)?,
    };
    Ok(CheckpointInfo { run, ..info })
}

fn safetensors_info(
    path: &Path,
    config: Option<&AnyEncoderConfig>,
    device: &Device,
) -> Result<CheckpointInfo> {
    let keys = safetensors_keys(path)?;
    let parameters = keys.values().map(|s| s.iter().product::<usize>()).sum();
    let is_student = keys.keys().any(|k| k.starts_with("encoder."));
    let (layout, architecture, enc_prefix) = if is_student {
        let arch = encoder_prefix(
            keys.keys().filter(|k| k.starts_with("encoder.")),
            "encoder.",
        );
        let prefix = arch.as_ref().map(|a| format!("encoder.{a}."));
        (Layout::Student, arch, prefix)
    } else {
        match encoder_prefix(keys.keys(), "") {
            Some(arch) => {
                let prefix = format!("{arch}.");
                (Layout::Encoder, Some(arch), Some(prefix))
            }
            None => (Layout::Other, None, None),
        }
    };
    let (embedding_dim, num_classes) = match &enc_prefix {
        Some(p) => (
            last_dim(&keys, &format!("{p}fc1.weight")),
            last_dim(&keys, &format!("{p}fc_audioset.weight")),
        ),
        None => (None, None),
    };
    let heads = ["head_av", "head_at"]
        .iter()
        .filter_map(|h| head_info(&keys, h))
        .collect();
    let model = match config {
        None => None,
        Some(cfg) => {
            let plain = device.clone().without_autodiff();
            let skeleton = Student::new(build(cfg, &plain)?);
            let skeleton_params = skeleton.num_params();
            let trainable = skeleton.encoder.trainable_params();
            Some(match load_student_or_encoder(skeleton, path, &plain) {
                Ok((student, report)) => ModelCheck {
                    loaded: true,
                    num_params: student.num_params(),
                    trainable_params: trainable,
                    report,
                },
                Err(ContinualError::Encoder(EncoderError::CheckpointMismatch {
                    report, ..
                })) => ModelCheck {
                    loaded: false,
                    num_params: skeleton_params,
                    trainable_params: trainable,
                    report: *report,
                },
                Err(e) => return Err(e.into()),
            })
        }
    };
    Ok(CheckpointInfo {
        path: path.to_path_buf(),
        format: CheckpointFormat::Safetensors,
        tensors: keys.len(),
        parameters,
        ignored: 0,
        top_level_key: None,
        layout,
        architecture,
        embedding_dim,
        num_classes,
        heads,
        run: None,
        model,
    })
}

fn pytorch_info(
    path: &Path,
    config: Option<&AnyEncoderConfig>,
    device: &Device,
) -> Result<CheckpointInfo> {
    // Released PANNs checkpoints nest the state dict under `model`; others are a plain one.
    let (reader, top_level_key) = match PytorchReader::with_top_level_key(path, "model") {
        Ok(r) => (r, Some("model".to_string())),
        Err(nested) => match PytorchReader::new(path) {
            Ok(r) => (r, None),
            Err(plain) => {
                return Err(EncoderError::CheckpointRead {
                    path: path.to_path_buf(),
                    detail: format!("not a PyTorch checkpoint: {plain} (under `model`: {nested})"),
                }
                .into());
            }
        },
    };
    let mut tensors = 0;
    let mut parameters = 0;
    let mut ignored = 0;
    let mut shapes = BTreeMap::new();
    for (name, t) in reader.tensors() {
        if name.ends_with("num_batches_tracked") {
            ignored += 1;
            continue;
        }
        tensors += 1;
        parameters += t.num_elements();
        shapes.insert(name.clone(), t.shape().to_vec());
    }
    // PyTorch linear weights are [out, in].
    let first_dim = |k: &str| shapes.get(k).and_then(|s: &Vec<usize>| s.first().copied());
    // PANNs names: ResNet-38 has `resnet.layer*`, the ConvBlock CNNs `conv_block2…`.
    let architecture = if shapes.keys().any(|k| k.starts_with("resnet.")) {
        Some("ResNet38".to_string())
    } else if shapes.keys().any(|k| k.starts_with("conv_block2.")) {
        Some("Cnn".to_string())
    } else {
        None
    };
    let embedding_dim = first_dim("fc1.weight");
    let num_classes = first_dim("fc_audioset.weight");
    let model = match config {
        None => None,
        Some(cfg) => {
            let encoder = build(cfg, device)?;
            let num_params = encoder.num_params();
            let trainable_params = encoder.trainable_params();
            let options = LoadOptions {
                top_level_key: top_level_key.clone(),
                remaps: encoder.pytorch_key_remaps(),
                ..Default::default()
            }
            .allow_partial(true);
            let (_, report) = load_pytorch(encoder, path, &options)?;
            Some(ModelCheck {
                loaded: report.is_clean(),
                num_params,
                trainable_params,
                report,
            })
        }
    };
    Ok(CheckpointInfo {
        path: path.to_path_buf(),
        format: CheckpointFormat::Pytorch,
        tensors,
        parameters,
        ignored,
        top_level_key,
        layout: Layout::PytorchStateDict,
        architecture,
        embedding_dim,
        num_classes,
        heads: Vec::new(),
        run: None,
        model,
    })
}

/// `12,345,678`.
fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn opt(v: Option<usize>) -> String {
    v.map_or_else(|| "?".into(), |v| v.to_string())
}

impl fmt::Display for CheckpointInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let format = match self.format {
            CheckpointFormat::Safetensors => "safetensors",
            CheckpointFormat::Pytorch => "PyTorch",
        };
        write!(
            f,
            "{}: {format}, {} tensors, {} parameters",
            self.path.display(),
            self.tensors,
            thousands(self.parameters)
        )?;
        if self.ignored > 0 {
            write!(
                f,
                " ({} num_batches_tracked counters ignored)",
                self.ignored
            )?;
        }
        writeln!(f)?;
        let encoder = format!(
            "{}embedding {}, {} classes",
            self.architecture
                .as_ref()
                .map(|a| format!("{a}, "))
                .unwrap_or_default(),
            opt(self.embedding_dim),
            opt(self.num_classes)
        );
        match self.layout {
            Layout::Encoder => writeln!(f, "layout: encoder only ({encoder})")?,
            Layout::Student => {
                write!(f, "layout: student: encoder.* ({encoder})")?;
                for h in &self.heads {
                    write!(
                        f,
                        " + {}.* ({} → {} → {})",
                        h.name,
                        opt(h.input),
                        opt(h.hidden),
                        opt(h.output)
                    )?;
                }
                if self.heads.is_empty() {
                    write!(f, ", no heads")?;
                }
                writeln!(f)?;
            }
            Layout::PytorchStateDict => writeln!(
                f,
                "layout: PyTorch state dict{} ({encoder})",
                self.top_level_key
                    .as_ref()
                    .map(|k| format!(" under `{k}`"))
                    .unwrap_or_default()
            )?,
            Layout::Other => writeln!(f, "layout: not an accrue encoder or student")?,
        }
        if let Some(run) = &self.run {
            writeln!(
                f,
                "run: {} ({}, {}){}",
                run.name.as_deref().unwrap_or("?"),
                run.experiment.display(),
                run.sha256,
                run.preset
                    .as_ref()
                    .map(|p| format!(
                        "; encoder preset {p}{}",
                        run.num_classes
                            .map(|n| format!(", {n} classes"))
                            .unwrap_or_default()
                    ))
                    .unwrap_or_default()
            )?;
        }
        if let Some(m) = &self.model {
            writeln!(
                f,
                "model: {} parameters ({} trainable in the encoder); {}",
                thousands(m.num_params),
                thousands(m.trainable_params),
                if m.loaded {
                    "loads strictly"
                } else {
                    "DOES NOT MATCH"
                }
            )?;
            write!(f, "load report: {}", m.report)?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// accrue import
// ---------------------------------------------------------------------------------------------

/// Converts a released PANNs PyTorch checkpoint (zip or legacy pickle, state dict under
/// `model`) into accrue's own safetensors for the encoder of `config` (the encoder-only layout
/// that an experiment's `[encoder] checkpoint` and `accrue info` read). Written atomically.
///
/// Strict unless `allow_partial`: a mismatch fails with
/// [`EncoderError::CheckpointMismatch`], whose report lists every missing, unexpected and
/// mis-shaped key, and nothing is written. With `allow_partial` the matching tensors are
/// written (the rest keep their initialisation) and the report is returned.
///
/// # Errors
/// An invalid configuration, a missing or unreadable input, a mismatch (strict), an output
/// equal to the input, an unwritable output.
pub fn import_pytorch(
    input: &Path,
    config: &AnyEncoderConfig,
    out: &Path,
    allow_partial: bool,
    device: &Device,
) -> Result<LoadReport> {
    let same = match (std::fs::canonicalize(input), std::fs::canonicalize(out)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same {
        return Err(Error::Other(format!(
            "refusing to overwrite the input {} with the output",
            input.display()
        )));
    }
    let encoder = build(config, device)?;
    let options = LoadOptions::panns(encoder.pytorch_key_remaps()).allow_partial(allow_partial);
    let (encoder, report) = load_pytorch(encoder, input, &options)?;
    if !report.is_clean() {
        tracing::warn!(input = %input.display(), %report, "partial import");
    }
    save_safetensors(&encoder, out)?;
    tracing::info!(
        input = %input.display(),
        out = %out.display(),
        tensors = report.applied.len(),
        parameters = encoder.num_params(),
        "checkpoint imported"
    );
    Ok(report)
}
