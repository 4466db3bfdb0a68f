//! Frozen-tower supervision: embeds the captions and images of a dataset once, through
//! `accrue-towers`' on-disk [`EmbeddingCache`], and writes the trainer's
//! [`SupervisionTable`] (so no tower ever runs inside a training loop).
//!
//! The cache is keyed by tower identity (architecture + weight hash + preprocessing) and input
//! digest: a second call with the same inputs reads every row from disk.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use accrue_continual::SupervisionTable;
use accrue_data::{Dataset, ImageRef};
use accrue_towers::cache::EmbeddingCache;
use accrue_towers::efficientnet::EfficientNetTower;
use accrue_towers::minilm::{MiniLmFiles, MiniLmTower};
use accrue_towers::preprocess::load_image;
use accrue_towers::{FrozenTower, TowerIdentity};
use burn::tensor::Device;
use image::{DynamicImage, Rgba, RgbaImage};

use crate::error::{Error, Result};

/// The two real pre-trained towers of the miniature benchmark, as fetched by
/// `scripts/fetch_towers.sh` into `<towers_dir>/minilm/` and `<towers_dir>/efficientnet/`.
pub struct Towers {
    /// Sentence-transformer text tower (384-d).
    pub text: MiniLmTower,
    /// EfficientNet-Lite0 image tower (1280-d pooled features).
    pub image: EfficientNetTower,
}

impl Towers {
    /// Loads both towers from `towers_dir`.
    ///
    /// # Errors
    /// Missing files (with the script to run) or a checkpoint mismatch.
    pub fn load(towers_dir: &Path, device: &Device) -> Result<Self> {
        let files = MiniLmFiles::in_dir(&towers_dir.join("minilm"));
        let weights = EfficientNetTower::weights_in(&towers_dir.join("efficientnet"));
        if !weights.is_file() || !towers_dir.join("minilm").is_dir() {
            return Err(Error::Missing(format!(
                "the frozen towers are not in {} (run scripts/fetch_towers.sh)",
                towers_dir.display()
            )));
        }
        Ok(Self {
            text: MiniLmTower::load(&files, device)?,
            image: EfficientNetTower::load(&weights, device)?,
        })
    }
}

/// Composites an image with an alpha channel onto a white background (emoji and Tux Paint
/// stamps are transparent PNGs; dropping alpha would show the colour under transparent
/// pixels, usually black). Images without alpha are returned unchanged.
pub fn composite_on_white(img: DynamicImage) -> DynamicImage {
    if !img.color().has_alpha() {
        return img;
    }
    let rgba: RgbaImage = img.to_rgba8();
    let mut out = RgbaImage::new(rgba.width(), rgba.height());
    for (x, y, p) in rgba.enumerate_pixels() {
        let a = f32::from(p[3]) / 255.0;
        let mix = |c: u8| (f32::from(c) * a + 255.0 * (1.0 - a)).round() as u8;
        out.put_pixel(x, y, Rgba([mix(p[0]), mix(p[1]), mix(p[2]), 255]));
    }
    DynamicImage::ImageRgb8(DynamicImage::ImageRgba8(out).to_rgb8())
}

/// The distinct captions of a dataset, in first-appearance order.
pub fn dataset_captions(ds: &Dataset) -> Vec<String> {
    let mut seen = BTreeSet::new();
    ds.examples
        .iter()
        .flat_map(|e| e.captions.iter())
        .filter(|c| seen.insert(c.as_str()))
        .cloned()
        .collect()
}

/// The distinct image files of a dataset (as the trainer keys them), in first-appearance
/// order.
pub fn dataset_images(ds: &Dataset) -> Vec<PathBuf> {
    let mut seen = BTreeSet::new();
    ds.examples
        .iter()
        .flat_map(|e| e.images.iter())
        .filter_map(|i| match i {
            ImageRef::File(p) => Some(p.clone()),
            ImageRef::Embedding(_) => None,
        })
        .filter(|p| seen.insert(p.clone()))
        .collect()
}

fn open_cache<T: FrozenTower>(tower: &T, cache_root: &Path) -> Result<EmbeddingCache> {
    Ok(EmbeddingCache::open(
        cache_root,
        tower.identity(),
        tower.embed_dim(),
    )?)
}

fn to_rows(t: burn::tensor::Tensor<2>) -> Result<(Vec<f32>, usize)> {
    let [_, d] = t.dims();
    let v = t
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| Error::Other(format!("tower output: {e:?}")))?;
    Ok((v, d))
}

/// Embeds `texts` with `tower` (cached under `cache_root`) into a table keyed by the text.
///
/// # Errors
/// Tower or cache errors.
pub fn text_table<T: FrozenTower<Input = str>>(
    tower: &T,
    cache_root: &Path,
    texts: &[String],
    batch_size: usize,
    progress: bool,
) -> Result<SupervisionTable> {
    let mut cache = open_cache(tower, cache_root)?;
    let inputs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let (rows, d) = to_rows(cache.compute(tower, &inputs, batch_size, progress)?)?;
    let mut table = SupervisionTable::new(d);
    for (i, t) in texts.iter().enumerate() {
        table
            .entries
            .insert(t.clone(), rows[i * d..(i + 1) * d].to_vec());
    }
    Ok(table)
}

/// Embeds image files with `tower` (cached under `cache_root`; transparent images are
/// composited on white first) into a table keyed by the path as the trainer writes it.
///
/// # Errors
/// Unreadable images (named), tower or cache errors.
pub fn image_table<T: FrozenTower<Input = DynamicImage>>(
    tower: &T,
    cache_root: &Path,
    images: &[PathBuf],
    batch_size: usize,
    progress: bool,
) -> Result<SupervisionTable> {
    let mut cache = open_cache(tower, cache_root)?;
    let decoded: Vec<DynamicImage> = images
        .iter()
        .map(|p| load_image(p).map(composite_on_white))
        .collect::<std::result::Result<_, _>>()?;
    let inputs: Vec<&DynamicImage> = decoded.iter().collect();
    let (rows, d) = to_rows(cache.compute(tower, &inputs, batch_size, progress)?)?;
    let mut table = SupervisionTable::new(d);
    for (i, p) in images.iter().enumerate() {
        table.entries.insert(
            p.to_string_lossy().into_owned(),
            rows[i * d..(i + 1) * d].to_vec(),
        );
    }
    Ok(table)
}

/// A tower's identity as one line (for provenance records).
pub fn identity_line(id: &TowerIdentity) -> String {
    id.to_string()
}
