//! Zero-shot classification through a contrastive head: prompts (AT) or class images (AV).

use accrue_continual::TaskKind;
use accrue_eval::classification::{accuracy, argmax_rows};
use accrue_eval::report::{Protocol, Score};
use accrue_eval::zero_shot::{ZeroShotConfig, class_weights, zero_shot_logits};
use accrue_eval::{BoxError, Matrix};

use super::embedding::{Ctx, head_name, table_rows};
use super::probe::targets;
use super::schema::ZeroShotTask;
use crate::error::{Error, Result};

fn normalized_mean(rows: &Matrix) -> Vec<f32> {
    let mut m = vec![0.0f32; rows.cols()];
    for i in 0..rows.rows() {
        let r = rows.view().row(i);
        let n = r.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
        m.iter_mut().zip(r).for_each(|(a, b)| *a += b / n);
    }
    let n = m.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
    m.iter_mut().for_each(|v| *v /= n);
    m
}

/// The score of one zero-shot task (`None` when the model has no such head yet).
pub(crate) fn score(ctx: &mut Ctx<'_>, t: &ZeroShotTask) -> Result<Option<Score>> {
    if ctx.student.head(t.head).is_none() {
        return Ok(None);
    }
    let (classes, weights, head) = {
        let ds = t.data.read()?;
        let classes = t.classes.clone().unwrap_or_else(|| ds.classes.clone());
        let table = ctx.table(&t.table)?.clone();
        let w = match t.head {
            TaskKind::AT => {
                let lookup =
                    |texts: &[String]| -> std::result::Result<Vec<Vec<f32>>, BoxError> {
                        texts
                            .iter()
                            .map(|x| {
                                table.entries.get(x).cloned().ok_or_else(|| {
                                    format!("no text embedding for prompt {x:?}").into()
                                })
                            })
                            .collect()
                    };
                let cfg = ZeroShotConfig {
                    templates: if t.templates.is_empty() {
                        ZeroShotConfig::default().templates
                    } else {
                        t.templates.clone()
                    },
                    underscores_to_spaces: true,
                };
                class_weights(&classes, &cfg, &lookup)?
            }
            _ => {
                let rows =
                    classes
                        .iter()
                        .map(|c| {
                            let imgs = t.class_images.get(c).filter(|v| !v.is_empty()).ok_or_else(
                                || Error::Other(format!("{}: no images for class `{c}`", t.name)),
                            )?;
                            let keys: Vec<String> = imgs
                                .iter()
                                .map(|p| p.to_string_lossy().into_owned())
                                .collect();
                            Ok(normalized_mean(&table_rows(&table, &keys)?))
                        })
                        .collect::<Result<Vec<_>>>()?;
                Matrix::from_rows(&rows)?
            }
        };
        (classes, w, ctx.scoring_head(t.head, table.dim))
    };
    let (ds, e) = ctx.data(&t.data)?;
    let y = targets(ds, &classes)?;
    let Some(audio) = e.head(head) else {
        return Ok(None);
    };
    let logits = zero_shot_logits(audio.view(), weights.view())?;
    let acc = accuracy(&argmax_rows(logits.view()), &y)?;
    let mut s = Score::new(&t.name, Protocol::ZeroShot, "top1_acc", acc).with_head(head_name(head));
    if t.head == TaskKind::AV {
        s.direction = Some("A2I".into());
    }
    s.n = Some(y.len());
    Ok(Some(s))
}
