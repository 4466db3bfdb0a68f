//! ResNet-38 (full size, PANNs preset) on the default CPU backend: eval forward and one
//! training step (forward + BCE loss + backward + Adam) on a batch of 10-s clips at 32 kHz.
//! `ACCRUE_BENCH_PRESET=resnet38-tiny ACCRUE_BENCH_LOSS=ce` times the main job's encoder with
//! task A's loss instead (`benches/common`). `scripts/bench_ratio.sh` runs this bench and the
//! PyTorch side interleaved and prints the ratios.
//!
//! The workload is batch 8; on a small machine set a smaller one:
//!     ACCRUE_BENCH_BATCH=2 cargo bench -p accrue-encoders --bench resnet38
//! `benches/resnet38_torch.py` times the same workload in PyTorch with the same threads.
//! On libtorch (build with the facade's `tch` feature, torch venv active):
//!     LIBTORCH_USE_PYTORCH=1 ACCRUE_BENCH_DEVICE=tch \
//!         cargo bench --workspace --features accrue/tch --bench resnet38
//! On a GPU (`BURN_DEVICE` picks the backend; `scripts/gpu_check.sh` times the same workload,
//! `benches/common`, from its one test binary):
//!     BURN_DEVICE=vulkan ACCRUE_BENCH_DEVICE=default ACCRUE_BENCH_BATCH=32 \
//!         cargo bench --profile dev --features burn/vulkan -p accrue-encoders --bench resnet38
//! `ACCRUE_BENCH_SECONDS` sets the clip length (default 10) and `ACCRUE_BENCH_DTYPE=bf16` (or
//! `f16`) makes that the device's default float type (`common::with_dtype`).

mod common;

use burn::tensor::Device;
use criterion::{Criterion, criterion_group, criterion_main};

/// The device of `ACCRUE_BENCH_DEVICE`: `flex` (the default), `tch`, or `default` (Burn's
/// default device, which `BURN_DEVICE` chooses among the backends compiled in).
fn backend() -> Device {
    match std::env::var("ACCRUE_BENCH_DEVICE").as_deref() {
        #[cfg(feature = "tch")]
        Ok("tch") =>
        {
            #[allow(deprecated)]
            Device::libtorch()
        }
        Ok("flex") | Err(_) => Device::flex(),
        Ok("default") => Device::default(),
        Ok(other) => panic!(
            "ACCRUE_BENCH_DEVICE={other}: not compiled in (flex, default; tch with --features \
             accrue/tch)"
        ),
    }
}

fn bench(c: &mut Criterion) {
    let (b, seconds) = common::batch_and_seconds();
    let loss = if common::cross_entropy() { "ce" } else { "bce" };
    let mut group = c.benchmark_group(format!(
        "{}_{loss}_b{b}x{seconds}s",
        common::preset().name()
    ));
    group.sample_size(10);
    let device = common::with_dtype(backend());
    let mut forward = common::forward_eval(&device, b, seconds);
    group.bench_function("forward_eval", |bencher| bencher.iter(&mut forward));
    let mut step = common::train_step(&device, b, seconds);
    group.bench_function("train_step_adam", |bencher| bencher.iter(&mut step));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
