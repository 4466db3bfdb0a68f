//! HEAR 2021 task folders (Turian et al., 2022), as written by `hear-preprocess`.
//!
//! Layout of one task directory:
//! `task_metadata.json` (with `task_name`, `embedding_type`, `prediction_type`, `split_mode`,
//! optionally `nfolds` / `splits`), `labelvocabulary.csv` (`idx,label`), one `<split>.json` per
//! split mapping a file name to its list of labels (`train`/`valid`/`test` for `trainvaltest`
//! tasks, `fold00` … for k-fold tasks), and the audio in `<sample_rate>/<split>/<file name>`.
//! Only scene-level tasks are supported (`embedding_type = "scene"`); event (timestamp) tasks are
//! rejected with a clear error. Fold splits set [`Example::fold`] (`fold03` → 3), the others
//! [`Example::split`].

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::dataset::{ClassVocab, Dataset, Example, Split};
use crate::error::{DataError, Result};
use crate::readers::{CsvFile, open_required};

/// Options for reading a HEAR task.
#[derive(Clone, Debug, Default)]
pub struct HearOptions {
    /// Which `<sample_rate>/` audio directory to use. `None`: 32000 if present, else the highest
    /// rate present.
    pub sample_rate: Option<u32>,
}

fn read_json(path: &Path, what: &str) -> Result<Value> {
    let file = open_required(path, what)?;
    serde_json::from_reader(std::io::BufReader::new(file))
        .map_err(|e| DataError::malformed(path, e.line() as u64, format!("invalid JSON: {e}")))
}

/// The split names of a task, from its metadata.
fn split_names(task_dir: &Path, meta: &Value) -> Result<Vec<String>> {
    let meta_path = task_dir.join("task_metadata.json");
    if let Some(list) = meta.get("splits").and_then(Value::as_array) {
        return list
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                Value::Object(o) => o
                    .get("name")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| DataError::malformed(&meta_path, 0, "bad entry in `splits`")),
                _ => Err(DataError::malformed(&meta_path, 0, "bad entry in `splits`")),
            })
            .collect();
    }
    match meta.get("split_mode").and_then(Value::as_str) {
        Some("trainvaltest") => Ok(vec!["train".into(), "valid".into(), "test".into()]),
        Some("new_split_kfold") | Some("presplit_kfold") => {
            let n = meta.get("nfolds").and_then(Value::as_u64).ok_or_else(|| {
                DataError::malformed(&meta_path, 0, "k-fold task without an integer `nfolds`")
            })?;
            Ok((0..n).map(|i| format!("fold{i:02}")).collect())
        }
        other => Err(DataError::malformed(
            &meta_path,
            0,
            format!("unknown `split_mode` {other:?} and no `splits` list"),
        )),
    }
}

/// Picks the `<sample_rate>/` directory.
fn audio_rate_dir(task_dir: &Path, wanted: Option<u32>) -> Result<u32> {
    if let Some(rate) = wanted {
        let dir = task_dir.join(rate.to_string());
        if !dir.is_dir() {
            return Err(DataError::layout(
                dir,
                "no audio directory for the requested sample rate",
            ));
        }
        return Ok(rate);
    }
    let mut rates = Vec::new();
    for entry in std::fs::read_dir(task_dir).map_err(|e| DataError::io(task_dir, e))? {
        let entry = entry.map_err(|e| DataError::io(task_dir, e))?;
        if entry.path().is_dir()
            && let Some(rate) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
        {
            rates.push(rate);
        }
    }
    if rates.contains(&32000) {
        return Ok(32000);
    }
    rates.into_iter().max().ok_or_else(|| {
        DataError::layout(
            task_dir,
            "no `<sample_rate>/` audio directory (e.g. `16000/`)",
        )
    })
}

fn label_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Reads one HEAR task directory.
pub fn read(task_dir: &Path, options: &HearOptions) -> Result<Dataset> {
    let meta_path = task_dir.join("task_metadata.json");
    let meta = read_json(&meta_path, "a HEAR task_metadata.json")?;
    let name = meta
        .get("task_name")
        .and_then(Value::as_str)
        .unwrap_or("hear")
        .to_string();
    match meta.get("embedding_type").and_then(Value::as_str) {
        Some("scene") => {}
        other => {
            return Err(DataError::layout(
                &meta_path,
                format!(
                    "only scene-level HEAR tasks are supported, this task has embedding_type {other:?}"
                ),
            ));
        }
    }
    let multi_label = match meta.get("prediction_type").and_then(Value::as_str) {
        Some("multiclass") => false,
        Some("multilabel") => true,
        other => {
            return Err(DataError::malformed(
                &meta_path,
                0,
                format!("unknown `prediction_type` {other:?}"),
            ));
        }
    };
    let rate = audio_rate_dir(task_dir, options.sample_rate)?;

    // Label vocabulary (fixed order) when present.
    let vocab_path = task_dir.join("labelvocabulary.csv");
    let fixed: Option<BTreeMap<String, usize>> = if vocab_path.is_file() {
        let mut csv = CsvFile::open(&vocab_path, "labelvocabulary.csv", true)?;
        let c_idx = csv.column("idx")?;
        let c_label = csv.column("label")?;
        let mut map = BTreeMap::new();
        let mut n = 0;
        while let Some(row) = csv.next_row() {
            let row = row?;
            let idx: usize = row.parse(c_idx, "idx")?;
            if idx != n {
                return Err(row.error(format!("idx {idx} out of order (expected {n})")));
            }
            let label = row.get(c_label, "label")?;
            if map.insert(label.to_string(), idx).is_some() {
                return Err(row.error(format!("label `{label}` appears twice")));
            }
            n += 1;
        }
        Some(map)
    } else {
        None
    };
    let mut vocab = ClassVocab::default();

    let mut examples = Vec::new();
    for split_name in split_names(task_dir, &meta)? {
        let split_path = task_dir.join(format!("{split_name}.json"));
        let data = read_json(&split_path, "a HEAR split file")?;
        let Value::Object(entries) = data else {
            return Err(DataError::malformed(
                &split_path,
                1,
                "expected an object mapping file names to label lists",
            ));
        };
        let (split, fold) = match split_name.strip_prefix("fold") {
            Some(n) => (
                None,
                Some(n.parse::<u32>().map_err(|_| {
                    DataError::malformed(&meta_path, 0, format!("bad fold name `{split_name}`"))
                })?),
            ),
            None => (
                Some(Split::parse(&split_name).ok_or_else(|| {
                    DataError::malformed(&meta_path, 0, format!("unknown split `{split_name}`"))
                })?),
                None,
            ),
        };
        let audio_dir = task_dir.join(rate.to_string()).join(&split_name);
        for (file, labels) in entries {
            let Value::Array(labels) = labels else {
                return Err(DataError::malformed(
                    &split_path,
                    0,
                    format!("labels of `{file}` are not a list"),
                ));
            };
            let stem = file.rsplit_once('.').map_or(file.as_str(), |(s, _)| s);
            let mut ex = Example::new(format!("{split_name}/{stem}"), audio_dir.join(&file));
            ex.split = split;
            ex.fold = fold;
            for l in &labels {
                let Some(l) = label_string(l) else {
                    return Err(DataError::malformed(
                        &split_path,
                        0,
                        format!(
                            "`{file}` has a label that is not a string (event labels are not supported)"
                        ),
                    ));
                };
                let idx = match &fixed {
                    Some(map) => *map.get(&l).ok_or_else(|| {
                        DataError::malformed(
                            &split_path,
                            0,
                            format!(
                                "`{file}` has label `{l}`, which is not in labelvocabulary.csv"
                            ),
                        )
                    })?,
                    None => vocab.index(&l),
                };
                ex.labels.push(idx);
            }
            ex.labels.sort_unstable();
            ex.labels.dedup();
            examples.push(ex);
        }
    }
    let classes = match fixed {
        Some(map) => {
            let mut classes = vec![String::new(); map.len()];
            for (name, idx) in map {
                classes[idx] = name;
            }
            classes
        }
        None => vocab.finish_sorted(&mut examples),
    };
    let mut ds = Dataset::new(name, classes, multi_label);
    ds.examples = examples;
    ds.check()?;
    Ok(ds)
}
