//! Synthetic experiments: tiny WAVs, manifests, fake supervision tables and experiment files.

#![allow(dead_code)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use accrue_continual::SupervisionTable;

/// Every tensor of a safetensors file, by name (raw little-endian bytes): weights compared
/// tensor by tensor, whatever the file's byte layout.
pub fn tensors(path: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let bytes = std::fs::read(path).expect("read weights");
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    st.tensors()
        .into_iter()
        .map(|(n, v)| (n, v.data().to_vec()))
        .collect()
}

/// Writes a 16-bit PCM mono WAV.
pub fn write_wav(path: &Path, samples: &[f32], rate: u32) {
    let data_len = (samples.len() * 2) as u32;
    let mut b = Vec::with_capacity(44 + data_len as usize);
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data_len).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate * 2).to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        b.extend_from_slice(&((s.clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes());
    }
    std::fs::write(path, b).expect("write wav");
}

const CLASSES: [&str; 3] = ["bird", "dog", "siren"];
pub const DIM: usize = 16;
pub const CLIPS: usize = 8;

fn embedding(seed: usize) -> Vec<f32> {
    (0..DIM)
        .map(|d| (((seed * 31 + d * 7) % 17) as f32 - 8.0) / 8.0)
        .collect()
}

/// Writes clips, one manifest per task (train + valid) and one supervision table per task.
pub fn write_data(dir: &Path) {
    std::fs::create_dir_all(dir.join("clips")).expect("mkdir");
    let mut train = String::new();
    let mut valid = String::new();
    let mut av = SupervisionTable::new(DIM);
    let mut at = SupervisionTable::new(DIM);
    for i in 0..CLIPS + 4 {
        let class = i % CLASSES.len();
        let freq = 300.0 + 250.0 * class as f32 + 10.0 * i as f32;
        let samples: Vec<f32> = (0..19_200)
            .map(|n| 0.3 * (2.0 * std::f32::consts::PI * freq * n as f32 / 32_000.0).sin())
            .collect();
        write_wav(&dir.join(format!("clips/c{i}.wav")), &samples, 32_000);
        let caption = format!("a {} sound number {i}", CLASSES[class]);
        let line = format!(
            "{{\"audio\": \"clips/c{i}.wav\", \"id\": \"c{i}\", \"labels\": [\"{}\"], \"captions\": [\"{caption}\"], \"image_embeddings\": [\"img{i}a\", \"img{i}b\"]}}\n",
            CLASSES[class]
        );
        if i < CLIPS {
            train.push_str(&line)
        } else {
            valid.push_str(&line)
        }
        av.entries.insert(format!("img{i}a"), embedding(i));
        av.entries.insert(format!("img{i}b"), embedding(i + 100));
        at.entries.insert(caption, embedding(i + 200));
    }
    std::fs::write(dir.join("train.jsonl"), train).expect("manifest");
    std::fs::write(dir.join("valid.jsonl"), valid).expect("manifest");
    av.save(&dir.join("clip_image.json")).expect("table");
    at.save(&dir.join("clip_text.json")).expect("table");
}

fn task(kind: &str) -> String {
    let table = match kind {
        "AV" => "supervision = \"clip_image.json\"\n",
        "AT" => "supervision = \"clip_text.json\"\n",
        _ => "",
    };
    format!(
        "[[stages.tasks]]\nkind = \"{kind}\"\nmanifest = \"train.jsonl\"\nvalid_manifest = \"valid.jsonl\"\n{table}"
    )
}

/// A stage block: `tasks` are kinds, `strategy` an inline TOML table.
pub fn stage(name: &str, tasks: &[&str], strategy: &str, extra: &str) -> String {
    let mut s = format!(
        "[[stages]]\nname = \"{name}\"\nstrategy = {strategy}\nepochs = 2\npatience = 5\nbatch_size = 4\ncrop_seconds = 0.5\nseed = 7\n{extra}\n[stages.optimizer]\nlr = 1e-3\n"
    );
    for t in tasks {
        s.push_str(&task(t));
    }
    s
}

/// Writes an experiment file and returns its path.
pub fn write_experiment(dir: &Path, file: &str, out: &str, stages: &[String]) -> PathBuf {
    let mut text = String::new();
    writeln!(text, "name = \"{file}\"\noutput_dir = \"{out}\"\n[encoder]\npreset = \"resnet38-tiny\"\nnum_classes = 3\n[head]\nhidden = 32\noutput = {DIM}\n").expect("fmt");
    for s in stages {
        text.push_str(s);
    }
    let path = dir.join(file);
    std::fs::write(&path, text).expect("write experiment");
    path
}

/// The `"event":"step"` lines of a metrics log (none when it does not exist yet).
pub fn step_lines(metrics: &Path) -> Vec<String> {
    std::fs::read_to_string(metrics)
        .map(|t| {
            t.lines()
                .filter(|l| l.contains("\"event\":\"step\""))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Waits (up to 4 minutes) until the run writing `metrics` has logged `after` steps, then kills
/// `child`; returns the steps it had logged. Panics when the child ends first or never gets
/// there.
pub fn kill_after_steps(child: &mut std::process::Child, metrics: &Path, after: usize) -> usize {
    let t0 = std::time::Instant::now();
    let mut killed_at = None;
    while t0.elapsed() < std::time::Duration::from_secs(240) {
        if let Some(status) = child.try_wait().expect("wait") {
            panic!("child ended before it was killed: {status}");
        }
        let n = step_lines(metrics).len();
        if n >= after {
            child.kill().expect("kill");
            killed_at = Some(n);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    if killed_at.is_none() {
        let _ = child.kill();
    }
    let _ = child.wait();
    killed_at.expect("child made no progress in time")
}
