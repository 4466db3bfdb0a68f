//! Smoke test of the main job (`accrue demo`): the whole pipeline — derived manifests, real
//! tower embeddings, the full grid (A, A → AT and A → AV → AT for every method, MT-WC), the
//! evaluation of every stage model and the report — on a small subset of InstrumentAVT-mini
//! with one epoch of a few steps per stage.
//!
//! Needs the set (`scripts/setup_mini.sh`) and the towers (`scripts/fetch_towers.sh`);
//! `scripts/test.sh` prepares both. Without them the test prints SKIPPED, unless
//! `ACCRUE_REQUIRE_DATA=1` (set by CI), when it fails.

use std::path::{Path, PathBuf};

use accrue::eval::report::EvalArtifact;
use accrue::eval::schema::schema_errors;
use accrue_demo::{DemoOptions, Profile, run};

#[path = "../../accrue-continual/tests/common/mod.rs"]
mod common;
use common::tensors;

fn data_root() -> PathBuf {
    std::env::var_os("ACCRUE_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data"))
}

fn have_data(root: &Path) -> bool {
    let ok = root.join("mini/summary.json").is_file()
        && root.join("towers/minilm/model.safetensors").is_file()
        && root
            .join("towers/efficientnet/efficientnet-lite0-57934424.pth")
            .is_file();
    if !ok {
        assert!(
            std::env::var_os("ACCRUE_REQUIRE_DATA").is_none(),
            "InstrumentAVT-mini or the towers are missing under {} and ACCRUE_REQUIRE_DATA is set",
            root.display()
        );
        eprintln!(
            "SKIPPED: InstrumentAVT-mini or the towers are missing under {} \
             (run scripts/setup_mini.sh and scripts/fetch_towers.sh)",
            root.display()
        );
    }
    ok
}

#[test]
fn the_whole_grid_runs_evaluates_and_reports() {
    let root = data_root();
    if !have_data(&root) {
        return;
    }
    let out = tempfile::tempdir().expect("tempdir");
    let mut opts = DemoOptions::new(Profile::Smoke);
    opts.data_dir = root.join("mini");
    opts.towers_dir = root.join("towers");
    opts.out_dir = out.path().to_path_buf();
    opts.seeds = vec![0];
    // Child processes of the real binary, two at a time (the path `./run.sh` takes).
    opts.jobs = 2;
    opts.exe = Some(PathBuf::from(env!("CARGO_BIN_EXE_accrue")));
    let device = burn::tensor::Device::default();
    let report = run(&opts, &device).expect("demo runs");

    // Every table row of the grid is there.
    for row in [
        "| CLAP = fine-tuning |",
        "| Wav2CLIP (A → AV, frozen + g^AT) |",
        "| Fine-tuning |",
        "| LwF |",
        "| CaSSLe |",
        "| Mod-X |",
        "| Replay |",
        "| WiSE-FT |",
        "| MT-WC (joint triplets) |",
        "| A only |",
        "| A-AV-AT | Mod-X |",
        // The other order and the joint upper bound (the smoke profile's `more_sequences`).
        "| A-AT-AV | Mod-X |",
        "| Mod-X (A→AT→AV) |",
        "| Joint (A + AV + AT, upper bound) |",
    ] {
        assert!(
            report.markdown.contains(row),
            "missing {row}:\n{}",
            report.markdown
        );
    }
    // One artifact per run; each validates against the documented schema and holds
    // finite scores in [0, 1] for every stage it went through.
    // A, MT-WC, the joint upper bound, Wav2CLIP (frozen + adapter), and A → AT, A → AV → AT,
    // A → AT → AV for each of the 6 methods.
    assert_eq!(report.artifacts.len(), 22);
    for path in &report.artifacts {
        let text = std::fs::read_to_string(path).expect("artifact");
        let doc: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(
            schema_errors(&doc),
            Vec::<String>::new(),
            "{}",
            path.display()
        );
        let art = EvalArtifact::read(path).expect("artifact parses");
        art.validate().expect("artifact is valid");
        assert!(!art.stages.is_empty());
        for s in art.stages.iter().flat_map(|s| &s.scores) {
            assert!((0.0..=1.0).contains(&s.value), "{s:?}");
        }
        if art.run.contains("a-av-at") {
            let c = art.continual.as_ref().expect("CL matrix");
            assert_eq!(c.matrix.stages, ["A", "AV", "AT"]);
            assert!(c.summary.bwt.is_some() && c.summary.acc.is_some());
        }
        if art.run.contains("a-at-av") {
            let c = art.continual.as_ref().expect("CL matrix");
            assert_eq!(c.matrix.stages, ["A", "AT", "AV"]);
            assert!(c.summary.bwt.is_some() && c.summary.acc.is_some());
        }
        if art.run.ends_with("/joint") {
            let stages: Vec<&str> = art.stages.iter().map(|s| s.stage.as_str()).collect();
            assert_eq!(stages, ["A", "A+AV+AT"]);
        }
    }
    for plot in &report.plots {
        let bytes = std::fs::read(plot).expect("plot");
        assert!(
            bytes.starts_with(b"\x89PNG") && bytes.len() > 2000,
            "{}",
            plot.display()
        );
    }

    // Bit-for-bit reproducibility: one job re-run from scratch — in this process, with this
    // process's thread pool, not in the single-threaded child that ran it — trains the same
    // weights and scores the same numbers.
    let job_dir = out.path().join("runs/seed0/a-av-at-lwf");
    let text = std::fs::read_to_string(job_dir.join("job.json")).expect("job file");
    let mut job: accrue_demo::Job = serde_json::from_str(&text).expect("job");
    let rerun = out.path().join("rerun");
    std::fs::create_dir_all(&rerun).expect("mkdir");
    let exp = std::fs::read_to_string(job_dir.join("experiment.toml")).expect("experiment");
    let old_dir = serde_json::to_string(&job_dir.canonicalize().expect("dir").to_string_lossy())
        .expect("quote");
    let new_dir = serde_json::to_string(&rerun.canonicalize().expect("dir").to_string_lossy())
        .expect("quote");
    assert!(exp.contains(&old_dir), "{exp}");
    std::fs::write(
        rerun.join("experiment.toml"),
        exp.replace(&old_dir, &new_dir),
    )
    .expect("write");
    let original = job.stage_models();
    job.dir = rerun.canonicalize().expect("dir");
    accrue_demo::run_job(&job, &device).expect("re-run");
    for (a, b) in original.iter().zip(job.stage_models()) {
        let (ta, tb) = (tensors(a), tensors(&b));
        assert!(!ta.is_empty());
        assert!(ta == tb, "{} and its re-run differ", a.display());
        let scores =
            |m: &Path| std::fs::read_to_string(accrue_demo::Job::scores_path(m)).expect("scores");
        let (sa, sb): (serde_json::Value, serde_json::Value) = (
            serde_json::from_str(&scores(a)).expect("json"),
            serde_json::from_str(&scores(&b)).expect("json"),
        );
        assert_eq!(sa["scores"], sb["scores"], "{}", a.display());
    }

    // A second call finds every run and score complete and reproduces the same tables.
    opts.jobs = 1;
    opts.exe = None;
    let again = run(&opts, &device).expect("second run");
    let tables = |m: &str| m.split("Timings").next().unwrap_or_default().to_string();
    assert_eq!(tables(&again.markdown), tables(&report.markdown));
}
