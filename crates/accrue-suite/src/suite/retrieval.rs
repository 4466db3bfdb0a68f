//! Cross-modal retrieval, both directions: captions (AT) or images (AV).
//!
//! An AV clip is represented as in training: the mean of the tower embeddings of all its
//! frames (`SupervisionTable::batch_embeddings`), not its first frame.

use accrue_continual::SupervisionTable;
use accrue_continual::TaskKind;
use accrue_data::{Dataset, ImageRef};
use accrue_eval::matrix::Matrix;
use accrue_eval::report::{Score, retrieval_scores};
use accrue_eval::retrieval::{Positives, cross_modal_retrieval, cross_modal_retrieval_with};

use super::embedding::{Ctx, head_name, table_rows};
use super::schema::RetrievalTask;
use crate::error::{Error, Result};

/// The scores of one retrieval task (none when the model has no such head yet).
pub(crate) fn scores(ctx: &mut Ctx<'_>, t: &RetrievalTask) -> Result<Vec<Score>> {
    if ctx.student.head(t.head).is_none() {
        return Ok(Vec::new());
    }
    let table = ctx.table(&t.table)?.clone();
    let head = ctx.scoring_head(t.head, table.dim);
    let (ds, e) = ctx.data(&t.data)?;
    let Some(audio) = e.head(head) else {
        return Ok(Vec::new());
    };
    let (other, clip_of) = match t.head {
        TaskKind::AT => {
            let mut keys = Vec::new();
            let mut clip_of = Vec::new();
            for (i, ex) in ds.examples.iter().enumerate() {
                for c in &ex.captions {
                    keys.push(c.clone());
                    clip_of.push(i);
                }
            }
            (table_rows(&table, &keys)?, clip_of)
        }
        _ => (
            clip_image_rows(&table, ds, &t.name)?,
            (0..ds.examples.len()).collect(),
        ),
    };
    let r = if t.duplicates {
        let (a2o, o2a) = duplicate_positives(ds, t.head, &clip_of)?;
        cross_modal_retrieval_with(audio.view(), other.view(), &a2o, &o2a)?
    } else {
        cross_modal_retrieval(audio.view(), other.view(), &clip_of)?
    };
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
        Some(head_name(head)),
    ))
}

/// One row per clip: the mean tower embedding of all the clip's images (frames), as the
/// trainer's AV supervision is.
pub(crate) fn clip_image_rows(
    table: &SupervisionTable,
    ds: &Dataset,
    task: &str,
) -> Result<Matrix> {
    let mut rows = Vec::with_capacity(ds.examples.len());
    for ex in &ds.examples {
        if ex.images.is_empty() {
            return Err(Error::Other(format!(
                "{task}: clip `{}` has no image",
                ex.id
            )));
        }
        let keys: Vec<String> = ex.images.iter().map(ImageRef::key).collect();
        let frames = table_rows(table, &keys)?;
        let n = frames.rows() as f32;
        rows.push(
            (0..frames.cols())
                .map(|d| (0..frames.rows()).map(|r| frames.row(r)[d]).sum::<f32>() / n)
                .collect(),
        );
    }
    Ok(Matrix::from_rows(&rows)?)
}

/// Positives in both directions when duplicates count as correct. Clips are equivalent when
/// their audio files have the same sha256; an item (caption text, or a clip's image set) is
/// equivalent to every item with the same key. Audio `a` retrieves item `m` correctly when
/// `m`'s clip is equivalent to `a` or `m`'s key is the key of an item of a clip equivalent to
/// `a`; item `m` retrieves audio `a` correctly under the same relation.
fn duplicate_positives(
    ds: &Dataset,
    head: TaskKind,
    clip_of: &[usize],
) -> Result<(Positives, Positives)> {
    let n = ds.examples.len();
    // Audio groups by file hash.
    let mut group_of_hash = std::collections::HashMap::new();
    let mut group = Vec::with_capacity(n);
    for ex in &ds.examples {
        let h = accrue_core::hash::sha256_file(&ex.audio)?;
        let next = group_of_hash.len();
        group.push(*group_of_hash.entry(h).or_insert(next));
    }
    // Item keys: caption text, or the clip's image set.
    let keys: Vec<String> = match head {
        TaskKind::AT => ds
            .examples
            .iter()
            .flat_map(|e| e.captions.clone())
            .collect(),
        _ => ds
            .examples
            .iter()
            .map(|e| format!("{:?}", e.images))
            .collect(),
    };
    let mut keys_of_group: Vec<std::collections::BTreeSet<&str>> =
        vec![Default::default(); group_of_hash.len()];
    for (m, &c) in clip_of.iter().enumerate() {
        keys_of_group[group[c]].insert(&keys[m]);
    }
    let correct = |a: usize, m: usize| {
        group[clip_of[m]] == group[a] || keys_of_group[group[a]].contains(keys[m].as_str())
    };
    let a2o: Vec<Vec<usize>> = (0..n)
        .map(|a| (0..clip_of.len()).filter(|&m| correct(a, m)).collect())
        .collect();
    let o2a: Vec<Vec<usize>> = (0..clip_of.len())
        .map(|m| (0..n).filter(|&a| correct(a, m)).collect())
        .collect();
    Ok((
        Positives::sets(&a2o, clip_of.len())?,
        Positives::sets(&o2a, n)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use accrue_data::Example;

    #[test]
    fn a_clip_is_the_mean_of_all_its_frames() {
        let mut table = SupervisionTable::new(2);
        table.entries.insert("f0".into(), vec![1.0, 0.0]);
        table.entries.insert("f1".into(), vec![0.0, 1.0]);
        table.entries.insert("f2".into(), vec![3.0, 3.0]);
        let mut ds = Dataset::new("d", vec![], false);
        for (id, frames) in [("a", vec!["f0", "f1"]), ("b", vec!["f2"])] {
            let mut e = Example::new(id, "x.wav");
            e.images = frames
                .into_iter()
                .map(|f| ImageRef::Embedding(f.into()))
                .collect();
            ds.examples.push(e);
        }
        let m = clip_image_rows(&table, &ds, "t").expect("rows");
        assert_eq!(m.row(0), [0.5, 0.5], "not the first frame [1, 0]");
        assert_eq!(m.row(1), [3.0, 3.0]);
        ds.examples[1].images.clear();
        let err = clip_image_rows(&table, &ds, "t")
            .expect_err("no image")
            .to_string();
        assert!(err.contains("`b` has no image"), "{err}");
    }
}

#[cfg(test)]
mod duplicate_tests {
    use super::*;
    use accrue_data::Example;

    #[test]
    fn duplicate_captions_and_audio_count_as_correct() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut ds = Dataset::new("d", vec![], false);
        // Clips 0 and 1: the same audio bytes; clips 2 and 3 share a caption.
        for (i, (bytes, caption)) in [
            (b"same".as_slice(), "a cow"),
            (b"same".as_slice(), "a horse"),
            (b"two".as_slice(), "the letter a"),
            (b"three".as_slice(), "the letter a"),
        ]
        .into_iter()
        .enumerate()
        {
            let path = dir.path().join(format!("c{i}.wav"));
            std::fs::write(&path, bytes).expect("write");
            let mut e = Example::new(format!("c{i}"), path);
            e.captions = vec![caption.to_string()];
            ds.examples.push(e);
        }
        let clip_of = [0, 1, 2, 3];
        let (a2o, o2a) = duplicate_positives(&ds, TaskKind::AT, &clip_of).expect("positives");
        assert_eq!(a2o.of(0), [0, 1], "the same audio");
        assert_eq!(a2o.of(2), [2, 3], "the same caption");
        assert_eq!(o2a.of(3), [2, 3]);
        assert_eq!(o2a.of(1), [0, 1]);
    }
}
