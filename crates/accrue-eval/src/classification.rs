//! Classification scores: top-1 accuracy, average precision / mAP (scikit-learn's
//! `average_precision_score`), ROC AUC and d′ (method spec §6.1; HEAR `heareval/score.py`).
//!
//! # Average precision
//!
//! `AP = Σ_n (R_n − R_{n−1}) P_n` over the *distinct* score thresholds in descending order
//! (`R_0 = 0`), with `P_n`, `R_n` the precision and recall of "score ≥ threshold n" — no
//! interpolation, tied scores enter together. This is exactly scikit-learn's
//! `average_precision_score` (checked against fixtures from `tools/goldens/eval.py`).
//!
//! # Classes with no positives
//!
//! AP is undefined for a class without a positive example. scikit-learn (1.9) warns and
//! scores such a class 0, which then drags its macro mean down. Our default
//! ([`NoPositiveRule::Skip`]) leaves such classes out of the macro mean and reports how many
//! were skipped ([`MeanAveragePrecision::n_skipped`]); [`NoPositiveRule::Zero`] reproduces
//! scikit-learn's number. The same rule applies to ROC AUC / d′ for classes with only
//! positives or only negatives (scikit-learn returns NaN per class there).

use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};
use crate::matrix::MatrixRef;

/// Average precision of one binary problem; `None` if there is no positive.
///
/// Scores must be finite.
pub fn average_precision(y_true: &[bool], scores: &[f32]) -> Result<Option<f64>> {
    check_binary(y_true, scores)?;
    let n_pos = y_true.iter().filter(|&&y| y).count();
    if n_pos == 0 {
        return Ok(None);
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut ap = 0.0f64;
    let mut prev_recall = 0.0f64;
    let mut i = 0;
    while i < order.len() {
        let t = scores[order[i]];
        // All samples tied at this threshold enter together.
        while i < order.len() && scores[order[i]] == t {
            if y_true[order[i]] {
                tp += 1;
            } else {
                fp += 1;
            }
            i += 1;
        }
        let recall = tp as f64 / n_pos as f64;
        let precision = tp as f64 / (tp + fp) as f64;
        ap += (recall - prev_recall) * precision;
        prev_recall = recall;
    }
    Ok(Some(ap))
}

/// Area under the ROC curve (probability that a random positive outscores a random negative,
/// ties counting ½ — the trapezoidal AUC of scikit-learn's `roc_auc_score`); `None` if either
/// class is absent.
pub fn roc_auc(y_true: &[bool], scores: &[f32]) -> Result<Option<f64>> {
    check_binary(y_true, scores)?;
    let n_pos = y_true.iter().filter(|&&y| y).count();
    let n_neg = y_true.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return Ok(None);
    }
    // Mann–Whitney U with mid-ranks for ties.
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut rank_sum_pos = 0.0f64;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j < order.len() && scores[order[j]] == scores[order[i]] {
            j += 1;
        }
        let mid_rank = (i + 1 + j) as f64 / 2.0; // mean of 1-based ranks i+1..=j
        rank_sum_pos += mid_rank * order[i..j].iter().filter(|&&k| y_true[k]).count() as f64;
        i = j;
    }
    let u = rank_sum_pos - (n_pos * (n_pos + 1)) as f64 / 2.0;
    Ok(Some(u / (n_pos as f64 * n_neg as f64)))
}

/// d′ = √2 · Φ⁻¹(AUC) (HEAR's `DPrime`): ±∞ for an AUC of exactly 1 or 0.
pub fn d_prime(auc: f64) -> f64 {
    std::f64::consts::SQRT_2 * inverse_normal_cdf(auc)
}

/// How a per-class score that is undefined for a class (no positives) enters a macro mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum NoPositiveRule {
    /// Leave the class out of the mean and count it in `n_skipped` (the default).
    #[default]
    Skip,
    /// Score it 0 (scikit-learn's `average_precision_score` behaviour). For AUC/d′ the class
    /// is still skipped (scikit-learn gives NaN, which would poison the mean).
    Zero,
}

/// A macro mean over classes with its per-class values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeanAveragePrecision {
    /// The macro mean over the classes that entered it.
    pub mean: f64,
    /// Per-class value; `None` where undefined.
    pub per_class: Vec<Option<f64>>,
    /// Number of classes left out of the mean.
    pub n_skipped: usize,
    /// The rule used for undefined classes.
    pub rule: NoPositiveRule,
}

/// Macro mAP of multi-label predictions: `targets` `[N, C]` row-major booleans,
/// `scores` `[N, C]`.
pub fn mean_average_precision(
    targets: &[bool],
    scores: MatrixRef<'_>,
    rule: NoPositiveRule,
) -> Result<MeanAveragePrecision> {
    per_class_macro(targets, scores, rule, average_precision, true)
}

/// Macro d′ of multi-label (or one-hot multi-class) predictions, as in HEAR's `DPrime`:
/// d′ per class from its ROC AUC, then the mean over classes where the AUC is defined.
pub fn mean_d_prime(targets: &[bool], scores: MatrixRef<'_>) -> Result<MeanAveragePrecision> {
    per_class_macro(
        targets,
        scores,
        NoPositiveRule::Skip,
        |y, s| Ok(roc_auc(y, s)?.map(d_prime)),
        false,
    )
}

fn per_class_macro(
    targets: &[bool],
    scores: MatrixRef<'_>,
    rule: NoPositiveRule,
    f: impl Fn(&[bool], &[f32]) -> Result<Option<f64>>,
    zero_allowed: bool,
) -> Result<MeanAveragePrecision> {
    let (n, c) = (scores.rows(), scores.cols());
    if targets.len() != n * c {
        return Err(EvalError::shape(
            "targets",
            format!("{} values for scores of shape [{n}, {c}]", targets.len()),
        ));
    }
    if n == 0 || c == 0 {
        return Err(EvalError::Empty("scores"));
    }
    let mut per_class = Vec::with_capacity(c);
    let (mut y, mut s) = (vec![false; n], vec![0.0f32; n]);
    for k in 0..c {
        for i in 0..n {
            y[i] = targets[i * c + k];
            s[i] = scores.data()[i * c + k];
        }
        per_class.push(f(&y, &s)?);
    }
    let zero = zero_allowed && rule == NoPositiveRule::Zero;
    let values: Vec<f64> = per_class
        .iter()
        .filter_map(|v| match v {
            Some(v) => Some(*v),
            None if zero => Some(0.0),
            None => None,
        })
        .collect();
    if values.is_empty() {
        return Err(EvalError::Undefined {
            metric: "macro mean",
            reason: "no class has a defined score".into(),
        });
    }
    Ok(MeanAveragePrecision {
        mean: values.iter().sum::<f64>() / values.len() as f64,
        n_skipped: c - values.len(),
        per_class,
        rule,
    })
}

/// Index of the first maximum of each row (`numpy.argmax`), NaN never winning.
pub fn argmax_rows(scores: MatrixRef<'_>) -> Vec<usize> {
    (0..scores.rows())
        .map(|i| {
            let row = scores.row(i);
            let mut best = 0;
            for (j, &v) in row.iter().enumerate() {
                if v > row[best] || (row[best].is_nan() && !v.is_nan()) {
                    best = j;
                }
            }
            best
        })
        .collect()
}

/// Fraction of equal entries.
pub fn accuracy(predictions: &[usize], targets: &[usize]) -> Result<f64> {
    if predictions.len() != targets.len() {
        return Err(EvalError::shape(
            "accuracy",
            format!(
                "{} predictions, {} targets",
                predictions.len(),
                targets.len()
            ),
        ));
    }
    if targets.is_empty() {
        return Err(EvalError::Empty("accuracy"));
    }
    let hits = predictions
        .iter()
        .zip(targets)
        .filter(|(p, t)| p == t)
        .count();
    Ok(hits as f64 / targets.len() as f64)
}

/// Top-1 accuracy of a score matrix `[N, C]` against class indices.
pub fn top1_accuracy(scores: MatrixRef<'_>, targets: &[usize]) -> Result<f64> {
    accuracy(&argmax_rows(scores), targets)
}

fn check_binary(y_true: &[bool], scores: &[f32]) -> Result<()> {
    if y_true.len() != scores.len() {
        return Err(EvalError::shape(
            "binary scores",
            format!("{} labels, {} scores", y_true.len(), scores.len()),
        ));
    }
    if scores.is_empty() {
        return Err(EvalError::Empty("binary scores"));
    }
    if scores.iter().any(|s| !s.is_finite()) {
        return Err(EvalError::NonFinite("scores"));
    }
    Ok(())
}

/// Φ⁻¹(p), the standard normal quantile, by Wichura's algorithm AS 241 (PPND16, relative
/// accuracy about 1e-16). Returns ∓∞ at 0 and 1, NaN outside `[0, 1]`.
// The coefficients are AS 241's published digits, kept verbatim.
#[allow(clippy::excessive_precision)]
pub fn inverse_normal_cdf(p: f64) -> f64 {
    if !(0.0..=1.0).contains(&p) || p.is_nan() {
        return f64::NAN;
    }
    if p == 0.0 {
        return f64::NEG_INFINITY;
    }
    if p == 1.0 {
        return f64::INFINITY;
    }
    let q = p - 0.5;
    if q.abs() <= 0.425 {
        let r = 0.180625 - q * q;
        return q
            * (((((((2_509.080_928_730_122_7 * r + 33_430.575_583_588_128) * r
                + 67_265.770_927_008_700)
                * r
                + 45_921.953_931_549_871)
                * r
                + 13_731.693_765_509_461)
                * r
                + 1_971.590_950_306_551_3)
                * r
                + 133.141_667_891_784_38)
                * r
                + 3.387_132_872_796_366_5)
            / (((((((5_226.495_278_852_545_4 * r + 28_729.085_735_721_942) * r
                + 39_307.895_800_092_710)
                * r
                + 21_213.794_301_586_595)
                * r
                + 5_394.196_021_424_751_1)
                * r
                + 687.187_007_492_057_91)
                * r
                + 42.313_330_701_600_911)
                * r
                + 1.0);
    }
    let r0 = if q < 0.0 { p } else { 1.0 - p };
    let mut r = (-r0.ln()).sqrt();
    let val = if r <= 5.0 {
        r -= 1.6;
        (((((((7.745_450_142_783_414_1e-4 * r + 2.272_384_498_926_918_4e-2) * r
            + 2.417_807_251_774_506_1e-1)
            * r
            + 1.270_458_252_452_368_4)
            * r
            + 3.647_848_324_763_204_5)
            * r
            + 5.769_497_221_460_691_4)
            * r
            + 4.630_337_846_156_545_3)
            * r
            + 1.423_437_110_749_683_5)
            / (((((((1.050_750_071_644_416_9e-9 * r + 5.475_938_084_995_344_9e-4) * r
                + 1.519_866_656_361_645_7e-2)
                * r
                + 1.481_039_764_274_800_7e-1)
                * r
                + 6.897_673_349_851_000_0e-1)
                * r
                + 1.676_384_830_183_803_8)
                * r
                + 2.053_191_626_637_758_8)
                * r
                + 1.0)
    } else {
        r -= 5.0;
        (((((((2.010_334_399_292_288_1e-7 * r + 2.711_555_568_743_487_6e-5) * r
            + 1.242_660_947_388_078_4e-3)
            * r
            + 2.653_218_952_657_612_4e-2)
            * r
            + 2.965_605_718_285_048_7e-1)
            * r
            + 1.784_826_539_917_291_3)
            * r
            + 5.463_784_911_164_114_4)
            * r
            + 6.657_904_643_501_103_8)
            / (((((((2.044_263_103_389_939_7e-15 * r + 1.421_511_758_316_446_0e-7) * r
                + 1.846_318_317_510_054_8e-5)
                * r
                + 7.868_691_311_456_132_6e-4)
                * r
                + 1.487_536_129_085_061_5e-2)
                * r
                + 1.369_298_809_227_358_1e-1)
                * r
                + 5.998_322_065_558_879_4e-1)
                * r
                + 1.0)
    };
    if q < 0.0 { -val } else { val }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ap_by_hand_with_ties() {
        // scores 0.9(+) 0.8(-) 0.8(+) 0.1(-): thresholds 0.9 → P=1,R=.5; 0.8 → P=2/3,R=1.
        let ap = average_precision(&[true, false, true, false], &[0.9, 0.8, 0.8, 0.1])
            .unwrap()
            .unwrap();
        assert!((ap - (0.5 * 1.0 + 0.5 * 2.0 / 3.0)).abs() < 1e-12);
        assert_eq!(
            average_precision(&[false, false], &[0.1, 0.2]).unwrap(),
            None
        );
    }

    #[test]
    fn auc_and_d_prime() {
        let auc = roc_auc(&[true, false, true, false], &[0.9, 0.8, 0.8, 0.1])
            .unwrap()
            .unwrap();
        // pairs (pos, neg): (0.9,0.8)=1 (0.9,0.1)=1 (0.8,0.8)=.5 (0.8,0.1)=1 → 3.5/4
        assert!((auc - 0.875).abs() < 1e-12);
        assert!(d_prime(0.5).abs() < 1e-15);
        // Φ⁻¹(0.975) = 1.959963984540054
        let q = inverse_normal_cdf(0.975);
        assert!((q - 1.959_963_984_540_054).abs() < 1e-14, "{q}");
        assert!((inverse_normal_cdf(1e-10) + 6.361_340_902_404_056).abs() < 1e-12);
    }

    #[test]
    fn argmax_takes_the_first_maximum() {
        let m = [0.1, 0.7, 0.7, 0.3, 0.2, 0.1];
        let v = MatrixRef::new(&m, 2, 3).unwrap();
        assert_eq!(argmax_rows(v), vec![1, 0]);
        assert!((top1_accuracy(v, &[1, 2]).unwrap() - 0.5).abs() < 1e-12);
    }
}
