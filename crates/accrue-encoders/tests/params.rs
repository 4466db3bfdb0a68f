//! Parameter counts and initialisation (method-spec §1.5–1.6). Counting reads parameter
//! shapes only: Burn initialises lazily, so no 74 M-parameter tensor is materialised.

mod common;

use accrue_encoders::aisfx::AISFX_HEAD_CLASSES;
use accrue_encoders::{
    AisfxConfig, AnyEncoderConfig, AudioBody, AudioEncoder, Cnn6Config, Cnn10Config, Cnn14Config,
    ResNet38Config,
};
use burn::module::Module;
use burn::tensor::{Device, Tensor};
use common::to_vec;

#[test]
fn resnet38_panns_has_73_783_247_trainable_parameters() {
    let model = ResNet38Config::panns().init(&Device::default());
    assert_eq!(model.trainable_params(), 73_783_247);
    // `num_params` also counts the frozen front end (2·513·1024 + 513·64, method-spec §1.6)
    // and the BN running statistics (mean + var of every BN channel, bn0 included).
    let bn_channels = 64
        + 2 * 64
        + 3 * 2 * 64
        + (4 * 2 + 1) * 128
        + (6 * 2 + 1) * 256
        + (3 * 2 + 1) * 512
        + 2 * 2048;
    let running = 2 * bn_channels;
    assert_eq!(model.num_params(), 73_783_247 + 1_083_456 + running);
    assert_eq!(model.embedding_dim(), 2048);
    assert_eq!(model.num_classes(), 527);
}

#[test]
fn cnn_family_parameter_counts_match_panns() {
    let device = Device::default();
    // Counts of the PyTorch references (tools/goldens/encoders.py, Cnn14 = panns_hear.Cnn14).
    assert_eq!(
        Cnn14Config::panns().init(&device).trainable_params(),
        80_753_615
    );
    assert_eq!(
        Cnn10Config::panns().init(&device).trainable_params(),
        5_219_279
    );
    assert_eq!(
        Cnn6Config::panns().init(&device).trainable_params(),
        4_837_455
    );
}

#[test]
fn aisfx_released_has_the_checkpoint_shapes() {
    let model = AisfxConfig::released().init(&Device::default());
    assert_eq!(model.embedding_dim(), 512);
    assert_eq!(model.fc.len(), AISFX_HEAD_CLASSES.len());
    // Embedding net ≈ 4.69 M (offline-data.md); with the heads the checkpoint's 6,212,922
    // parameters (running statistics excluded).
    let running = 2 * 2 * (64 + 128 + 256 + 512);
    assert_eq!(model.num_params() - running, 6_212_922);
    assert_eq!(model.embedding_net.num_params() - running, 4_686_144);
}

#[test]
fn tiny_presets_are_small_and_run() {
    let device = Device::default();
    let wave = Tensor::<2>::zeros([2, 32_000], &device);
    for (name, config) in [
        (
            "resnet38 tiny",
            AnyEncoderConfig::ResNet38(ResNet38Config::tiny().with_num_classes(16)),
        ),
        (
            "cnn14 tiny",
            AnyEncoderConfig::Cnn(Cnn14Config::tiny().with_num_classes(16)),
        ),
        (
            "cnn10 tiny",
            AnyEncoderConfig::Cnn(Cnn10Config::tiny().with_num_classes(16)),
        ),
        (
            "cnn6 tiny",
            AnyEncoderConfig::Cnn(Cnn6Config::tiny().with_num_classes(16)),
        ),
    ] {
        let model = config.init(&device);
        let n = model.trainable_params();
        println!("{name}: {n} trainable parameters");
        assert!(n < 350_000, "{name} has {n} parameters");
        let out = model.valid().forward(wave.clone());
        assert_eq!(out.embedding.dims(), [2, model.embedding_dim()]);
        assert_eq!(out.logits.dims(), [2, 16]);
    }
    let aisfx = AisfxConfig::tiny(10).init(&device);
    println!("aisfx tiny: {} parameters", aisfx.num_params());
    let out = aisfx.forward_features(Tensor::zeros([2, 1, 100, 96], &device));
    assert_eq!(out.embedding.dims(), [2, 64]);
    assert_eq!(out.logits.dims(), [2, 10]);
}

#[test]
fn fresh_init_follows_panns() {
    let device = Device::default();
    let model = ResNet38Config::tiny().init(&device);
    // Zero-init residual: every basic block's bn2 weight is 0, bn1's is 1.
    for block in model.resnet.layer1.iter().chain(&model.resnet.layer4) {
        assert!(to_vec(block.bn2.gamma.val()).iter().all(|&g| g == 0.0));
        assert!(to_vec(block.bn1.gamma.val()).iter().all(|&g| g == 1.0));
    }
    // Xavier-uniform: |w| ≤ sqrt(6 / (fan_in + fan_out)), and not all zero.
    let w = to_vec(model.fc1.weight.val());
    let bound = (6.0f32 / (64.0 + 64.0)).sqrt();
    assert!(w.iter().all(|x| x.abs() <= bound) && w.iter().any(|x| x.abs() > bound / 2.0));
    let conv = to_vec(
        model
            .conv_block1
            .conv2
            .as_ref()
            .expect("conv2")
            .weight
            .val(),
    );
    let bound = (6.0f32 / (8.0 * 9.0 + 8.0 * 9.0)).sqrt();
    assert!(conv.iter().all(|x| x.abs() <= bound));
    // Zero bias.
    let b = to_vec(model.fc_audioset.bias.as_ref().expect("bias").val());
    assert!(b.iter().all(|&x| x == 0.0));
}

#[test]
fn train_mode_dropout_and_eval_determinism() {
    let device = Device::default().autodiff();
    let model = Cnn10Config::tiny().with_num_classes(4).init(&device);
    let wave = Tensor::<2>::random(
        [3, 16_000],
        burn::tensor::Distribution::Uniform(-0.5, 0.5),
        &device,
    );
    // Train mode: the dropped embedding differs from the un-dropped one.
    let out = AudioEncoder::forward(&model, wave.clone());
    let diff = (out.embedding.clone() - out.embedding_dropped.clone())
        .abs()
        .sum()
        .into_scalar::<f32>();
    assert!(diff > 0.0, "dropout inactive in training mode");
    // Eval mode: embedding_dropped == embedding and two runs agree.
    let eval = model.valid();
    let wave = wave.inner();
    let a = eval.forward(wave.clone());
    let b = eval.forward(wave);
    assert_eq!(to_vec(a.embedding.clone()), to_vec(a.embedding_dropped));
    assert_eq!(to_vec(a.embedding), to_vec(b.embedding));
}

#[test]
fn invalid_configs_are_rejected() {
    assert!(
        ResNet38Config::panns()
            .with_layers([3, 0, 6, 3])
            .validate()
            .is_err()
    );
    assert!(
        ResNet38Config::panns()
            .with_dropout_final(1.0)
            .validate()
            .is_err()
    );
    let mut empty = Cnn14Config::panns();
    empty.widths.clear();
    assert!(empty.validate().is_err());
    assert!(
        AisfxConfig::new(vec![3])
            .with_default_head(1)
            .validate()
            .is_err()
    );
    assert!(ResNet38Config::panns().validate().is_ok());
}
