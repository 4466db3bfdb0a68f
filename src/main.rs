//! The `accrue` command-line tool.

use std::path::PathBuf;
use std::time::Instant;

use accrue::audio::decode::decode_file;
use accrue::audio::frontend::FrontEndConfig;
use accrue::audio::resample::resample;
use accrue::backend::{BackendKind, device};
use anyhow::{Context, Result};
use burn::tensor::{Tensor, TensorData};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "accrue",
    version,
    about = "Continual multi-modal pre-training of audio encoders"
)]
struct Cli {
    /// Compute backend (must be compiled in).
    #[arg(long, value_enum, default_value = "flex", global = true)]
    backend: BackendKind,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a continual pre-training experiment (a TOML file: encoder + list of stages).
    Train {
        /// The experiment file (see configs/).
        experiment: PathBuf,
        /// Continue from the last checkpoint of an interrupted run.
        #[arg(long)]
        resume: bool,
    },
    /// Decode audio files, resample them to 32 kHz and compute PANNs log-mel features.
    Frontend {
        /// Audio files (WAV, FLAC, OGG/Vorbis, MP3, ...).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let device = device(cli.backend).map_err(anyhow::Error::msg)?;
    match cli.command {
        Command::Train { experiment, resume } => {
            let summary = accrue::continual::run_experiment_config(
                &accrue::continual::ExperimentConfig::load(&experiment)
                    .with_context(|| format!("loading {}", experiment.display()))?,
                &device,
                resume,
            )
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
                let t0 = Instant::now();
                let decoded = decode_file(&file).with_context(|| "decoding failed")?;
                let t_dec = t0.elapsed();
                let wave = resample(&decoded.samples, decoded.sample_rate, cfg.sample_rate)?;
                let t_res = t0.elapsed() - t_dec;
                let n = wave.len();
                let x = Tensor::<2>::from_data(TensorData::new(wave, [1, n]), &device);
                let logmel = front.logmel(x);
                let dims = logmel.dims();
                let v: Vec<f32> = logmel
                    .into_data()
                    .try_to_vec()
                    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
                let t_all = t0.elapsed();
                let mean = v.iter().sum::<f32>() / v.len() as f32;
                let max = v.iter().copied().fold(f32::MIN, f32::max);
                println!(
                    "{}: {} ch {} Hz {:.2} s -> {} samples at 32 kHz -> log-mel {:?} \
                     (mean {:.1} dB, max {:.1} dB); decode {:.1} ms, resample {:.1} ms, total {:.1} ms",
                    file.display(),
                    decoded.channels,
                    decoded.sample_rate,
                    decoded.duration_s(),
                    n,
                    dims,
                    mean,
                    max,
                    t_dec.as_secs_f64() * 1e3,
                    t_res.as_secs_f64() * 1e3,
                    t_all.as_secs_f64() * 1e3
                );
            }
        }
    }
    Ok(())
}
