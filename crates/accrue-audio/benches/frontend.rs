//! Hot paths of the audio layer.
//!
//! - `logmel/fft` and `logmel/kernels`: PANNs log-mel of a batch of 32 × 10-s clips at 32 kHz
//!   on the default CPU backend (flex), the two STFT implementations.
//! - `decode_resample`: decode + mono + resample-to-32 kHz of the real freedesktop recordings
//!   (fetched by scripts/fetch_audio_fixtures.sh; the bench is skipped without them).
//!
//! The same workloads in PyTorch/torchlibrosa and librosa: tools/bench/frontend_reference.py.
//! Results and ratios: docs/benchmarks.md.

use std::path::PathBuf;

use accrue_audio::frontend::{FrontEndConfig, StftImpl};
use burn::tensor::{Device, Tensor, TensorData};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const BATCH: usize = 32;
const LEN: usize = 320_000;

fn batch(device: &Device) -> Tensor<2> {
    let data: Vec<f32> = (0..BATCH * LEN)
        .map(|i| {
            let t = (i % LEN) as f32 / 32_000.0;
            0.3 * (2.0 * std::f32::consts::PI * (220.0 + (i / LEN) as f32 * 40.0) * t).sin()
                + 0.01 * (((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
        })
        .collect();
    Tensor::from_data(TensorData::new(data, [BATCH, LEN]), device)
}

fn logmel(c: &mut Criterion) {
    let device = Device::default();
    let x = batch(&device);
    let mut group = c.benchmark_group("logmel");
    group.sample_size(10);
    group.throughput(Throughput::Elements(BATCH as u64));
    for (name, imp) in [("fft", StftImpl::Fft), ("kernels", StftImpl::Kernels)] {
        let front = FrontEndConfig::panns_32k()
            .with_stft_impl(imp)
            .init(&device);
        group.bench_function(format!("{name}/32x10s"), |b| {
            b.iter(|| {
                let y = front.logmel(x.clone());
                // Force the computation: flex is eager but keep the result observable.
                y.into_data()
            })
        });
    }
    group.finish();
}

fn real_files() -> Vec<PathBuf> {
    let root = std::env::var_os("ACCRUE_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data"));
    let dir = root.join("sound-theme-freedesktop/stereo");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "oga") && !p.is_symlink())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

fn decode_resample(c: &mut Criterion) {
    let files = real_files();
    if files.is_empty() {
        eprintln!("decode_resample: skipped, run scripts/fetch_audio_fixtures.sh first");
        return;
    }
    let seconds: f64 = files
        .iter()
        .map(|f| {
            accrue_audio::decode_file(f)
                .map(|d| d.duration_s())
                .unwrap_or(0.0)
        })
        .sum();
    let mut group = c.benchmark_group("decode_resample");
    group.sample_size(10);
    group.bench_function(format!("{}files_{seconds:.1}s_to_32k", files.len()), |b| {
        b.iter(|| {
            for f in &files {
                let y = accrue_audio::load(f, 32_000).expect("decodes");
                std::hint::black_box(y);
            }
        })
    });
    group.finish();
}

criterion_group!(benches, logmel, decode_resample);
criterion_main!(benches);
