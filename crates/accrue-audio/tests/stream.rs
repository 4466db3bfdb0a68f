//! Long audio in bounded memory: a streamed decode, a streamed resampler and a block-wise
//! log-mel each give what the whole-signal functions give: the decode and the resampler bit for
//! bit, the log-mel up to f32 rounding (its mel GEMM sums in an order that depends on the block).

mod common;

use accrue_audio::decode::{DecodeOptions, decode_file, decode_file_streamed};
use accrue_audio::frontend::{FrontEndConfig, LogMelStream};
use accrue_audio::resample::{StreamResampler, resample};
use burn::tensor::{Device, Tensor};
use common::wav_header;

fn noise(n: usize, seed: u64) -> Vec<f32> {
    let mut r = seed;
    (0..n)
        .map(|i| {
            r = r
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let tone = (i as f32 * 0.05).sin() * 0.3;
            tone + ((r >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.2
        })
        .collect()
}

/// A WAV: 16-bit PCM (`format = 1`) or 32-bit float (`format = 3`), `channels` interleaved.
fn wav(samples: &[f32], rate: u32, channels: u16, format: u16) -> Vec<u8> {
    let bits: u16 = if format == 1 { 16 } else { 32 };
    let data_len = (samples.len() * usize::from(bits / 8)) as u32;
    let mut b = wav_header(data_len, channels, rate, bits, format);
    for s in samples {
        if format == 1 {
            b.extend_from_slice(&((s.clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes());
        } else {
            b.extend_from_slice(&s.to_le_bytes());
        }
    }
    b
}

#[test]
fn streamed_decode_is_the_whole_decode() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, format, channels) in [("pcm16.wav", 1, 2), ("float.wav", 3, 1)] {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            wav(
                &noise(200_001 * channels as usize, 3),
                44_100,
                channels,
                format,
            ),
        )
        .expect("write");
        let whole = decode_file(&path).expect("decode");
        for chunk in [1, 4_096, 65_536, 10_000_000] {
            let mut runs = Vec::new();
            let mut got: Vec<f32> = Vec::new();
            let info =
                decode_file_streamed(&path, DecodeOptions::default(), chunk, &mut |s, rate| {
                    assert_eq!(rate, 44_100);
                    runs.push(s.len());
                    got.extend_from_slice(s);
                    Ok(())
                })
                .expect("streamed decode");
            assert_eq!(info.samples, whole.samples.len());
            assert_eq!(info.channels, whole.channels);
            assert!(
                got.iter()
                    .zip(&whole.samples)
                    .all(|(a, b)| a.to_bits() == b.to_bits())
                    && got.len() == whole.samples.len(),
                "{name}, chunks of {chunk}: samples differ"
            );
            // Bounded: every run but the last is at least `chunk` and at most a packet more.
            if chunk < 200_001 {
                assert!(runs.len() > 1, "{name}: one run for chunks of {chunk}");
                assert!(
                    runs.iter().all(|&n| n <= chunk + 8_192),
                    "{name}: runs {runs:?}"
                );
            }
        }
    }
}

#[test]
fn streamed_decode_names_the_bad_sample_by_its_index_in_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("late-nan.wav");
    let mut x = noise(100_000, 5);
    x[77_777] = f32::NAN;
    std::fs::write(&path, wav(&x, 32_000, 1, 3)).expect("write");
    let err = decode_file_streamed(&path, DecodeOptions::default(), 4_096, &mut |_, _| Ok(()))
        .expect_err("NaN refused");
    let text = err.to_string();
    assert!(
        text.contains("late-nan.wav") && text.contains("77777"),
        "{text}"
    );
    let whole = decode_file(&path).expect_err("NaN refused").to_string();
    assert_eq!(text, whole, "the streamed error is the whole-file error");
}

#[test]
fn block_wise_logmel_is_the_whole_logmel() {
    let device = Device::flex();
    let front = FrontEndConfig::panns_32k().init(&device);
    let m = front.config.n_mels;
    for len in [5_000usize, 32_000, 100_003, 321_111] {
        let x = noise(len, len as u64);
        let whole = front
            .logmel(Tensor::<1>::from_floats(x.as_slice(), &device).reshape([1, len]))
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("host");
        for (push, block) in [(len, 64), (1_000, 64), (7_919, 100), (50_000, 333)] {
            let mut stream = LogMelStream::new(&front, block, &device).expect("stream");
            let mut got: Vec<f32> = Vec::new();
            let mut blocks = Vec::new();
            let mut sink = |v: &[f32], n: usize| {
                assert_eq!(v.len(), n * m);
                blocks.push(n);
                got.extend_from_slice(v);
            };
            for c in x.chunks(push) {
                stream.push(c, &mut sink).expect("push");
            }
            let frames = stream.finish(&mut sink).expect("finish");
            assert_eq!(frames * m, whole.len(), "len {len}");
            let max = got
                .iter()
                .zip(&whole)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            // Equal up to f32 rounding: the mel projection is one GEMM per block, and with
            // the AVX-512 kernels compiled in (`gemm/x86-v4`) the GEMM's blocking, hence its
            // summation order, depends on the number of rows. Measured: ≤ 2e-6 dB.
            let scale = whole.iter().fold(1.0f32, |a, v| a.max(v.abs()));
            assert!(
                got.len() == whole.len() && max <= 1e-6 * scale,
                "len {len}, pushes of {push}, blocks of {block}: max |diff| {max} (scale {scale})"
            );
            assert!(
                blocks
                    .iter()
                    .all(|&n| n <= block.max(64) || blocks.len() == 1)
            );
        }
    }
}

#[test]
fn whole_signal_settings_are_refused_for_streams() {
    let device = Device::flex();
    let mut cfg = FrontEndConfig::panns_32k();
    cfg.top_db = Some(80.0);
    let front = cfg.init(&device);
    assert!(LogMelStream::new(&front, 64, &device).is_err());
}

#[test]
fn decode_resample_logmel_chain_is_the_whole_chain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("long.wav");
    std::fs::write(&path, wav(&noise(441_000, 9), 44_100, 1, 1)).expect("write");
    let device = Device::flex();
    let front = FrontEndConfig::panns_32k().init(&device);
    let d = decode_file(&path).expect("decode");
    let w = resample(&d.samples, d.sample_rate, 32_000).expect("resample");
    let whole = front
        .logmel(Tensor::<1>::from_floats(w.as_slice(), &device).reshape([1, w.len()]))
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("host");
    let mut rs: Option<StreamResampler> = None;
    let mut lm = LogMelStream::new(&front, 256, &device).expect("stream");
    let mut got = Vec::new();
    let mut resampled = Vec::new();
    decode_file_streamed(&path, DecodeOptions::default(), 16_384, &mut |s, rate| {
        let r = rs.get_or_insert_with(|| StreamResampler::new(rate, 32_000).expect("rates"));
        resampled.clear();
        r.push(s, &mut resampled)?;
        lm.push(&resampled, &mut |v, _| got.extend_from_slice(v))?;
        Ok(())
    })
    .expect("stream");
    resampled.clear();
    rs.expect("some audio")
        .finish(&mut resampled)
        .expect("finish");
    lm.push(&resampled, &mut |v, _| got.extend_from_slice(v))
        .expect("push");
    lm.finish(&mut |v, _| got.extend_from_slice(v))
        .expect("finish");
    assert_eq!(got.len(), whole.len());
    assert!(
        got.iter()
            .zip(&whole)
            .all(|(a, b)| a.to_bits() == b.to_bits())
    );
}
