//! Mutation fuzzing of accrue's input readers on stable Rust: every input path a user controls
//! gets random mutations of valid seed files (bit flips, random bytes, insertions, deletions,
//! duplicated ranges, truncation, splices of two seeds, boundary values), and any panic is a
//! failure whose input is saved. No coverage feedback (cargo-fuzz needs a nightly toolchain,
//! which this project's machines cannot fetch): a blind fuzzer, so its counts are a floor.
//!
//! ```text
//! cargo run --release -p accrue-cli --example fuzz -- <target|all> <executions> [seed]
//! ```
//!
//! Targets: `audio` (WAV/FLAC/MP3 decoding), `manifest` (JSONL manifests), `experiment`
//! (experiment files, parsed and validated), `supervision` (supervision tables), `safetensors`
//! (array files and checkpoint key listing), `pytorch` (PyTorch checkpoint reading and the
//! dtype check). Crashing inputs go to `fuzz-crashes/<target>-<n>.bin`. Results are recorded
//! in `docs/fuzzing.md`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use accrue::core::seed::SplitMix64;

type Target = fn(&[u8], &Path);

fn manifest_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The seeds of a target: valid files of the kind it reads.
fn seeds(target: &str) -> Vec<Vec<u8>> {
    let root = manifest_dir();
    let files: Vec<PathBuf> = match target {
        "audio" => [
            "float.wav",
            "pcm_16.wav",
            "pcm_24.wav",
            "pcm_u8.wav",
            "pcm_16.flac",
            "mp3.mp3",
        ]
        .iter()
        .map(|f| {
            root.join("crates/accrue-audio/tests/fixtures/audio/codecs")
                .join(f)
        })
        .collect(),
        "manifest" => vec![root.join("crates/accrue-data/tests/fixtures/manifest/manifest.jsonl")],
        "experiment" => std::fs::read_dir(root.join("configs"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "toml"))
                    .collect()
            })
            .unwrap_or_default(),
        "supervision" => {
            return vec![
                br#"{"dim": 3, "entries": {"a": [0.1, 0.2, 0.3], "b caption": [1, -1, 0.5]}}"#
                    .to_vec(),
            ];
        }
        "safetensors" => {
            vec![root.join("crates/accrue-encoders/tests/fixtures/encoders/aisfx_io.safetensors")]
        }
        "pytorch" => vec![
            root.join("crates/accrue-encoders/tests/fixtures/encoders/f64_tensor.pth"),
            root.join("crates/accrue-encoders/tests/fixtures/encoders/cnn14_small.pth"),
        ],
        // Texts: every line of the CLIP tokenizer's golden file (captions, emoji, HTML
        // entities, long inputs) on its own.
        "tokenizer" => {
            let golden = root
                .join("crates/accrue-towers/tests/fixtures/towers/clip_tokens/clip_tokens.jsonl");
            return std::fs::read_to_string(golden)
                .map(|t| {
                    t.lines()
                        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                        .filter_map(|v| v.get("text")?.as_str().map(|s| s.as_bytes().to_vec()))
                        .collect()
                })
                .unwrap_or_default();
        }
        "clip-vocab" => {
            // The header and first 2,000 merges of the real vocabulary are mutated; the target
            // appends the untouched rest, so every execution builds a whole tokenizer.
            return clip_vocab_split()
                .map(|(head, _)| vec![head.as_bytes().to_vec()])
                .unwrap_or_default();
        }
        _ => Vec::new(),
    };
    files.iter().filter_map(|f| std::fs::read(f).ok()).collect()
}

fn target(name: &str) -> Option<(Target, &'static str)> {
    Some(match name {
        "audio" => (
            |b, _| {
                let _ = accrue::audio::decode::decode_bytes(
                    b.to_vec(),
                    "fuzz.wav",
                    accrue::audio::decode::DecodeOptions::default(),
                );
            },
            "wav",
        ),
        "manifest" => (
            |b, p| {
                let _ = std::fs::write(p, b);
                let _ = accrue::data::readers::manifest::read(p, &Default::default());
            },
            "jsonl",
        ),
        "experiment" => (
            |b, _| {
                if let Ok(c) =
                    accrue::continual::ExperimentConfig::parse(&String::from_utf8_lossy(b))
                {
                    let _ = c.validate();
                }
            },
            "toml",
        ),
        "supervision" => (
            |b, p| {
                let _ = std::fs::write(p, b);
                let _ = accrue::continual::SupervisionTable::load(p);
            },
            "json",
        ),
        "safetensors" => (
            |b, p| {
                let _ = std::fs::write(p, b);
                let _ = accrue::core::arrays::read(p);
                let _ = accrue::encoders::checkpoint::safetensors_keys(p);
            },
            "safetensors",
        ),
        "pytorch" => (
            |b, p| {
                let _ = std::fs::write(p, b);
                let _ = burn::store::pytorch_reader::PytorchReader::new(p);
            },
            "pth",
        ),
        "tokenizer" => (
            |b, _| {
                let text = String::from_utf8_lossy(b);
                if let Some(clip) = clip_tokenizer() {
                    let _ = clip.tokenize(
                        &text,
                        77,
                        accrue::towers::clip::tokenizer::Overflow::Truncate,
                    );
                    let _ =
                        clip.tokenize(&text, 77, accrue::towers::clip::tokenizer::Overflow::Error);
                }
                if let Some(minilm) = minilm_tower() {
                    let _ = minilm.tokenize(&[&text]);
                }
            },
            "txt",
        ),
        "clip-vocab" => (
            |b, _| {
                let Some((_, rest)) = clip_vocab_split() else {
                    return;
                };
                let text = format!("{}\n{rest}", String::from_utf8_lossy(b));
                if let Ok(t) =
                    accrue::towers::clip::tokenizer::ClipTokenizer::from_merges_text(&text)
                {
                    let _ = t.tokenize("a dog barking, 🐕 &amp; a siren", 77, Default::default());
                }
            },
            "txt",
        ),
        _ => return None,
    })
}

fn towers_dir() -> PathBuf {
    std::env::var_os("ACCRUE_TOWERS")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest_dir().join("data/towers"))
}

/// The real CLIP merges (`data/towers/clip`, fetched by scripts/fetch_towers.sh), split after
/// the header and the first 2,000 merges (the part the `clip-vocab` target mutates), read once.
fn clip_vocab_split() -> Option<&'static (String, String)> {
    static V: std::sync::OnceLock<Option<(String, String)>> = std::sync::OnceLock::new();
    V.get_or_init(|| {
        let text = accrue::towers::clip::tokenizer::ClipTokenizer::read_merges_text(
            &towers_dir().join("clip/bpe_simple_vocab_16e6.txt.gz"),
        )
        .ok()?;
        let cut = text.match_indices('\n').nth(2_000)?.0;
        Some((text[..cut].to_string(), text[cut + 1..].to_string()))
    })
    .as_ref()
}

/// The real CLIP tokenizer, loaded once (`None` without the fetched vocabulary).
fn clip_tokenizer() -> Option<&'static accrue::towers::clip::tokenizer::ClipTokenizer> {
    static T: std::sync::OnceLock<Option<accrue::towers::clip::tokenizer::ClipTokenizer>> =
        std::sync::OnceLock::new();
    T.get_or_init(|| {
        accrue::towers::clip::tokenizer::ClipTokenizer::from_file(
            &towers_dir().join("clip/bpe_simple_vocab_16e6.txt.gz"),
        )
        .ok()
    })
    .as_ref()
}

/// The real MiniLM tower (its HF tokenizer), loaded once (`None` without the fetched files).
fn minilm_tower() -> Option<&'static accrue::towers::minilm::MiniLmTower> {
    static T: std::sync::OnceLock<Option<accrue::towers::minilm::MiniLmTower>> =
        std::sync::OnceLock::new();
    T.get_or_init(|| {
        let files = accrue::towers::minilm::MiniLmFiles::in_dir(&towers_dir().join("minilm"));
        accrue::towers::minilm::MiniLmTower::load(&files, &burn::tensor::Device::flex()).ok()
    })
    .as_ref()
}

/// One random mutation of `input` (possibly spliced with `other`).
fn mutate(rng: &mut SplitMix64, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        let len = v.len().max(1);
        match rng.below(8) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = rng.next_u64() as u8;
            }
            2 => {
                let i = rng.below(len);
                let n = 1 + rng.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                v.splice(i.min(v.len())..i.min(v.len()), bytes);
            }
            3 if v.len() > 1 => {
                let i = rng.below(v.len());
                let n = 1 + rng.below((v.len() - i).min(64));
                v.drain(i..i + n);
            }
            4 if v.len() > 1 => {
                let i = rng.below(v.len());
                let n = 1 + rng.below((v.len() - i).min(64));
                let dup: Vec<u8> = v[i..i + n].to_vec();
                v.splice(i..i, dup);
            }
            5 => v.truncate(rng.below(len)),
            6 if !other.is_empty() => {
                let cut = rng.below(len).min(v.len());
                let from = rng.below(other.len());
                v.truncate(cut);
                v.extend_from_slice(&other[from..]);
            }
            _ if v.len() >= 4 => {
                let i = rng.below(v.len() - 3);
                let values: [u32; 6] = [0, 1, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff, 0xffff];
                let x = values[rng.below(values.len())];
                v[i..i + 4].copy_from_slice(&x.to_le_bytes());
            }
            _ => {}
        }
    }
    v
}

fn fuzz(name: &str, executions: u64, seed: u64) -> (u64, u64, usize, f64) {
    let Some((run, ext)) = target(name) else {
        eprintln!("unknown target `{name}`");
        std::process::exit(2);
    };
    let corpus = seeds(name);
    if corpus.is_empty() {
        eprintln!("{name}: no seed files found");
        std::process::exit(2);
    }
    let dir = std::env::temp_dir().join(format!("accrue-fuzz-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let file = dir.join(format!("input.{ext}"));
    let mut rng = SplitMix64::new(seed);
    let (mut panics, t0) = (0u64, Instant::now());
    for n in 0..executions {
        let a = &corpus[rng.below(corpus.len())];
        let b = &corpus[rng.below(corpus.len())];
        let input = mutate(&mut rng, a, b);
        let ok = std::panic::catch_unwind(|| run(&input, &file)).is_ok();
        if !ok {
            panics += 1;
            let _ = std::fs::create_dir_all("fuzz-crashes");
            let _ = std::fs::write(format!("fuzz-crashes/{name}-{n}.bin"), &input);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    (executions, panics, corpus.len(), t0.elapsed().as_secs_f64())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(which), Some(n)) = (
        args.first(),
        args.get(1).and_then(|n| n.parse::<u64>().ok()),
    ) else {
        eprintln!(
            "usage: fuzz <audio|manifest|experiment|supervision|safetensors|pytorch|tokenizer|clip-vocab|all> <executions> [seed]"
        );
        std::process::exit(2);
    };
    let seed = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(0);
    // Panics are counted, not printed.
    std::panic::set_hook(Box::new(|_| {}));
    let all = [
        "audio",
        "manifest",
        "experiment",
        "supervision",
        "safetensors",
        "pytorch",
        "tokenizer",
        "clip-vocab",
    ];
    let names: Vec<&str> = if which == "all" {
        all.to_vec()
    } else {
        vec![which.as_str()]
    };
    let mut failed = false;
    for name in names {
        let (execs, panics, seeds, secs) = fuzz(name, n, seed);
        println!(
            "{name}: {execs} executions, {panics} panics, {seeds} seed files, {secs:.1} s ({:.0}/s)",
            execs as f64 / secs.max(1e-9)
        );
        failed |= panics > 0;
    }
    if failed {
        std::process::exit(1);
    }
}
