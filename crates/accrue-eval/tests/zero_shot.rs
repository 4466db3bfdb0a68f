//! Zero-shot classification with a stand-in text tower (a closure): correct prompts reach the
//! tower, ensembling and the argmax give the expected predictions.

use std::cell::RefCell;

use accrue_eval::BoxError;
use accrue_eval::matrix::Matrix;
use accrue_eval::zero_shot::{ZeroShotConfig, zero_shot_classify};

#[test]
fn classifies_with_a_closure_text_tower() {
    let labels: Vec<String> = ["dog", "car_horn", "rain"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let seen = RefCell::new(Vec::<String>::new());
    // Class c's prompts embed near the basis vector e_c (the second template adds a small,
    // different offset so that ensembling matters but never flips the class).
    let tower = |texts: &[String]| -> Result<Vec<Vec<f32>>, BoxError> {
        seen.borrow_mut().extend(texts.iter().cloned());
        texts
            .iter()
            .map(|t| {
                let c = ["dog", "car horn", "rain"]
                    .iter()
                    .position(|l| t.contains(l))
                    .ok_or_else(|| format!("unknown prompt {t:?}"))?;
                let mut v = vec![0.0f32; 4];
                v[c] = 2.0;
                v[3] = if t.starts_with("a recording") {
                    0.5
                } else {
                    -0.5
                };
                Ok(v)
            })
            .collect()
    };
    let audio = Matrix::from_rows(&[
        vec![1.0, 0.1, 0.0, 0.0],
        vec![0.0, 0.9, 0.2, 0.1],
        vec![0.1, 0.0, 3.0, -0.2],
        vec![0.0, 0.0, 1.0, 0.0],
    ])
    .expect("audio");
    let config = ZeroShotConfig {
        templates: vec![
            "this is a sound of {label}.".into(),
            "a recording of {label}".into(),
        ],
        underscores_to_spaces: true,
    };
    let r = zero_shot_classify(audio.view(), &[0, 1, 2, 0], &labels, &config, &tower).expect("zs");
    assert_eq!(r.predictions, vec![0, 1, 2, 2]);
    assert!((r.accuracy - 0.75).abs() < 1e-12);
    assert_eq!(seen.borrow().len(), 6);
    assert!(
        seen.borrow()
            .contains(&"this is a sound of car horn.".to_string())
    );
    assert_eq!(r.example_prompts[0], "this is a sound of dog.");

    // Default: the single spec template.
    let r = zero_shot_classify(
        audio.view(),
        &[0, 1, 2, 2],
        &labels,
        &ZeroShotConfig::default(),
        &tower,
    )
    .expect("zs");
    assert_eq!(r.accuracy, 1.0);
    // Out-of-range target and dimension mismatch are errors.
    assert!(
        zero_shot_classify(
            audio.view(),
            &[0, 1, 2, 3],
            &labels,
            &ZeroShotConfig::default(),
            &tower
        )
        .is_err()
    );
    let wide = Matrix::from_rows(&[vec![1.0; 5]]).expect("m");
    assert!(
        zero_shot_classify(
            wide.view(),
            &[0],
            &labels,
            &ZeroShotConfig::default(),
            &tower
        )
        .is_err()
    );
}
