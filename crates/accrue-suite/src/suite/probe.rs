//! The HEAR linear probe on frozen embeddings (and the model's own head, when asked).
//!
//! - A single-label task trains a softmax/cross-entropy probe and reports top-1 accuracy; a
//!   multi-label task (AudioSet, FSD50K: a manifest whose clips carry several labels) trains a
//!   sigmoid/BCE probe over every label and reports macro mAP, as the paper's Table 3 does.
//! - A fold-based task (ESC-50, US8K, the HEAR k-fold tasks) runs HEAR's k-fold protocol
//!   (`[[kfold_probe]]`): split `i` tests fold `i`, validates on fold `i+1`, trains on the rest;
//!   the score is the mean over folds, with each fold's score in the details.
//! - The model's own classifier g^A is scored only when its class list is the task's, in the
//!   same order (`head_classes`); otherwise the score is left out, with a warning.

use accrue_data::Dataset;
use accrue_eval::classification::{NoPositiveRule, accuracy, argmax_rows, mean_average_precision};
use accrue_eval::matrix::Matrix;
use accrue_eval::probe::{ProbeConfig, ProbeData, Targets, probe_k_fold, probe_with_extra_tests};
use accrue_eval::report::{Protocol, Score};

use super::embedding::{Ctx, Embedded};
use super::schema::{KFoldProbeTask, ProbeTask};
use crate::error::{Error, Result};

/// Class index (in `classes` order) of each clip's labels.
fn label_indices(ds: &Dataset, classes: &[String]) -> Result<Vec<Vec<usize>>> {
    ds.examples
        .iter()
        .map(|e| {
            if e.labels.is_empty() {
                return Err(Error::Other(format!("clip `{}` has no label", e.id)));
            }
            e.labels
                .iter()
                .map(|&l| {
                    let name = ds.classes.get(l).ok_or_else(|| {
                        Error::Other(format!("clip `{}`: label index {l} out of range", e.id))
                    })?;
                    classes.iter().position(|c| c == name).ok_or_else(|| {
                        Error::Other(format!("clip `{}`: unknown class `{name}`", e.id))
                    })
                })
                .collect()
        })
        .collect()
}

/// Class index (in `classes` order) of each clip's label; a clip with several labels is an
/// error (a single-label task).
pub(crate) fn targets(ds: &Dataset, classes: &[String]) -> Result<Vec<usize>> {
    label_indices(ds, classes)?
        .into_iter()
        .zip(&ds.examples)
        .map(|(l, e)| match l.as_slice() {
            [one] => Ok(*one),
            _ => Err(Error::Other(format!(
                "clip `{}` has {} labels in a single-label task",
                e.id,
                l.len()
            ))),
        })
        .collect()
}

/// The probe's targets of `ds` over `classes`: single-label, or multi-hot when `multi_label`.
fn probe_targets(ds: &Dataset, classes: &[String], multi_label: bool) -> Result<Targets> {
    let n_classes = classes.len();
    Ok(if multi_label {
        let mut labels = vec![false; ds.examples.len() * n_classes];
        for (i, l) in label_indices(ds, classes)?.iter().enumerate() {
            for &c in l {
                labels[i * n_classes + c] = true;
            }
        }
        Targets::MultiLabel { labels, n_classes }
    } else {
        Targets::MultiClass {
            labels: targets(ds, classes)?,
            n_classes,
        }
    })
}

/// The metric name of a probe over `multi_label` targets.
fn metric(multi_label: bool) -> &'static str {
    if multi_label { "mAP" } else { "top1_acc" }
}

/// The own head's score on `ds` (accuracy, or macro mAP of the first `classes` logits), when
/// its class list is `classes`.
fn own_head_score(
    t: &ProbeTask,
    head_classes: Option<&[String]>,
    classes: &[String],
    ds: &Dataset,
    e: &Embedded,
    multi_label: bool,
) -> Result<Option<f64>> {
    if !t.own_head {
        return Ok(None);
    }
    let Some(head) = head_classes else {
        tracing::warn!(
            task = t.name,
            "own-head score left out: the model's class list is unknown (set `head_classes`)"
        );
        return Ok(None);
    };
    if head != classes || e.logits.cols() < classes.len() {
        tracing::warn!(
            task = t.name,
            head = head.len(),
            task_classes = classes.len(),
            "own-head score left out: the model's classes are not the task's, in its order"
        );
        return Ok(None);
    }
    if multi_label {
        let Targets::MultiLabel { labels, .. } = probe_targets(ds, classes, true)? else {
            return Ok(None);
        };
        let n = classes.len();
        let logits: Vec<f32> = (0..e.logits.rows())
            .flat_map(|i| e.logits.row(i)[..n].to_vec())
            .collect();
        let m = Matrix::new(logits, e.logits.rows(), n)?;
        Ok(Some(
            mean_average_precision(&labels, m.view(), NoPositiveRule::Skip)?.mean,
        ))
    } else {
        let y = targets(ds, classes)?;
        Ok(Some(accuracy(&argmax_rows(e.logits.view()), &y)?))
    }
}

/// The scores of one probe task: the probe's test score (accuracy or mAP), its extra test
/// sets, and the own head's when asked for and its classes are the task's.
pub(crate) fn scores(ctx: &mut Ctx<'_>, t: &ProbeTask) -> Result<Vec<Score>> {
    let mut scores = Vec::new();
    let train_ds = t.train.read()?;
    let classes = train_ds.classes.clone();
    let multi = train_ds.multi_label;
    let pd = |ds: &Dataset, e: &Embedded| -> Result<ProbeData> {
        Ok(ProbeData::new(
            e.embedding.clone(),
            probe_targets(ds, &classes, multi)?,
        )?)
    };
    let (ds, e) = ctx.data(&t.train)?;
    let train = pd(ds, e)?;
    let (ds, e) = ctx.data(&t.valid)?;
    let valid = pd(ds, e)?;
    let head_classes = t.head_classes.clone();
    let (ds, e) = ctx.data(&t.test)?;
    let test = pd(ds, e)?;
    let n_test = ds.examples.len();
    let own = own_head_score(t, head_classes.as_deref(), &classes, ds, e, multi)?;
    let mut extras = Vec::new();
    for x in &t.extra_tests {
        let (ds, e) = ctx.data(&x.part)?;
        extras.push((x.name.clone(), ds.examples.len(), pd(ds, e)?));
    }
    let refs: Vec<&ProbeData> = extras.iter().map(|(_, _, p)| p).collect();
    let cfg = ProbeConfig::hear_linear().with_max_epochs(t.max_epochs);
    let (probe, extra) = probe_with_extra_tests(&train, &valid, &test, &refs, &cfg, &ctx.device)?;
    let mut s = Score::new(
        &t.name,
        Protocol::LinearProbe,
        &probe.metric,
        probe.test_score,
    );
    s.n = Some(n_test);
    s.details = serde_json::to_value(probe.grid[probe.best].point).ok();
    scores.push(s);
    for ((name, n, _), v) in extras.iter().zip(extra) {
        let mut s = Score::new(name, Protocol::LinearProbe, &probe.metric, v);
        s.n = Some(*n);
        scores.push(s);
    }
    if let Some(v) = own {
        let mut s = Score::new(&t.name, Protocol::OwnHead, metric(multi), v).with_head("g_A");
        s.n = Some(n_test);
        scores.push(s);
    }
    Ok(scores)
}

/// HEAR's k-fold probe over the folds of one manifest: the mean test score over folds, each
/// fold's score and the selected grid point in the details.
pub(crate) fn kfold_scores(ctx: &mut Ctx<'_>, t: &KFoldProbeTask) -> Result<Vec<Score>> {
    let (data, fold, ids, n) = {
        let (ds, e) = ctx.data(&t.data)?;
        let ids = ds.fold_ids();
        if ids.len() < 3 {
            return Err(Error::Other(format!(
                "{}: k-fold probing needs at least 3 folds, `{}` has {ids:?}",
                t.name,
                t.data.manifest.display()
            )));
        }
        let mut fold = Vec::with_capacity(ds.examples.len());
        for ex in &ds.examples {
            let f = ex.fold.ok_or_else(|| {
                Error::Other(format!(
                    "{}: clip `{}` has no fold (k-fold probing needs one per clip)",
                    t.name, ex.id
                ))
            })?;
            fold.push(ids.iter().position(|&i| i == f).unwrap_or(0));
        }
        let data = ProbeData::new(
            e.embedding.clone(),
            probe_targets(ds, &ds.classes, ds.multi_label)?,
        )?;
        (data, fold, ids, ds.examples.len())
    };
    let cfg = ProbeConfig::hear_linear().with_max_epochs(t.max_epochs);
    let r = probe_k_fold(&data, &fold, ids.len(), &cfg, &ctx.device)?;
    let mut s = Score::new(&t.name, Protocol::LinearProbe, &r.metric, r.mean_test);
    s.n = Some(n);
    s.details = Some(serde_json::json!({
        "protocol": "k-fold",
        "folds": ids,
        "fold_scores": r.test_scores,
        "std": r.std_test,
        "point": r.search.grid[r.search.best].point,
    }));
    Ok(vec![s])
}
