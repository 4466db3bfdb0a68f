//! The process's log-mel memo serves rows equal to the bit to a fresh computation, keyed so
//! that no row reaches another clip or another front end.
//!
//! The memo is process-wide; this file is its own test binary, and each test uses clips no
//! other test uses, so their keys never meet.

use accrue_audio::frontend::{FrontEnd, FrontEndConfig};
use accrue_audio::memo;
use burn::module::Module;
use burn::tensor::{Device, Tensor};

const LEN: usize = 32_000;

/// `rows` one-second clips: a chirp-free sum of two tones per row, distinct per `(tag, row)`.
fn clips(tag: u32, rows: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(rows * LEN);
    for r in 0..rows {
        let f1 = 110.0 * (1.0 + f64::from(tag) * 0.37 + r as f64 * 0.11);
        let f2 = 1500.0 + f64::from(tag) * 13.0 + r as f64 * 97.0;
        for i in 0..LEN {
            let t = i as f64 / 32_000.0;
            let v = 0.3 * (2.0 * std::f64::consts::PI * f1 * t).sin()
                + 0.1 * (2.0 * std::f64::consts::PI * f2 * t).sin();
            out.push(v as f32);
        }
    }
    out
}

fn direct(front: &FrontEnd, audio: &[f32], rows: usize, device: &Device) -> Tensor<4> {
    front.logmel(Tensor::<1>::from_floats(audio, device).reshape([rows, audio.len() / rows]))
}

fn values(t: Tensor<4>) -> (Vec<usize>, Vec<f32>) {
    let dims = t.dims().to_vec();
    (dims, t.into_data().try_to_vec::<f32>().expect("f32"))
}

#[test]
fn memoised_rows_equal_the_batch_computation_to_the_bit() {
    let device = Device::flex();
    let front = FrontEndConfig::panns_32k().init(&device);
    let audio = clips(1, 6);
    // Rows 1, 3 and 4 first (the memo holds them), then the whole batch: three rows served,
    // three computed in a sub-batch of their own.
    let mut part = Vec::new();
    for r in [1, 3, 4] {
        part.extend_from_slice(&audio[r * LEN..(r + 1) * LEN]);
    }
    let before = memo::stats();
    let first = front.logmel_memoized(&part, 3).expect("memoised");
    assert_eq!(values(first), values(direct(&front, &part, 3, &device)));
    let whole = front.logmel_memoized(&audio, 6).expect("memoised");
    let after = memo::stats();
    assert_eq!(values(whole), values(direct(&front, &audio, 6, &device)));
    assert!(after.hits >= before.hits + 3, "{before:?} → {after:?}");
    assert!(
        after.entries >= before.entries + 6,
        "{before:?} → {after:?}"
    );
    // Served a third time, entirely from the memo: still the same.
    let again = front.logmel_memoized(&audio, 6).expect("memoised");
    assert_eq!(values(again), values(direct(&front, &audio, 6, &device)));
}

#[test]
fn the_log_mel_lands_where_the_front_end_computes_it() {
    // A front end on the autodiff device, fed plain host samples (the trainer's case).
    let device = Device::flex().autodiff();
    let front = FrontEndConfig::panns_32k().init(&device);
    let audio = clips(2, 2);
    let memoised = front.logmel_memoized(&audio, 2).expect("memoised");
    let plain = device.clone().inner();
    let computed = direct(&front, &audio, 2, &plain);
    assert_eq!(
        memoised.device().is_autodiff(),
        computed.device().is_autodiff()
    );
    assert_eq!(values(memoised), values(computed));
}

#[test]
fn another_front_end_or_another_clip_is_another_key() {
    let device = Device::flex();
    let front = FrontEndConfig::panns_32k().init(&device);
    let mut cfg = FrontEndConfig::panns_32k();
    cfg.n_mels = 32;
    let narrow = cfg.init(&device);
    assert_ne!(front.fingerprint(), narrow.fingerprint());
    assert_eq!(
        front.fingerprint(),
        FrontEndConfig::panns_32k().init(&device).fingerprint()
    );
    // SpecAugment acts after the log-mel: a training front end shares its rows with an
    // evaluation one.
    let mut augmented = FrontEndConfig::panns_32k();
    augmented.spec_augment = Some(accrue_audio::frontend::SpecAugmentConfig::panns());
    assert_eq!(front.fingerprint(), augmented.init(&device).fingerprint());
    let audio = clips(3, 2);
    let wide = front.logmel_memoized(&audio, 2).expect("memoised");
    let thin = narrow.logmel_memoized(&audio, 2).expect("memoised");
    assert_eq!(wide.dims()[3], 64);
    assert_eq!(values(thin), values(direct(&narrow, &audio, 2, &device)));
    // One sample changed: a new row, not the memoised one.
    let mut edited = audio.clone();
    edited[LEN + 100] += 0.25;
    assert_eq!(
        values(front.logmel_memoized(&edited, 2).expect("memoised")),
        values(direct(&front, &edited, 2, &device))
    );
}

#[test]
fn batch_wide_top_db_is_computed_not_memoised() {
    let device = Device::flex();
    let mut cfg = FrontEndConfig::panns_32k();
    cfg.top_db = Some(30.0);
    let front = cfg.init(&device);
    // A loud and a quiet clip: the quiet one's floor depends on its batch mate.
    let mut audio = clips(4, 2);
    for v in &mut audio[LEN..] {
        *v *= 1e-3;
    }
    let quiet = audio[LEN..].to_vec();
    let together = front.logmel_memoized(&audio, 2).expect("computed");
    assert_eq!(values(together), values(direct(&front, &audio, 2, &device)));
    let alone = front.logmel_memoized(&quiet, 1).expect("computed");
    assert_eq!(values(alone), values(direct(&front, &quiet, 1, &device)));
}

#[test]
fn samples_that_do_not_split_into_the_rows_are_an_error() {
    let device = Device::flex();
    let front = FrontEndConfig::panns_32k().init(&device).no_grad();
    let err = front
        .logmel_memoized(&[0.0; 10], 3)
        .expect_err("10 samples are not 3 equal clips");
    assert!(err.to_string().contains("10 samples"), "{err}");
    assert!(front.logmel_memoized(&[], 1).is_err());
    assert!(front.logmel_memoized(&[0.0; 4], 0).is_err());
}
