//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;

/// `tests/fixtures/towers/<name>`.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/towers")
        .join(name)
}

/// Where `scripts/fetch_towers.sh` puts the real tower files.
pub fn towers_dir() -> PathBuf {
    match std::env::var_os("ACCRUE_DATA_DIR") {
        Some(d) => PathBuf::from(d).join("towers"),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/towers"),
    }
}

/// `Some(dir)` when every file exists, otherwise prints a skip message and returns `None`.
pub fn real_files(test: &str, sub: &str, files: &[&str]) -> Option<PathBuf> {
    let dir = towers_dir().join(sub);
    let missing: Vec<_> = files.iter().filter(|f| !dir.join(f).is_file()).collect();
    if missing.is_empty() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED {test}: real weights not downloaded ({missing:?} missing in {}); run scripts/fetch_towers.sh",
            dir.display()
        );
        None
    }
}

/// A fixture tensor: shape and values as f32 (ints are cast).
pub struct Fx {
    pub shape: Vec<usize>,
    pub f32: Vec<f32>,
    pub i64: Vec<i64>,
    pub u8: Vec<u8>,
}

/// All tensors of a safetensors fixture.
pub fn load_st(path: &PathBuf) -> BTreeMap<String, Fx> {
    let bytes = std::fs::read(path).expect("fixture");
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    let mut out = BTreeMap::new();
    for (name, v) in st.tensors() {
        use safetensors::Dtype as D;
        let b = v.data();
        let (f, i, u): (Vec<f32>, Vec<i64>, Vec<u8>) = match v.dtype() {
            D::F32 => (
                b.chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
                vec![],
                vec![],
            ),
            D::I64 => {
                let i: Vec<i64> = b
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                    .collect();
                (i.iter().map(|&x| x as f32).collect(), i, vec![])
            }
            D::U8 => (b.iter().map(|&x| x as f32).collect(), vec![], b.to_vec()),
            d => panic!("unsupported fixture dtype {d:?}"),
        };
        out.insert(
            name,
            Fx {
                shape: v.shape().to_vec(),
                f32: f,
                i64: i,
                u8: u,
            },
        );
    }
    out
}

/// Largest absolute difference.
pub fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}
