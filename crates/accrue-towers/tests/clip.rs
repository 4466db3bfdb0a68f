//! CLIP towers against `transformers`' `CLIPModel` (random init, tiny config), loaded from
//! both the HF and the openai key layouts.

mod common;

use std::path::Path;

use accrue_towers::checkpoint::{RawTensor, StateDict, read_checkpoint};
use accrue_towers::clip::tokenizer::{ClipTokenizer, Overflow};
use accrue_towers::clip::{ClipConfig, ClipModel, ClipTowers, openai_to_hf};
use accrue_towers::{Error, FrozenTower};
use burn::tensor::{Device, Int, Tensor, TensorData};
use common::{fixture, load_st, max_abs, real_files};

fn tiny() -> ClipConfig {
    // mirrors tools/goldens/towers.py: vision 32 px, patch 8, width 32 × 2 layers, 2 heads;
    // text context 16, vocab 1000, width 24 × 2 layers, 2 heads; embedding 24
    ClipConfig::new(24, 32, 2, 32, 8, 2, 24, 2, 2)
        .with_context_length(16)
        .with_vocab_size(1000)
}

fn check(model: &ClipModel, label: &str) {
    let device = Device::default();
    let io = load_st(&fixture("clip_tiny/io.safetensors"));
    let px = &io["pixel_values"];
    let x = Tensor::<4>::from_data(TensorData::new(px.f32.clone(), px.shape.clone()), &device);
    let img = model
        .encode_image(x)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let e_img = max_abs(&img, &io["image_features"].f32);
    let ids = &io["input_ids"];
    let ids =
        Tensor::<2, Int>::from_data(TensorData::new(ids.i64.clone(), ids.shape.clone()), &device);
    let txt = model
        .encode_text(ids)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let e_txt = max_abs(&txt, &io["text_features"].f32);
    let ls = model
        .logit_scale
        .val()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    println!("CLIP tiny ({label}): image max abs {e_img:.2e}, text max abs {e_txt:.2e}");
    assert!(
        e_img <= 1e-4 && e_txt <= 1e-4,
        "{label}: image {e_img} text {e_txt}"
    );
    assert_eq!(ls, io["logit_scale"].f32);
}

#[test]
fn hf_layout_matches_transformers() {
    let model = tiny()
        .init(&Device::default())
        .load(&fixture("clip_tiny/model.safetensors"))
        .unwrap();
    check(&model, "HF safetensors");
}

#[test]
fn openai_layout_matches_transformers() {
    let model = tiny()
        .init(&Device::default())
        .load(&fixture("clip_tiny/openai.pt"))
        .unwrap();
    check(&model, "openai state dict");
}

/// The square text projection hides a missing transpose: check that openai's `x·W`
/// convention is what the loaded model computes.
#[test]
fn text_projection_is_transposed_from_openai_layout() {
    let path = fixture("clip_tiny/openai.pt");
    let sd = read_checkpoint(&path).unwrap();
    let w = &sd["text_projection"].clone(); // [in, out], used as x·W
    assert_eq!(w.shape, vec![24, 24]);
    let asym = (0..24)
        .flat_map(|i| (0..24).map(move |j| (i, j)))
        .map(|(i, j)| (w.data[i * 24 + j] - w.data[j * 24 + i]).abs())
        .fold(0.0f32, f32::max);
    assert!(
        asym > 1e-3,
        "projection must not be symmetric for this test"
    );
    let model = tiny().init(&Device::default()).load(&path).unwrap();
    // e_0 · W = first row of W
    let x = Tensor::<2>::from_data(
        TensorData::new(
            (0..24).map(|k| if k == 0 { 1.0f32 } else { 0.0 }).collect(),
            [1, 24],
        ),
        &Device::default(),
    );
    let y = model
        .text_projection
        .forward(x)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    assert!(
        max_abs(&y, &w.data[..24]) < 1e-7,
        "text projection applied as x·Wᵀ"
    );
    // and the HF layout stores the transpose
    let hf = openai_to_hf(sd).unwrap();
    assert_eq!(hf["text_projection.weight"], w.transpose().unwrap());
}

#[test]
fn strict_loading_reports_every_problem() {
    let path = fixture("clip_tiny/model.safetensors");
    let mut sd: StateDict = read_checkpoint(&path).unwrap();
    sd.remove("text_model.final_layer_norm.weight");
    sd.remove("vision_model.encoder.layers.1.mlp.fc2.bias");
    sd.insert(
        "extra.weight".into(),
        RawTensor::new(vec![2], vec![0.0, 1.0]).unwrap(),
    );
    let tmp = std::env::temp_dir().join("accrue-towers-clip-broken.safetensors");
    write_safetensors(&tmp, &sd);
    // and a width mismatch: a wider text model
    let err = tiny().init(&Device::default()).load(&tmp).unwrap_err();
    let Error::KeyMismatch { report, .. } = err else {
        panic!("expected a key mismatch, got {err}")
    };
    println!("{report}");
    assert_eq!(report.missing.len(), 2, "{report}");
    assert_eq!(report.unexpected, vec!["extra.weight".to_string()]);
    let mut wider = tiny();
    wider.transformer_width = 32;
    let wrong = wider.init(&Device::default()).load(&path).unwrap_err();
    let Error::KeyMismatch { report, .. } = wrong else {
        panic!("expected a key mismatch")
    };
    assert!(report.mismatched.len() > 10, "{report}");
    let _ = std::fs::remove_file(tmp);
}

fn write_safetensors(path: &Path, sd: &StateDict) {
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = sd
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.data.iter().flat_map(|x| x.to_le_bytes()).collect(),
                v.shape.clone(),
            )
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = bytes
        .iter()
        .map(|(k, b, s)| {
            (
                k.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                    .unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

/// The towers' plumbing with the real tokenizer on a random model with CLIP's vocabulary.
#[test]
fn clip_towers_embed_and_reject_bad_captions() {
    let Some(dir) = real_files(
        "clip_towers_embed_and_reject_bad_captions",
        "clip",
        &["bpe_simple_vocab_16e6.txt.gz"],
    ) else {
        return;
    };
    let device = Device::default();
    let cfg = ClipConfig::new(16, 32, 1, 16, 16, 1, 16, 1, 1);
    let model = cfg.init(&device);
    let tok = || ClipTokenizer::from_file(&dir.join("bpe_simple_vocab_16e6.txt.gz")).unwrap();
    let (image, text) = ClipTowers::build(
        &cfg,
        model.clone(),
        "random".into(),
        tok(),
        Overflow::Error,
        &device,
    );
    let e = text.embed(&["a dog barking", "a violin"]).unwrap();
    assert_eq!(e.dims(), [2, 16]);
    let v = e.into_data().try_to_vec::<f32>().unwrap();
    for r in v.chunks(16) {
        assert!((r.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-5);
    }
    assert!(matches!(
        text.embed(&["ok", ""]),
        Err(Error::EmptyText { index: 1 })
    ));
    let long = "violin ".repeat(80);
    assert!(matches!(
        text.embed(&[&long]),
        Err(Error::TextTooLong { .. })
    ));
    let (_, trunc) = ClipTowers::build(
        &cfg,
        model,
        "random".into(),
        tok(),
        Overflow::Truncate,
        &device,
    );
    assert_eq!(trunc.embed(&[&long]).unwrap().dims(), [1, 16]);
    assert_ne!(text.identity(), trunc.identity());
    let img = image::DynamicImage::new_rgb8(40, 30);
    assert_eq!(image.embed(&[&img, &img]).unwrap().dims(), [2, 16]);
}
