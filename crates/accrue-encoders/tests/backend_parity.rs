//! Full-size PANNs ResNet-38 (73.8 M parameters) on the device under test against `flex`, on
//! the same weights and clips: the eval forward and one training step's loss and gradients.
//!
//! `flex` is proven against PyTorch at full size (`tests/full_size.rs`) and at small size on
//! forward and gradients (`tests/golden.rs`); this carries that proof to another backend at the
//! size the small goldens cannot reach. The device under test is `Device::default()`, so run
//! it with a GPU backend compiled in and chosen, as `scripts/gpu_check.sh` does:
//!
//! ```sh
//! BURN_DEVICE=vulkan cargo test --features burn/vulkan -p accrue-encoders \
//!     --test backend_parity -- --ignored --nocapture
//! ```
//! `ACCRUE_PARITY_BATCH` (default 2) and `ACCRUE_PARITY_SECONDS` (default 10) size the batch
//! (software Vulkan: use 1 × 2 s).
//!
//! Tolerances (max abs error over the max abs reference value): embedding and clipwise output
//! 1e-3; loss 1e-4; gradients 1e-2 (they sum over every frame of every clip, so a different
//! reduction order moves them most). Dropout and SpecAugment are off: backends draw different
//! random numbers from one seed.

mod common;

use accrue_audio::frontend::FrontEndConfig;
use accrue_encoders::{ResNet38, ResNet38Config};
use burn::module::Module;
use burn::tensor::{Device, Distribution, Tensor};
use common::{assert_close, bce};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn config() -> ResNet38Config {
    ResNet38Config::new(FrontEndConfig::panns_32k().with_spec_augment(None))
        .with_dropout_block(0.0)
        .with_dropout_stage(0.0)
        .with_dropout_final(0.0)
}

/// Loss and three gradients (first conv, a deep BatchNorm scale, `fc1`), flattened, of one
/// BCE step.
fn train_step(model: &ResNet38, wave: Tensor<2>, target: Tensor<2>) -> Vec<(String, Tensor<1>)> {
    let loss = bce(model.forward(wave).clipwise(), target);
    let grads = loss.backward();
    let conv = model
        .conv_block1
        .conv1
        .weight
        .val()
        .grad(&grads)
        .expect("grad");
    let bn = model.resnet.layer3[0]
        .bn1
        .gamma
        .val()
        .grad(&grads)
        .expect("grad");
    let fc1 = model.fc1.weight.val().grad(&grads).expect("grad");
    vec![
        ("loss".into(), loss.inner()),
        ("conv_block1.conv1.weight".into(), conv.flatten::<1>(0, 3)),
        ("resnet.layer3.0.bn1.weight".into(), bn),
        ("fc1.weight".into(), fc1.flatten::<1>(0, 1)),
    ]
}

#[test]
#[ignore = "full size: run by scripts/gpu_check.sh on the device under test (BURN_DEVICE)"]
fn full_size_resnet38_matches_flex() {
    let (b, seconds) = (
        env_or("ACCRUE_PARITY_BATCH", 2),
        env_or("ACCRUE_PARITY_SECONDS", 10),
    );
    let flex = Device::flex();
    let device = Device::default();
    let (ad_flex, ad) = (flex.clone().autodiff(), device.clone().autodiff());
    flex.seed(0);
    let reference = config().init(&ad_flex);
    let tested = reference.clone().fork(&ad);
    let wave = Tensor::<2>::random(
        [b, seconds * 32_000],
        Distribution::Uniform(-0.5, 0.5),
        &flex,
    );
    let target = Tensor::<2>::random([b, 527], Distribution::Bernoulli(0.5), &flex);
    let to = |t: &Tensor<2>, d: &Device| Tensor::<2>::from_data(t.to_data(), d);

    // Eval forward.
    let want = reference.valid().forward(wave.clone());
    let got = tested.valid().forward(to(&wave, &device));
    let what = format!("eval forward {b} × {seconds} s on {device:?}");
    assert_close(
        &format!("{what}: clipwise"),
        got.clipwise(),
        want.clipwise(),
        f32::INFINITY,
        1e-3,
    );
    assert_close(
        &format!("{what}: embedding"),
        got.embedding,
        want.embedding,
        f32::INFINITY,
        1e-3,
    );

    // One training step (BatchNorm in training mode: batch statistics).
    let want = train_step(&reference, to(&wave, &ad_flex), to(&target, &ad_flex));
    let got = train_step(&tested, to(&wave, &ad), to(&target, &ad));
    for ((name, g), (_, w)) in got.into_iter().zip(want) {
        let tol = if name == "loss" { 1e-4 } else { 1e-2 };
        let what = format!("train step {b} × {seconds} s on {device:?}: {name}");
        assert_close(&what, g, w, f32::INFINITY, tol);
    }
}
