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

use accrue_audio::frontend::FrontEndConfig;
use accrue_encoders::{ResNet38, ResNet38Config};
use burn::module::Module;
use burn::tensor::{Device, Distribution, Tensor, TensorData};

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

/// Max abs error of `got` against `want`, over `want`'s max abs value.
fn rel_err(got: TensorData, want: TensorData) -> f32 {
    let (g, w) = (
        got.try_to_vec::<f32>().expect("f32"),
        want.try_to_vec::<f32>().expect("f32"),
    );
    assert_eq!(g.len(), w.len());
    let abs = g
        .iter()
        .zip(&w)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(abs.is_finite(), "non-finite values");
    abs / w.iter().map(|v| v.abs()).fold(0.0f32, f32::max).max(1e-12)
}

/// Loss and three gradients (first conv, a deep BatchNorm scale, `fc1`) of one BCE step.
fn train_step(model: &ResNet38, wave: Tensor<2>, target: Tensor<2>) -> Vec<(String, TensorData)> {
    let p = model.forward(wave).clipwise();
    let one = target.ones_like();
    let loss = (target.clone() * p.clone().log() + (one.clone() - target) * (one - p).log())
        .mean()
        .neg();
    let grads = loss.backward();
    let g = |t: Tensor<4>| t.into_data();
    vec![
        ("loss".into(), loss.into_data()),
        (
            "conv_block1.conv1.weight".into(),
            g(model
                .conv_block1
                .conv1
                .weight
                .val()
                .grad(&grads)
                .expect("grad")),
        ),
        (
            "resnet.layer3.0.bn1.weight".into(),
            model.resnet.layer3[0]
                .bn1
                .gamma
                .val()
                .grad(&grads)
                .expect("grad")
                .into_data(),
        ),
        (
            "fc1.weight".into(),
            model
                .fc1
                .weight
                .val()
                .grad(&grads)
                .expect("grad")
                .into_data(),
        ),
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
    let e_clip = rel_err(got.clipwise().into_data(), want.clipwise().into_data());
    let e_emb = rel_err(got.embedding.into_data(), want.embedding.into_data());
    eprintln!(
        "eval forward {b} × {seconds} s on {device:?}: embedding {e_emb:.2e}, clipwise {e_clip:.2e}"
    );
    assert!(
        e_emb <= 1e-3 && e_clip <= 1e-3,
        "eval forward on {device:?}"
    );

    // One training step (BatchNorm in training mode: batch statistics).
    let want = train_step(&reference, to(&wave, &ad_flex), to(&target, &ad_flex));
    let got = train_step(&tested, to(&wave, &ad), to(&target, &ad));
    for ((name, g), (_, w)) in got.into_iter().zip(want) {
        let e = rel_err(g, w);
        let tol = if name == "loss" { 1e-4 } else { 1e-2 };
        eprintln!(
            "train step {b} × {seconds} s on {device:?}: {name} {e:.2e} (tolerance {tol:.0e})"
        );
        assert!(e <= tol, "{name} on {device:?}: {e:.2e} > {tol:.0e}");
    }
}
