//! The main job: the paper's experiment grid in miniature, on InstrumentAVT-mini
//! (`docs/benchmark-data.md`), from the frozen-tower embeddings to the report.
//!
//! 1. **Data**: derived manifests of the set (absolute paths; a seeded subset for the smoke
//!    profile) under `<out>/data/`.
//! 2. **Supervision**: the real MiniLM text tower and EfficientNet-Lite0 image tower embed every
//!    caption, prompt and image once (on-disk cache), written as the trainer's tables.
//! 3. **Grid**: task A (instrument-family classification) trained once from scratch and shared
//!    by every seed (the paper starts every run from one released checkpoint); per seed, A → AT
//!    and A → AV → AT with fine-tuning, LwF, CaSSLe and Mod-X, and MT-WC (joint AV + AT from A). Wav2CLIP (A → AV, λ = 0) is the AV stage of the fine-tuning A → AV → AT run and
//!    CLAP (A → AT, λ = 0) the fine-tuning A → AT run: the same computations, run once. Runs are
//!    `accrue train` experiments (resumable); with `jobs > 1` they run as child processes.
//! 4. **Evaluation** of every stage model (cached next to it): linear probe (HEAR grid),
//!    zero-shot by text and by image, retrieval both ways, the CL matrix.
//! 5. **Report**: the paper's three tables and the CL table (mean ± std over seeds), plots.

mod evaluate;
mod grid;
mod report;

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

pub use evaluate::{EvalContext, StageScores, evaluate_stage_model};
pub use grid::{Job, Method, Sequence, plan, run_job};
pub use report::{DemoReport, write_report};

use accrue_suite::{Error, Result};

/// How long and how faithful the run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// A few steps per stage on a small subset: proves the pipeline end to end (CI).
    Smoke,
    /// The default: the whole grid in ≤ 20 minutes on 2 CPU cores.
    Quick,
    /// Longer stages, early stopping and the paper's learning rates.
    Full,
}

/// The settings a profile implies.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Encoder preset of the experiment files.
    pub encoder: accrue_encoders::Preset,
    /// Hidden width of the projection heads.
    pub head_hidden: usize,
    /// Epochs of stage A / AV / AT (and of the MT-WC stage).
    pub epochs: [usize; 3],
    /// Early-stopping patience (`None`: train every epoch).
    pub patience: Option<usize>,
    /// Clips per batch.
    pub batch_size: usize,
    /// Learning rates of stage A / AV / AT.
    pub lr: [f64; 3],
    /// Keep at most this many clips per split and subset (`None`: all).
    pub max_clips: Option<usize>,
    /// Maximum epochs of each linear-probe grid point.
    pub probe_epochs: usize,
    /// λ of the distillation term.
    pub lambda: f64,
}

impl Profile {
    /// The profile's settings.
    pub fn settings(self) -> Settings {
        match self {
            Profile::Smoke => Settings {
                encoder: accrue_encoders::Preset::ResNet38Tiny,
                head_hidden: 32,
                epochs: [1, 1, 1],
                patience: None,
                batch_size: 8,
                lr: [1e-3, 1e-3, 1e-3],
                max_clips: Some(16),
                probe_epochs: 6,
                lambda: 0.3,
            },
            Profile::Quick => Settings {
                encoder: accrue_encoders::Preset::ResNet38Tiny,
                head_hidden: 256,
                epochs: [16, 4, 4],
                patience: None,
                batch_size: 32,
                lr: [1e-3, 1e-3, 1e-3],
                max_clips: None,
                probe_epochs: 150,
                lambda: 0.3,
            },
            Profile::Full => Settings {
                encoder: accrue_encoders::Preset::ResNet38Tiny,
                head_hidden: 256,
                epochs: [60, 30, 30],
                patience: Some(5),
                batch_size: 32,
                lr: [1e-3, 1e-3, 1e-4],
                max_clips: None,
                probe_epochs: 500,
                lambda: 0.3,
            },
        }
    }
}

/// What to run, where.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// The prepared InstrumentAVT-mini set (`scripts/setup_mini.sh`).
    pub data_dir: PathBuf,
    /// The fetched towers (`scripts/fetch_towers.sh`).
    pub towers_dir: PathBuf,
    /// Results folder (runs, caches, report).
    pub out_dir: PathBuf,
    /// Run length.
    pub profile: Profile,
    /// Seeds (one full grid each).
    pub seeds: Vec<u64>,
    /// Methods of the sequences (default: the paper's four, plus replay and WiSE-FT in the
    /// smoke profile).
    pub methods: Vec<Method>,
    /// Also the A → AT → AV order (every method) and the joint upper bound (default: in the
    /// smoke profile only, which must keep them working; the timed profiles run them on demand
    /// until the speed work buys their time).
    pub more_sequences: bool,
    /// Train task A once per seed (`runs/seed<s>/a`, stage seed `s·1000`) instead of once for
    /// every seed (`runs/a`), so that the intervals over seeds contain task A's variation.
    pub a_per_seed: bool,
    /// Epochs of stage A / AV / AT instead of the profile's (e.g. longer multi-modal stages,
    /// so that the positive control can show forgetting).
    pub epochs: Option<[usize; 3]>,
    /// Parallel runs (child processes of `exe`); 1 runs everything in this process.
    pub jobs: usize,
    /// The `accrue` binary for child processes (needed when `jobs > 1`).
    pub exe: Option<PathBuf>,
    /// Backend name for provenance.
    pub backend: String,
}

impl DemoOptions {
    /// Defaults for a repository checkout: `data/mini`, `data/towers`, `results/`.
    pub fn new(profile: Profile) -> Self {
        Self {
            data_dir: PathBuf::from("data/mini"),
            towers_dir: PathBuf::from("data/towers"),
            out_dir: PathBuf::from("results"),
            profile,
            seeds: vec![0, 1, 2],
            // The methods beyond the paper run in the smoke test (they must keep working); the
            // timed profiles run the paper's grid until the speed work buys their time.
            methods: if profile == Profile::Smoke {
                Method::ALL.to_vec()
            } else {
                Method::PAPER.to_vec()
            },
            more_sequences: profile == Profile::Smoke,
            a_per_seed: false,
            epochs: None,
            jobs: 1,
            exe: None,
            backend: "flex".into(),
        }
    }
}

/// Wall-clock time of each phase, seconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// Derived manifests.
    pub data: f64,
    /// Tower embeddings (cache misses only).
    pub supervision: f64,
    /// Training and evaluation of the grid.
    pub grid: f64,
    /// Tables and plots.
    pub report: f64,
}

/// Runs the whole benchmark and writes the report to `<out>/report.md` (plus JSON artifacts
/// and plots); returns it.
///
/// # Errors
/// Missing data or towers (with the script to run), training, evaluation or I/O errors.
pub fn run(opts: &DemoOptions, device: &burn::tensor::Device) -> Result<DemoReport> {
    let mut settings = opts.profile.settings();
    if let Some(epochs) = opts.epochs {
        if epochs.contains(&0) {
            return Err(Error::Other(format!(
                "--epochs {epochs:?}: every stage needs at least one epoch"
            )));
        }
        settings.epochs = epochs;
    }
    // Experiment files hold absolute paths (relative ones resolve against the file's folder).
    std::fs::create_dir_all(&opts.out_dir).map_err(|e| Error::io(&opts.out_dir, e))?;
    let mut opts = opts.clone();
    opts.out_dir = std::fs::canonicalize(&opts.out_dir).map_err(|e| Error::io(&opts.out_dir, e))?;
    let opts = &opts;
    let mut timings = Timings::default();
    let t = Instant::now();
    let data = evaluate::prepare_data(opts, &settings)?;
    timings.data = t.elapsed().as_secs_f64();
    let t = Instant::now();
    evaluate::prepare_supervision(opts, &data, device)?;
    timings.supervision = t.elapsed().as_secs_f64();
    tracing::info!(seconds = timings.supervision, "supervision tables ready");

    let t = Instant::now();
    let jobs = grid::plan(opts, &settings, &data)?;
    grid::run_jobs(opts, &jobs, device)?;
    timings.grid = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let report = report::write_report(opts, &settings, &jobs, &timings)?;
    timings.report = t.elapsed().as_secs_f64();
    tracing::info!(?timings, "demo finished");
    Ok(report)
}

/// One grid job run by a child process (`accrue demo-job <job.json>`): trains the job's
/// experiment (resuming if interrupted) and evaluates each of its stage models.
///
/// # Errors
/// As [`run`].
pub fn run_job_file(path: &Path, device: &burn::tensor::Device) -> Result<()> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let job: Job = serde_json::from_str(&text)
        .map_err(|e| Error::Other(format!("{}: {e}", path.display())))?;
    grid::run_job(&job, device)
}
