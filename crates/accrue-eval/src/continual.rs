//! Continual-learning metrics on the stage × evaluation matrix (method spec §6.4, §10 item 20).
//!
//! `R[i][j]` is the score on evaluation task `j` after finishing training stage `i`
//! (`T` stages, `T` tasks, task `j` learnt at stage `j`; 0-based here, 1-based in the formulas).
//! Scores are "higher is better" (mAP, R@10, accuracy); entries may be missing (`None`)
//! where a score is undefined, e.g. cross-modal retrieval before a head for that modality
//! exists.
//!
//! * GEM (Lopez-Paz & Ranzato, NeurIPS 2017): `ACC = (1/T) Σ_i R_{T,i}`;
//!   `BWT = 1/(T−1) Σ_{i<T} (R_{T,i} − R_{i,i})`;
//!   `FWT = 1/(T−1) Σ_{i≥2} (R_{i−1,i} − b_i)` with `b` a reference vector (random-init scores
//!   in GEM; in this project the single-task baselines, §10 item 20, whose `FWT` variant
//!   [`single_task_transfer`] compares `R_{i,i}` to the baseline `b_i`).
//! * Chaudhry et al. (ECCV 2018, RWalk): forgetting of task `j` after stage `k`:
//!   `f_j^k = max_{l<k} R_{l,j} − R_{k,j}`; average forgetting
//!   `F_k = 1/(k−1) Σ_{j<k} f_j^k`; intransigence `I_k = R*_k − R_{k,k}` with `R*_k` the score
//!   of a jointly trained reference (MT-WC here).
//!
//! Missing entries are left out of the sums (the divisor counts the terms actually present);
//! a metric with no defined term is an [`EvalError::Undefined`].

use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};

/// The stage × evaluation matrix with row/column names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageMatrix {
    /// Stage names (rows), e.g. `["A", "AV", "AT"]`.
    pub stages: Vec<String>,
    /// Evaluation names (columns), e.g. `["AudioSet mAP", "VGGSound R@10", "Clotho R@10"]`.
    pub evaluations: Vec<String>,
    /// `scores[i][j]`: evaluation `j` after stage `i`.
    pub scores: Vec<Vec<Option<f64>>>,
}

impl StageMatrix {
    /// Builds and validates a square `T × T` matrix (task `j` learnt at stage `j`).
    pub fn new(
        stages: Vec<String>,
        evaluations: Vec<String>,
        scores: Vec<Vec<Option<f64>>>,
    ) -> Result<Self> {
        let m = Self {
            stages,
            evaluations,
            scores,
        };
        m.validate()?;
        Ok(m)
    }

    /// From a dense matrix with generic names (`stage 1…`, `task 1…`).
    pub fn from_dense(scores: &[Vec<f64>]) -> Result<Self> {
        let t = scores.len();
        Self::new(
            (1..=t).map(|i| format!("stage {i}")).collect(),
            (1..=t).map(|i| format!("task {i}")).collect(),
            scores
                .iter()
                .map(|r| r.iter().map(|&v| Some(v)).collect())
                .collect(),
        )
    }

    /// Checks the shape (square, names match) and finiteness.
    pub fn validate(&self) -> Result<()> {
        let t = self.stages.len();
        if t == 0 {
            return Err(EvalError::Empty("stage matrix"));
        }
        if self.evaluations.len() != t || self.scores.len() != t {
            return Err(EvalError::shape(
                "stage matrix",
                format!(
                    "{t} stages, {} evaluations, {} score rows: must all be equal",
                    self.evaluations.len(),
                    self.scores.len()
                ),
            ));
        }
        if let Some((i, r)) = self.scores.iter().enumerate().find(|(_, r)| r.len() != t) {
            return Err(EvalError::shape(
                "stage matrix",
                format!("row {i} has {} entries, expected {t}", r.len()),
            ));
        }
        if self
            .scores
            .iter()
            .flatten()
            .flatten()
            .any(|v| !v.is_finite())
        {
            return Err(EvalError::NonFinite("stage matrix"));
        }
        Ok(())
    }

    /// Number of stages `T`.
    pub fn n_stages(&self) -> usize {
        self.stages.len()
    }

    fn get(&self, i: usize, j: usize) -> Option<f64> {
        self.scores[i][j]
    }
}

fn mean_of(metric: &'static str, terms: impl Iterator<Item = Option<f64>>) -> Result<f64> {
    let (mut s, mut n) = (0.0, 0usize);
    for v in terms.flatten() {
        s += v;
        n += 1;
    }
    if n == 0 {
        return Err(EvalError::Undefined {
            metric,
            reason: "no defined term".into(),
        });
    }
    Ok(s / n as f64)
}

/// GEM average accuracy `ACC = (1/T) Σ_i R_{T,i}` (mean of the last row).
pub fn average_accuracy(r: &StageMatrix) -> Result<f64> {
    r.validate()?;
    let last = r.n_stages() - 1;
    mean_of("ACC", (0..r.n_stages()).map(|i| r.get(last, i)))
}

/// GEM backward transfer `BWT = 1/(T−1) Σ_{i<T} (R_{T,i} − R_{i,i})`; negative = forgetting.
pub fn backward_transfer(r: &StageMatrix) -> Result<f64> {
    r.validate()?;
    let t = r.n_stages();
    if t < 2 {
        return Err(EvalError::Undefined {
            metric: "BWT",
            reason: "needs at least two stages".into(),
        });
    }
    mean_of(
        "BWT",
        (0..t - 1).map(|i| Some(r.get(t - 1, i)? - r.get(i, i)?)),
    )
}

/// GEM forward transfer `FWT = 1/(T−1) Σ_{i≥2} (R_{i−1,i} − b_i)` with reference scores `b`.
pub fn forward_transfer(r: &StageMatrix, b: &[Option<f64>]) -> Result<f64> {
    r.validate()?;
    let t = r.n_stages();
    check_reference(t, b)?;
    if t < 2 {
        return Err(EvalError::Undefined {
            metric: "FWT",
            reason: "needs at least two stages".into(),
        });
    }
    mean_of("FWT", (1..t).map(|i| Some(r.get(i - 1, i)? - b[i]?)))
}

/// The project's forward-transfer reading (§6.4, §10 item 20): the continual model's score on a
/// task right after learning it versus the single-task baseline for that task,
/// `1/(T−1) Σ_{i≥2} (R_{i,i} − b_i)`, used because cross-modal scores are undefined before a
/// head for the modality exists.
pub fn single_task_transfer(r: &StageMatrix, baselines: &[Option<f64>]) -> Result<f64> {
    r.validate()?;
    let t = r.n_stages();
    check_reference(t, baselines)?;
    mean_of(
        "FWT (single-task)",
        (1..t).map(|i| Some(r.get(i, i)? - baselines[i]?)),
    )
}

fn check_reference(t: usize, b: &[Option<f64>]) -> Result<()> {
    if b.len() != t {
        return Err(EvalError::shape(
            "reference scores",
            format!("{} entries for {t} tasks", b.len()),
        ));
    }
    if b.iter().flatten().any(|v| !v.is_finite()) {
        return Err(EvalError::NonFinite("reference scores"));
    }
    Ok(())
}

/// Chaudhry forgetting `f_j^k = max_{l<k} R_{l,j} − R_{k,j}` of task `j` after stage `k`
/// (0-based, `j < k`); `None` if `R_{k,j}` or every earlier `R_{l,j}` is missing.
pub fn task_forgetting(r: &StageMatrix, j: usize, k: usize) -> Option<f64> {
    if j >= k || k >= r.n_stages() {
        return None;
    }
    let best = (0..k).filter_map(|l| r.get(l, j)).reduce(f64::max)?;
    Some(best - r.get(k, j)?)
}

/// Chaudhry average forgetting `F_k = 1/(k−1) Σ_{j<k} f_j^k` after stage `k` (0-based `k ≥ 1`).
pub fn average_forgetting(r: &StageMatrix, k: usize) -> Result<f64> {
    r.validate()?;
    if k == 0 || k >= r.n_stages() {
        return Err(EvalError::Undefined {
            metric: "forgetting",
            reason: format!(
                "stage {k} has no earlier task (0-based, T = {})",
                r.n_stages()
            ),
        });
    }
    mean_of("forgetting", (0..k).map(|j| task_forgetting(r, j, k)))
}

/// Chaudhry intransigence `I_k = R*_k − R_{k,k}` for every stage, given the joint reference's
/// scores `R*` (`None` where missing).
pub fn intransigence(r: &StageMatrix, joint: &[Option<f64>]) -> Result<Vec<Option<f64>>> {
    r.validate()?;
    check_reference(r.n_stages(), joint)?;
    Ok((0..r.n_stages())
        .map(|k| Some(joint[k]? - r.get(k, k)?))
        .collect())
}

/// Every continual-learning summary of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContinualSummary {
    /// GEM ACC.
    pub acc: Option<f64>,
    /// GEM BWT.
    pub bwt: Option<f64>,
    /// GEM FWT against `reference` (when given).
    pub fwt: Option<f64>,
    /// `R_{i,i} − b_i` against the single-task baselines (when given).
    pub fwt_single_task: Option<f64>,
    /// Chaudhry forgetting of each task after the last stage (`None` for the last task).
    pub forgetting_per_task: Vec<Option<f64>>,
    /// Chaudhry average forgetting after the last stage.
    pub forgetting: Option<f64>,
    /// Chaudhry intransigence per stage (when a joint reference is given).
    pub intransigence: Option<Vec<Option<f64>>>,
}

/// Computes every summary; undefined metrics become `None`.
pub fn summarize(
    r: &StageMatrix,
    reference: Option<&[Option<f64>]>,
    single_task: Option<&[Option<f64>]>,
    joint: Option<&[Option<f64>]>,
) -> Result<ContinualSummary> {
    r.validate()?;
    let t = r.n_stages();
    // Shape errors of the reference vectors are errors; undefined metrics are `None`.
    for b in [reference, single_task, joint].into_iter().flatten() {
        check_reference(t, b)?;
    }
    Ok(ContinualSummary {
        acc: average_accuracy(r).ok(),
        bwt: backward_transfer(r).ok(),
        fwt: reference.and_then(|b| forward_transfer(r, b).ok()),
        fwt_single_task: single_task.and_then(|b| single_task_transfer(r, b).ok()),
        forgetting_per_task: (0..t).map(|j| task_forgetting(r, j, t - 1)).collect(),
        forgetting: average_forgetting(r, t - 1).ok(),
        intransigence: joint.map(|j| intransigence(r, j)).transpose()?,
    })
}
