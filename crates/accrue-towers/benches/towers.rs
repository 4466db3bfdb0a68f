//! Tower throughput: MiniLM captions/s and EfficientNet-Lite0 images/s on the default
//! device, for comparison with `python tools/goldens/towers.py bench` (PyTorch, same number
//! of threads: set `RAYON_NUM_THREADS` here and `--threads` there).
//!
//! Needs the real weights (`scripts/fetch_towers.sh`); each benchmark is skipped otherwise.

use std::path::PathBuf;

use accrue_towers::FrozenTower;
use accrue_towers::efficientnet::EfficientNetTower;
use accrue_towers::minilm::{MiniLmFiles, MiniLmTower};
use burn::tensor::Device;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn towers_dir() -> PathBuf {
    match std::env::var_os("ACCRUE_DATA_DIR") {
        Some(d) => PathBuf::from(d).join("towers"),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/towers"),
    }
}

/// 32 captions like the AT task's ("a violin playing a high note softly").
pub fn captions() -> Vec<String> {
    let things = [
        "violin", "cello", "trumpet", "dog", "kettle", "drum kit", "bassoon", "tiger",
    ];
    let how = ["softly", "loudly", "a high note", "a low note"];
    (0..32)
        .map(|i| format!("a {} playing {} in a small room", things[i % 8], how[i % 4]))
        .collect()
}

fn bench(c: &mut Criterion) {
    let device = Device::default();
    let dir = towers_dir();
    let mut g = c.benchmark_group("towers");
    g.sample_size(10);
    match MiniLmTower::load(&MiniLmFiles::in_dir(&dir.join("minilm")), &device) {
        Ok(tower) => {
            let caps = captions();
            let refs: Vec<&str> = caps.iter().map(String::as_str).collect();
            g.throughput(Throughput::Elements(refs.len() as u64));
            g.bench_function("minilm_32_captions", |b| {
                b.iter(|| tower.embed(&refs).map(|e| e.into_data()))
            });
        }
        Err(e) => eprintln!("skipping MiniLM benchmark: {e}"),
    }
    match EfficientNetTower::load(
        &EfficientNetTower::weights_in(&dir.join("efficientnet")),
        &device,
    ) {
        Ok(tower) => {
            let imgs: Vec<image::DynamicImage> = (0..8)
                .map(|i| {
                    image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(320, 240, |x, y| {
                        image::Rgb([(x + i) as u8, y as u8, ((x * y) % 251) as u8])
                    }))
                })
                .collect();
            let refs: Vec<&image::DynamicImage> = imgs.iter().collect();
            g.throughput(Throughput::Elements(refs.len() as u64));
            g.bench_function("efficientnet_lite0_8_images", |b| {
                b.iter(|| tower.embed(&refs).map(|e| e.into_data()))
            });
        }
        Err(e) => eprintln!("skipping EfficientNet benchmark: {e}"),
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
