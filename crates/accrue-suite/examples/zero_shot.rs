//! Zero-shot classification of audio files with a continually pre-trained encoder and the
//! MiniLM text tower (method-spec §6.2): each label becomes prompts, the prompts' text
//! embeddings are averaged into a class vector, and each clip goes to the class whose vector is
//! closest to its g^AT output.
//!
//! ```sh
//! cargo run --release -p accrue-suite --example zero_shot -- \
//!     results/runs/seed0/a-av-at-modx/final.safetensors resnet38-tiny \
//!     "violin,flute,drum" clip1.wav clip2.ogg
//! ```
//! The towers are read from `$ACCRUE_DATA_DIR/towers` (default `data/towers`;
//! `scripts/fetch_towers.sh` fetches them).

use std::path::{Path, PathBuf};

use accrue::eval::BoxError;
use accrue::eval::zero_shot::{ZeroShotConfig, class_weights, zero_shot_logits};
use accrue::towers::FrozenTower;
use accrue::towers::minilm::{MiniLmFiles, MiniLmTower};
use accrue_suite::suite::{embed_files, load_model_from_file};
use burn::tensor::Device;

/// One prediction: file, label, probability (softmax over cosine × 100, as CLIP).
pub type Prediction = (PathBuf, String, f32);

/// Classifies `files` among `labels`.
pub fn run(
    model: &Path,
    preset: accrue::encoders::Preset,
    labels: &[String],
    files: &[PathBuf],
    towers: &Path,
) -> Result<Vec<Prediction>, Box<dyn std::error::Error>> {
    let device = Device::default();
    let student = load_model_from_file(preset, model, &device)?;
    if student.head_at.is_none() {
        return Err("the model has no audio-text head g^AT (train an AT stage first)".into());
    }
    let tower = MiniLmTower::load(&MiniLmFiles::in_dir(&towers.join("minilm")), &device)?;
    let embed = |texts: &[String]| -> Result<Vec<Vec<f32>>, BoxError> {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let t = tower.embed(&refs)?;
        let [n, d] = t.dims();
        let v: Vec<f32> = t
            .into_data()
            .convert::<f32>()
            .try_into_vec()
            .map_err(|e| format!("{e:?}"))?;
        Ok((0..n).map(|i| v[i * d..(i + 1) * d].to_vec()).collect())
    };
    let weights = class_weights(labels, &ZeroShotConfig::default(), &embed)?;
    let audio = embed_files(&student, files, 32_000, &device)?;
    let at = audio.at.as_ref().ok_or("no g^AT output")?;
    let logits = zero_shot_logits(at.view(), weights.view())?;
    let mut out = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let row = logits.view().row(i);
        let max = row.iter().copied().fold(f32::MIN, f32::max);
        let exp: Vec<f32> = row.iter().map(|c| ((c - max) * 100.0).exp()).collect();
        let sum: f32 = exp.iter().sum();
        let (best, p) = exp
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(k, e)| (k, e / sum))
            .ok_or("no labels")?;
        out.push((f.clone(), labels[best].clone(), p));
    }
    Ok(out)
}

#[allow(dead_code)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 4 {
        eprintln!(
            "usage: zero_shot <model.safetensors> <preset> <label,label,...> <audio files...>"
        );
        std::process::exit(2);
    }
    let labels: Vec<String> = args[2].split(',').map(|s| s.trim().to_string()).collect();
    let files: Vec<PathBuf> = args[3..].iter().map(PathBuf::from).collect();
    let towers = std::env::var_os("ACCRUE_DATA_DIR")
        .map_or_else(|| PathBuf::from("data"), PathBuf::from)
        .join("towers");
    for (file, label, p) in run(
        Path::new(&args[0]),
        args[1].parse()?,
        &labels,
        &files,
        &towers,
    )? {
        println!("{}: {label} ({:.1} %)", file.display(), p * 100.0);
    }
    Ok(())
}
