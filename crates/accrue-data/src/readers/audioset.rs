//! AudioSet (Gemmeke et al., 2017) balanced-train / eval segments with the label ontology.
//!
//! Segments CSV (`balanced_train_segments.csv`, `eval_segments.csv`): three comment lines starting
//! with `#`, then rows `YTID, start_seconds, end_seconds, positive_labels` where fields after the
//! first are preceded by a space and the label list is a quoted, comma-separated list of MIDs:
//! `--PJHxphWEs, 30.000, 40.000, "/m/09x0r,/t/dd00088"`. (Because of the space before the quote,
//! generic CSV parsers split the label list; this reader parses the rows itself.)
//! Ontology `class_labels_indices.csv`: `index,mid,display_name` (527 classes, names quoted).
//! Multi-label; class order is the ontology's `index`. Audio naming follows the PANNs copy
//! (`Y{YTID}.wav`), configurable through [`AudioSetOptions::audio`].

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use crate::dataset::{Dataset, Example, Split};
use crate::error::{DataError, Result};
use crate::readers::{CsvFile, Template, open_required};

/// Which AudioSet subset to read and where its audio lives.
#[derive(Clone, Debug)]
pub struct AudioSetOptions {
    /// Segments CSV, relative to the root.
    pub segments: PathBuf,
    /// Ontology CSV (`index,mid,display_name`), relative to the root.
    pub ontology: PathBuf,
    /// Split assigned to every clip.
    pub split: Split,
    /// Audio path relative to the root; placeholders `{youtube_id}`, `{start}`, `{end}`.
    pub audio: Template,
}

impl AudioSetOptions {
    /// `balanced_train_segments.csv`, audio in `audio/balanced_train_segments/Y{youtube_id}.wav`.
    pub fn balanced_train() -> Self {
        AudioSetOptions {
            segments: "balanced_train_segments.csv".into(),
            ontology: "class_labels_indices.csv".into(),
            split: Split::Train,
            audio: Template::new("audio/balanced_train_segments/Y{youtube_id}.wav"),
        }
    }

    /// `eval_segments.csv`, audio in `audio/eval_segments/Y{youtube_id}.wav`.
    pub fn eval() -> Self {
        AudioSetOptions {
            segments: "eval_segments.csv".into(),
            ontology: "class_labels_indices.csv".into(),
            split: Split::Test,
            audio: Template::new("audio/eval_segments/Y{youtube_id}.wav"),
        }
    }
}

/// Reads the ontology: class names in `index` order and a MID → index map.
pub fn read_ontology(path: &Path) -> Result<(Vec<String>, HashMap<String, usize>)> {
    let mut csv = CsvFile::open(path, "the AudioSet ontology class_labels_indices.csv", true)?;
    let c_index = csv.column("index")?;
    let c_mid = csv.column("mid")?;
    let c_name = csv.column("display_name")?;
    let mut names = Vec::new();
    let mut mids = HashMap::new();
    while let Some(row) = csv.next_row() {
        let row = row?;
        let index: usize = row.parse(c_index, "index")?;
        if index != names.len() {
            return Err(row.error(format!(
                "index {index} out of order (expected {})",
                names.len()
            )));
        }
        let mid = row.get(c_mid, "mid")?;
        if mids.insert(mid.to_string(), index).is_some() {
            return Err(row.error(format!("MID `{mid}` appears twice")));
        }
        names.push(row.get(c_name, "display_name")?.to_string());
    }
    Ok((names, mids))
}

/// Reads one AudioSet segments file under `root`.
pub fn read(root: &Path, options: &AudioSetOptions) -> Result<Dataset> {
    let (classes, mids) = read_ontology(&root.join(&options.ontology))?;
    let path = root.join(&options.segments);
    let file = open_required(&path, "an AudioSet segments CSV")?;
    let mut examples = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line_no = i as u64 + 1;
        let line = line.map_err(|e| DataError::io(&path, e))?;
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |m: String| DataError::malformed(&path, line_no, m);
        let mut parts = line.splitn(4, ',');
        let (Some(yt), Some(start), Some(end), Some(labels_raw)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad(
                "expected `YTID, start_seconds, end_seconds, \"labels\"`".to_string(),
            ));
        };
        let (yt, start, end) = (yt.trim(), start.trim(), end.trim());
        if yt.is_empty() {
            return Err(bad("empty YTID".into()));
        }
        for (v, n) in [(start, "start_seconds"), (end, "end_seconds")] {
            if v.parse::<f64>().is_err() {
                return Err(bad(format!("`{n}` = {v:?} is not a number")));
            }
        }
        let labels_raw = labels_raw.trim();
        let inner = match labels_raw.strip_prefix('"') {
            Some(rest) => rest
                .strip_suffix('"')
                .ok_or_else(|| bad(format!("unterminated quoted label list {labels_raw:?}")))?,
            None if !labels_raw.contains(',') => labels_raw,
            None => return Err(bad(format!("label list {labels_raw:?} is not quoted"))),
        };
        let mut labels = Vec::new();
        for mid in inner.split(',').map(str::trim).filter(|m| !m.is_empty()) {
            let idx = *mids
                .get(mid)
                .ok_or_else(|| bad(format!("label `{mid}` is not in the ontology")))?;
            labels.push(idx);
        }
        if labels.is_empty() {
            return Err(bad("no positive labels".into()));
        }
        labels.sort_unstable();
        labels.dedup();
        let audio = options
            .audio
            .render(&[("youtube_id", yt), ("start", start), ("end", end)])
            .map_err(bad)?;
        let mut ex = Example::new(yt, root.join(audio));
        ex.split = Some(options.split);
        ex.labels = labels;
        ex.meta.insert("start".into(), start.to_string());
        ex.meta.insert("end".into(), end.to_string());
        examples.push(ex);
    }
    let mut ds = Dataset::new("audioset", classes, true);
    ds.examples = examples;
    ds.check()?;
    Ok(ds)
}
