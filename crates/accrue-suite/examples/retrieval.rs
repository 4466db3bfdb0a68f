//! Text ↔ audio retrieval with a continually pre-trained encoder and the MiniLM text tower
//! (method-spec §6.3): embeds a folder of audio files (g^AT) and a list of captions, and
//! prints the best matches both ways.
//!
//! ```sh
//! cargo run --release -p accrue-suite --example retrieval -- model.safetensors resnet38-tiny sounds/ captions.txt
//! ```
//! `captions.txt` holds one caption per line. Towers: `$ACCRUE_DATA_DIR/towers`.

use std::path::{Path, PathBuf};

use accrue::eval::Matrix;
use accrue::towers::FrozenTower;
use accrue::towers::minilm::{MiniLmFiles, MiniLmTower};
use accrue_suite::suite::{embed_files, load_model_from_file};
use burn::tensor::Device;

/// Best matches: for each audio file its top captions, for each caption its top files
/// (indices, best first).
pub struct Matches {
    /// The audio files, sorted.
    pub files: Vec<PathBuf>,
    /// `audio_to_text[i]`: caption indices for file `i`.
    pub audio_to_text: Vec<Vec<usize>>,
    /// `text_to_audio[j]`: file indices for caption `j`.
    pub text_to_audio: Vec<Vec<usize>>,
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let n = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    dot / (n(a) * n(b))
}

fn top(scores: Vec<f32>, k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    // Ties keep the lower index first (deterministic).
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}

/// Ranks the audio files of `dir` against `captions`, keeping the best `k` each way.
pub fn run(
    model: &Path,
    preset: accrue::encoders::Preset,
    dir: &Path,
    captions: &[String],
    towers: &Path,
    k: usize,
) -> Result<Matches, Box<dyn std::error::Error>> {
    let device = Device::default();
    let student = load_model_from_file(preset, model, &device)?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                ["wav", "flac", "ogg", "oga", "mp3"].contains(&e.to_ascii_lowercase().as_str())
            })
        })
        .collect();
    files.sort();
    if files.is_empty() || captions.is_empty() {
        return Err("need at least one audio file and one caption".into());
    }
    let audio = embed_files(&student, &files, 32_000, &device)?;
    let at = audio.at.ok_or("the model has no audio-text head g^AT")?;
    let tower = MiniLmTower::load(&MiniLmFiles::in_dir(&towers.join("minilm")), &device)?;
    let refs: Vec<&str> = captions.iter().map(String::as_str).collect();
    let text = Matrix::from_tensor(tower.embed(&refs)?)?;
    let sim = |i: usize, j: usize| cosine(at.view().row(i), text.view().row(j));
    Ok(Matches {
        audio_to_text: (0..files.len())
            .map(|i| top((0..captions.len()).map(|j| sim(i, j)).collect(), k))
            .collect(),
        text_to_audio: (0..captions.len())
            .map(|j| top((0..files.len()).map(|i| sim(i, j)).collect(), k))
            .collect(),
        files,
    })
}

#[allow(dead_code)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() != 4 {
        eprintln!("usage: retrieval <model.safetensors> <preset> <audio dir> <captions.txt>");
        std::process::exit(2);
    }
    let captions: Vec<String> = std::fs::read_to_string(&args[3])?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    let towers = std::env::var_os("ACCRUE_DATA_DIR")
        .map_or_else(|| PathBuf::from("data"), PathBuf::from)
        .join("towers");
    let m = run(
        Path::new(&args[0]),
        args[1].parse()?,
        Path::new(&args[2]),
        &captions,
        &towers,
        3,
    )?;
    println!("audio → text");
    for (i, f) in m.files.iter().enumerate() {
        let best: Vec<&str> = m.audio_to_text[i]
            .iter()
            .map(|&j| captions[j].as_str())
            .collect();
        println!("  {}: {best:?}", f.display());
    }
    println!("text → audio");
    for (j, c) in captions.iter().enumerate() {
        let best: Vec<String> = m.text_to_audio[j]
            .iter()
            .map(|&i| m.files[i].display().to_string())
            .collect();
        println!("  {c:?}: {best:?}");
    }
    Ok(())
}
