//! Zero-shot classification with a text tower (method spec §6.2, §10 item 19).
//!
//! Reference: the CLIP protocol (`openai/CLIP:notebooks/Prompt_Engineering_for_ImageNet.ipynb`)
//! with the LAION-CLAP / MS-CLAP prompt "this is a sound of {label}.".
//!
//! 1. Class text: `_` in a label becomes a space (ESC-50 and US8K labels are snake_case) and is
//!    inserted into each template at `{label}`.
//! 2. Class weight (prompt ensembling): embed every prompt of the class with the text tower,
//!    L2-normalise each, average, L2-normalise the mean.
//! 3. Prediction: `argmax_c ⟨norm(audio), w_c⟩` (the logit scale is irrelevant to the argmax;
//!    ties go to the lowest class index). Score: accuracy over all clips.
//!
//! The text tower is anything implementing [`TextEmbedder`] — including a closure
//! `Fn(&[String]) -> Result<Vec<Vec<f32>>, BoxError>` — so this module needs no concrete tower.
//! Which audio head produces the audio embedding (g^AV after the AV stage, g^AT after AT) is the
//! caller's choice; this module only sees the embeddings.

use serde::{Deserialize, Serialize};

use crate::classification::{accuracy, argmax_rows};
use crate::error::{BoxError, EvalError, Result};
use crate::matrix::{Matrix, MatrixRef, dot, l2_normalize_rows, normalize_in_place};

/// The spec's default template.
pub const DEFAULT_TEMPLATE: &str = "this is a sound of {label}.";

/// A text tower: one embedding per input string, all of the same dimension.
pub trait TextEmbedder {
    /// Embeds `texts`, returning `texts.len()` vectors.
    fn embed(&self, texts: &[String]) -> core::result::Result<Vec<Vec<f32>>, BoxError>;
}

impl<F> TextEmbedder for F
where
    F: Fn(&[String]) -> core::result::Result<Vec<Vec<f32>>, BoxError>,
{
    fn embed(&self, texts: &[String]) -> core::result::Result<Vec<Vec<f32>>, BoxError> {
        self(texts)
    }
}

/// Prompt configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZeroShotConfig {
    /// Templates, each containing `{label}` once or more. Several templates are ensembled.
    pub templates: Vec<String>,
    /// Replace `_` by a space in label names.
    pub underscores_to_spaces: bool,
}

impl Default for ZeroShotConfig {
    fn default() -> Self {
        Self {
            templates: vec![DEFAULT_TEMPLATE.to_string()],
            underscores_to_spaces: true,
        }
    }
}

impl ZeroShotConfig {
    /// The prompts of one label, one per template.
    pub fn prompts(&self, label: &str) -> Vec<String> {
        let label = if self.underscores_to_spaces {
            label.replace('_', " ")
        } else {
            label.to_string()
        };
        self.templates
            .iter()
            .map(|t| t.replace("{label}", &label))
            .collect()
    }

    fn validate(&self) -> Result<()> {
        if self.templates.is_empty() {
            return Err(EvalError::config(
                "templates",
                "at least one template is needed",
            ));
        }
        if let Some(t) = self.templates.iter().find(|t| !t.contains("{label}")) {
            return Err(EvalError::config(
                "templates",
                format!("template {t:?} has no {{label}} placeholder"),
            ));
        }
        Ok(())
    }
}

/// Class weights `[C, D]` (unit rows) by prompt ensembling.
pub fn class_weights(
    labels: &[String],
    config: &ZeroShotConfig,
    embedder: &dyn TextEmbedder,
) -> Result<Matrix> {
    config.validate()?;
    if labels.is_empty() {
        return Err(EvalError::Empty("class labels"));
    }
    let prompts: Vec<String> = labels.iter().flat_map(|l| config.prompts(l)).collect();
    let embedded = embedder.embed(&prompts).map_err(EvalError::Embedder)?;
    if embedded.len() != prompts.len() {
        return Err(EvalError::shape(
            "text embedder output",
            format!(
                "{} embeddings for {} prompts",
                embedded.len(),
                prompts.len()
            ),
        ));
    }
    let dim = embedded[0].len();
    let t = config.templates.len();
    let mut rows = Vec::with_capacity(labels.len());
    for class in embedded.chunks(t) {
        let mut mean = vec![0.0f32; dim];
        for e in class {
            if e.len() != dim {
                return Err(EvalError::shape(
                    "text embedder output",
                    format!("embedding of dimension {} (expected {dim})", e.len()),
                ));
            }
            if e.iter().any(|v| !v.is_finite()) {
                return Err(EvalError::NonFinite("text embedding"));
            }
            let mut e = e.clone();
            normalize_in_place(&mut e);
            mean.iter_mut()
                .zip(&e)
                .for_each(|(m, v)| *m += v / t as f32);
        }
        normalize_in_place(&mut mean);
        rows.push(mean);
    }
    Matrix::from_rows(&rows)
}

/// Cosine logits `[N, C]` of audio embeddings `[N, D]` against unit class weights `[C, D]`.
pub fn zero_shot_logits(audio: MatrixRef<'_>, weights: MatrixRef<'_>) -> Result<Matrix> {
    if audio.cols() != weights.cols() {
        return Err(EvalError::shape(
            "zero-shot",
            format!(
                "audio dimension {} != text dimension {}",
                audio.cols(),
                weights.cols()
            ),
        ));
    }
    let a = l2_normalize_rows(audio);
    let mut data = Vec::with_capacity(a.rows() * weights.rows());
    for i in 0..a.rows() {
        for c in 0..weights.rows() {
            data.push(dot(a.row(i), weights.row(c)));
        }
    }
    Matrix::new(data, a.rows(), weights.rows())
}

/// The outcome of zero-shot classification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZeroShotResult {
    /// Top-1 accuracy over all clips.
    pub accuracy: f64,
    /// Predicted class per clip.
    pub predictions: Vec<usize>,
    /// The prompts of the first class (for the record).
    pub example_prompts: Vec<String>,
}

/// Zero-shot accuracy of audio embeddings `[N, D]` with targets in `0..labels.len()`.
pub fn zero_shot_classify(
    audio: MatrixRef<'_>,
    targets: &[usize],
    labels: &[String],
    config: &ZeroShotConfig,
    embedder: &dyn TextEmbedder,
) -> Result<ZeroShotResult> {
    if let Some(&bad) = targets.iter().find(|&&t| t >= labels.len()) {
        return Err(EvalError::Index {
            what: "zero-shot target",
            index: bad,
            bound: labels.len(),
        });
    }
    let weights = class_weights(labels, config, embedder)?;
    let logits = zero_shot_logits(audio, weights.view())?;
    let predictions = argmax_rows(logits.view());
    Ok(ZeroShotResult {
        accuracy: accuracy(&predictions, targets)?,
        predictions,
        example_prompts: config.prompts(&labels[0]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_replace_underscores() {
        let c = ZeroShotConfig::default();
        assert_eq!(c.prompts("car_horn"), vec!["this is a sound of car horn."]);
    }

    #[test]
    fn ensembling_normalises_each_prompt_before_averaging() {
        // Two templates; the embedder returns a long vector for the first and a short one
        // for the second. Averaging unnormalised vectors would point along the long one.
        let config = ZeroShotConfig {
            templates: vec!["a {label}".into(), "b {label}".into()],
            underscores_to_spaces: true,
        };
        let embedder = |texts: &[String]| -> core::result::Result<Vec<Vec<f32>>, BoxError> {
            Ok(texts
                .iter()
                .map(|t| {
                    if t.starts_with('a') {
                        vec![10.0, 0.0]
                    } else {
                        vec![0.0, 0.1]
                    }
                })
                .collect())
        };
        let w = class_weights(&["x".into()], &config, &embedder).unwrap();
        let s = std::f32::consts::FRAC_1_SQRT_2;
        assert!((w.row(0)[0] - s).abs() < 1e-6 && (w.row(0)[1] - s).abs() < 1e-6);
    }

    #[test]
    fn embedder_errors_propagate() {
        let failing = |_: &[String]| -> core::result::Result<Vec<Vec<f32>>, BoxError> {
            Err("tower not loaded".into())
        };
        let r = class_weights(&["x".into()], &ZeroShotConfig::default(), &failing);
        assert!(matches!(r, Err(EvalError::Embedder(_))));
        let bad = ZeroShotConfig {
            templates: vec!["no placeholder".into()],
            underscores_to_spaces: true,
        };
        assert!(class_weights(&["x".into()], &bad, &failing).is_err());
    }
}
