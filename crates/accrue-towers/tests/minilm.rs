//! Parity of the MiniLM text tower with sentence-transformers on the real weights.

mod common;

use accrue_towers::minilm::{MiniLmFiles, MiniLmTower};
use accrue_towers::{Error, FrozenTower};
use burn::tensor::Device;
use common::{fixture, load_st, max_abs, real_files};

fn sentences() -> Vec<String> {
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("minilm/minilm.json")).unwrap())
            .unwrap();
    meta["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

fn tower(test: &str) -> Option<MiniLmTower> {
    let dir = real_files(
        test,
        "minilm",
        &["model.safetensors", "tokenizer.json", "config.json"],
    )?;
    Some(MiniLmTower::load(&MiniLmFiles::in_dir(&dir), &Device::default()).expect("load MiniLM"))
}

#[test]
fn minilm_matches_sentence_transformers() {
    let Some(tower) = tower("minilm_matches_sentence_transformers") else {
        return;
    };
    let fx = load_st(&fixture("minilm/minilm.safetensors"));
    let sentences = sentences();
    let refs: Vec<&str> = sentences.iter().map(String::as_str).collect();

    // tokenisation: identical ids to the Python tokenizer (padding to the longest)
    let (ids, _) = tower.tokenize(&refs).unwrap();
    let t = fx["input_ids"].shape[1];
    let lengths = &fx["lengths"].i64;
    for (i, row) in ids.iter().enumerate() {
        let n = lengths[i] as usize;
        assert_eq!(
            &row[..n],
            &fx["input_ids"].i64[i * t..i * t + n],
            "token ids of sentence {i} ({:?})",
            refs[i]
        );
    }

    // embeddings in batches of 8, as the reference did
    let mut got = Vec::new();
    for chunk in refs.chunks(8) {
        let e = tower.embed(chunk).unwrap();
        assert_eq!(e.dims(), [chunk.len(), 384]);
        got.extend(e.into_data().try_to_vec::<f32>().unwrap());
    }
    let err = max_abs(&got, &fx["embeddings"].f32);
    println!(
        "MiniLM vs sentence-transformers: max abs {err:.2e} over {} sentences",
        refs.len()
    );
    assert!(err <= 1e-4, "max abs {err}");

    // unit norm
    for row in got.chunks(384) {
        let n: f32 = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((n - 1.0).abs() < 1e-5);
    }
}

#[test]
fn minilm_semantics_and_identity() {
    let Some(tower) = tower("minilm_semantics_and_identity") else {
        return;
    };
    let e = tower
        .embed(&[
            "the spoken digit seven",
            "a person saying seven",
            "a dog barking",
        ])
        .unwrap();
    let v = e.into_data().try_to_vec::<f32>().unwrap();
    let cos =
        |a: usize, b: usize| -> f32 { (0..384).map(|k| v[a * 384 + k] * v[b * 384 + k]).sum() };
    assert!((cos(0, 1) - 0.68).abs() < 0.02, "cos {}", cos(0, 1));
    assert!((cos(0, 2) - 0.13).abs() < 0.02, "cos {}", cos(0, 2));
    let id = tower.identity();
    assert_eq!(
        id.weights_sha256,
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
    );
    assert_eq!(id.digest().len(), 16);
    assert!(matches!(
        tower.embed(&["fine", "  "]),
        Err(Error::EmptyText { index: 1 })
    ));
    assert!(matches!(tower.embed(&[]), Err(Error::EmptyBatch)));
}
