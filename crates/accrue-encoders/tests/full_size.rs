//! Full-size PANNs ResNet-38 (73.8 M parameters) against PyTorch on the same random weights,
//! run by hand because the ≈ 300 MB checkpoint is not committed:
//!
//! ```sh
//! python tools/goldens/encoders.py --full data/full-resnet38     # torch from PyPI, by hand
//! ACCRUE_FULL_RESNET38=data/full-resnet38 \
//!     cargo test -p accrue-encoders --test full_size -- --ignored --nocapture
//! ```
//! The legacy (pre-1.6) pickle is loaded strictly with the PANNs key map; the embedding and
//! `clipwise_output` of a 10-s clip must match within max abs 1e-4. The result is recorded in
//! docs/benchmarks.md.

mod common;

use std::path::PathBuf;

use accrue_audio::frontend::{FrontEndConfig, StftImpl};
use accrue_encoders::ResNet38Config;
use accrue_encoders::checkpoint::load_resnet38_panns;
use burn::tensor::{Device, Tensor};
use common::{errors, read_path};

#[test]
#[ignore = "needs the full-size checkpoint written by tools/goldens/encoders.py --full"]
fn full_size_resnet38_matches_pytorch() {
    let dir = PathBuf::from(
        std::env::var_os("ACCRUE_FULL_RESNET38")
            .expect("set ACCRUE_FULL_RESNET38 to the --full directory"),
    );
    let device = Device::default();
    let front = FrontEndConfig::panns_32k()
        .with_spec_augment(None)
        .with_stft_impl(StftImpl::Kernels);
    let config = ResNet38Config::new(front);
    let (model, report) = load_resnet38_panns(
        config.init(&device),
        &dir.join("resnet38_full_legacy.pth"),
        false,
    )
    .expect("strict load of the full-size legacy pickle");
    assert!(report.is_clean(), "{report}");
    let io = dir.join("resnet38_full_io.safetensors");
    let x: Tensor<2> = read_path(&io, "wave", &device);
    let t0 = std::time::Instant::now();
    let out = model.forward(x);
    let secs = t0.elapsed().as_secs_f64();
    let clip = out.clipwise();
    let (ea, er) = errors(out.embedding, read_path(&io, "embedding", &device));
    let (ca, cr) = errors(clip, read_path(&io, "clipwise_output", &device));
    println!(
        "full-size ResNet-38 ({} tensors loaded): embedding max abs {ea:.2e} (rel {er:.2e}), \
         clipwise_output max abs {ca:.2e} (rel {cr:.2e}); forward {secs:.2} s",
        report.applied.len()
    );
    assert!(ea <= 1e-4, "embedding max abs {ea}");
    assert!(ca <= 1e-4, "clipwise_output max abs {ca}");
}
