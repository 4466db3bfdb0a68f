//! `accrue eval` and `accrue report` on the output of the trainer's integration experiment
//! (A → AV → AT with LwF, tiny encoder, synthetic clips): every stage model is evaluated on a
//! declared suite (linear probe, zero-shot, retrieval both ways), the artifact validates
//! against the documented schema, and the report renders its tables and plots.

#[path = "../../accrue-continual/tests/common/mod.rs"]
mod common;
#[path = "../examples/evaluate.rs"]
mod evaluate_example;

use accrue::eval::report::{EvalArtifact, Protocol};
use accrue::eval::schema::schema_errors;
use accrue_continual::{SupervisionTable, run_experiment};
use accrue_suite::suite::{EvalSuite, evaluate_run};
use common::{stage, write_data, write_experiment};

const SUITE: &str = r#"
[[probe]]
name = "Synth"
train = { manifest = "train.jsonl", batch_size = 4 }
valid = { manifest = "valid.jsonl" }
test = { manifest = "valid.jsonl" }
max_epochs = 30
own_head = true

[[zero_shot]]
name = "Synth"
head = "AT"
data = { manifest = "valid.jsonl" }
table = "clip_text.json"
templates = ["a {label} sound", "the {label}"]

[[retrieval]]
name = "Synth"
head = "AT"
data = { manifest = "valid.jsonl" }
table = "clip_text.json"

[[retrieval]]
name = "Synth"
head = "AV"
data = { manifest = "valid.jsonl" }
table = "clip_image.json"

[continual.A]
protocol = "linear_probe"
task = "Synth"
metric = "top1_acc"

[continual.AV]
protocol = "retrieval"
task = "Synth"
metric = "R@10"
direction = "I2A"

[continual.AT]
protocol = "retrieval"
task = "Synth"
metric = "R@10"
direction = "T2A"
"#;

#[test]
fn eval_and_report_run_on_the_integration_experiment() {
    unsafe { std::env::set_var("ACCRUE_NO_PROGRESS", "1") };
    let dir = tempfile::tempdir().expect("tempdir");
    write_data(dir.path());
    // Zero-shot prompts need text-tower embeddings too: add them to the text table.
    let table_path = dir.path().join("clip_text.json");
    let mut table = SupervisionTable::load(&table_path).expect("table");
    for (i, class) in ["bird", "dog", "siren"].iter().enumerate() {
        for (k, t) in ["a {label} sound", "the {label}"].iter().enumerate() {
            let v: Vec<f32> = (0..common::DIM)
                .map(|d| ((i * 5 + k + d * 3) % 7) as f32 - 3.0)
                .collect();
            table.entries.insert(t.replace("{label}", class), v);
        }
    }
    table.save(&table_path).expect("save");
    let stages = vec![
        stage("A", &["A"], "{ kind = \"finetune\" }", ""),
        stage("AV", &["AV"], "{ kind = \"lwf\" }", ""),
        stage("AT", &["AT"], "{ kind = \"lwf\" }", ""),
    ];
    let exp = write_experiment(dir.path(), "lwf.toml", "out", &stages);
    run_experiment(&exp, false).expect("trains");

    let suite_path = dir.path().join("suite.toml");
    std::fs::write(&suite_path, SUITE).expect("suite");
    let suite = EvalSuite::load(&suite_path).expect("suite parses");
    let device = burn::tensor::Device::default();
    let art = evaluate_run(&exp, &suite, Some("LwF"), "flex", false, &device).expect("evaluates");

    // Every stage was evaluated; heads appear only once their stage has run.
    let names: Vec<&str> = art.stages.iter().map(|s| s.stage.as_str()).collect();
    assert_eq!(names, ["A", "AV", "AT"]);
    let has = |stage: &str, p: Protocol, dir: Option<&str>| {
        art.score(
            Some(stage),
            p,
            "Synth",
            if p == Protocol::ZeroShot || p == Protocol::LinearProbe || p == Protocol::OwnHead {
                "top1_acc"
            } else {
                "R@10"
            },
            dir,
        )
        .is_some()
    };
    assert!(has("A", Protocol::LinearProbe, None));
    assert!(has("A", Protocol::OwnHead, None));
    assert!(!has("A", Protocol::Retrieval, Some("T2A")));
    assert!(has("AV", Protocol::Retrieval, Some("I2A")));
    assert!(!has("AV", Protocol::ZeroShot, None));
    assert!(has("AT", Protocol::ZeroShot, None));
    assert!(has("AT", Protocol::Retrieval, Some("A2T")));
    for s in art.stages.iter().flat_map(|s| &s.scores) {
        assert!((0.0..=1.0).contains(&s.value), "{s:?}");
    }
    let c = art.continual.as_ref().expect("CL section");
    assert_eq!(c.matrix.evaluations, ["A", "AV", "AT"]);
    assert!(c.matrix.scores[0][1].is_none() && c.matrix.scores[2][2].is_some());
    assert!(c.summary.bwt.is_some());

    // The artifact validates against the schema and round-trips.
    let path = dir.path().join("eval.json");
    art.write(&path).expect("write");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("JSON");
    assert_eq!(schema_errors(&doc), Vec::<String>::new());
    assert_eq!(EvalArtifact::read(&path).expect("read back"), art);

    // With an embedding cache, a first evaluation fills it and a second reads it: the same
    // scores each time, and the same as without the cache.
    let cached_suite = dir.path().join("suite-cached.toml");
    std::fs::write(&cached_suite, format!("cache_dir = \"emb-cache\"\n{SUITE}")).expect("suite");
    let cached = EvalSuite::load(&cached_suite).expect("suite parses");
    for round in 0..2 {
        let again =
            evaluate_run(&exp, &cached, Some("LwF"), "flex", false, &device).expect("evaluates");
        assert_eq!(again.stages, art.stages, "round {round}");
    }
    let entries = std::fs::read_dir(dir.path().join("emb-cache"))
        .expect("cache dir")
        .count();
    assert_eq!(entries, 3 * 2, "3 stage models x 2 distinct manifests");

    // The `evaluate` example (the same library calls) writes the same scores.
    let via_example = dir.path().join("example-eval.json");
    let ex = evaluate_example::run(&exp, &suite_path, &via_example).expect("example runs");
    assert_eq!(ex.stages, art.stages);
    assert!(via_example.is_file());

    // The report renders tables and plots (non-empty PNGs).
    let out = dir.path().join("report");
    let log = dir.path().join("out/metrics.jsonl");
    let curves = vec![("LwF".to_string(), log)];
    let report =
        accrue_suite::report::render(&[art.clone(), art.clone()], &curves, &out).expect("report");
    assert!(
        report.markdown.contains("| LwF | 2 |"),
        "{}",
        report.markdown
    );
    // A heatmap per artifact, the forgetting bars, the training curves.
    assert_eq!(report.plots.len(), 4, "{:?}", report.plots);
    assert!(out.join("training-curves.png").is_file());
    for p in &report.plots {
        let bytes = std::fs::read(p).expect("plot");
        assert!(
            bytes.starts_with(b"\x89PNG") && bytes.len() > 2000,
            "{}",
            p.display()
        );
    }

    // A run that starts from a model trained on task A (the paper's released checkpoint) gets
    // that model's row in the CL matrix, so BWT covers task A (its task-A data names g^A's
    // classes, so the own head is scored too).
    let from_a = write_experiment(
        dir.path(),
        "from-a.toml",
        "out-from-a",
        &[
            stage("AV", &["AV"], "{ kind = \"lwf\" }", ""),
            stage("AT", &["AT"], "{ kind = \"lwf\" }", ""),
        ],
    );
    let text = std::fs::read_to_string(&from_a).expect("read").replace(
        "num_classes = 3\n",
        "num_classes = 3\ncheckpoint = \"out/stages/0-A.safetensors\"\ntrained_on = \"A\"\n\
         [encoder.trained_on_data]\nkind = \"A\"\nmanifest = \"train.jsonl\"\n",
    );
    std::fs::write(&from_a, text).expect("write");
    run_experiment(&from_a, false).expect("trains from A");
    let art_a = evaluate_run(&from_a, &suite, None, "flex", false, &device).expect("evaluates");
    let names: Vec<&str> = art_a.stages.iter().map(|s| s.stage.as_str()).collect();
    assert_eq!(names, ["A (initial)", "AV", "AT"]);
    assert_eq!(
        art_a.stages[0].scores, art.stages[0].scores,
        "the same model, the same scores"
    );
    let c = art_a.continual.as_ref().expect("CL section");
    assert_eq!(c.matrix.evaluations, ["A", "AV", "AT"]);
    assert!(c.summary.bwt.is_some());

    // A missing stage model is an error naming it (not a quiet skip), unless asked to
    // evaluate what exists; with none at all, even that is an error.
    let models: Vec<_> = ["0-A", "1-AV", "2-AT"]
        .iter()
        .map(|n| dir.path().join(format!("out/stages/{n}.safetensors")))
        .collect();
    std::fs::remove_file(&models[2]).expect("remove");
    let err = evaluate_run(&exp, &suite, None, "flex", false, &device)
        .expect_err("a stage model is missing")
        .to_string();
    assert!(
        err.contains("2-AT.safetensors") && err.contains("--partial"),
        "{err}"
    );
    let part = evaluate_run(&exp, &suite, None, "flex", true, &device).expect("partial");
    assert_eq!(part.stages, art.stages[..2]);
    for m in &models[..2] {
        std::fs::remove_file(m).expect("remove");
    }
    let err = evaluate_run(&exp, &suite, None, "flex", true, &device)
        .expect_err("no stage model at all")
        .to_string();
    assert!(err.contains("0-A.safetensors"), "{err}");

    // A suite with an unknown key is refused, naming it.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, SUITE.replace("max_epochs", "max_epoch")).expect("write");
    let err = EvalSuite::load(&bad).expect_err("unknown key").to_string();
    assert!(err.contains("max_epoch"), "{err}");
}

/// Writes a manifest of the synthetic clips: `labels(i)` are clip `i`'s labels, `fold(i)` its
/// fold (if any).
fn manifest(
    dir: &std::path::Path,
    name: &str,
    labels: impl Fn(usize) -> Vec<&'static str>,
    fold: impl Fn(usize) -> Option<u32>,
) -> std::path::PathBuf {
    let mut text = String::new();
    for i in 0..12 {
        let mut row = serde_json::json!({
            "audio": format!("clips/c{i}.wav"), "id": format!("c{i}"), "labels": labels(i),
        });
        if let Some(f) = fold(i) {
            row["fold"] = serde_json::json!(f);
        }
        text.push_str(&format!("{row}\n"));
    }
    let path = dir.join(name);
    std::fs::write(&path, text).expect("manifest");
    path
}

#[test]
fn probes_follow_the_task_multi_label_k_fold_and_the_heads_class_list() {
    use accrue_suite::suite::{AverageTask, KFoldProbeTask, Part, ProbeTask, evaluate_model};
    let dir = tempfile::tempdir().expect("tempdir");
    write_data(dir.path());
    let device = burn::tensor::Device::default();
    let encoder = accrue::encoders::Preset::ResNet38Tiny
        .config(Some(3))
        .expect("preset")
        .init(&device);
    let student = accrue_continual::Student::new(encoder);
    const CLASSES: [&str; 3] = ["bird", "dog", "siren"];
    // Multi-label: every clip has its class, every third clip also "siren".
    let multi = manifest(
        dir.path(),
        "multi.jsonl",
        |i| {
            let mut l = vec![CLASSES[i % 3]];
            if i % 3 == 0 {
                l.push("siren");
            }
            l
        },
        |_| None,
    );
    let single = manifest(
        dir.path(),
        "single.jsonl",
        |i| vec![CLASSES[i % 3]],
        |i| Some(1 + (i % 4) as u32),
    );
    let probe = |manifest: &std::path::Path, head_classes: Option<Vec<String>>| ProbeTask {
        name: "T".into(),
        train: Part::all(manifest),
        valid: Part::all(manifest),
        test: Part::all(manifest),
        extra_tests: Vec::new(),
        max_epochs: 3,
        own_head: true,
        head_classes,
    };
    let names = |v: &[&str]| Some(v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    let suite = EvalSuite {
        probe: vec![
            probe(&multi, names(&CLASSES)),
            probe(&single, names(&["dog", "bird", "siren"])),
            probe(&single, None),
        ],
        kfold_probe: vec![KFoldProbeTask {
            name: "K".into(),
            data: Part::all(&single),
            max_epochs: 3,
        }],
        average: vec![
            AverageTask {
                name: "Avg.".into(),
                protocol: Protocol::LinearProbe,
                metric: "mAP".into(),
                tasks: vec!["T".into()],
            },
            // "Missing" is never scored: no average, and no error.
            AverageTask {
                name: "Avg. incomplete".into(),
                protocol: Protocol::LinearProbe,
                metric: "top1_acc".into(),
                tasks: vec!["K".into(), "Missing".into()],
            },
        ],
        ..EvalSuite::default()
    };
    let mut scores = evaluate_model(&suite, &student, None, 32_000, &device).expect("scores");
    let avg = scores.pop().expect("the average is the last score");
    let t_map = scores
        .iter()
        .find(|s| s.task == "T" && s.metric == "mAP" && s.protocol == Protocol::LinearProbe)
        .expect("T mAP");
    assert_eq!((avg.task.as_str(), avg.metric.as_str()), ("Avg.", "mAP"));
    assert_eq!(avg.value, t_map.value);
    assert!(scores.iter().all(|s| !s.task.starts_with("Avg.")));
    let of = |p: Protocol| -> Vec<(String, String)> {
        scores
            .iter()
            .filter(|s| s.protocol == p)
            .map(|s| (s.task.clone(), s.metric.clone()))
            .collect()
    };
    // A multi-label manifest trains a sigmoid/BCE probe scored by mAP (its own head too); the
    // single-label ones report accuracy; the k-fold task reports the mean over 4 folds.
    assert_eq!(
        of(Protocol::LinearProbe),
        [
            ("T".to_string(), "mAP".to_string()),
            ("T".into(), "top1_acc".into()),
            ("T".into(), "top1_acc".into()),
            ("K".into(), "top1_acc".into()),
        ]
    );
    // The own head is scored only where its class list is the task's, in order: not for the
    // reordered list, not when unknown.
    assert_eq!(
        of(Protocol::OwnHead),
        [("T".to_string(), "mAP".to_string())]
    );
    let k = scores.iter().find(|s| s.task == "K").expect("k-fold score");
    let details = k.details.as_ref().expect("details");
    assert_eq!(details["folds"], serde_json::json!([1, 2, 3, 4]));
    let folds = details["fold_scores"].as_array().expect("fold scores");
    assert_eq!(folds.len(), 4);
    let mean = folds.iter().filter_map(|v| v.as_f64()).sum::<f64>() / 4.0;
    assert!((mean - k.value).abs() < 1e-9, "{mean} vs {}", k.value);
    for s in &scores {
        assert!((0.0..=1.0).contains(&s.value), "{s:?}");
    }
}

#[test]
fn the_suite_says_which_head_scores_an_earlier_modality() {
    use accrue_continual::{ProjectionHeadConfig, Student, TaskKind};
    use accrue_suite::suite::{HeadChoice, Part, RetrievalTask, evaluate_model_at};
    let dir = tempfile::tempdir().expect("tempdir");
    write_data(dir.path());
    let device = burn::tensor::Device::default();
    let student = |at_width: usize| {
        let encoder = accrue::encoders::Preset::ResNet38Tiny
            .config(Some(3))
            .expect("preset")
            .init(&device);
        let s = Student::new(encoder);
        let d = {
            use accrue::encoders::AudioBody;
            s.encoder.embedding_dim()
        };
        let head = |w| {
            ProjectionHeadConfig::new(d)
                .with_d_hidden(16)
                .with_d_output(w)
        };
        s.ensure_head(TaskKind::AV, &head(common::DIM), &device)
            .and_then(|s| s.ensure_head(TaskKind::AT, &head(at_width), &device))
            .expect("heads")
    };
    let suite = |choice| EvalSuite {
        retrieval: vec![RetrievalTask {
            name: "Synth".into(),
            head: TaskKind::AV,
            data: Part::all(dir.path().join("train.jsonl")),
            table: dir.path().join("clip_image.json"),
            duplicates: false,
        }],
        head_choice: choice,
        ..EvalSuite::default()
    };
    let heads = |s: &Student, choice, latest| -> Vec<String> {
        evaluate_model_at(&suite(choice), s, None, 32_000, latest, &device)
            .expect("scores")
            .into_iter()
            .filter_map(|s| s.head)
            .collect()
    };
    let shared = student(common::DIM);
    // After an AT stage, the image task is scored by g^AV (own) or g^AT (latest, same space).
    assert!(
        heads(&shared, HeadChoice::Own, Some(TaskKind::AT))
            .iter()
            .all(|h| h == "g_AV")
    );
    let latest = heads(&shared, HeadChoice::Latest, Some(TaskKind::AT));
    assert!(
        !latest.is_empty() && latest.iter().all(|h| h == "g_AT"),
        "{latest:?}"
    );
    // A head of another width does not live in the image space: the own head is used.
    let apart = student(8);
    assert!(
        heads(&apart, HeadChoice::Latest, Some(TaskKind::AT))
            .iter()
            .all(|h| h == "g_AV")
    );
}

#[test]
fn a_run_is_evaluated_with_the_front_end_it_was_trained_with() {
    unsafe { std::env::set_var("ACCRUE_NO_PROGRESS", "1") };
    let dir = tempfile::tempdir().expect("tempdir");
    write_data(dir.path());
    let exp = write_experiment(
        dir.path(),
        "mels.toml",
        "out-mels",
        &[stage("A", &["A"], "{ kind = \"finetune\" }", "")],
    );
    let text = std::fs::read_to_string(&exp).expect("read").replace(
        "num_classes = 3\n",
        "num_classes = 3\n[encoder.front_end]\nn_mels = 32\n",
    );
    std::fs::write(&exp, text).expect("write");
    run_experiment(&exp, false).expect("trains with 32 mels");
    let suite_path = dir.path().join("probe.toml");
    std::fs::write(
        &suite_path,
        "[[probe]]\nname = \"Synth\"\ntrain = { manifest = \"train.jsonl\" }\n\
         valid = { manifest = \"valid.jsonl\" }\ntest = { manifest = \"valid.jsonl\" }\n\
         max_epochs = 2\n",
    )
    .expect("suite");
    let suite = EvalSuite::load(&suite_path).expect("suite");
    // With the preset's 64-mel front end the model would not even load (strictly).
    let art = evaluate_run(
        &exp,
        &suite,
        None,
        "flex",
        false,
        &burn::tensor::Device::default(),
    )
    .expect("evaluated with its own front end");
    assert_eq!(art.stages.len(), 1);
}

#[test]
fn a_clip_is_embedded_as_on_its_own_whatever_its_batch_mates() {
    use accrue_suite::suite::{embed_dataset, embed_files};
    use burn::module::Module;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("clips")).expect("mkdir");
    // Mixed lengths (under 1 s, 1 s, longer), one file listed twice.
    let lengths = [32_000usize, 40_000, 20_000, 32_000, 40_000, 48_000];
    let mut files = Vec::new();
    let mut text = String::new();
    for (i, &n) in lengths.iter().enumerate() {
        let freq = 200.0 + 150.0 * i as f32;
        let samples: Vec<f32> = (0..n)
            .map(|k| 0.3 * (2.0 * std::f32::consts::PI * freq * k as f32 / 32_000.0).sin())
            .collect();
        let path = dir.path().join(format!("clips/m{i}.wav"));
        common::write_wav(&path, &samples, 32_000);
        text.push_str(&format!(
            "{{\"audio\": \"clips/m{i}.wav\", \"id\": \"m{i}\"}}\n"
        ));
        files.push(path);
    }
    text.push_str("{\"audio\": \"clips/m1.wav\", \"id\": \"again\"}\n");
    files.push(files[1].clone());
    let manifest = dir.path().join("mixed.jsonl");
    std::fs::write(&manifest, text).expect("manifest");
    let ds = accrue_data::readers::manifest::read(&manifest, &Default::default()).expect("read");

    let device = burn::tensor::Device::default();
    let encoder = accrue::encoders::Preset::ResNet38Tiny
        .config(Some(3))
        .expect("preset")
        .init(&device);
    let student = accrue_continual::Student::new(encoder).valid();
    let alone = embed_files(&student, &files, 32_000, &device).expect("one per pass");
    let batched = embed_dataset(&student, &ds, 32_000, 4).expect("batched");
    assert_eq!(batched.embedding.rows(), files.len());
    // Float sums inside the kernels may be ordered differently in a batch: 1e-5 relative.
    for (what, a, b) in [
        ("embedding", &alone.embedding, &batched.embedding),
        ("logits", &alone.logits, &batched.logits),
    ] {
        for r in 0..a.rows() {
            for (x, y) in a.row(r).iter().zip(b.row(r)) {
                assert!(
                    (x - y).abs() <= 1e-5 * (1.0 + x.abs()),
                    "{what} of clip {r}: alone {x}, batched {y}"
                );
            }
        }
    }
    // The repeated file gets the same row.
    assert_eq!(batched.embedding.row(1), batched.embedding.row(6));
}
