//! The artifact validates against `schema/eval-artifact.schema.json`, round-trips, renders the
//! paper's tables, and the plots render (PNG and SVG) into a temporary directory.

use std::path::PathBuf;

use accrue_eval::continual::{StageMatrix, summarize};
use accrue_eval::matrix::Matrix;
use accrue_eval::plot::{
    BarGroup, PointCi, Series, plot_forgetting_bars, plot_retention_gain, plot_stage_heatmap,
    plot_training_curves, read_jsonl_series,
};
use accrue_eval::report::{
    ContinualReport, EvalArtifact, Protocol, Provenance, SCHEMA_VERSION, Score, StageEvaluation,
    retrieval_scores, sha256_tag,
};
use accrue_eval::retrieval::{Positives, cross_modal_retrieval};
use accrue_eval::table::{TableLayout, render_markdown, tasks};
use serde_json::Value;

use accrue_eval::schema::schema_errors;

fn json_close(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().expect("f64"), y.as_f64().expect("f64"));
            (x - y).abs() <= 1e-15 * x.abs().max(1.0)
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_close(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_close(v, w)))
        }
        _ => a == b,
    }
}

fn out_dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("accrue-eval-report");
    std::fs::create_dir_all(&d).expect("tmp dir");
    d
}

/// A plausible A → AV → AT run; `q` shifts every score so that methods and seeds differ.
fn artifact(method: &str, seed: u64, q: f64) -> EvalArtifact {
    let mut prov = Provenance::new("0123abc", sha256_tag(b"config"), seed, "flex", "f32");
    prov.frozen_towers.insert(
        "clip_vit_b32".into(),
        "openai ViT-B-32.pt sha256:40d3…".into(),
    );
    prov.datasets
        .insert("clotho_eval".into(), sha256_tag(b"manifest"));
    let mut a = EvalArtifact::new(method, format!("{method}-seed{seed}"), prov);

    // Real retrieval scores from embeddings, Clotho layout (8 clips × 5 captions).
    let n = 8;
    let audio = Matrix::new(
        (0..n * 4)
            .map(|i| ((i * 7 + seed as usize) % 11) as f32 - 5.0)
            .collect(),
        n,
        4,
    )
    .expect("audio");
    let clips = Positives::grouped_caption_clips(n, 5);
    let text = audio.select_rows(&clips).expect("captions");
    let clotho = cross_modal_retrieval(audio.view(), text.view(), &clips).expect("retrieval");

    for (i, stage) in ["A", "AV", "AT"].iter().enumerate() {
        let mut scores = vec![
            Score::new(
                tasks::AUDIOSET,
                Protocol::LinearProbe,
                "mAP",
                0.30 - 0.02 * i as f64 + q,
            ),
            Score::new(tasks::ESC50, Protocol::LinearProbe, "top1_acc", 0.85 + q),
            Score::new(tasks::US8K, Protocol::LinearProbe, "top1_acc", 0.78 + q),
        ];
        if i >= 1 {
            scores.push(
                Score::new(
                    tasks::ESC50,
                    Protocol::ZeroShot,
                    "top1_acc",
                    0.4 + 0.1 * i as f64 + q,
                )
                .with_head("g_AV"),
            );
            scores.push(
                Score::new(tasks::US8K, Protocol::ZeroShot, "top1_acc", 0.3 + q).with_head("g_AV"),
            );
            for (ds, base) in [(tasks::VGGSOUND, 0.2), (tasks::AVE, 0.3)] {
                for dir in ["I2A", "A2I"] {
                    scores.push(
                        Score::new(
                            ds,
                            Protocol::Retrieval,
                            "R@10",
                            base + q - 0.05 * (i as f64 - 1.0),
                        )
                        .with_direction(dir),
                    );
                }
            }
        }
        if i == 2 {
            scores.extend(retrieval_scores(
                tasks::CLOTHO,
                &clotho,
                "A2T",
                "T2A",
                Some("g_AT"),
            ));
        }
        a.stages.push(StageEvaluation {
            stage: (*stage).into(),
            checkpoint: format!("stage{i}_{stage}/model.bpk"),
            checkpoint_hash: Some(sha256_tag(stage.as_bytes())),
            scores,
        });
    }
    let matrix = StageMatrix::new(
        vec!["A".into(), "AV".into(), "AT".into()],
        vec![
            "AudioSet mAP".into(),
            "VGGSound R@10".into(),
            "Clotho R@10".into(),
        ],
        vec![
            vec![Some(0.434), None, None],
            vec![Some(0.38 + q), Some(0.25 + q), None],
            vec![Some(0.33 + q), Some(0.21 + q), Some(0.30 + q)],
        ],
    )
    .expect("matrix");
    let summary =
        summarize(&matrix, None, Some(&[None, Some(0.26), Some(0.31)]), None).expect("summary");
    a.continual = Some(ContinualReport { matrix, summary });
    a
}

#[test]
fn artifact_validates_against_schema_and_round_trips() {
    let a = artifact("lwf", 0, 0.0);
    let path = out_dir().join("lwf-seed0.json");
    a.write(&path).expect("write");
    let text = std::fs::read_to_string(&path).expect("read");
    let doc: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(schema_errors(&doc), Vec::<String>::new());
    assert_eq!(doc["schema_version"], SCHEMA_VERSION);
    // Round trip (serde_json's default float parser may differ in the last ulp).
    let back = EvalArtifact::read(&path).expect("read back");
    let back_doc: Value = serde_json::from_str(&back.to_json().expect("json")).expect("json");
    assert!(
        json_close(&doc, &back_doc),
        "round trip changed the artifact"
    );

    // The validator is not vacuous: broken documents are rejected.
    let mut missing = doc.clone();
    missing["provenance"]
        .as_object_mut()
        .expect("obj")
        .remove("git_commit");
    assert!(!schema_errors(&missing).is_empty());
    let mut extra = doc.clone();
    extra["stages"][0]["scores"][0]["surprise"] = Value::Bool(true);
    assert!(!schema_errors(&extra).is_empty());
    let mut wrong = doc.clone();
    wrong["stages"][0]["scores"][0]["protocol"] = Value::String("guess".into());
    assert!(!schema_errors(&wrong).is_empty());
    let mut wrong_type = doc;
    wrong_type["provenance"]["seed"] = Value::String("42".into());
    assert!(!schema_errors(&wrong_type).is_empty());

    // Invariants beyond the schema.
    let mut bad = a.clone();
    bad.stages[0].scores[0].value = f64::NAN;
    assert!(bad.write(&out_dir().join("bad.json")).is_err());
    assert!(EvalArtifact::from_json("{\"schema_version\": 1}").is_err());
}

#[test]
fn tables_have_mean_and_std_over_seeds() {
    let runs = vec![
        artifact("finetune", 0, -0.02),
        artifact("lwf", 0, 0.0),
        artifact("lwf", 1, 0.02),
        artifact("finetune", 1, 0.0),
    ];
    let t2 = render_markdown(&TableLayout::table2(), &runs);
    let t1 = render_markdown(&TableLayout::table1(), &runs);
    let t3 = render_markdown(&TableLayout::table3(), &runs);
    std::fs::write(out_dir().join("tables.md"), format!("{t1}\n{t2}\n{t3}")).expect("write");
    // lwf ZS ESC-50 after AT: 0.6 and 0.62 → 61.0 ± 1.4 (sample std of {60, 62} = √2).
    let lwf = t2
        .lines()
        .find(|l| l.starts_with("| lwf |"))
        .expect("lwf row");
    assert!(lwf.contains("| 61.0 ± 1.4 |"), "{lwf}");
    assert!(lwf.starts_with("| lwf | 2 |"));
    // Methods keep their first-appearance order; Table 1's Clotho R@1 is perfect here.
    let rows: Vec<&str> = t1
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| Method"))
        .collect();
    assert!(rows[0].starts_with("| finetune |") && rows[1].starts_with("| lwf |"));
    assert!(rows[0].contains("100.0 ± 0.0"));
    assert!(t3.contains("AudioSet mAP"));
    // A single run shows the bare value; an absent score shows a dash.
    let single = render_markdown(&TableLayout::table1(), &runs[1..2]);
    assert!(single.contains("| 60.0 |"), "{single}");
    let mut empty = runs[1].clone();
    empty.stages.clear();
    assert!(render_markdown(&TableLayout::table1(), &[empty]).contains("| – |"));
}

#[test]
fn plots_render() {
    let dir = out_dir();
    let a = artifact("lwf", 0, 0.0);
    let m = &a.continual.as_ref().expect("continual").matrix;
    for ext in ["png", "svg"] {
        let p = dir.join(format!("heatmap.{ext}"));
        plot_stage_heatmap(m, "LwF: score after each stage (×100)", &p).expect("heatmap");
        assert!(std::fs::metadata(&p).expect("file").len() > 1000);
    }

    // A JSONL training log with two stages and unrelated events.
    let log = dir.join("train.jsonl");
    let mut text = String::new();
    for stage in ["AV", "AT"] {
        for step in 0..200 {
            let loss =
                4.0 * (-(step as f64) / 60.0).exp() + 0.5 + if stage == "AT" { 0.3 } else { 0.0 };
            text.push_str(&format!(
                "{{\"stage\":\"{stage}\",\"step\":{step},\"loss\":{loss}}}\n"
            ));
        }
        text.push_str(&format!(
            "{{\"stage\":\"{stage}\",\"event\":\"checkpoint\"}}\n"
        ));
    }
    std::fs::write(&log, text).expect("log");
    let series = read_jsonl_series(&log, "step", "loss", Some("stage")).expect("series");
    assert_eq!(series.len(), 2);
    assert_eq!(series[0].points.len(), 200);
    for ext in ["png", "svg"] {
        let p = dir.join(format!("curves.{ext}"));
        plot_training_curves(&series, "Training loss per step", &p).expect("curves");
        assert!(std::fs::metadata(&p).expect("file").len() > 1000);
    }

    let tasks_: Vec<String> = vec!["AudioSet mAP".into(), "VGGSound R@10".into()];
    let groups = vec![
        BarGroup {
            name: "finetune".into(),
            values: vec![Some(0.12), Some(0.08)],
        },
        BarGroup {
            name: "LwF".into(),
            values: vec![Some(0.05), Some(0.04)],
        },
        BarGroup {
            name: "CaSSLe".into(),
            values: vec![Some(0.03), Some(-0.01)],
        },
        BarGroup {
            name: "Mod-X".into(),
            values: vec![Some(0.04), None],
        },
    ];
    for ext in ["png", "svg"] {
        let p = dir.join(format!("forgetting.{ext}"));
        plot_forgetting_bars(&tasks_, &groups, "Forgetting after the last stage", &p)
            .expect("bars");
        assert!(std::fs::metadata(&p).expect("file").len() > 1000);
    }
    let points = vec![
        PointCi {
            name: "Fine-tuning".into(),
            x: (0.44, 0.42, 0.46),
            y: (-0.010, -0.019, -0.002),
        },
        PointCi {
            name: "LwF".into(),
            x: (0.45, 0.44, 0.46),
            y: (-0.012, -0.022, -0.002),
        },
    ];
    for ext in ["png", "svg"] {
        let p = dir.join(format!("retention.{ext}"));
        plot_retention_gain(&points, "Retention vs gain", "gain", "retention", &p).expect("points");
        assert!(std::fs::metadata(&p).expect("file").len() > 1000);
    }
    // An interval that does not hold its mean, or nothing to draw, is refused.
    let mut bad = points.clone();
    bad[0].y = (0.1, -0.02, 0.05);
    assert!(plot_retention_gain(&bad, "t", "x", "y", &dir.join("r.svg")).is_err());
    assert!(plot_retention_gain(&[], "t", "x", "y", &dir.join("r.svg")).is_err());
    assert!(
        plot_training_curves(
            &[Series {
                name: "x".into(),
                points: vec![]
            }],
            "t",
            &dir.join("e.png")
        )
        .is_err()
    );
    assert!(plot_stage_heatmap(m, "t", &dir.join("x.jpg")).is_err());
}
