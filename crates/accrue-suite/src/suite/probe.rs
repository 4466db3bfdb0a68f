//! The HEAR linear probe on frozen embeddings (and the model's own head, when asked).

use accrue_data::Dataset;
use accrue_eval::classification::{accuracy, argmax_rows};
use accrue_eval::probe::{ProbeConfig, ProbeData, Targets, probe_with_extra_tests};
use accrue_eval::report::{Protocol, Score};

use super::embedding::{Ctx, Embedded};
use super::schema::ProbeTask;
use crate::error::{Error, Result};

/// Class index (in `classes` order) of each clip's first label.
pub(crate) fn targets(ds: &Dataset, classes: &[String]) -> Result<Vec<usize>> {
    ds.examples
        .iter()
        .map(|e| {
            let name = e
                .labels
                .first()
                .and_then(|&l| ds.classes.get(l))
                .ok_or_else(|| Error::Other(format!("clip `{}` has no label", e.id)))?;
            classes
                .iter()
                .position(|c| c == name)
                .ok_or_else(|| Error::Other(format!("clip `{}`: unknown class `{name}`", e.id)))
        })
        .collect()
}

/// The scores of one probe task: the probe's test accuracy, its extra test sets, and the own
/// head's accuracy when asked for.
pub(crate) fn scores(ctx: &mut Ctx<'_>, t: &ProbeTask) -> Result<Vec<Score>> {
    let mut scores = Vec::new();
    let train_classes = t.train.read()?.classes;
    let classes = train_classes.clone();
    let pd = |ds: &Dataset, e: &Embedded| -> Result<ProbeData> {
        Ok(ProbeData::new(
            e.embedding.clone(),
            Targets::MultiClass {
                labels: targets(ds, &classes)?,
                n_classes: classes.len(),
            },
        )?)
    };
    let (ds, e) = ctx.data(&t.train)?;
    let train = pd(ds, e)?;
    let (ds, e) = ctx.data(&t.valid)?;
    let valid = pd(ds, e)?;
    let (ds, e) = ctx.data(&t.test)?;
    let test = pd(ds, e)?;
    let n_test = ds.examples.len();
    let own = if t.own_head {
        let y = targets(ds, &train_classes)?;
        (e.logits.cols() >= train_classes.len())
            .then(|| accuracy(&argmax_rows(e.logits.view()), &y))
            .transpose()?
    } else {
        None
    };
    let mut extras = Vec::new();
    for x in &t.extra_tests {
        let (ds, e) = ctx.data(&x.part)?;
        extras.push((x.name.clone(), ds.examples.len(), pd(ds, e)?));
    }
    let refs: Vec<&ProbeData> = extras.iter().map(|(_, _, p)| p).collect();
    let cfg = ProbeConfig::hear_linear().with_max_epochs(t.max_epochs);
    let (probe, extra) = probe_with_extra_tests(&train, &valid, &test, &refs, &cfg, &ctx.device)?;
    let mut s = Score::new(&t.name, Protocol::LinearProbe, "top1_acc", probe.test_score);
    s.n = Some(n_test);
    s.details = serde_json::to_value(probe.grid[probe.best].point).ok();
    scores.push(s);
    for ((name, n, _), v) in extras.iter().zip(extra) {
        let mut s = Score::new(name, Protocol::LinearProbe, "top1_acc", v);
        s.n = Some(*n);
        scores.push(s);
    }
    if let Some(acc) = own {
        let mut s = Score::new(&t.name, Protocol::OwnHead, "top1_acc", acc).with_head("g_A");
        s.n = Some(n_test);
        scores.push(s);
    }
    Ok(scores)
}
