//! Shared helpers for the golden tests: fixture loading and error metrics.
#![allow(dead_code)]

use std::path::PathBuf;

use safetensors::{Dtype, SafeTensors};

pub fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audio")
}

/// All tensors of a safetensors fixture, as `(name, shape, f32 or i64 values widened to f64)`.
pub struct Fixture {
    bytes: Vec<u8>,
}

impl Fixture {
    pub fn open(name: &str) -> Self {
        let path = fixture_dir().join(name);
        let bytes = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("missing fixture {}: {e}", path.display()));
        Self { bytes }
    }

    pub fn names(&self) -> Vec<String> {
        let st = SafeTensors::deserialize(&self.bytes).expect("valid safetensors");
        let mut names: Vec<String> = st.names().into_iter().map(|s| s.to_string()).collect();
        names.sort();
        names
    }

    pub fn f32(&self, name: &str) -> (Vec<usize>, Vec<f32>) {
        let st = SafeTensors::deserialize(&self.bytes).expect("valid safetensors");
        let t = st
            .tensor(name)
            .unwrap_or_else(|_| panic!("no tensor {name}"));
        assert_eq!(t.dtype(), Dtype::F32, "{name} is not f32");
        let v = t
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        (t.shape().to_vec(), v)
    }

    pub fn i64(&self, name: &str) -> Vec<i64> {
        let st = SafeTensors::deserialize(&self.bytes).expect("valid safetensors");
        let t = st
            .tensor(name)
            .unwrap_or_else(|_| panic!("no tensor {name}"));
        assert_eq!(t.dtype(), Dtype::I64, "{name} is not i64");
        t.data()
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Signal-to-noise ratio of `test` against `reference`, in dB.
pub fn snr_db(reference: &[f32], test: &[f32]) -> f64 {
    let (mut s, mut n) = (0f64, 0f64);
    for (r, t) in reference.iter().zip(test) {
        s += f64::from(*r).powi(2);
        n += f64::from(r - t).powi(2);
    }
    10.0 * (s / n.max(1e-300)).log10()
}

/// Where the real recordings are (fetched by scripts/fetch_audio_fixtures.sh).
pub fn real_dir() -> PathBuf {
    let data = std::env::var_os("ACCRUE_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data"));
    data.join("sound-theme-freedesktop/stereo")
}

/// A canonical 44-byte WAV header (`format` 1 = integer PCM, 3 = float) for `data_bytes` of
/// samples.
pub fn wav_header(data_bytes: u32, channels: u16, rate: u32, bits: u16, format: u16) -> Vec<u8> {
    let mut h = Vec::new();
    let block = channels * bits / 8;
    h.extend_from_slice(b"RIFF");
    h.extend_from_slice(&(36 + data_bytes).to_le_bytes());
    h.extend_from_slice(b"WAVEfmt ");
    h.extend_from_slice(&16u32.to_le_bytes());
    h.extend_from_slice(&format.to_le_bytes());
    h.extend_from_slice(&channels.to_le_bytes());
    h.extend_from_slice(&rate.to_le_bytes());
    h.extend_from_slice(&(rate * u32::from(block)).to_le_bytes());
    h.extend_from_slice(&block.to_le_bytes());
    h.extend_from_slice(&bits.to_le_bytes());
    h.extend_from_slice(b"data");
    h.extend_from_slice(&data_bytes.to_le_bytes());
    h
}
