//! Frame-level embeddings (`AnyEncoder::frame_embeddings`): the frames the scene embedding pools.
//! The scene embedding is proven against PyTorch (`golden.rs`); here the frames are proven to
//! be what it pools: `relu(fc1(max_t + mean_t of the trunk's frequency-averaged frames))`
//! equals the scene embedding, and `frame_embeddings` is `relu(fc1(·))` of each such frame.

use accrue_encoders::{AnyEncoderConfig, AudioEncoder, Cnn10Config, Cnn14Config, ResNet38Config};
use burn::module::Module;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Distribution, Tensor};

fn max_abs(t: Tensor<2>) -> f32 {
    t.abs().max().into_scalar()
}

fn check(cfg: AnyEncoderConfig, samples: usize, pooling: usize) {
    let device = Device::flex();
    device.seed(11);
    let enc = cfg.init(&device).valid();
    assert_eq!(enc.time_pooling(), pooling);
    let wave = Tensor::<2>::random([3, samples], Distribution::Uniform(-0.5, 0.5), &device);
    let scene = enc.forward(wave.clone()).embedding;
    let trunk = enc.trunk(enc.front_end().forward(wave.clone()));
    let [b, d, t, _] = trunk.dims();
    let pre: Tensor<3> = trunk.mean_dim(3).squeeze_dim::<3>(3).swap_dims(1, 2); // [B, T', D]
    let pooled: Tensor<2> =
        pre.clone().max_dim(1).squeeze_dim::<2>(1) + pre.clone().mean_dim(1).squeeze_dim::<2>(1);
    let fc1 = match &enc {
        accrue_encoders::AnyEncoder::ResNet38(m) => m.fc1.clone(),
        accrue_encoders::AnyEncoder::Cnn(m) => m.fc1.clone(),
    };
    let rebuilt = relu(fc1.forward(pooled));
    let scale = max_abs(scene.clone());
    assert!(scale > 0.0, "a dead embedding proves nothing");
    let err = max_abs(rebuilt - scene);
    assert!(
        err <= 1e-6 * scale.max(1.0),
        "scene vs pooled frames: {err} (scale {scale})"
    );

    let frames = enc.frame_embeddings(wave);
    let [fb, ft, fd] = frames.embeddings.dims();
    assert_eq!((fb, ft, fd), (b, t, d));
    // Front-end frames: 1 + ⌊L/hop⌋ (centred STFT); P of them per output frame.
    assert_eq!(ft, (1 + samples / 320) / pooling);
    let direct = relu(fc1.forward(pre));
    let err = max_abs((frames.embeddings.clone() - direct).reshape([b * t, d]));
    assert!(
        err == 0.0,
        "frame embeddings are fc1 + ReLU of the trunk frames: {err}"
    );
    assert!((frames.timing.hop_seconds() - pooling as f64 * 0.01).abs() < 1e-12);
    let c0 = (pooling as f64 - 1.0) / 2.0 * 0.01;
    assert!((frames.timing.centre_seconds(0) - c0).abs() < 1e-12);
    assert!(
        (frames.timing.centre_seconds(2)
            - frames.timing.centre_seconds(1)
            - frames.timing.hop_seconds())
        .abs()
            < 1e-12
    );
}

#[test]
fn resnet38_frames_are_what_the_scene_embedding_pools() {
    check(
        AnyEncoderConfig::ResNet38(ResNet38Config::tiny()),
        48_000,
        32,
    );
}

#[test]
fn cnn_frames_are_what_the_scene_embedding_pools() {
    // Cnn14 (6 blocks, last without pooling): 32; Cnn10 tiny (4 blocks, last pooling): 16.
    check(AnyEncoderConfig::Cnn(Cnn14Config::tiny()), 40_000, 32);
    check(AnyEncoderConfig::Cnn(Cnn10Config::tiny()), 40_000, 16);
}
