//! The library-user examples (`examples/zero_shot.rs`, `examples/retrieval.rs`) run on a tiny
//! fixture: synthetic clips, a freshly initialised tiny encoder with a g^AT head saved as a
//! student checkpoint, and the real MiniLM text tower (`scripts/fetch_towers.sh`; SKIPPED
//! without it unless `ACCRUE_REQUIRE_DATA=1`). `examples/evaluate.rs` runs in
//! `tests/eval_report.rs` on the trainer's integration experiment.

#[path = "../../accrue-continual/tests/common/mod.rs"]
mod common;
#[path = "../examples/retrieval.rs"]
mod retrieval;
#[path = "../examples/zero_shot.rs"]
mod zero_shot;

use std::path::{Path, PathBuf};

use accrue::continual::config::EncoderSpec;
use accrue::continual::{ProjectionHeadConfig, Student, TaskKind};
use accrue::encoders::checkpoint::save_safetensors;
use burn::tensor::Device;

fn towers() -> Option<PathBuf> {
    let root = std::env::var_os("ACCRUE_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data"));
    let dir = root.join("towers");
    if dir.join("minilm/model.safetensors").is_file() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("ACCRUE_REQUIRE_DATA").is_none(),
        "MiniLM missing under {} and ACCRUE_REQUIRE_DATA is set",
        dir.display()
    );
    eprintln!(
        "SKIPPED: MiniLM missing under {} (run scripts/fetch_towers.sh)",
        dir.display()
    );
    None
}

/// A tiny student (3 classes) with a g^AT head into MiniLM's 384-d space, saved.
fn write_model(dir: &Path, with_at: bool) -> PathBuf {
    let device = Device::default();
    let spec = EncoderSpec::preset(accrue::encoders::Preset::ResNet38Tiny, Some(3));
    let mut student = Student::new(spec.config().expect("preset").init(&device));
    if with_at {
        let head = ProjectionHeadConfig::new(64)
            .with_d_hidden(32)
            .with_d_output(384);
        student = student
            .ensure_head(TaskKind::AT, &head, &device)
            .expect("head");
    }
    let path = dir.join(if with_at {
        "student.safetensors"
    } else {
        "encoder-only.safetensors"
    });
    save_safetensors(&student, &path).expect("save");
    path
}

fn clips(dir: &Path) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).expect("mkdir");
    (0..3)
        .map(|i| {
            let f = 220.0 * (i + 1) as f32;
            let samples: Vec<f32> = (0..24_000)
                .map(|n| 0.3 * (2.0 * std::f32::consts::PI * f * n as f32 / 16_000.0).sin())
                .collect();
            let p = dir.join(format!("tone{i}.wav"));
            common::write_wav(&p, &samples, 16_000);
            p
        })
        .collect()
}

#[test]
fn zero_shot_and_retrieval_examples_run() {
    let Some(towers) = towers() else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let model = write_model(tmp.path(), true);
    let files = clips(&tmp.path().join("sounds"));
    let labels: Vec<String> = ["violin", "drum", "flute"].map(String::from).to_vec();

    let preds = zero_shot::run(
        &model,
        accrue::encoders::Preset::ResNet38Tiny,
        &labels,
        &files,
        &towers,
    )
    .expect("zero-shot");
    assert_eq!(preds.len(), files.len());
    for (f, label, p) in &preds {
        assert!(files.contains(f));
        assert!(labels.contains(label));
        assert!(*p > 0.0 && *p <= 1.0 + 1e-6, "{p}");
    }

    let captions: Vec<String> = ["a low tone", "a high tone", "a violin playing"]
        .map(String::from)
        .to_vec();
    let m = retrieval::run(
        &model,
        accrue::encoders::Preset::ResNet38Tiny,
        &tmp.path().join("sounds"),
        &captions,
        &towers,
        2,
    )
    .expect("retrieval");
    assert_eq!(m.files.len(), 3);
    assert_eq!(m.audio_to_text.len(), 3);
    assert_eq!(m.text_to_audio.len(), 3);
    for top in m.audio_to_text.iter().chain(&m.text_to_audio) {
        assert_eq!(top.len(), 2);
        assert!(top[0] != top[1] && top.iter().all(|&i| i < 3));
    }

    // A model without g^AT is an error, not a panic.
    let enc = write_model(tmp.path(), false);
    let err = zero_shot::run(
        &enc,
        accrue::encoders::Preset::ResNet38Tiny,
        &labels,
        &files,
        &towers,
    )
    .expect_err("no head");
    assert!(err.to_string().contains("g^AT"), "{err}");
}
