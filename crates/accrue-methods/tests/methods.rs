//! Methods written against the public API train through the real trainer from TOML:
//! the example's `feature_l2` (killed mid-stage and resumed bit-identically), experience replay
//! (seeded, bounded, nested memory; resumed bit-identically mid-replay) and WiSE-FT (the stage
//! model is exactly the interpolation of the stage-start and fine-tuned weights).

#[path = "../../accrue-continual/tests/common/mod.rs"]
mod common;
#[path = "../examples/custom_strategy.rs"]
mod example;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use accrue::continual::{
    Experiment, ExperimentConfig, Registry, RunDir, RunSummary, StageInfo, Strategy, TaskKind,
    TaskSource,
};
use accrue_methods::{ExperienceReplay, ReplayOptions};
use common::{kill_after_steps, stage, step_lines, tensors, write_data, write_experiment};

/// Burn's device RNG is process-global: the runs of this file take turns.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

const CHILD_ENV: &str = "ACCRUE_METHODS_CHILD_CONFIG";

/// Every method a test here may name: the shipped ones, this crate's and the example's.
fn registry() -> Registry {
    let mut r = example::registry().expect("registry");
    accrue_methods::register(&mut r).expect("register");
    r
}

fn train(path: &Path, resume: bool) -> RunSummary {
    let r = registry();
    let config = ExperimentConfig::load_with(path, &r).expect("config");
    Experiment::new(config)
        .registry(r)
        .run(resume)
        .expect("run")
}

/// Entry point of the child process; a no-op in a normal test run.
#[test]
fn child_entry() {
    if let Some(path) = std::env::var_os(CHILD_ENV) {
        unsafe { std::env::set_var("ACCRUE_NO_PROGRESS", "1") };
        train(Path::new(&path), false);
    }
}

/// The serial turn of a training test, and a folder with the synthetic fixtures.
fn fixtures() -> (std::sync::MutexGuard<'static, ()>, tempfile::TempDir) {
    let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    unsafe { std::env::set_var("ACCRUE_NO_PROGRESS", "1") };
    let dir = tempfile::tempdir().expect("tempdir");
    write_data(dir.path());
    (serial, dir)
}

/// Trains `stages` in a child process killed after `kill_after` logged steps, resumes it, and
/// compares with an uninterrupted run tensor by tensor. Returns the uninterrupted run.
fn kill_and_resume(dir: &Path, stages: &[String], kill_after: usize) -> RunSummary {
    let reference = write_experiment(dir, "ref.toml", "out-ref", stages);
    let killed = write_experiment(dir, "killed.toml", "out-killed", stages);
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args(["child_entry", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &killed)
        .spawn()
        .expect("spawn child");
    let killed_at = kill_after_steps(
        &mut child,
        &dir.join("out-killed/metrics.jsonl"),
        kill_after,
    );
    let total = 4 * stages.len();
    assert!(
        killed_at < total,
        "killed too late ({killed_at} of {total} steps)"
    );

    let resumed = train(&killed, true);
    let uninterrupted = train(&reference, false);
    let (a, b) = (
        tensors(&resumed.final_model),
        tensors(&uninterrupted.final_model),
    );
    assert!(a.len() > 10, "too few tensors: {}", a.len());
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (name, bytes) in &a {
        assert!(
            *bytes == b[name],
            "`{name}` of the run killed after {killed_at} steps differs from the uninterrupted run"
        );
    }
    assert_eq!(resumed.stages, uninterrupted.stages);
    assert_eq!(
        step_lines(&resumed.metrics),
        step_lines(&uninterrupted.metrics)
    );
    uninterrupted
}

#[test]
fn a_users_method_trains_a_av_at_from_toml_and_resumes_bit_identically() {
    let (_serial, dir) = fixtures();
    let every = "checkpoint_every_steps = 1";
    let stages = vec![
        stage("a", &["A"], "{ kind = \"finetune\" }", every),
        stage("av", &["AV"], "{ kind = \"feature_l2\" }", every),
        stage("at", &["AT"], "{ kind = \"feature_l2\" }", every),
    ];
    // Killed in the middle of the AV stage (steps 5–8 of 12).
    let run = kill_and_resume(dir.path(), &stages, 6);
    let names: Vec<&str> = run.stages.iter().map(|s| s.strategy.as_str()).collect();
    assert_eq!(names, ["finetune", "feature_l2", "feature_l2"]);
    // One teacher forward per step (4) and per validation batch (one per epoch, 2).
    assert_eq!(run.stages[0].teacher_forwards, 0);
    assert_eq!(run.stages[1].teacher_forwards, 6);
    // The distillation term is logged in the user's stages, and the stage models exist.
    let lines = step_lines(&run.metrics);
    assert!(lines[4..].iter().all(|l| l.contains("\"distillation\"")));
    let out = RunDir::new(dir.path().join("out-ref"));
    for (i, name) in ["a", "av", "at"].iter().enumerate() {
        assert!(out.stage_model(i, name).is_file(), "stage model {name}");
    }
}

#[test]
fn unknown_kinds_and_option_keys_of_a_users_method_are_named_with_their_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_data(dir.path());
    let bad_key = write_experiment(
        dir.path(),
        "bad-key.toml",
        "out",
        &[stage(
            "av",
            &["AV"],
            "{ kind = \"feature_l2\", wieght = 1 }",
            "",
        )],
    );
    let msg = ExperimentConfig::load_with(&bad_key, &registry())
        .expect_err("unknown key")
        .to_string();
    let line = std::fs::read_to_string(&bad_key)
        .expect("read")
        .lines()
        .position(|l| l.contains("wieght"))
        .expect("line")
        + 1;
    assert!(
        msg.contains("wieght") && msg.contains(&format!("line {line}")),
        "{msg}"
    );
    // Without the user's registration the kind is unknown, and the known ones are listed.
    let msg = ExperimentConfig::load(&bad_key)
        .expect_err("unregistered")
        .to_string();
    assert!(msg.contains("feature_l2") && msg.contains("lwf"), "{msg}");
}

#[test]
fn replay_memory_is_seeded_bounded_and_keeps_a_prefix_as_tasks_arrive() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_data(dir.path());
    let ds =
        accrue::data::readers::manifest::read(&dir.path().join("train.jsonl"), &Default::default())
            .expect("manifest");
    let source = |stage| TaskSource {
        stage,
        kind: TaskKind::A,
        dataset: ds.clone(),
        supervision: None,
    };
    let options = ReplayOptions {
        capacity: 8,
        batch_size: 2,
        seed: 3,
    };
    let r = ExperienceReplay::new(options.clone());
    let six = r.memory(&source(Some(0)), 0, 6);
    let three = r.memory(&source(Some(0)), 0, 3);
    assert_eq!(six.len(), 6);
    assert_eq!(&six[..3], &three[..], "a shrinking share keeps a prefix");
    assert_eq!(
        six,
        ExperienceReplay::new(options.clone()).memory(&source(Some(0)), 0, 6)
    );
    let other = ExperienceReplay::new(ReplayOptions { seed: 4, ..options });
    assert_ne!(
        six,
        other.memory(&source(Some(0)), 0, 6),
        "the seed chooses"
    );
    // Two earlier tasks share the capacity: 4 clips each, at the replay batch size.
    let mut r = r;
    let info = StageInfo::new(2, TaskKind::AT, Some(TaskKind::AV), 0.3);
    let streams = r
        .replay(&info, &[source(None), source(Some(0))])
        .expect("streams");
    assert_eq!(streams.len(), 2);
    assert!(streams.iter().all(|s| s.source.dataset.examples.len() == 4));
    assert!(streams.iter().all(|s| s.batch_size == 2));
    // A memory too small for one batch per task is refused, naming the method.
    let mut tight = ExperienceReplay::new(ReplayOptions {
        capacity: 3,
        batch_size: 2,
        seed: 0,
    });
    let err = tight
        .replay(&info, &[source(None), source(Some(0))])
        .expect_err("too small")
        .to_string();
    assert!(err.contains("replay") && err.contains("capacity"), "{err}");
}

#[test]
fn replay_and_wise_ft_train_from_toml_and_resume_bit_identically_mid_replay() {
    let (_serial, dir) = fixtures();
    let every = "checkpoint_every_steps = 1";
    let stages = vec![
        stage("a", &["A"], "{ kind = \"finetune\" }", every),
        stage(
            "av",
            &["AV"],
            "{ kind = \"replay\", capacity = 8, batch_size = 4, seed = 1 }",
            every,
        ),
        stage("at", &["AT"], "{ kind = \"wise_ft\", alpha = 0.5 }", every),
    ];
    // Killed while the AV stage replays task A.
    let run = kill_and_resume(dir.path(), &stages, 6);
    let lines = step_lines(&run.metrics);
    assert!(lines[..4].iter().all(|l| !l.contains("\"replay\"")));
    assert!(
        lines[4..8].iter().all(|l| l.contains("\"replay\"")),
        "the AV stage logs its replay term"
    );
    let names: Vec<&str> = run.stages.iter().map(|s| s.strategy.as_str()).collect();
    assert_eq!(names, ["finetune", "replay", "wise_ft"]);
}

#[test]
fn wise_ft_stage_models_are_the_interpolation_of_start_and_fine_tuned_weights() {
    let (_serial, dir) = fixtures();
    let run = |file: &str, out: &str, strategy: &str| {
        let stages = vec![
            stage("a", &["A"], "{ kind = \"finetune\" }", ""),
            stage("av", &["AV"], strategy, ""),
        ];
        train(&write_experiment(dir.path(), file, out, &stages), false);
        let run = RunDir::new(dir.path().join(out));
        (
            tensors(&run.stage_model(0, "a")),
            tensors(&run.stage_model(1, "av")),
        )
    };
    let (a, finetuned) = run("ft.toml", "out-ft", "{ kind = \"finetune\" }");
    let (a2, half) = run("w.toml", "out-w", "{ kind = \"wise_ft\", alpha = 0.5 }");
    let (_, none) = run("w0.toml", "out-w0", "{ kind = \"wise_ft\", alpha = 0 }");
    assert_eq!(a, a2, "the same stage A");
    let floats = |b: &Vec<u8>| -> Vec<f32> {
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    };
    let mut checked = BTreeMap::new();
    for (name, bytes) in &half {
        let got = floats(bytes);
        let trained = floats(&finetuned[name]);
        // The encoder's tensors (its A head and BatchNorm statistics included) are mixed; the
        // projection heads are kept as trained.
        let start = a.get(name).filter(|_| name.starts_with("encoder."));
        let want: Vec<f32> = match start {
            Some(start) => floats(start)
                .iter()
                .zip(&trained)
                .map(|(s, t)| 0.5 * s + 0.5 * t)
                .collect(),
            None => trained.clone(),
        };
        let err = got
            .iter()
            .zip(&want)
            .map(|(g, w)| (g - w).abs() / w.abs().max(1e-3))
            .fold(0.0f32, f32::max);
        assert!(err < 1e-5, "`{name}`: relative error {err}");
        checked.insert(name.clone(), start.is_some());
        if let Some(start) = start {
            // α = 0 discards the stage's training: the start weights, bit for bit.
            assert!(none[name] == *start, "`{name}` with alpha = 0");
        }
    }
    assert!(checked.values().filter(|mixed| **mixed).count() > 10);
    assert!(checked.keys().any(|k| k.starts_with("head_av.")));
    // Fine-tuning really moved the encoder, so the check above is not vacuous.
    let moved = a
        .iter()
        .filter(|(n, b)| n.starts_with("encoder.") && finetuned[*n] != **b)
        .count();
    assert!(moved > 10, "only {moved} encoder tensors moved");
}

#[test]
fn the_shipped_experiment_files_of_the_methods_load_with_the_registry() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let mut kinds = Vec::new();
    for name in ["a-av-at-replay.toml", "a-av-at-wise-ft.toml"] {
        let path = dir.join(name);
        let c = ExperimentConfig::load_with(&path, &registry()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.stages.len(), 2, "{name}");
        kinds.push(c.stages[0].strategy.kind.clone());
        // The copy a run keeps in its folder reads back as the same experiment.
        let text = c.to_toml_absolute().expect("serialises");
        let back = ExperimentConfig::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(back, c, "{name}");
        // Without accrue-methods' kinds the file is refused, naming the kind.
        let err = ExperimentConfig::load(&path)
            .expect_err("unregistered")
            .to_string();
        assert!(err.contains(&kinds[kinds.len() - 1]), "{err}");
    }
    assert_eq!(kinds, ["replay", "wise_ft"]);
    let replay =
        ExperimentConfig::load_with(&dir.join("a-av-at-replay.toml"), &registry()).expect("loads");
    assert!(replay.encoder.trained_on_data.is_some());
}
