//! The project's own checkpoints: safetensors save → load round-trips parameters and BN
//! running statistics exactly.

mod common;

use accrue_encoders::checkpoint::{load_safetensors, save_safetensors};
use accrue_encoders::{Cnn14Config, EncoderError, ResNet38Config};
use burn::module::Module;
use burn::tensor::{Device, Distribution, Tensor};
use common::to_vec;

#[test]
fn safetensors_round_trip_is_exact() {
    let device = Device::default().autodiff();
    let model = ResNet38Config::tiny().with_num_classes(8).init(&device);
    // One training-mode forward so the running statistics move away from 0 / 1.
    let wave = Tensor::<2>::random([2, 16_000], Distribution::Uniform(-0.5, 0.5), &device);
    let _ = model.forward(wave.clone());
    let model = model.valid();
    let dir = std::env::temp_dir().join(format!("accrue-encoders-rt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("tiny.safetensors");
    save_safetensors(&model, &path).expect("save");

    let fresh = ResNet38Config::tiny()
        .with_num_classes(8)
        .init(&Device::default());
    let (loaded, report) = load_safetensors(fresh, &path, false).expect("strict load");
    assert!(report.is_clean(), "{report}");
    let rm = to_vec(model.conv_block1.bn1.running_var.value());
    assert!(
        rm.iter().any(|&v| (v - 1.0).abs() > 1e-3),
        "running var did not move"
    );
    assert_eq!(rm, to_vec(loaded.conv_block1.bn1.running_var.value()));
    let wave = wave.inner();
    let a = to_vec(model.forward(wave.clone()).embedding);
    let b = to_vec(loaded.forward(wave).embedding);
    assert_eq!(a, b);

    // A different architecture is refused, with the report.
    let other = Cnn14Config::tiny().init(&Device::default());
    match load_safetensors(other, &path, false) {
        Err(EncoderError::CheckpointMismatch { report, .. }) => {
            assert!(!report.missing.is_empty() && !report.unexpected.is_empty());
        }
        other => panic!("expected a mismatch, got {:?}", other.map(|(_, r)| r)),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn saving_right_after_training_keeps_the_latest_running_statistics_and_is_atomic() {
    // Burn applies a training forward's BatchNorm update lazily; saving the training-mode model
    // directly must still write the updated statistics.
    let device = Device::default().autodiff();
    let model = ResNet38Config::tiny().with_num_classes(8).init(&device);
    let wave = Tensor::<2>::random([2, 16_000], Distribution::Uniform(-0.5, 0.5), &device);
    let _ = model.forward(wave);
    let dir = std::env::temp_dir().join(format!("accrue-encoders-rt2-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("trained.safetensors");
    save_safetensors(&model, &path).expect("save");
    // Only the final file remains (the temporary one was renamed).
    let names: Vec<_> = std::fs::read_dir(&dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("trained.safetensors")]);
    let fresh = ResNet38Config::tiny()
        .with_num_classes(8)
        .init(&Device::default());
    let (loaded, _) = load_safetensors(fresh, &path, false).expect("strict load");
    let current = to_vec(model.valid().conv_block1.bn1.running_var.value());
    assert!(current.iter().any(|&v| (v - 1.0).abs() > 1e-3));
    assert_eq!(current, to_vec(loaded.conv_block1.bn1.running_var.value()));
    let _ = std::fs::remove_dir_all(&dir);
}
