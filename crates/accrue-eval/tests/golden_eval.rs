//! AP / mAP / AUC / d′ / accuracy against scikit-learn and scipy, and Clotho-layout retrieval
//! against LAION-CLAP's evaluation code, on fixtures written by `tools/goldens/eval.py`.
//!
//! Tolerances: 1e-9 absolute on every score (the references are computed in float64 from
//! the same float32 inputs; our AP/AUC accumulate in f64, so the only differences are
//! summation order). Retrieval: exact equality of the scores for tie-free inputs except a
//! 1e-12 slack on mAP@10 (sums of fractions); the embeddings are normalised in f32 here and
//! f64 there, so a fixture with a near-tie below ~1e-6 would be regenerated with another seed.

use accrue_eval::classification::{
    NoPositiveRule, mean_average_precision, mean_d_prime, roc_auc, top1_accuracy,
};
use accrue_eval::matrix::{Matrix, MatrixRef};
use accrue_eval::retrieval::{Positives, cross_modal_retrieval};
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/eval");
const TOL: f64 = 1e-9;

struct Fixture {
    bytes: Vec<u8>,
    cases: Value,
}

fn load() -> Fixture {
    let bytes = std::fs::read(format!("{DIR}/tensors.safetensors")).expect("fixture tensors");
    let meta: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{DIR}/cases.json")).expect("fixture cases"),
    )
    .expect("cases json");
    Fixture {
        bytes,
        cases: meta["cases"].clone(),
    }
}

fn tensor(st: &SafeTensors<'_>, key: &str) -> (Vec<usize>, Vec<f64>) {
    let view = st.tensor(key).unwrap_or_else(|_| panic!("missing {key}"));
    let d = view.data();
    let values: Vec<f64> = match view.dtype() {
        Dtype::F32 => d
            .chunks_exact(4)
            .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
        Dtype::I64 => d
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")) as f64)
            .collect(),
        Dtype::U8 => d.iter().map(|&b| f64::from(b)).collect(),
        other => panic!("unexpected dtype {other:?} for {key}"),
    };
    (view.shape().to_vec(), values)
}

fn matrix(st: &SafeTensors<'_>, key: &str) -> Matrix {
    let (shape, v) = tensor(st, key);
    Matrix::new(v.iter().map(|&x| x as f32).collect(), shape[0], shape[1]).expect("matrix")
}

fn close(got: f64, want: f64, tol: f64, what: &str) {
    assert!(
        (got - want).abs() <= tol,
        "{what}: got {got}, expected {want} (tolerance {tol})"
    );
}

#[test]
fn average_precision_matches_sklearn() {
    let fx = load();
    let st = SafeTensors::deserialize(&fx.bytes).expect("safetensors");
    let mut checked = 0;
    for (name, case) in fx.cases.as_object().expect("cases") {
        if case["kind"] != "multilabel" {
            continue;
        }
        let scores = matrix(&st, &format!("{name}/scores"));
        let targets: Vec<bool> = tensor(&st, &format!("{name}/targets"))
            .1
            .iter()
            .map(|&v| v > 0.5)
            .collect();
        let skip =
            mean_average_precision(&targets, scores.view(), NoPositiveRule::Skip).expect("mAP");
        let want: Vec<Option<f64>> =
            serde_json::from_value(case["ap_per_class"].clone()).expect("ap_per_class");
        assert_eq!(skip.per_class.len(), want.len());
        for (c, (g, w)) in skip.per_class.iter().zip(&want).enumerate() {
            match (g, w) {
                (Some(g), Some(w)) => close(*g, *w, TOL, &format!("{name} AP class {c}")),
                (None, None) => {}
                _ => panic!("{name} class {c}: defined-ness differs ({g:?} vs {w:?})"),
            }
        }
        close(
            skip.mean,
            case["map_skip"].as_f64().expect("f64"),
            TOL,
            name,
        );
        assert_eq!(
            skip.n_skipped as u64,
            case["n_skipped"].as_u64().expect("u64")
        );

        let zero =
            mean_average_precision(&targets, scores.view(), NoPositiveRule::Zero).expect("mAP");
        close(
            zero.mean,
            case["map_sklearn_zero"].as_f64().expect("f64"),
            TOL,
            name,
        );
        assert_eq!(zero.n_skipped, 0);

        // ROC AUC per class and mean d′.
        let auc_want: Vec<Option<f64>> =
            serde_json::from_value(case["auc_per_class"].clone()).expect("auc");
        let c = scores.cols();
        for (k, w) in auc_want.iter().enumerate() {
            let y: Vec<bool> = (0..scores.rows()).map(|i| targets[i * c + k]).collect();
            let s: Vec<f32> = (0..scores.rows()).map(|i| scores.row(i)[k]).collect();
            let g = roc_auc(&y, &s).expect("auc");
            match (g, w) {
                (Some(g), Some(w)) => close(g, *w, TOL, &format!("{name} AUC class {k}")),
                (None, None) => {}
                _ => panic!("{name} AUC class {k}: defined-ness differs ({g:?} vs {w:?})"),
            }
        }
        match case["d_prime_mean"].as_f64() {
            Some(w) => close(
                mean_d_prime(&targets, scores.view()).expect("d'").mean,
                w,
                1e-8,
                &format!("{name} d'"),
            ),
            None => assert!(mean_d_prime(&targets, scores.view()).is_err()),
        }
        checked += 1;
    }
    assert_eq!(checked, 5, "all multi-label cases checked");
}

#[test]
fn accuracy_matches_sklearn() {
    let fx = load();
    let st = SafeTensors::deserialize(&fx.bytes).expect("safetensors");
    for name in ["multiclass", "multiclass_ties"] {
        let scores = matrix(&st, &format!("{name}/scores"));
        let labels: Vec<usize> = tensor(&st, &format!("{name}/labels"))
            .1
            .iter()
            .map(|&v| v as usize)
            .collect();
        let acc = top1_accuracy(scores.view(), &labels).expect("accuracy");
        close(
            acc,
            fx.cases[name]["accuracy"].as_f64().expect("f64"),
            TOL,
            name,
        );
    }
}

#[test]
fn clotho_retrieval_matches_laion_clap() {
    let fx = load();
    let st = SafeTensors::deserialize(&fx.bytes).expect("safetensors");
    let case = &fx.cases["retrieval"];
    let (n, per) = (
        case["n_clips"].as_u64().expect("n") as usize,
        case["per_clip"].as_u64().expect("per") as usize,
    );
    let audio = matrix(&st, "retrieval/audio");
    let text = matrix(&st, "retrieval/text");
    let clips = Positives::grouped_caption_clips(n, per);
    let r = cross_modal_retrieval(audio.view(), text.view(), &clips).expect("retrieval");
    let e = &case["expected"];
    let pairs = [
        ("A2T/R@1", r.audio_to_other.r_at_1),
        ("A2T/R@5", r.audio_to_other.r_at_5),
        ("A2T/R@10", r.audio_to_other.r_at_10),
        ("A2T/mAP@10", r.audio_to_other.map_at_10),
        ("T2A/R@1", r.other_to_audio.r_at_1),
        ("T2A/R@5", r.other_to_audio.r_at_5),
        ("T2A/R@10", r.other_to_audio.r_at_10),
        ("T2A/mAP@10", r.other_to_audio.map_at_10),
    ];
    for (key, got) in pairs {
        close(got, e[key].as_f64().expect("f64"), 1e-12, key);
    }
    assert_eq!(r.audio_to_other.n_queries, n);
    assert_eq!(r.other_to_audio.n_queries, n * per);
    // Not degenerate: the fixture discriminates.
    assert!(r.audio_to_other.r_at_1 > 0.0 && r.audio_to_other.r_at_1 < 1.0);
    let _ = MatrixRef::new(audio.data(), n, audio.cols()).expect("view");
}
