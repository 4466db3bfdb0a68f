//! Helpers shared by the integration tests: fixture paths, safetensors reading, comparisons.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use accrue_audio::frontend::{FrontEndConfig, StftImpl};
use burn::tensor::{Device, Tensor, TensorData};

/// A fixture of `tests/fixtures/encoders`. The path goes through the crates folder so that the
/// GPU check, which compiles these tests into `accrue-continual`'s one binary, finds them too.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../accrue-encoders/tests/fixtures/encoders")
        .join(name)
}

pub fn meta() -> serde_json::Value {
    let text = std::fs::read_to_string(fixture("goldens.json")).expect("goldens.json");
    serde_json::from_str(&text).expect("valid goldens.json")
}

/// Reads one f32 tensor from a fixture safetensors file.
pub fn read<const D: usize>(file: &str, name: &str, device: &Device) -> Tensor<D> {
    read_path(&fixture(file), name, device)
}

/// Reads one f32 tensor from a safetensors file anywhere (e.g. the full-size outputs written
/// by hand).
pub fn read_path<const D: usize>(path: &Path, name: &str, device: &Device) -> Tensor<D> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    let view = st
        .tensor(name)
        .unwrap_or_else(|_| panic!("{name} in {}", path.display()));
    let values: Vec<f32> = view
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Tensor::from_data(TensorData::new(values, view.shape().to_vec()), device)
}

pub fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32 data")
}

/// (max |a − b|, max |a − b| / max |b|).
pub fn errors<const D: usize>(actual: Tensor<D>, expected: Tensor<D>) -> (f32, f32) {
    assert_eq!(actual.dims(), expected.dims(), "shapes differ");
    let a = to_vec(actual);
    let e = to_vec(expected);
    let max_abs = a
        .iter()
        .zip(&e)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    let scale = e.iter().map(|y| y.abs()).fold(0f32, f32::max).max(1e-12);
    (max_abs, max_abs / scale)
}

/// Binary cross-entropy, mean over all elements (PyTorch `F.binary_cross_entropy`).
pub fn bce(p: Tensor<2>, t: Tensor<2>) -> Tensor<1> {
    let one = t.ones_like();
    let loss = t.clone() * p.clone().log() + (one.clone() - t) * (one - p).log();
    loss.mean().neg()
}

/// Asserts `actual ≈ expected` within `abs` max-abs error and `rel` scale-relative error.
pub fn assert_close<const D: usize>(
    what: &str,
    actual: Tensor<D>,
    expected: Tensor<D>,
    abs: f32,
    rel: f32,
) {
    let (max_abs, max_rel) = errors(actual, expected);
    println!("{what}: max abs err {max_abs:.3e}, rel err {max_rel:.3e}");
    assert!(
        max_abs <= abs && max_rel <= rel,
        "{what}: max abs {max_abs:e} (tol {abs:e}), rel {max_rel:e} (tol {rel:e})"
    );
}

/// The reduced front end of the golden script (8 kHz, n_fft 128, hop 32, 32 mels, 50–4000
/// Hz), computing the STFT with the checkpoint's kernels as torchlibrosa does.
pub fn small_front_end() -> FrontEndConfig {
    let fe = &meta()["front_end"];
    FrontEndConfig::new(
        fe["sr"].as_u64().expect("sr") as u32,
        fe["window"].as_u64().expect("window") as usize,
        fe["hop"].as_u64().expect("hop") as usize,
        fe["mels"].as_u64().expect("mels") as usize,
        fe["fmin"].as_f64().expect("fmin"),
        fe["fmax"].as_f64().expect("fmax"),
    )
    .with_spec_augment(None)
    .with_stft_impl(StftImpl::Kernels)
}

pub fn usizes(v: &serde_json::Value) -> Vec<usize> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("uint") as usize)
        .collect()
}
