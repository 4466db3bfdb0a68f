//! Three-stage experiments (A → AV → AT) with a tiny encoder on synthetic data, for every
//! shipped strategy, on the CPU backend.

mod common;

use accrue_continual::run_experiment;
use common::{stage, write_data, write_experiment};

fn three_stages(name: &str, strategy: &str) -> Vec<String> {
    vec![
        stage("audioset", &["A"], "{ kind = \"finetune\" }", ""),
        stage("vggsound", &["AV"], strategy, ""),
        stage(
            "clotho",
            &["AT"],
            strategy,
            "lambda = 0.3\n[stages.scheduler]\nkind = \"step\"\nstep_size = 1\ngamma = 0.1",
        ),
    ]
    .into_iter()
    .map(|s| s.replace("name = \"", &format!("name = \"{name}-")))
    .collect()
}

#[test]
fn every_strategy_runs_a_three_stage_experiment() {
    unsafe { std::env::set_var("ACCRUE_NO_PROGRESS", "1") };
    let dir = tempfile::tempdir().expect("tempdir");
    write_data(dir.path());
    let cases: Vec<(&str, Vec<String>)> = vec![
        ("finetune", three_stages("ft", "{ kind = \"finetune\" }")),
        ("lwf", three_stages("lwf", "{ kind = \"lwf\" }")),
        (
            "cassle",
            three_stages("cassle", "{ kind = \"cassle\", hidden = 32 }"),
        ),
        ("modx", three_stages("modx", "{ kind = \"modx\" }")),
        (
            "combined",
            three_stages(
                "comb",
                "{ kind = \"combined\", parts = [ { weight = 0.5, strategy = { kind = \"lwf\" } }, { weight = 0.5, strategy = { kind = \"modx\" } } ] }",
            ),
        ),
        (
            "frozen_adapter",
            vec![
                stage("a", &["A"], "{ kind = \"finetune\" }", ""),
                stage("av", &["AV"], "{ kind = \"finetune\" }", ""),
                stage("at", &["AT"], "{ kind = \"frozen_adapter\" }", ""),
            ],
        ),
        (
            "multitask",
            vec![
                stage("a", &["A"], "{ kind = \"finetune\" }", ""),
                stage(
                    "mt",
                    &["AV", "AT"],
                    "{ kind = \"multitask\", weight_av = 0.7, weight_at = 0.3 }",
                    "",
                ),
            ],
        ),
    ];
    for (name, stages) in cases {
        let path = write_experiment(
            dir.path(),
            &format!("{name}.toml"),
            &format!("out-{name}"),
            &stages,
        );
        let summary = run_experiment(&path, false).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(summary.stages.len(), stages.len(), "{name}");
        assert!(summary.final_model.is_file(), "{name}");
        for (i, s) in summary.stages.iter().enumerate() {
            assert!(s.best_loss.is_finite(), "{name} stage {i}: {s:?}");
            assert_eq!(s.epochs, 2, "{name} stage {i}");
        }
        let teacher = summary.stages.last().map_or(0, |s| s.teacher_forwards);
        let expects_teacher = matches!(name, "lwf" | "cassle" | "modx" | "combined");
        assert_eq!(
            teacher > 0,
            expects_teacher,
            "{name}: teacher forwards {teacher}"
        );
        let log = std::fs::read_to_string(&summary.metrics).expect("metrics");
        let steps = log
            .lines()
            .filter(|l| l.contains("\"event\":\"step\""))
            .count();
        // 8 clips / batch 4 = 2 steps per epoch, 2 epochs per stage.
        assert_eq!(steps, 4 * stages.len(), "{name}");
        assert!(
            log.contains("\"data_wait_fraction\""),
            "{name}: epochs report data-boundness"
        );
        if name == "lwf" {
            assert!(
                log.contains("\"distillation\""),
                "LwF logs its distillation term"
            );
        }
    }
}

#[test]
fn data_parallel_runs_refuse_too_small_batches_and_no_devices() {
    use accrue_continual::{ExperimentConfig, run_experiment_on};
    let dir = tempfile::tempdir().expect("tempdir");
    write_data(dir.path());
    let path = write_experiment(
        dir.path(),
        "dp.toml",
        "out-dp",
        &[stage("a", &["A"], "{ kind = \"finetune\" }", "")],
    );
    let config = ExperimentConfig::load(&path).expect("config");
    let cpu = burn::tensor::Device::default();
    // batch_size = 4: three replicas would get one or two clips each.
    let err = run_experiment_on(&config, &vec![cpu; 3], false).expect_err("too small");
    assert!(err.to_string().contains("2 clips per replica"), "{err}");
    let err = run_experiment_on(&config, &[], false).expect_err("no device");
    assert!(err.to_string().contains("no device"), "{err}");
}

#[test]
fn a_classification_manifest_without_labels_is_refused_not_trained_at_loss_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_data(dir.path());
    // Drop the labels of every training clip.
    let train = dir.path().join("train.jsonl");
    let text: String = std::fs::read_to_string(&train)
        .expect("manifest")
        .lines()
        .map(|l| {
            let start = l.find("\"labels\"").expect("labels");
            let end = start + l[start..].find("], ").expect("end of labels") + 3;
            format!("{}{}\n", &l[..start], &l[end..])
        })
        .collect();
    std::fs::write(&train, text).expect("write");
    let a = stage("a", &["A"], "{ kind = \"finetune\" }", "");
    let path = write_experiment(dir.path(), "nolabels.toml", "out", &[a]);
    let err = run_experiment(&path, false)
        .expect_err("no labels")
        .to_string();
    assert!(
        err.contains("train.jsonl") && err.contains("clip `c0` has no label"),
        "{err}"
    );
}

#[test]
fn a_joint_multitask_stage_trains_every_task_on_one_batch_per_step() {
    unsafe { std::env::set_var("ACCRUE_NO_PROGRESS", "1") };
    let dir = tempfile::tempdir().expect("tempdir");
    write_data(dir.path());
    let mtwc = |joint: &str| {
        vec![
            stage("a", &["A"], "{ kind = \"finetune\" }", ""),
            stage("avt", &["AV", "AT"], "{ kind = \"multitask\" }", joint),
        ]
    };
    let apart = run_experiment(
        &write_experiment(dir.path(), "apart.toml", "out-apart", &mtwc("")),
        false,
    )
    .expect("alternating");
    let joint = run_experiment(
        &write_experiment(dir.path(), "joint.toml", "out-joint", &mtwc("joint = true")),
        false,
    )
    .expect("joint");
    // The same steps, half the encoder forwards: both tasks' losses on one batch.
    assert_eq!(joint.stages[1].steps, apart.stages[1].steps);
    assert_eq!(
        2 * joint.stages[1].student_forwards,
        apart.stages[1].student_forwards
    );
    let log = std::fs::read_to_string(&joint.metrics).expect("log");
    assert!(
        log.contains("contrastive_av") || log.contains("contrastive_AV"),
        "{log}"
    );

    // Joint tasks must read the same clips.
    let bad = mtwc("joint = true").join("").replacen(
        "manifest = \"train.jsonl\"\nvalid_manifest = \"valid.jsonl\"\nsupervision = \"clip_text.json\"",
        "manifest = \"valid.jsonl\"\nvalid_manifest = \"valid.jsonl\"\nsupervision = \"clip_text.json\"",
        1,
    );
    let path = write_experiment(dir.path(), "bad.toml", "out-bad", &[bad]);
    let err = run_experiment(&path, false)
        .expect_err("refused")
        .to_string();
    assert!(
        err.contains("joint = true") && err.contains("valid.jsonl"),
        "{err}"
    );
}

#[test]
fn a_classification_task_can_state_its_heads_class_order() {
    unsafe { std::env::set_var("ACCRUE_NO_PROGRESS", "1") };
    let dir = tempfile::tempdir().expect("tempdir");
    write_data(dir.path());
    let with_classes = |list: &str| {
        std::fs::write(dir.path().join("classes.json"), list).expect("classes");
        stage("a", &["A"], "{ kind = \"finetune\" }", "").replace(
            "kind = \"A\"\nmanifest = \"train.jsonl\"\n",
            "kind = \"A\"\nmanifest = \"train.jsonl\"\nclasses = \"classes.json\"\n",
        )
    };
    // The head's order, not the sorted names: the task trains, and its datasets carry it.
    let a = with_classes(r#"["siren", "dog", "bird"]"#);
    let path = write_experiment(dir.path(), "ordered.toml", "out-ordered", &[a]);
    let config = accrue_continual::ExperimentConfig::load(&path).expect("config");
    let task = &config.stages[0].tasks[0];
    let ds = task.read_manifest(&task.manifest).expect("manifest");
    assert_eq!(ds.classes, ["siren", "dog", "bird"]);
    let c0 = ds.examples.iter().find(|e| e.id == "c0").expect("c0");
    assert_eq!(
        ds.classes[c0.labels[0]], "bird",
        "labels index the given list"
    );
    run_experiment(&path, false).expect("trains");
    // A label outside the list is refused, naming it.
    let b = with_classes(r#"["siren", "dog"]"#);
    let path = write_experiment(dir.path(), "short.toml", "out-short", &[b]);
    let err = run_experiment(&path, false)
        .expect_err("bird is not listed")
        .to_string();
    assert!(err.contains("bird"), "{err}");
}
