//! Cross-modal retrieval, both directions: captions (AT) or images (AV).

use accrue_continual::TaskKind;
use accrue_data::ImageRef;
use accrue_eval::report::{Score, retrieval_scores};
use accrue_eval::retrieval::cross_modal_retrieval;

use super::embedding::{Ctx, head_name, table_rows};
use super::schema::RetrievalTask;
use crate::error::{Error, Result};

/// The scores of one retrieval task (none when the model has no such head yet).
pub(crate) fn scores(ctx: &mut Ctx<'_>, t: &RetrievalTask) -> Result<Vec<Score>> {
    if ctx.student.head(t.head).is_none() {
        return Ok(Vec::new());
    }
    let table = ctx.table(&t.table)?.clone();
    let (ds, e) = ctx.data(&t.data)?;
    let Some(audio) = e.head(t.head) else {
        return Ok(Vec::new());
    };
    let mut keys = Vec::new();
    let mut clip_of = Vec::new();
    for (i, ex) in ds.examples.iter().enumerate() {
        match t.head {
            TaskKind::AT => {
                for c in &ex.captions {
                    keys.push(c.clone());
                    clip_of.push(i);
                }
            }
            _ => {
                let key = match ex.images.first() {
                    Some(ImageRef::File(p)) => p.to_string_lossy().into_owned(),
                    Some(ImageRef::Embedding(id)) => id.clone(),
                    None => {
                        return Err(Error::Other(format!(
                            "{}: clip `{}` has no image",
                            t.name, ex.id
                        )));
                    }
                };
                keys.push(key);
                clip_of.push(i);
            }
        }
    }
    let other = table_rows(&table, &keys)?;
    let r = cross_modal_retrieval(audio.view(), other.view(), &clip_of)?;
    let (a2o, o2a) = if t.head == TaskKind::AT {
        ("A2T", "T2A")
    } else {
        ("A2I", "I2A")
    };
    Ok(retrieval_scores(
        &t.name,
        &r,
        a2o,
        o2a,
        Some(head_name(t.head)),
    ))
}
