//! ResNet-38 (full size, PANNs preset) on the default CPU backend: eval forward and one
//! training step (forward + BCE loss + backward + Adam) on a batch of 10-s clips at 32 kHz.
//!
//! The workload is batch 8; on a small machine set a smaller one:
//!     ACCRUE_BENCH_BATCH=2 cargo bench -p accrue-encoders --bench resnet38
//! `benches/resnet38_torch.py` times the same workload in PyTorch with the same threads.
//! On libtorch (build with the facade's `tch` feature, torch venv active):
//!     LIBTORCH_USE_PYTORCH=1 ACCRUE_BENCH_DEVICE=tch \
//!         cargo bench --workspace --features accrue/tch --bench resnet38
//! On a GPU (what `scripts/gpu_check.sh` runs; `BURN_DEVICE` picks the backend):
//!     BURN_DEVICE=vulkan ACCRUE_BENCH_DEVICE=default ACCRUE_BENCH_BATCH=32 \
//!         cargo bench --profile dev --features burn/vulkan -p accrue-encoders --bench resnet38
//! `ACCRUE_BENCH_SECONDS` sets the clip length (default 10) and `ACCRUE_BENCH_DTYPE=bf16` (or
//! `f16`) makes that the device's default float type: every tensor, weights and optimiser
//! state included, in that type (Burn has no mixed-precision autocast).

use accrue_encoders::ResNet38Config;
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Distribution, FloatDType, Tensor};
use criterion::{Criterion, criterion_group, criterion_main};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The device of `ACCRUE_BENCH_DEVICE`: `flex` (the default), `tch`, or `default` (Burn's
/// default device, which `BURN_DEVICE` chooses among the backends compiled in), with the float
/// type of `ACCRUE_BENCH_DTYPE` (`f32`, the default; `bf16`; `f16`).
fn base_device() -> Device {
    let mut device = backend();
    let dtype = match std::env::var("ACCRUE_BENCH_DTYPE").as_deref() {
        Ok("f32") | Err(_) => return device,
        Ok("bf16") => FloatDType::BF16,
        Ok("f16") => FloatDType::F16,
        Ok(other) => panic!("ACCRUE_BENCH_DTYPE={other}: f32, bf16 or f16"),
    };
    if let Err(e) = device.configure(dtype) {
        // Configured once per device: the eval and train-step halves share it.
        if device.settings().float_dtype != dtype {
            panic!("{dtype:?} on {device:?}: {e:?}");
        }
    }
    device
}

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
    let (b, seconds) = (
        env_or("ACCRUE_BENCH_BATCH", 8),
        env_or("ACCRUE_BENCH_SECONDS", 10),
    );
    let mut group = c.benchmark_group(format!("resnet38_b{b}x{seconds}s"));
    group.sample_size(10);

    let device = base_device();
    device.seed(0);
    let model = ResNet38Config::panns().init(&device).valid();
    let wave = Tensor::<2>::random(
        [b, seconds * 32_000],
        Distribution::Uniform(-0.5, 0.5),
        &device,
    );
    group.bench_function("forward_eval", |bencher| {
        bencher.iter(|| {
            let out = model.forward(wave.clone());
            out.embedding.into_data()
        })
    });

    let ad = base_device().autodiff();
    let mut model = ResNet38Config::panns().init(&ad);
    let mut optim = AdamConfig::new().init();
    let wave = wave.clone().autodiff();
    let target = Tensor::<2>::random([b, 527], Distribution::Bernoulli(0.5), &device).autodiff();
    group.bench_function("train_step_adam", |bencher| {
        bencher.iter(|| {
            let out = model.forward(wave.clone());
            let p = out.clipwise();
            let one = target.ones_like();
            let loss = (target.clone() * p.clone().log()
                + (one.clone() - target.clone()) * (one - p).log())
            .mean()
            .neg();
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(1e-4, model.clone(), grads);
            loss.into_scalar::<f32>()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
