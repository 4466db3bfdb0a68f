//! The real `aisfx==0.1.2` weights: loading the package's `checkpoint.pth` (a zip pickle whose
//! root is a tuple) and reproducing the embeddings of the package's own PyTorch model.
//!
//! The weights are downloaded by `scripts/fetch_aisfx.sh` into `$ACCRUE_DATA_DIR` (default:
//! `data/` at the repository root) and never committed. Without them the test prints a skip
//! message and returns.

mod common;

use std::path::PathBuf;

use accrue_encoders::checkpoint::load_aisfx;
use accrue_encoders::{AisfxConfig, AudioBody};
use burn::tensor::{Device, Tensor};
use common::*;

fn checkpoint_path() -> PathBuf {
    let root = std::env::var_os("ACCRUE_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data"));
    root.join("aisfx-0.1.2").join("checkpoint.pth")
}

#[test]
fn aisfx_real_weights_reproduce_pytorch_embeddings() {
    let path = checkpoint_path();
    if !path.is_file() {
        eprintln!(
            "SKIP aisfx_real_weights: {} not found; run scripts/fetch_aisfx.sh",
            path.display()
        );
        return;
    }
    let device = Device::default();
    let (model, report) =
        load_aisfx(AisfxConfig::released().init(&device), &path, false).expect("strict load");
    assert!(report.is_clean(), "{report}");
    // 102 state-dict entries: 94 tensors + 8 BN `num_batches_tracked` counters (ignored).
    assert_eq!(report.applied.len(), 94, "{report}");
    assert_eq!(report.ignored.len(), 8, "{report}");
    let file = "aisfx_io.safetensors";
    let input: Tensor<3> = read(file, "input", &device);
    let [b, t, m] = input.dims();
    let out = model.forward_features(input.clone().reshape([b, 1, t, m]));
    assert_close(
        "aisfx embedding",
        out.embedding,
        read(file, "embedding", &device),
        1e-4,
        1e-5,
    );
    assert_close(
        "aisfx head 0",
        out.logits,
        read(file, "head0_logits", &device),
        1e-4,
        1e-5,
    );
    let (_, heads) = model.forward_heads(input.reshape([b, 1, t, m]));
    let last = heads.last().expect("heads").clone();
    assert_close(
        "aisfx last head",
        last,
        read(file, "head_last_logits", &device),
        1e-4,
        1e-5,
    );
}
