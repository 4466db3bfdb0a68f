//! Kill-and-resume: a child process (this test binary, re-entered) is killed mid-run; the
//! resumed run must end with weights bit-identical to an uninterrupted run, on one device and
//! data-parallel over two replicas on the CPU device (which also proves the replicas
//! deterministic and their BatchNorm statistics checkpointed). Also: NaN/inf in a
//! loss term stops the run within one step, naming the term, with the last good checkpoint
//! kept.

mod common;

use std::path::Path;
use std::process::Command;

use accrue_continual::{
    ContinualError, ExperimentConfig, RunDir, RunSummary, run_experiment, run_experiment_on,
};
use burn::tensor::Device;
use common::{kill_after_steps, stage, step_lines, tensors, write_data, write_experiment};

/// Burn's device RNG is process-global: runs in concurrent test threads would interleave their
/// seeded draws, so the tests of this file take turns.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

const CHILD_ENV: &str = "ACCRUE_RESUME_CHILD_CONFIG";
const CHILD_REPLICAS: &str = "ACCRUE_RESUME_CHILD_REPLICAS";

/// Runs an experiment file on `replicas` handles of the default (CPU) device.
fn train(path: &Path, resume: bool, replicas: usize) -> RunSummary {
    let config = ExperimentConfig::load(path).expect("config");
    run_experiment_on(&config, &vec![Device::default(); replicas], resume).expect("run")
}

fn stages() -> Vec<String> {
    let every = "checkpoint_every_steps = 1";
    vec![
        stage("a", &["A"], "{ kind = \"finetune\" }", every),
        stage("av", &["AV"], "{ kind = \"cassle\", hidden = 32 }", every),
        stage(
            "at",
            &["AT"],
            "{ kind = \"lwf\" }",
            &format!(
                "{every}\n[stages.scheduler]\nkind = \"plateau\"\nfactor = 0.5\npatience = 0\nmin_lr = 1e-6\nthreshold = 1e-4"
            ),
        ),
    ]
}

/// Entry point of the child process; a no-op in a normal test run.
#[test]
fn resume_child_entry() {
    if let Some(path) = std::env::var_os(CHILD_ENV) {
        unsafe { std::env::set_var("ACCRUE_NO_PROGRESS", "1") };
        let replicas = std::env::var(CHILD_REPLICAS)
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(1);
        train(Path::new(&path), false, replicas);
    }
}

#[test]
fn killed_and_resumed_run_is_bit_identical() {
    kill_and_resume(1);
}

#[test]
fn killed_and_resumed_two_replica_run_is_bit_identical() {
    kill_and_resume(2);
}

fn kill_and_resume(replicas: usize) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    unsafe { std::env::set_var("ACCRUE_NO_PROGRESS", "1") };
    let dir = tempfile::tempdir().expect("tempdir");
    write_data(dir.path());
    let reference = write_experiment(dir.path(), "ref.toml", "out-ref", &stages());
    let killed = write_experiment(dir.path(), "killed.toml", "out-killed", &stages());

    // Kill the child in the middle of the second stage (steps 9–10 of 12: 4 per stage).
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "resume_child_entry",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &killed)
        .env(CHILD_REPLICAS, replicas.to_string())
        .spawn()
        .expect("spawn child");
    let metrics = dir.path().join("out-killed/metrics.jsonl");
    let killed_at = kill_after_steps(&mut child, &metrics, 6);
    assert!(killed_at < 12, "killed too late ({killed_at} steps)");

    let resumed = train(&killed, true, replicas);
    let uninterrupted = train(&reference, false, replicas);
    let a = tensors(&resumed.final_model);
    let b = tensors(&uninterrupted.final_model);
    assert!(a.len() > 10, "too few tensors: {}", a.len());
    let names: Vec<&String> = a.keys().collect();
    assert_eq!(names, b.keys().collect::<Vec<_>>());
    for (name, bytes) in &a {
        assert!(
            *bytes == b[name],
            "tensor `{name}` of the resumed run (killed after {killed_at} logged steps) differs from the uninterrupted run"
        );
    }
    assert_eq!(resumed.stages, uninterrupted.stages);
    // The resumed run's log holds each step once: the same step events as the reference.
    let steps = |p: &Path| -> Vec<String> {
        std::fs::read_to_string(p)
            .expect("metrics")
            .lines()
            .filter(|l| l.contains("\"event\":\"step\""))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(steps(&resumed.metrics), steps(&uninterrupted.metrics));
}

#[test]
fn non_finite_loss_stops_within_one_step_and_keeps_the_checkpoint() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    unsafe { std::env::set_var("ACCRUE_NO_PROGRESS", "1") };
    let dir = tempfile::tempdir().expect("tempdir");
    write_data(dir.path());
    let blow_up = stage(
        "a",
        &["A"],
        "{ kind = \"finetune\" }",
        "checkpoint_every_steps = 1",
    )
    .replace("lr = 1e-3", "lr = 1e30");
    let path = write_experiment(dir.path(), "nan.toml", "out-nan", &[blow_up]);
    let err = run_experiment(&path, false).expect_err("must diverge");
    let ContinualError::Diverged {
        term,
        step,
        epoch,
        checkpoint,
        ..
    } = &err
    else {
        panic!("expected a divergence error, got {err}");
    };
    assert!(term == "contrastive" || term == "total", "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(term.as_str()) && msg.contains("last good checkpoint"),
        "{msg}"
    );
    assert!(
        *step + 2 * *epoch >= 1,
        "the first step is finite with any learning rate"
    );
    let kept = Path::new(checkpoint);
    assert!(
        kept.join("state.json").is_file(),
        "the last good checkpoint is kept: {checkpoint}"
    );
    let steps = step_lines(&dir.path().join("out-nan/metrics.jsonl")).len();
    assert_eq!(
        steps,
        *step + 2 * *epoch,
        "no step was applied after the bad one"
    );
}

/// A one-stage fine-tuning experiment on the synthetic data in a new folder (kept alive by
/// the returned guard): the guard, the experiment file and its run folder.
fn one_stage_experiment() -> (tempfile::TempDir, std::path::PathBuf, RunDir) {
    unsafe { std::env::set_var("ACCRUE_NO_PROGRESS", "1") };
    let dir = tempfile::tempdir().expect("tempdir");
    write_data(dir.path());
    let a = stage("a", &["A"], "{ kind = \"finetune\" }", "");
    let path = write_experiment(dir.path(), "run.toml", "out", &[a]);
    let run = RunDir::new(dir.path().join("out"));
    (dir, path, run)
}

#[test]
fn a_new_run_refuses_to_overwrite_a_previous_one() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (_dir, path, run) = one_stage_experiment();
    let first = run_experiment(&path, false).expect("first run");
    let before = tensors(&first.final_model);
    let log = std::fs::read(&first.metrics).expect("metrics");

    // Forgetting `--resume` (or a typo elsewhere) must not wipe the finished run.
    let err = run_experiment(&path, false).expect_err("refused");
    assert!(matches!(err, ContinualError::RunExists { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("--resume") && msg.contains("--fresh") && msg.contains("checkpoints"),
        "{msg}"
    );
    assert_eq!(
        tensors(&first.final_model),
        before,
        "the final model is untouched"
    );
    assert_eq!(std::fs::read(&first.metrics).expect("metrics"), log);

    // Asked for explicitly, a fresh start clears the previous run and trains again.
    run.clear_previous_run().expect("clear");
    let again = run_experiment(&path, false).expect("fresh run");
    assert_eq!(tensors(&again.final_model), before, "same seed, same run");
}

#[test]
fn a_stage_model_missing_at_a_stage_boundary_is_exported_again_on_resume() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (_dir, path, run) = one_stage_experiment();
    let done = run_experiment(&path, false).expect("run");
    let stage_model = run.stage_model(0, "a");
    let exported = tensors(&stage_model);
    // As a kill between the stage-end checkpoint and the export leaves it.
    std::fs::remove_file(&stage_model).expect("remove");
    run_experiment(&path, true).expect("resume");
    assert!(stage_model.is_file(), "the stage model is exported again");
    assert_eq!(tensors(&stage_model), exported);
    assert_eq!(
        tensors(&done.final_model),
        exported,
        "one stage: final = stage model"
    );
}

#[test]
fn a_truncated_newest_checkpoint_falls_back_to_the_one_before() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (_dir, path, run) = one_stage_experiment();
    let done = run_experiment(&path, false).expect("run");
    let expected = tensors(&done.final_model);
    // Truncate the newest checkpoint's student, as a full disk or a kill mid-copy would.
    let latest = std::fs::read_to_string(run.checkpoints().join("latest")).expect("pointer");
    let student = run.checkpoints().join(latest.trim()).join("student.bpk");
    let bytes = std::fs::read(&student).expect("student");
    std::fs::write(&student, &bytes[..bytes.len() / 2]).expect("truncate");
    std::fs::remove_file(&done.final_model).expect("remove");

    let resumed = run_experiment(&path, true).expect("resumes from the previous checkpoint");
    assert_eq!(tensors(&resumed.final_model), expected);
    assert_eq!(resumed.stages, done.stages);
    // Resuming again (now from a sound newest checkpoint) works too.
    run_experiment(&path, true).expect("resumes again");
}

/// Records every event and reads the stage models it is shown.
#[derive(Default)]
struct Recorder {
    events: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl accrue_continual::Observer for Recorder {
    fn stage_start(
        &mut self,
        e: &accrue_continual::observe::StageStart,
    ) -> accrue_continual::Result<()> {
        self.push(format!("start {} {}", e.index, e.strategy));
        Ok(())
    }

    fn step(&mut self, e: &accrue_continual::observe::StepEnd<'_>) -> accrue_continual::Result<()> {
        assert!(e.loss.is_finite() && !e.terms.is_empty());
        self.push(format!("step {} {} {}", e.stage, e.epoch, e.step));
        Ok(())
    }

    fn epoch_end(
        &mut self,
        e: &accrue_continual::observe::EpochEnd,
    ) -> accrue_continual::Result<()> {
        self.push(format!("epoch {} {}", e.stage, e.epoch));
        Ok(())
    }

    fn stage_end(
        &mut self,
        e: &accrue_continual::observe::StageEnd<'_>,
    ) -> accrue_continual::Result<()> {
        // Reading the model must not change it.
        use burn::module::Module;
        let n = e.student.valid().num_params();
        assert!(n > 0);
        self.push(format!("end {} {}", e.index, e.summary.epochs));
        Ok(())
    }

    fn run_end(&mut self, s: &RunSummary) -> accrue_continual::Result<()> {
        self.push(format!("run {}", s.stages.len()));
        Ok(())
    }
}

impl Recorder {
    fn push(&self, line: String) {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(line);
    }
}

#[test]
fn an_extra_observer_sees_every_event_and_never_changes_training() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    unsafe { std::env::set_var("ACCRUE_NO_PROGRESS", "1") };
    let dir = tempfile::tempdir().expect("tempdir");
    write_data(dir.path());
    let plain = write_experiment(dir.path(), "plain.toml", "out-plain", &stages());
    let watched = write_experiment(dir.path(), "watched.toml", "out-watched", &stages());
    let a = accrue_continual::Experiment::new(ExperimentConfig::load(&plain).expect("config"))
        .run(false)
        .expect("run");
    let recorder = Recorder::default();
    let events = recorder.events.clone();
    let b = accrue_continual::Experiment::new(ExperimentConfig::load(&watched).expect("config"))
        .observer(recorder)
        .run(false)
        .expect("run");
    let (ta, tb) = (tensors(&a.final_model), tensors(&b.final_model));
    assert_eq!(ta.len(), tb.len());
    for (name, bytes) in &ta {
        assert!(
            *bytes == tb[name],
            "`{name}` differs with an extra observer"
        );
    }
    let events = events.lock().expect("events").clone();
    let count = |p: &str| events.iter().filter(|e| e.starts_with(p)).count();
    // 3 stages × 2 epochs × 2 steps.
    assert_eq!(count("step "), 12, "{events:?}");
    assert_eq!(count("epoch "), 6);
    assert_eq!(count("start "), 3);
    assert_eq!(count("end "), 3);
    assert_eq!(events.first().map(String::as_str), Some("start 0 finetune"));
    assert_eq!(events.last().map(String::as_str), Some("run 3"));
}

#[test]
fn spec_augment_is_set_from_the_experiment_file() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    unsafe { std::env::set_var("ACCRUE_NO_PROGRESS", "1") };
    let dir = tempfile::tempdir().expect("tempdir");
    write_data(dir.path());
    let run = |file: &str, out: &str, mode: &str| {
        let a = stage("a", &["A"], "{ kind = \"finetune\" }", "");
        let path = write_experiment(dir.path(), file, out, &[a]);
        let text = std::fs::read_to_string(&path).expect("read").replace(
            "num_classes = 3\n",
            &format!("num_classes = 3\n[encoder.spec_augment]\nmode = \"{mode}\"\n"),
        );
        std::fs::write(&path, text).expect("write");
        tensors(&run_experiment(&path, false).expect("run").final_model)
    };
    let off = run("off.toml", "out-off", "off");
    assert_eq!(off, run("off2.toml", "out-off2", "off"), "deterministic");
    // SpecAugment on changes what is trained: the setting reaches the front end.
    assert_ne!(off, run("scaled.toml", "out-scaled", "scaled"));
}

#[test]
fn resuming_with_a_changed_head_width_says_so() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    unsafe { std::env::set_var("ACCRUE_NO_PROGRESS", "1") };
    let dir = tempfile::tempdir().expect("tempdir");
    write_data(dir.path());
    let stages = [stage("av", &["AV"], "{ kind = \"finetune\" }", "")];
    let path = write_experiment(dir.path(), "head.toml", "out", &stages);
    run_experiment(&path, false).expect("run");
    let text = std::fs::read_to_string(&path).expect("read");
    std::fs::write(&path, text.replace("hidden = 32", "hidden = 48")).expect("write");
    let err = run_experiment(&path, true)
        .expect_err("changed head")
        .to_string();
    assert!(
        err.contains("[head]") && err.contains("--fresh") && err.contains("ckpt-"),
        "{err}"
    );
}
