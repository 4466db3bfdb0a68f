//! The ResNet-38 timing workload, shared by `benches/resnet38.rs` (criterion, on the CPU;
//! `scripts/bench_ratio.sh` runs it against `benches/resnet38_torch.py`) and the GPU check's
//! timing test (`accrue-continual/tests/gpu_check.rs`): a batch of random clips at 32 kHz, eval
//! forward and one training step (forward + loss + backward + Adam, lr 1e-4).
//!
//! - `ACCRUE_BENCH_PRESET`: `resnet38` (the default: the PANNs preset, 73.8 M trainable
//!   parameters) or `resnet38-tiny` (the main job's encoder).
//! - `ACCRUE_BENCH_LOSS`: `bce` (the default: BCE over 527 classes, how PANNs trains) or `ce`
//!   (cross-entropy over 16 classes, how the main job trains task A).
//!
//! Each closure ends by reading a value back to the host, which waits for the device: on an
//! asynchronous backend the time of a call is the time of the work.
#![allow(dead_code)]

use accrue_encoders::{Preset, ResNet38Config};
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Distribution, FloatDType, Int, Tensor};

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

/// The preset of `ACCRUE_BENCH_PRESET`.
///
/// # Panics
/// A preset other than the two ResNet-38 ones.
pub fn preset() -> Preset {
    match std::env::var("ACCRUE_BENCH_PRESET").as_deref() {
        Ok("resnet38") | Err(_) => Preset::ResNet38,
        Ok("resnet38-tiny") => Preset::ResNet38Tiny,
        Ok(other) => panic!("ACCRUE_BENCH_PRESET={other}: resnet38 or resnet38-tiny"),
    }
}

/// The encoder of [`preset`] (the tiny one with [`CE_CLASSES`] classes).
pub fn config() -> ResNet38Config {
    match preset() {
        Preset::ResNet38Tiny => ResNet38Config::tiny().with_num_classes(CE_CLASSES),
        _ => ResNet38Config::panns(),
    }
}

/// Classes of the cross-entropy loss (the main job's task A).
pub const CE_CLASSES: usize = 16;

/// Whether `ACCRUE_BENCH_LOSS` asks for cross-entropy (`ce`) rather than BCE (`bce`).
///
/// # Panics
/// Any other value.
pub fn cross_entropy() -> bool {
    match std::env::var("ACCRUE_BENCH_LOSS").as_deref() {
        Ok("bce") | Err(_) => false,
        Ok("ce") => true,
        Ok(other) => panic!("ACCRUE_BENCH_LOSS={other}: bce or ce"),
    }
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
    let model = config().init(device).valid();
    move || {
        let out = model.forward(wave.clone());
        out.embedding.into_data().num_elements()
    }
}

/// One training step (forward + loss of `ACCRUE_BENCH_LOSS` + backward + Adam); returns the
/// loss.
pub fn train_step(device: &Device, batch: usize, seconds: usize) -> impl FnMut() -> f32 {
    let wave = wave(batch, seconds, device);
    let cfg = config();
    let ce = cross_entropy();
    let classes = if ce { CE_CLASSES } else { cfg.num_classes };
    // BCE: random multi-hot targets; cross-entropy: one random class per clip, one-hot.
    let target = if ce {
        let idx = Tensor::<2>::random(
            [batch, 1],
            Distribution::Uniform(0.0, classes as f64),
            device,
        )
        .floor();
        let cols = Tensor::<1, Int>::arange(0..classes as i64, device)
            .float()
            .reshape([1, classes]);
        idx.equal(cols).float()
    } else {
        Tensor::<2>::random([batch, classes], Distribution::Bernoulli(0.5), device)
    };
    let ad = device.clone().autodiff();
    let mut model = cfg.init(&ad);
    let mut optim = AdamConfig::new().init();
    let (wave, target) = (wave.autodiff(), target.autodiff());
    move || {
        let out = model.forward(wave.clone());
        let loss = if ce {
            (target.clone() * log_softmax(out.logits.clone(), 1))
                .sum_dim(1)
                .mean()
                .neg()
        } else {
            let p = out.clipwise();
            let one = target.ones_like();
            (target.clone() * p.clone().log() + (one.clone() - target.clone()) * (one - p).log())
                .mean()
                .neg()
        };
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(1e-4, model.clone(), grads);
        loss.into_scalar::<f32>()
    }
}
