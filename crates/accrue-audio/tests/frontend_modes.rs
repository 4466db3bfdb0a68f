//! Training-mode behaviour of the front end: SpecAugment, bn0 statistics, gradients, mixup.

use accrue_audio::frontend::{FrontEndConfig, SpecAugmentConfig, StftImpl, mixup, spec_augment};
use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};

fn wave(device: &Device, b: usize, n: usize) -> Tensor<2> {
    let v: Vec<f32> = (0..b * n)
        .map(|i| ((i % n) as f32 * (0.01 + 0.003 * (i / n) as f32)).sin() * 0.5)
        .collect();
    Tensor::from_data(TensorData::new(v, [b, n]), device)
}

#[test]
fn spec_augment_zeroes_bounded_stripes_per_example() {
    let device = Device::default();
    device.seed(3);
    let cfg = SpecAugmentConfig::panns();
    let x = Tensor::<4>::ones([4, 1, 200, 64], &device);
    let y: Vec<f32> = spec_augment(x, &cfg).into_data().try_to_vec().unwrap();
    let mut any_zero = false;
    for b in 0..4 {
        let item = &y[b * 200 * 64..(b + 1) * 200 * 64];
        // Zeroed time frames: whole rows; zeroed mel bins: whole columns.
        let zero_rows = (0..200)
            .filter(|t| item[t * 64..(t + 1) * 64].iter().all(|&v| v == 0.0))
            .count();
        let zero_cols = (0..64)
            .filter(|m| (0..200).all(|t| item[t * 64 + m] == 0.0))
            .count();
        // 2 stripes of width ≤ 63 frames and 2 of width ≤ 7 bins.
        assert!(zero_rows <= 2 * 63, "{zero_rows} zero frames");
        assert!(zero_cols <= 2 * 7, "{zero_cols} zero bins");
        // Every zero lies in a zeroed row or column.
        for t in 0..200 {
            for m in 0..64 {
                if item[t * 64 + m] == 0.0 {
                    let row = item[t * 64..(t + 1) * 64].iter().all(|&v| v == 0.0);
                    let col = (0..200).all(|u| item[u * 64 + m] == 0.0);
                    assert!(row || col);
                }
            }
        }
        any_zero |= zero_rows + zero_cols > 0;
    }
    assert!(any_zero, "SpecAugment dropped nothing in 4 examples");
}

#[test]
fn spec_augment_only_in_training_on_an_autodiff_device() {
    let device = Device::default();
    let front = FrontEndConfig::panns_32k().init(&device);
    let x = wave(&device, 2, 32_000);
    // Plain device: inference behaviour, deterministic.
    let a: Vec<f32> = front.forward(x.clone()).into_data().try_to_vec().unwrap();
    let b: Vec<f32> = front.forward(x.clone()).into_data().try_to_vec().unwrap();
    assert_eq!(a, b);
    // Autodiff device, training: stripes appear (exact zeros after bn0 are otherwise absent).
    let ad = device.clone().autodiff();
    let front_ad = FrontEndConfig::panns_32k().init(&ad);
    let x_ad = wave(&ad, 2, 32_000);
    let y: Vec<f32> = front_ad
        .forward(x_ad.clone())
        .into_data()
        .try_to_vec()
        .unwrap();
    assert!(y.contains(&0.0));
    // valid() of an untrained front end: no augmentation, bn0 from its (initial) running
    // statistics — the same numbers as the plain-device inference path.
    let valid = FrontEndConfig::panns_32k().init(&ad).valid();
    let z: Vec<f32> = valid
        .forward(x_ad.inner())
        .into_data()
        .try_to_vec()
        .unwrap();
    assert_eq!(z, a, "eval mode equals the inference path");
}

#[test]
fn bn0_updates_running_statistics_in_training_only() {
    let ad = Device::default().autodiff();
    let front = FrontEndConfig::panns_32k()
        .with_spec_augment(None)
        .init(&ad);
    let before: Vec<f32> = front
        .bn0
        .running_mean
        .value_sync()
        .into_data()
        .try_to_vec()
        .unwrap();
    let _ = front.forward(wave(&ad, 2, 16_000));
    let after: Vec<f32> = front
        .bn0
        .running_mean
        .value_sync()
        .into_data()
        .try_to_vec()
        .unwrap();
    assert_ne!(
        before, after,
        "training forward must move bn0's running mean"
    );
    let valid = front.valid();
    let _ = valid.forward(wave(&Device::default(), 2, 16_000));
    let again: Vec<f32> = valid
        .bn0
        .running_mean
        .value_sync()
        .into_data()
        .try_to_vec()
        .unwrap();
    assert_eq!(
        after, again,
        "an eval-mode forward must not move running statistics"
    );
}

#[test]
fn front_end_is_differentiable_in_both_stft_paths() {
    let ad = Device::default().autodiff();
    for imp in [StftImpl::Fft, StftImpl::Kernels] {
        let front = FrontEndConfig::panns_32k()
            .with_stft_impl(imp)
            .with_spec_augment(None)
            .init(&ad);
        let x = wave(&ad, 1, 8_000).require_grad();
        let y = front.logmel(x.clone()).mean();
        let grads = y.backward();
        let g: Vec<f32> = x
            .grad(&grads)
            .expect("input gradient")
            .into_data()
            .try_to_vec()
            .unwrap();
        assert!(g.iter().all(|v| v.is_finite()));
        assert!(g.iter().any(|&v| v != 0.0), "{imp:?}: zero gradient");
    }
}

#[test]
fn mixup_mixes_pairs_and_rejects_odd_batches() {
    let device = Device::default();
    let x = Tensor::<2>::from_data(
        TensorData::new(vec![1.0f32, 1.0, 3.0, 3.0, 10.0, 10.0, 20.0, 20.0], [4, 2]),
        &device,
    );
    let y: Vec<f32> = mixup(x.clone(), &[0.25, 1.0])
        .unwrap()
        .into_data()
        .try_to_vec()
        .unwrap();
    assert_eq!(y, vec![2.5, 2.5, 10.0, 10.0]);
    assert!(mixup(x, &[0.5]).is_err());
}
