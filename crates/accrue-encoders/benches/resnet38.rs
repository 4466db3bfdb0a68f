//! ResNet-38 (full size, PANNs preset) on the default CPU backend: eval forward and one
//! training step (forward + BCE loss + backward + Adam) on a batch of 10-s clips at 32 kHz.
//!
//! The workload is batch 8; on a small machine set a smaller one:
//!     ACCRUE_BENCH_BATCH=2 cargo bench -p accrue-encoders --bench resnet38
//! `benches/resnet38_torch.py` times the same workload in PyTorch with the same threads.
//! On libtorch (build with the facade's `tch` feature, torch venv active):
//!     LIBTORCH_USE_PYTORCH=1 ACCRUE_BENCH_DEVICE=tch \
//!         cargo bench --workspace --features accrue/tch --bench resnet38

use accrue_encoders::ResNet38Config;
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Distribution, Tensor};
use criterion::{Criterion, criterion_group, criterion_main};

fn batch() -> usize {
    std::env::var("ACCRUE_BENCH_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8)
}

/// The device of `ACCRUE_BENCH_DEVICE` (`flex`, the default, or `tch`).
fn base_device() -> Device {
    match std::env::var("ACCRUE_BENCH_DEVICE").as_deref() {
        #[cfg(feature = "tch")]
        Ok("tch") =>
        {
            #[allow(deprecated)]
            Device::libtorch()
        }
        Ok("flex") | Err(_) => Device::default(),
        Ok(other) => panic!(
            "ACCRUE_BENCH_DEVICE={other}: not compiled in (flex; tch with --features accrue/tch)"
        ),
    }
}

fn bench(c: &mut Criterion) {
    let b = batch();
    let mut group = c.benchmark_group(format!("resnet38_b{b}x10s"));
    group.sample_size(10);

    let device = base_device();
    device.seed(0);
    let model = ResNet38Config::panns().init(&device).valid();
    let wave = Tensor::<2>::random([b, 320_000], Distribution::Uniform(-0.5, 0.5), &device);
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
