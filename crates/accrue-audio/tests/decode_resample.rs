//! Decoding every supported codec, the typed errors for bad files, and the resampler against
//! soxr (fixtures from tools/goldens/audio.py).
//!
//! Tolerances: lossless codecs decode to libsndfile's floats within 1e-6 (16-bit PCM: exactly
//! `int16 / 32767` by default, PANNs' scaling); MP3 (a lossy codec whose decoders differ in
//! rounding) within 30 dB SNR and the same length ±1 frame of 1152; the resampler within
//! SNR ≥ 80 dB of soxr's very-high-quality output on band-limited signals (edges excluded:
//! 2 % at each end, where the two filters' transients differ).

mod common;

use std::io::Write;

use accrue_audio::AudioError;
use accrue_audio::decode::{
    DecodeOptions, Int16Scale, decode_bytes, decode_file, decode_file_with,
};
use accrue_audio::resample::resample;
use common::{Fixture, fixture_dir, max_abs_diff, snr_db, wav_header};

#[test]
fn lossless_codecs_match_libsndfile() {
    let fx = Fixture::open("codecs/decoded.safetensors");
    for name in ["pcm_u8.wav", "pcm_24.wav", "pcm_32.wav", "float.wav"] {
        let d = decode_file(&fixture_dir().join("codecs").join(name)).unwrap();
        assert_eq!(d.sample_rate, 8000, "{name}");
        assert_eq!(d.channels, 2, "{name}");
        let (_, reference) = fx.f32(&format!("{name}.mono"));
        let e = max_abs_diff(&d.samples, &reference);
        assert!(e <= 1e-6, "{name}: max abs {e:e}");
    }
}

#[test]
fn int16_is_scaled_as_panns_or_as_libsndfile() {
    let fx = Fixture::open("codecs/decoded.safetensors");
    for name in ["pcm_16.wav", "pcm_16.flac"] {
        let path = fixture_dir().join("codecs").join(name);
        let raw = fx.i64(&format!("{name}.int16"));
        // PANNs: int16 / 32767 (default).
        let panns: Vec<f32> = raw
            .chunks(2)
            .map(|c| (c[0] + c[1]) as f32 / (2.0 * 32767.0))
            .collect();
        let d = decode_file(&path).unwrap();
        assert!(
            max_abs_diff(&d.samples, &panns) <= 1e-7,
            "{name} PANNs scale"
        );
        // libsndfile: int16 / 32768.
        let full = decode_file_with(
            &path,
            DecodeOptions {
                int16_scale: Int16Scale::Full,
            },
        )
        .unwrap();
        let (_, reference) = fx.f32(&format!("{name}.mono"));
        assert!(
            max_abs_diff(&full.samples, &reference) <= 1e-7,
            "{name} full scale"
        );
    }
}

#[test]
fn mp3_decodes_close_to_libsndfile() {
    let fx = Fixture::open("codecs/decoded.safetensors");
    let d = decode_file(&fixture_dir().join("codecs/mp3.mp3")).unwrap();
    let (_, reference) = fx.f32("mp3.mp3.mono");
    assert_eq!(d.sample_rate, 8000);
    let n = d.samples.len().min(reference.len());
    assert!(d.samples.len().abs_diff(reference.len()) <= 1152);
    // Decoders may differ in encoder-delay handling: align by the best lag within one frame.
    let best = (0..=1152usize)
        .flat_map(|lag| [(lag, true), (lag, false)])
        .filter_map(|(lag, ours_later)| {
            let (a, b) = if ours_later {
                (d.samples.get(lag..)?, reference.get(..)?)
            } else {
                (d.samples.get(..)?, reference.get(lag..)?)
            };
            let m = a.len().min(b.len()).min(n);
            (m > 400).then(|| snr_db(&b[..m], &a[..m]))
        })
        .fold(f64::MIN, f64::max);
    assert!(best >= 30.0, "MP3 SNR {best:.1} dB");
}

#[test]
fn missing_file_is_a_clear_error_naming_it() {
    let err = decode_file(std::path::Path::new("no/such/clip.wav")).unwrap_err();
    assert!(matches!(err, AudioError::Unreadable { .. }));
    assert!(err.to_string().contains("no/such/clip.wav"), "{err}");
}

#[test]
fn a_directory_is_named_as_a_directory_not_an_unsupported_format() {
    let dir = std::env::temp_dir();
    let err = decode_file(&dir).expect_err("a directory").to_string();
    assert!(
        err.contains(&dir.display().to_string()) && err.contains("a directory"),
        "{err}"
    );
}

#[test]
fn garbage_is_unsupported_or_corrupt_not_a_panic() {
    let err = decode_bytes(vec![0x42; 1000], "noise.wav", DecodeOptions::default()).unwrap_err();
    assert!(
        matches!(
            err,
            AudioError::Unsupported { .. } | AudioError::Corrupt { .. }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("noise.wav"));
}

#[test]
fn truncated_wav_is_reported_as_corrupt() {
    let bytes = std::fs::read(fixture_dir().join("codecs/pcm_16.wav")).unwrap();
    let cut = bytes[..bytes.len() / 2].to_vec();
    let err = decode_bytes(cut, "cut.wav", DecodeOptions::default()).unwrap_err();
    assert!(matches!(err, AudioError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("cut.wav"));
}

#[test]
fn zero_length_wav_is_empty() {
    let bytes = wav_header(0, 1, 16000, 16, 1);
    let err = decode_bytes(bytes, "empty.wav", DecodeOptions::default()).unwrap_err();
    assert!(
        matches!(err, AudioError::Empty { .. } | AudioError::Corrupt { .. }),
        "{err:?}"
    );
}

#[test]
fn non_finite_float_samples_are_rejected() {
    let samples = [0.1f32, f32::NAN, 0.2, f32::INFINITY];
    let mut bytes = wav_header(16, 1, 16000, 32, 3);
    for s in samples {
        bytes.extend_from_slice(&s.to_le_bytes());
    }
    let dir = tempdir();
    let path = dir.join("nan.wav");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(&bytes)
        .unwrap();
    let err = decode_file(&path).unwrap_err();
    match err {
        AudioError::NonFinite {
            count, first_index, ..
        } => {
            assert_eq!(count, 2);
            assert_eq!(first_index, 1);
        }
        other => panic!("expected NonFinite, got {other:?}"),
    }
}

#[test]
fn float_samples_far_outside_the_unit_range_are_rejected_naming_the_file() {
    let samples = [0.1f32, -1e30, 0.2, 2.5];
    let mut bytes = wav_header(16, 1, 16000, 32, 3);
    for s in samples {
        bytes.extend_from_slice(&s.to_le_bytes());
    }
    let dir = tempdir();
    let path = dir.join("loud.wav");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(&bytes)
        .unwrap();
    let err = decode_file(&path).unwrap_err();
    assert!(
        matches!(err, AudioError::OutOfRange { index: 1, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("loud.wav"), "{err}");
    // A slightly clipped master (2.5) is accepted.
    let mut ok = wav_header(12, 1, 16000, 32, 3);
    for s in [0.1f32, 2.5, -1.2] {
        ok.extend_from_slice(&s.to_le_bytes());
    }
    let path = dir.join("clipped.wav");
    std::fs::write(&path, ok).unwrap();
    assert_eq!(decode_file(&path).expect("decodes").samples.len(), 3);
}

/// Found by the fuzzer (`accrue-cli/examples/fuzz.rs`): a WAV `fmt ` chunk with 32,770
/// channels made symphonia overflow `channels × bytes per sample` — a panic in builds with
/// overflow checks. It must be an error naming the file.
#[test]
fn a_header_that_crashes_the_decoder_is_an_error_naming_the_file() {
    let path = fixture_dir().join("fuzz/wav-fmt-overflow.wav");
    let err = decode_file(&path).expect_err("malformed");
    assert!(matches!(err, AudioError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("wav-fmt-overflow.wav"), "{err}");
}

fn tempdir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("accrue-audio-test-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn resampler_matches_soxr() {
    let fx = Fixture::open("resample.safetensors");
    for (src, dst) in [
        (44_100u32, 32_000u32),
        (48_000, 32_000),
        (22_050, 32_000),
        (16_000, 32_000),
        (96_000, 44_100),
    ] {
        let (_, x) = fx.f32(&format!("{src}_{dst}.input"));
        let (_, reference) = fx.f32(&format!("{src}_{dst}.soxr"));
        let y = resample(&x, src, dst).unwrap();
        // Lengths: ours is ceil(len·to/from), soxr rounds; they differ by at most one sample.
        assert!(
            y.len().abs_diff(reference.len()) <= 1,
            "{src}->{dst} length"
        );
        let n = y.len().min(reference.len());
        let edge = n / 50;
        let snr = snr_db(&reference[edge..n - edge], &y[edge..n - edge]);
        assert!(snr >= 80.0, "{src}->{dst}: SNR {snr:.1} dB < 80 dB");
    }
}
