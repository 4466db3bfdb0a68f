//! The `accrue` command-line tool.

use std::path::PathBuf;
use std::time::Instant;

use accrue::audio::frontend::FrontEndConfig;
use accrue::backend::{BackendKind, device};
use accrue::continual::RunDir;
use accrue::encoders::Preset;
use accrue_cli::tools::{
    EmbedOptions, TowerChoice, checkpoint_info, embed_manifest, encode_files, import_pytorch,
};
use accrue_demo::{DemoOptions, Method, Profile};
use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "accrue",
    version,
    about = "Continual multi-modal pre-training of audio encoders"
)]
struct Cli {
    /// Compute backend (must be compiled in): flex, tch, wgpu or cuda.
    #[arg(long, default_value = "flex", global = true, value_parser = parse_backend)]
    backend: BackendKind,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum DemoProfile {
    Smoke,
    Quick,
    Full,
}

#[derive(Subcommand)]
enum Command {
    /// Run a continual pre-training experiment (a TOML file: encoder + list of stages).
    Train {
        /// The experiment file (see configs/).
        experiment: PathBuf,
        /// Continue from the last checkpoint of an interrupted run.
        #[arg(long, conflicts_with = "fresh")]
        resume: bool,
        /// Delete a previous run in the output folder (checkpoints, log, models) and start
        /// again; without it, a new run refuses to overwrite one.
        #[arg(long)]
        fresh: bool,
        /// Data-parallel replicas (CUDA: devices 0..N; other backends: N turns on the one
        /// device). Contrastive negatives and BatchNorm statistics are per replica.
        #[arg(long, default_value_t = 1)]
        replicas: usize,
    },
    /// The main job: the paper's grid in miniature on InstrumentAVT-mini (train, evaluate,
    /// report). Prepare the data first with scripts/setup_mini.sh and scripts/fetch_towers.sh
    /// (./run.sh does both).
    Demo {
        /// Run length: smoke (a few steps, CI), quick (≤ 20 min on 2 cores), full.
        #[arg(long, value_enum, default_value = "quick")]
        profile: DemoProfile,
        /// Shorthand for `--profile full`.
        #[arg(long)]
        full: bool,
        /// Number of seeds (0, 1, …).
        #[arg(long, default_value_t = 3)]
        seeds: u64,
        /// Methods of the sequences (comma-separated: finetune, lwf, cassle, modx, replay,
        /// wise_ft). Default: the paper's four; the smoke profile adds replay and wise_ft.
        #[arg(long, value_delimiter = ',')]
        methods: Option<Vec<String>>,
        /// Also the A → AT → AV order (every method) and the joint upper bound (one stage on
        /// A, AV and AT together). The smoke profile always runs them.
        #[arg(long)]
        more_sequences: bool,
        /// Train task A once per seed (each seed's sequences start from its own task-A model),
        /// not once for all seeds, so the 95 % intervals contain task A's variation.
        #[arg(long)]
        task_a_per_seed: bool,
        /// Epochs of stage A, AV and AT instead of the profile's (comma-separated, e.g.
        /// `16,8,8`).
        #[arg(long, value_delimiter = ',')]
        epochs: Option<Vec<usize>>,
        /// Parallel runs (single-threaded child processes).
        #[arg(long, default_value_t = 2)]
        jobs: usize,
        /// The prepared set.
        #[arg(long, default_value = "data/mini")]
        data: PathBuf,
        /// The fetched towers.
        #[arg(long, default_value = "data/towers")]
        towers: PathBuf,
        /// Results folder.
        #[arg(long, default_value = "results")]
        out: PathBuf,
    },
    /// Evaluate every stage model of a run directory on a declared suite (TOML/JSON, see the
    /// `accrue_suite::suite` docs) and write one JSON evaluation artifact.
    Eval {
        /// The run directory (holds `experiment.toml` and `stages/`).
        run: PathBuf,
        /// The evaluation suite.
        #[arg(long)]
        suite: PathBuf,
        /// Method label of the run (default: the last stage's strategy).
        #[arg(long)]
        method: Option<String>,
        /// Output file (default: `<run>/eval.json`).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Evaluate the stage models that exist (a run still training); without it a
        /// missing stage model is an error.
        #[arg(long)]
        partial: bool,
    },
    /// Render Markdown tables (mean ± std over the runs of each method) and plots from
    /// evaluation artifacts.
    Report {
        /// Artifacts written by `accrue eval` or `accrue demo`.
        #[arg(required = true)]
        artifacts: Vec<PathBuf>,
        /// Output folder (report.md and plots).
        #[arg(long, default_value = "report")]
        out: PathBuf,
    },
    /// One run of `accrue demo` (used by its child processes).
    #[command(hide = true)]
    DemoJob {
        /// The job file written by `accrue demo`.
        job: PathBuf,
    },
    /// Decode audio files, resample them to 32 kHz and compute PANNs log-mel features.
    Frontend {
        /// Audio files (WAV, FLAC, OGG/Vorbis, MP3, ...).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Build the trainer's supervision table for a dataset manifest with a frozen tower:
    /// MiniLM embeds the captions, EfficientNet-Lite0 the image files (cached on disk, so a
    /// second run computes nothing).
    Embed {
        /// The dataset manifest (JSON Lines or CSV).
        #[arg(long)]
        manifest: PathBuf,
        /// The tower.
        #[arg(long, value_enum)]
        tower: TowerChoice,
        /// The fetched towers (scripts/fetch_towers.sh).
        #[arg(long, default_value = "data/towers")]
        towers_dir: PathBuf,
        /// The embedding cache (default: cache/towers beside --out).
        #[arg(long)]
        cache: Option<PathBuf>,
        /// The supervision table to write (JSON).
        #[arg(long)]
        out: PathBuf,
        /// Only the clips of this split (train, valid, test).
        #[arg(long)]
        split: Option<String>,
        /// Inputs per tower batch.
        #[arg(long, default_value_t = 32)]
        batch_size: usize,
    },
    /// Describe a checkpoint (.safetensors or PyTorch .pth): tensors, parameters, layout, the
    /// run it belongs to; with --preset, load it strictly into that model and print the report.
    Info {
        /// The checkpoint.
        checkpoint: PathBuf,
        /// Load it into this encoder and report what matched (resnet38, resnet38-tiny, cnn14,
        /// cnn14-tiny).
        #[arg(long, value_parser = parse_preset)]
        preset: Option<Preset>,
        /// Classes of the encoder's fc_audioset (default: the preset's, 527).
        #[arg(long, requires = "preset")]
        num_classes: Option<usize>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Embed audio files with an encoder or stage model: each whole clip (decoded, resampled
    /// to the model's rate, zero-padded to 1 s when shorter), as `accrue eval` embeds it.
    /// Writes a safetensors array file: `embedding` [files, D] and, when the model has them,
    /// `g_AV` / `g_AT` head outputs and `logits`; the metadata lists the files in row order.
    Encode {
        /// The model (.safetensors of accrue or a PANNs .pth).
        model: PathBuf,
        /// Audio files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The model's encoder (default: the run folder's experiment.toml beside the model).
        #[arg(long, value_parser = parse_preset)]
        preset: Option<Preset>,
        /// The array file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Convert a released PANNs PyTorch checkpoint (zip or legacy pickle) into accrue's own
    /// safetensors. Strict: any missing, unexpected or mis-shaped key fails with the full report.
    Import {
        /// The PyTorch checkpoint (state dict under `model`, as PANNs releases it).
        input: PathBuf,
        /// The encoder it holds (resnet38, resnet38-tiny, cnn14, cnn14-tiny).
        #[arg(long, value_parser = parse_preset)]
        preset: Preset,
        /// Classes of the encoder's fc_audioset (default: the preset's, 527).
        #[arg(long)]
        num_classes: Option<usize>,
        /// The safetensors file to write.
        #[arg(long)]
        out: PathBuf,
        /// Write what matched (the rest keeps its initialisation) and print the report.
        #[arg(long)]
        allow_partial: bool,
    },
}

fn parse_backend(s: &str) -> std::result::Result<BackendKind, String> {
    s.parse()
}

fn parse_preset(s: &str) -> std::result::Result<Preset, String> {
    s.parse()
        .map_err(|e: accrue::encoders::EncoderError| e.to_string())
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("info,symphonia=warn,symphonia_format_riff=warn")
            }),
        )
        .with_writer(std::io::stderr)
        // No colour codes in logs that go to a file or a pipe.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let device = device(cli.backend).map_err(anyhow::Error::msg)?;
    match cli.command {
        Command::Train {
            experiment,
            resume,
            fresh,
            replicas,
        } => {
            let devices =
                accrue::backend::devices(cli.backend, replicas).map_err(anyhow::Error::msg)?;
            // The shipped methods and accrue-methods' (replay, wise_ft).
            let registry = accrue_methods::registry()?;
            let config = accrue::continual::ExperimentConfig::load_with(&experiment, &registry)
                .with_context(|| format!("loading {}", experiment.display()))?;
            // Everything is validated before anything of a previous run is touched.
            config
                .check_inputs()
                .with_context(|| format!("checking {}", experiment.display()))?;
            let run = RunDir::new(&config.output_dir);
            if fresh {
                if let Some(found) = run.previous_run() {
                    tracing::warn!(run = %run.root().display(), %found, "--fresh: deleting the previous run");
                }
                run.clear_previous_run()?;
            } else if !resume {
                // Before the experiment's copy in the run folder is replaced.
                run.refuse_overwrite()?;
            }
            let summary = accrue::continual::Experiment::new(config)
                .registry(registry)
                .devices(&devices)
                .run(resume)
                .with_context(|| format!("running {}", experiment.display()))?;
            println!("run {}:", summary.name);
            for stage in &summary.stages {
                println!(
                    "  stage {} ({}): {} epochs, best epoch {} (loss {:.4})",
                    stage.name, stage.strategy, stage.epochs, stage.best_epoch, stage.best_loss
                );
            }
            println!("final model: {}", summary.final_model.display());
            println!("metrics log: {}", summary.metrics.display());
        }
        Command::Demo {
            profile,
            full,
            seeds,
            methods,
            more_sequences,
            task_a_per_seed,
            epochs,
            jobs,
            data,
            towers,
            out,
        } => {
            let profile = if full { DemoProfile::Full } else { profile };
            let mut opts = DemoOptions::new(match profile {
                DemoProfile::Smoke => Profile::Smoke,
                DemoProfile::Quick => Profile::Quick,
                DemoProfile::Full => Profile::Full,
            });
            opts.data_dir = data;
            opts.towers_dir = towers;
            opts.out_dir = out;
            opts.seeds = (0..seeds).collect();
            if let Some(methods) = methods {
                opts.methods = methods
                    .iter()
                    .map(|m| {
                        Method::parse(m).ok_or_else(|| {
                            anyhow::anyhow!(
                                "unknown method `{m}` (finetune, lwf, cassle, modx, replay, wise_ft)"
                            )
                        })
                    })
                    .collect::<Result<_>>()?;
            }
            opts.more_sequences |= more_sequences;
            opts.a_per_seed = task_a_per_seed;
            if let Some(e) = epochs {
                let [a, av, at] = e[..] else {
                    anyhow::bail!("--epochs takes three numbers (A, AV, AT), got {e:?}");
                };
                opts.epochs = Some([a, av, at]);
            }
            opts.jobs = jobs.max(1);
            opts.exe = std::env::current_exe().ok();
            opts.backend = cli.backend.name().to_string();
            let t0 = Instant::now();
            let report = accrue_demo::run(&opts, &device).context("accrue demo")?;
            println!("{}", report.markdown);
            println!(
                "report: {} ({} artifacts, {} plots); {:.0} s",
                report.path.display(),
                report.artifacts.len(),
                report.plots.len(),
                t0.elapsed().as_secs_f64()
            );
        }
        Command::Eval {
            run,
            suite,
            method,
            out,
            partial,
        } => {
            let suite = accrue_suite::EvalSuite::load(&suite)?;
            let backend = cli.backend.name().to_string();
            let art = accrue_suite::evaluate_run(
                &run,
                &suite,
                method.as_deref(),
                &backend,
                partial,
                &device,
            )
            .with_context(|| format!("evaluating {}", run.display()))?;
            let out = out.unwrap_or_else(|| RunDir::new(&run).eval_artifact());
            art.write(&out)?;
            for st in &art.stages {
                println!("stage {}: {} scores", st.stage, st.scores.len());
                for s in &st.scores {
                    if s.metric == "R@5" || s.metric == "mAP@10" {
                        continue;
                    }
                    println!(
                        "  {:?} {} {}{} = {:.4}",
                        s.protocol,
                        s.task,
                        s.metric,
                        s.direction
                            .as_ref()
                            .map(|d| format!(" {d}"))
                            .unwrap_or_default(),
                        s.value
                    );
                }
            }
            println!("artifact: {}", out.display());
        }
        Command::Report { artifacts, out } => {
            let runs = artifacts
                .iter()
                .map(|p| {
                    accrue::eval::report::EvalArtifact::read(p)
                        .with_context(|| format!("reading {}", p.display()))
                })
                .collect::<Result<Vec<_>>>()?;
            // `accrue eval` writes eval.json into the run directory, next to metrics.jsonl.
            let curves: Vec<(String, PathBuf)> = artifacts
                .iter()
                .zip(&runs)
                .filter_map(|(p, r)| {
                    let log = RunDir::new(p.parent()?).metrics();
                    log.is_file()
                        .then(|| (format!("{} ({})", r.method, r.run), log))
                })
                .collect();
            let report = accrue_suite::report::render(&runs, &curves, &out)?;
            println!("{}", report.markdown);
            println!("report: {}", out.join("report.md").display());
        }
        Command::DemoJob { job } => {
            accrue_demo::run_job_file(&job, &device)
                .with_context(|| format!("running {}", job.display()))?;
        }
        Command::Frontend { files } => {
            let cfg = FrontEndConfig::panns_32k();
            let front = cfg.init(&device);
            println!(
                "front end: {} Hz, n_fft {}, hop {}, {} Slaney mels {}–{} Hz, backend {:?}",
                cfg.sample_rate,
                cfg.n_fft,
                cfg.hop_length,
                cfg.n_mels,
                cfg.f_min,
                cfg.f_max,
                cli.backend
            );
            for file in files {
                let s = frontend_stats(&file, &front, &device)
                    .with_context(|| format!("{}", file.display()))?;
                println!(
                    "{}: {} ch {} Hz {:.2} s -> {} samples at 32 kHz -> log-mel [1, 1, {}, {}] \
                     (mean {:.1} dB, max {:.1} dB); decode {:.1} ms, resample {:.1} ms, total {:.1} ms",
                    file.display(),
                    s.channels,
                    s.sample_rate,
                    s.samples as f64 / f64::from(s.sample_rate.max(1)),
                    s.resampled,
                    s.frames,
                    cfg.n_mels,
                    s.mean,
                    s.max,
                    s.t_decode * 1e3,
                    s.t_resample * 1e3,
                    s.t_total * 1e3
                );
            }
            if let Some(kib) = peak_rss_kib() {
                println!("peak memory (resident): {:.1} MiB", kib as f64 / 1024.0);
            }
        }
        Command::Embed {
            manifest,
            tower,
            towers_dir,
            cache,
            out,
            split,
            batch_size,
        } => {
            let mut opts = EmbedOptions::new(manifest, tower, out);
            opts.towers_dir = towers_dir;
            opts.cache_dir = cache;
            opts.split = split;
            opts.batch_size = batch_size.max(1);
            opts.progress = true;
            let summary = embed_manifest(&opts, &device)
                .with_context(|| format!("embedding {}", opts.manifest.display()))?;
            println!(
                "{}: {} rows of {} values ({} computed, {} from the cache {})",
                summary.out.display(),
                summary.rows,
                summary.dim,
                summary.computed,
                summary.rows.saturating_sub(summary.computed),
                summary.cache_dir.display()
            );
            println!("tower: {}", summary.tower);
            println!("tower weights sha256: {}", summary.tower.weights_sha256);
        }
        Command::Encode {
            model,
            files,
            preset,
            out,
        } => {
            let rows = encode_files(&model, &files, preset, &out, &device)
                .with_context(|| format!("embedding with {}", model.display()))?;
            println!("{}: {rows} clips", out.display());
        }
        Command::Info {
            checkpoint,
            preset,
            num_classes,
            json,
        } => {
            let config = preset.map(|p| p.config(num_classes)).transpose()?;
            let info = checkpoint_info(&checkpoint, config.as_ref(), &device)
                .with_context(|| format!("reading {}", checkpoint.display()))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&info)?);
            } else {
                print!("{info}");
                if info.model.is_none()
                    && let Some(run) = &info.run
                    && let Some(p) = &run.preset
                {
                    println!(
                        "(check it against the run's encoder: --preset {p}{})",
                        run.num_classes
                            .map(|n| format!(" --num-classes {n}"))
                            .unwrap_or_default()
                    );
                }
            }
            if let (Some(p), Some(m)) = (preset, &info.model)
                && !m.loaded
            {
                anyhow::bail!(
                    "{} does not load into {}{}",
                    checkpoint.display(),
                    p.name(),
                    num_classes
                        .map(|n| format!(" with {n} classes"))
                        .unwrap_or_default()
                );
            }
        }
        Command::Import {
            input,
            preset,
            num_classes,
            out,
            allow_partial,
        } => {
            let config = preset.config(num_classes)?;
            let report = import_pytorch(&input, &config, &out, allow_partial, &device)
                .with_context(|| format!("importing {} as {}", input.display(), preset.name()))?;
            if report.is_clean() {
                println!(
                    "{} -> {}: {} tensors ({} num_batches_tracked counters ignored)",
                    input.display(),
                    out.display(),
                    report.applied.len(),
                    report.ignored.len()
                );
            } else {
                println!(
                    "{} -> {}: PARTIAL import (unmatched tensors keep their initialisation)",
                    input.display(),
                    out.display()
                );
                print!("{report}");
            }
        }
    }
    Ok(())
}

/// What `accrue frontend` prints for one file.
struct FrontendStats {
    channels: usize,
    sample_rate: u32,
    samples: usize,
    resampled: usize,
    frames: usize,
    mean: f64,
    max: f32,
    t_decode: f64,
    t_resample: f64,
    t_total: f64,
}

/// Decodes, resamples and turns a file into log-mel frames in bounded memory (a streamed
/// decode, a streamed resampler and block-wise frames: the same values as the whole-file
/// functions, see `accrue-audio/tests/stream.rs`), keeping only the statistics.
fn frontend_stats(
    file: &std::path::Path,
    front: &accrue::audio::frontend::FrontEnd,
    device: &burn::tensor::Device,
) -> Result<FrontendStats> {
    use accrue::audio::decode::{DecodeOptions, decode_file_streamed};
    use accrue::audio::frontend::LogMelStream;
    use accrue::audio::resample::StreamResampler;
    let t0 = Instant::now();
    let target = front.config.sample_rate;
    let (mut t_res, mut t_mel) = (0.0f64, 0.0f64);
    let mut sum = 0.0f64;
    let mut count = 0usize;
    let mut max = f32::MIN;
    let mut resampled = 0usize;
    let mut rs: Option<StreamResampler> = None;
    let mut mel = LogMelStream::new(front, 4_096, device)?;
    let mut buf = Vec::new();
    let mut sink = |v: &[f32], _frames: usize| {
        // Accumulated in f64: an f32 sum over hours of frames drifts from the mean.
        sum += v.iter().map(|&x| f64::from(x)).sum::<f64>();
        count += v.len();
        max = v.iter().copied().fold(max, f32::max);
    };
    let info = decode_file_streamed(file, DecodeOptions::default(), 1 << 20, &mut |run, rate| {
        let t = Instant::now();
        let r = match rs.as_mut() {
            Some(r) => r,
            None => rs.insert(StreamResampler::new(rate, target)?),
        };
        buf.clear();
        r.push(run, &mut buf)?;
        resampled += buf.len();
        let t1 = Instant::now();
        t_res += (t1 - t).as_secs_f64();
        mel.push(&buf, &mut sink)?;
        t_mel += t1.elapsed().as_secs_f64();
        Ok(())
    })?;
    if let Some(r) = rs {
        buf.clear();
        let t = Instant::now();
        r.finish(&mut buf)?;
        resampled += buf.len();
        t_res += t.elapsed().as_secs_f64();
        let t = Instant::now();
        mel.push(&buf, &mut sink)?;
        t_mel += t.elapsed().as_secs_f64();
    }
    let t = Instant::now();
    let frames = mel.finish(&mut sink)?;
    t_mel += t.elapsed().as_secs_f64();
    let t_total = t0.elapsed().as_secs_f64();
    Ok(FrontendStats {
        channels: info.channels,
        sample_rate: info.sample_rate,
        samples: info.samples,
        resampled,
        frames,
        mean: sum / count.max(1) as f64,
        max,
        t_decode: (t_total - t_res - t_mel).max(0.0),
        t_resample: t_res,
        t_total,
    })
}

/// Peak resident memory of this process (Linux `VmHWM`), when the system reports it.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
