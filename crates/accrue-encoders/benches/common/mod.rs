//! The full-size ResNet-38 timing workload, shared by `benches/resnet38.rs` (criterion, on the
//! CPU) and the GPU check's timing test (`accrue-continual/tests/gpu_check.rs`): the PANNs
//! preset (73.8 M trainable parameters) on a batch of random clips at 32 kHz, eval forward and
//! one training step (forward + BCE + backward + Adam, lr 1e-4).
//!
//! Each closure ends by reading a value back to the host, which waits for the device: on an
//! asynchronous backend the time of a call is the time of the work.
#![allow(dead_code)]

use accrue_encoders::ResNet38Config;
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Distribution, FloatDType, Tensor};

/// The float type of `ACCRUE_BENCH_DTYPE` (`f32`, the default; `bf16`; `f16`) made `device`'s
/// default: every tensor, weights and optimiser state included, in that type (Burn has no
/// mixed-precision autocast). A device keeps the type it was first configured with.
///
/// # Panics
/// An unknown `ACCRUE_BENCH_DTYPE`, or a type the device refuses.
pub fn with_dtype(mut device: Device) -> Device {
    let dtype = match std::env::var("ACCRUE_BENCH_DTYPE").as_deref() {
        Ok("f32") | Err(_) => return device,
        Ok("bf16") => FloatDType::BF16,
        Ok("f16") => FloatDType::F16,
        Ok(other) => panic!("ACCRUE_BENCH_DTYPE={other}: f32, bf16 or f16"),
    };
    if let Err(e) = device.configure(dtype)
        && device.settings().float_dtype != dtype
    {
        panic!("{dtype:?} on {device:?}: {e:?}");
    }
    device
}

/// `ACCRUE_BENCH_BATCH` (default 8) and `ACCRUE_BENCH_SECONDS` (default 10).
pub fn batch_and_seconds() -> (usize, usize) {
    (
        env_or("ACCRUE_BENCH_BATCH", 8),
        env_or("ACCRUE_BENCH_SECONDS", 10),
    )
}

pub fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn wave(batch: usize, seconds: usize, device: &Device) -> Tensor<2> {
    device.seed(0);
    Tensor::<2>::random(
        [batch, seconds * 32_000],
        Distribution::Uniform(-0.5, 0.5),
        device,
    )
}

/// The eval forward of a `[batch, seconds · 32000]` batch; returns the embedding's size.
pub fn forward_eval(device: &Device, batch: usize, seconds: usize) -> impl FnMut() -> usize {
    let wave = wave(batch, seconds, device);
    let model = ResNet38Config::panns().init(device).valid();
    move || {
        let out = model.forward(wave.clone());
        out.embedding.into_data().num_elements()
    }
}

/// One training step (forward + BCE over 527 classes + backward + Adam); returns the loss.
pub fn train_step(device: &Device, batch: usize, seconds: usize) -> impl FnMut() -> f32 {
    let wave = wave(batch, seconds, device);
    let target = Tensor::<2>::random([batch, 527], Distribution::Bernoulli(0.5), device);
    let ad = device.clone().autodiff();
    let mut model = ResNet38Config::panns().init(&ad);
    let mut optim = AdamConfig::new().init();
    let (wave, target) = (wave.autodiff(), target.autodiff());
    move || {
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
    }
}
