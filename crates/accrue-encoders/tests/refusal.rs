//! Strict loading refuses a checkpoint with a renamed, a missing and a wrongly-shaped key and
//! lists all three; `allow_partial` loads the rest and returns the same report.

mod common;

use accrue_encoders::checkpoint::{LoadOptions, load_pytorch, load_resnet38_panns};
use accrue_encoders::{EncoderError, ResNet38, ResNet38Config};
use burn::tensor::Device;
use common::*;

fn small(device: &Device) -> ResNet38 {
    let cfg = &meta()["resnet38_small"]["config"];
    let w = usizes(&cfg["widths"]);
    ResNet38Config::new(small_front_end())
        .with_widths([w[0], w[1], w[2], w[3]])
        .with_embedding_dim(cfg["after"].as_u64().expect("after") as usize)
        .with_num_classes(cfg["classes"].as_u64().expect("classes") as usize)
        .init(device)
}

#[test]
fn broken_checkpoint_is_refused_with_every_problem_listed() {
    let device = Device::default();
    let path = fixture("resnet38_small_broken.pth");
    let err = load_resnet38_panns(small(&device), &path, false)
        .map(|(_, report)| report)
        .expect_err("a broken checkpoint must be refused");
    let report = match &err {
        EncoderError::CheckpointMismatch { report, .. } => report.clone(),
        other => panic!("unexpected error {other}"),
    };
    println!("{err}");
    // Renamed: the module's key is missing and the file's new key is unexpected.
    assert!(
        report
            .missing
            .contains(&"conv_block1.conv1.weight".to_string())
    );
    assert!(
        report
            .unexpected
            .contains(&"conv_block1.conv_one.weight".to_string())
    );
    // Removed.
    assert!(
        report
            .missing
            .contains(&"resnet.layer2.0.downsample.bn.running_mean".to_string())
    );
    // Wrong shape (fc1.bias is [32], the file has [63]).
    assert_eq!(report.mismatched.len(), 1);
    assert_eq!(report.mismatched[0].key, "fc1.bias");
    assert_eq!(report.mismatched[0].expected, vec![32]);
    assert_eq!(report.mismatched[0].found, vec![63]);
    // Nothing else.
    assert_eq!(report.missing.len(), 2, "{report}");
    assert_eq!(report.unexpected.len(), 1, "{report}");
    let message = err.to_string();
    for needle in ["conv_one", "downsample.bn.running_mean", "fc1.bias"] {
        assert!(message.contains(needle), "{needle} not in {message}");
    }
}

#[test]
fn allow_partial_loads_the_rest_and_returns_the_report() {
    let device = Device::default();
    let path = fixture("resnet38_small_broken.pth");
    let (model, report) =
        load_resnet38_panns(small(&device), &path, true).expect("partial load succeeds");
    assert!(!report.is_clean());
    assert_eq!(
        report.missing.len() + report.unexpected.len() + report.mismatched.len(),
        4
    );
    // A tensor that was present was loaded: conv_block1.conv2 equals the good checkpoint's.
    let (good, _) =
        load_resnet38_panns(small(&device), &fixture("resnet38_small.pth"), false).expect("good");
    let a = to_vec(
        model
            .conv_block1
            .conv2
            .as_ref()
            .expect("conv2")
            .weight
            .val(),
    );
    let b = to_vec(good.conv_block1.conv2.as_ref().expect("conv2").weight.val());
    assert_eq!(a, b);
}

#[test]
fn missing_file_and_wrong_top_level_key_are_errors() {
    let device = Device::default();
    let err = load_resnet38_panns(small(&device), &fixture("no_such.pth"), false);
    assert!(matches!(err, Err(EncoderError::CheckpointRead { .. })));
    let options = LoadOptions {
        top_level_key: Some("state_dict".into()),
        ..Default::default()
    };
    let err = load_pytorch(small(&device), &fixture("resnet38_small.pth"), &options);
    assert!(matches!(err, Err(EncoderError::CheckpointRead { .. })));
    // Without remaps nothing lines up: strict loading refuses with a long report.
    let options = LoadOptions::panns(Vec::new());
    match load_pytorch(small(&device), &fixture("resnet38_small.pth"), &options) {
        Err(EncoderError::CheckpointMismatch { report, .. }) => {
            assert!(report.missing.iter().any(|k| k.contains("downsample.conv")));
            assert!(report.unexpected.iter().any(|k| k.contains("downsample.1")));
        }
        other => panic!("expected a mismatch, got {other:?}"),
    }
}

#[test]
fn clips_shorter_than_the_poolings_are_padded_not_a_panic() {
    use accrue_encoders::{Cnn10Config, Cnn14Config, ResNet38Config};
    let device = burn::tensor::Device::default();
    // 0.05 s at 32 kHz: far fewer frames than five ×2 poolings need (PANNs itself fails).
    let wave = burn::tensor::Tensor::<2>::zeros([2, 1_600], &device);
    let outs = [
        ResNet38Config::tiny().init(&device).forward(wave.clone()),
        Cnn14Config::tiny().init(&device).forward(wave.clone()),
        Cnn10Config::tiny().init(&device).forward(wave),
    ];
    for out in outs {
        let v: Vec<f32> = out
            .embedding
            .into_data()
            .convert::<f32>()
            .try_into_vec()
            .expect("f32");
        assert!(!v.is_empty() && v.iter().all(|x| x.is_finite()));
    }
}

/// Rewrites `src` with tensor `name` stored as `dtype` (F16 or F64), the rest unchanged.
fn with_dtype(src: &std::path::Path, dst: &std::path::Path, name: &str, dtype: safetensors::Dtype) {
    let bytes = std::fs::read(src).expect("read");
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    let mut data: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (n, v) in st.tensors() {
        let f32s: Vec<f32> = v
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let (dt, raw) = match (n == name, dtype) {
            (true, safetensors::Dtype::F64) => (
                dtype,
                f32s.iter()
                    .flat_map(|x| f64::from(*x).to_le_bytes())
                    .collect(),
            ),
            // F16 bit patterns (not a faithful conversion: only the dtype matters here).
            (true, _) => (dtype, f32s.iter().flat_map(|_| [0u8, 0u8]).collect()),
            (false, _) => (v.dtype(), v.data().to_vec()),
        };
        data.push((n, dt, v.shape().to_vec(), raw));
    }
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = data
        .iter()
        .map(|(n, dt, shape, raw)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(*dt, shape.clone(), raw).expect("view"),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, dst).expect("write");
}

#[test]
fn a_tensor_of_another_dtype_is_refused_at_load_and_named() {
    let device = Device::default();
    let dir = std::env::temp_dir().join(format!("accrue-dtype-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let ok = dir.join("ok.safetensors");
    accrue_encoders::checkpoint::save_safetensors(&small(&device), &ok).expect("save");
    for dtype in [safetensors::Dtype::F16, safetensors::Dtype::F64] {
        let bad = dir.join(format!("{dtype:?}.safetensors"));
        with_dtype(&ok, &bad, "fc1.weight", dtype);
        let err = accrue_encoders::checkpoint::load_safetensors(small(&device), &bad, false)
            .map(|_| ())
            .expect_err("another dtype is refused")
            .to_string();
        assert!(
            err.contains("`fc1.weight`")
                && err.contains(&format!("{dtype:?}"))
                && err.contains("F32"),
            "{err}"
        );
    }
    accrue_encoders::checkpoint::load_safetensors(small(&device), &ok, false).expect("F32 loads");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A float tensor of another dtype than F32 is refused before loading, named (it loaded, then
/// failed inside the backend). Fixture: `tools/goldens/faulty_pth.py`.
#[test]
fn a_pytorch_checkpoint_with_an_f64_tensor_is_refused_naming_it() {
    let device = Device::default();
    let path = fixture("f64_tensor.pth");
    let err = load_pytorch(small(&device), &path, &LoadOptions::default())
        .map(|_| ())
        .expect_err("F64 must be refused");
    let msg = err.to_string();
    assert!(
        msg.contains("`fc1.weight` is F64") && msg.contains("f64_tensor.pth"),
        "{msg}"
    );
    assert!(!msg.contains("fc1.bias"), "the F32 tensor is fine: {msg}");
}
