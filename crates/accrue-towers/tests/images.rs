//! Image decoding/preprocessing against PIL, and EfficientNet-Lite0 parity with PyTorch on
//! the real ImageNet weights.

mod common;

use accrue_towers::efficientnet::{EfficientNetConfig, EfficientNetTower};
use accrue_towers::preprocess::{Preprocess, decode_image, load_image};
use accrue_towers::{Error, FrozenTower};
use burn::tensor::{Device, Tensor, TensorData};
use common::{fixture, load_st, max_abs, real_files};
use image::RgbImage;

const IMAGES: [(&str, &str); 3] = [("a", "a.png"), ("b", "b.jpg"), ("c", "c.webp")];

fn diff_stats(a: &[u8], b: &[u8]) -> (u8, f64) {
    assert_eq!(a.len(), b.len());
    let max = a.iter().zip(b).map(|(x, y)| x.abs_diff(*y)).max().unwrap();
    let mean = a
        .iter()
        .zip(b)
        .map(|(x, y)| x.abs_diff(*y) as f64)
        .sum::<f64>()
        / a.len() as f64;
    (max, mean)
}

/// Decoders: PNG exact by construction; JPEG and WebP against Pillow's libjpeg/libwebp.
#[test]
fn decoding_matches_pil() {
    let fx = load_st(&fixture("images/images.safetensors"));
    for (stem, file) in IMAGES {
        let img = load_image(&fixture(&format!("images/{file}")))
            .unwrap()
            .to_rgb8();
        if let Some(r) = fx.get(&format!("{stem}.decoded")) {
            assert_eq!(
                [img.height() as usize, img.width() as usize, 3],
                r.shape[..]
            );
            let (max, mean) = diff_stats(img.as_raw(), &r.u8);
            println!("decode {file}: max |Δ| {max} grey levels, mean {mean:.3}");
            // JPEG IDCT / chroma upsampling and WebP's upsampling differ slightly between decoders
            assert!(max <= 8 && mean < 1.0, "{file}: max {max} mean {mean}");
        }
    }
}

/// Resize + centre crop against PIL on identical decoded pixels (lossless PNG; for JPEG and
/// WebP the PIL-decoded pixels are used as input so only the resampling is compared).
#[test]
fn preprocessing_matches_pil() {
    let fx = load_st(&fixture("images/images.safetensors"));
    for (stem, file) in IMAGES {
        let img = match fx.get(&format!("{stem}.decoded")) {
            Some(r) => image::DynamicImage::ImageRgb8(
                RgbImage::from_raw(r.shape[1] as u32, r.shape[0] as u32, r.u8.clone()).unwrap(),
            ),
            None => load_image(&fixture(&format!("images/{file}"))).unwrap(),
        };
        for (kind, pre) in [
            ("clip", Preprocess::clip(224)),
            ("effnet", Preprocess::efficientnet()),
        ] {
            let Some(r) = fx.get(&format!("{stem}.{kind}_crop")) else {
                continue;
            };
            let crop = pre.crop(&img).unwrap();
            assert_eq!((crop.width(), crop.height()), (224, 224));
            let (max, mean) = diff_stats(crop.as_raw(), &r.u8);
            println!("{kind} crop {file}: max |Δ| {max} grey levels, mean {mean:.4}");
            assert!(
                max <= 1 && mean < 0.01,
                "{kind} {file}: max {max} mean {mean}"
            );
        }
    }
}

#[test]
fn bad_images_are_errors() {
    assert!(matches!(
        decode_image(b"definitely not an image"),
        Err(Error::Image { .. })
    ));
    // a truncated PNG
    let png = std::fs::read(fixture("images/a.png")).unwrap();
    assert!(matches!(
        decode_image(&png[..png.len() / 2]),
        Err(Error::Image { .. })
    ));
    let missing = fixture("images/does-not-exist.png");
    assert!(matches!(load_image(&missing), Err(Error::Io { .. })));
    let dir = std::env::temp_dir().join("accrue-towers-corrupt.jpg");
    std::fs::write(&dir, b"\xff\xd8\xff\xe0 garbage").unwrap();
    assert!(matches!(load_image(&dir), Err(Error::Image { .. })));
    let _ = std::fs::remove_file(&dir);
}

#[test]
fn efficientnet_matches_pytorch_on_real_weights() {
    let Some(dir) = real_files(
        "efficientnet_matches_pytorch_on_real_weights",
        "efficientnet",
        &["efficientnet-lite0-57934424.pth"],
    ) else {
        return;
    };
    let device = Device::default();
    let tower = EfficientNetTower::load(&EfficientNetTower::weights_in(&dir), &device).unwrap();
    assert_eq!(
        tower.identity().weights_sha256,
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
    );
    let fx = load_st(&fixture("images/images.safetensors"));
    // model parity on the PIL-preprocessed inputs
    let pre = Preprocess::efficientnet();
    let mut flat = Vec::new();
    for (stem, _) in IMAGES {
        let r = &fx[&format!("{stem}.effnet_crop")];
        let crop = RgbImage::from_raw(224, 224, r.u8.clone()).unwrap();
        flat.extend(pre.normalize(&crop));
    }
    let x = Tensor::<4>::from_data(TensorData::new(flat, [3, 3, 224, 224]), &device);
    let pooled = tower.model().features(x.clone());
    let got = pooled.clone().into_data().try_to_vec::<f32>().unwrap();
    let err = max_abs(&got, &fx["effnet.pooled"].f32);
    let scale = fx["effnet.pooled"]
        .f32
        .iter()
        .fold(0.0f32, |m, v| m.max(v.abs()));
    println!(
        "EfficientNet-Lite0 pooled features vs PyTorch: max abs {err:.2e} (max |feature| {scale:.2})"
    );
    assert!(err <= 1e-4, "pooled max abs {err}");
    let logits = tower
        .model()
        .forward(x)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let lerr = max_abs(&logits, &fx["effnet.logits"].f32);
    println!("EfficientNet-Lite0 logits vs PyTorch: max abs {lerr:.2e}");
    assert!(lerr <= 1e-3, "logits max abs {lerr}");

    // end to end from the image files: Rust decoding + preprocessing
    let imgs: Vec<_> = IMAGES
        .iter()
        .map(|(_, f)| load_image(&fixture(&format!("images/{f}"))).unwrap())
        .collect();
    let refs: Vec<_> = imgs.iter().collect();
    let e = tower.embed(&refs).unwrap();
    assert_eq!(e.dims(), [3, 1280]);
    let e = e.into_data().try_to_vec::<f32>().unwrap();
    let p = &fx["effnet.pooled"].f32;
    for i in 0..3 {
        let r = &p[i * 1280..(i + 1) * 1280];
        let n: f32 = r.iter().map(|v| v * v).sum::<f32>().sqrt();
        let cos: f32 = (0..1280).map(|k| e[i * 1280 + k] * r[k] / n).sum();
        println!("end-to-end image {i}: cosine with PyTorch-on-PIL embedding {cos:.6}");
        assert!(cos > 0.999, "image {i}: cosine {cos}");
    }
}

#[test]
fn efficientnet_checkpoint_mismatch_is_reported_in_full() {
    let Some(dir) = real_files(
        "efficientnet_checkpoint_mismatch_is_reported_in_full",
        "efficientnet",
        &["efficientnet-lite0-57934424.pth"],
    ) else {
        return;
    };
    // a model with one stage fewer: all keys of the last stage are unexpected, and a
    // different head width makes several shapes mismatch
    let mut cfg = EfficientNetConfig::lite0();
    cfg.stages.pop();
    cfg.head_channels = 1000;
    let err = cfg
        .init(&Device::default())
        .load_pytorch(&EfficientNetTower::weights_in(&dir))
        .unwrap_err();
    let Error::KeyMismatch { report, .. } = err else {
        panic!("expected a key mismatch, got {err}");
    };
    println!("{report}");
    assert!(
        report
            .unexpected
            .iter()
            .any(|k| k.starts_with("blocks.15."))
    );
    assert!(report.mismatched.len() >= 3, "{report}");
}
