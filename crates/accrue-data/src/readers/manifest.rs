//! A generic manifest for users' own data, as JSON Lines or CSV.
//!
//! # JSON Lines (`.jsonl`, `.json`)
//!
//! One JSON object per line (blank lines are ignored). Only `audio` is required:
//!
//! ```text
//! {"audio": "clips/dog1.wav", "id": "dog1", "split": "train", "fold": 1,
//!  "labels": ["dog"], "captions": ["a dog barks twice"],
//!  "images": ["frames/dog1/0001.jpg"], "image_embeddings": ["dog1"],
//!  "meta": {"source": "field recording"}}
//! ```
//!
//! | key | type | meaning |
//! |---|---|---|
//! | `audio` | string | audio file; relative paths are relative to the manifest's directory |
//! | `id` | string | unique clip id; default: the audio path as written |
//! | `split` | string | `train`/`valid`/`test` (also `validation`, `val`, `eval`, `evaluation`, `development`) |
//! | `fold` | integer | cross-validation fold |
//! | `labels` | list of strings | class names (one = single-label; several = multi-label) |
//! | `captions` | list of strings | one or several captions |
//! | `images` | list of strings | image files (relative to the manifest's directory) |
//! | `image_embeddings` | list of strings | ids of precomputed image embeddings |
//! | `meta` | object of strings | anything else, kept in [`Example::meta`](crate::Example::meta) |
//!
//! Unknown keys are an error (naming the line), so typos do not go unnoticed.
//!
//! # CSV (`.csv`)
//!
//! A header row, then one clip per row. Columns `audio` (required), `id`, `split`, `fold`,
//! `labels`, `captions`, `images`, `image_embeddings`; list-valued columns separate items with
//! `|` (captions may contain commas when the field is quoted, as usual in CSV). Any other column
//! is kept in `meta`. Empty cells mean "none".
//!
//! ```text
//! id,audio,split,labels,captions
//! dog1,clips/dog1.wav,train,dog,"a dog barks, twice|a small dog barking"
//! ```
//!
//! # Classes
//!
//! By default the class list is the sorted set of all labels and the dataset is multi-label when
//! some clip has more than one label; [`ManifestOptions`] can fix both.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::dataset::{ClassVocab, Dataset, Example, ImageRef, Split};
use crate::error::{DataError, Result};
use crate::readers::{CsvFile, open_required};

/// Options for reading a manifest.
#[derive(Clone, Debug, Default)]
pub struct ManifestOptions {
    /// Fixed class list (order = label index). Labels not in it are an error.
    pub classes: Option<Vec<String>>,
    /// Force single- (`false`) or multi-label (`true`).
    pub multi_label: Option<bool>,
    /// Dataset name; default: the manifest's file stem.
    pub name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonEntry {
    audio: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    split: Option<String>,
    #[serde(default)]
    fold: Option<u32>,
    #[serde(default)]
    labels: Vec<String>,
    #[serde(default)]
    captions: Vec<String>,
    #[serde(default)]
    images: Vec<String>,
    #[serde(default)]
    image_embeddings: Vec<String>,
    #[serde(default)]
    meta: BTreeMap<String, String>,
}

struct Labeler<'a> {
    fixed: Option<BTreeMap<&'a str, usize>>,
    vocab: ClassVocab,
}

impl Labeler<'_> {
    fn index(&mut self, label: &str) -> std::result::Result<usize, String> {
        match &self.fixed {
            Some(map) => map
                .get(label)
                .copied()
                .ok_or_else(|| format!("label `{label}` is not in the given class list")),
            None => Ok(self.vocab.index(label)),
        }
    }
}

fn resolve(base: &Path, p: &str) -> PathBuf {
    let path = Path::new(p);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

#[allow(clippy::too_many_arguments)]
fn build_example(
    base: &Path,
    labeler: &mut Labeler<'_>,
    audio: &str,
    id: Option<&str>,
    split: Option<&str>,
    fold: Option<u32>,
    labels: &[&str],
    captions: Vec<String>,
    images: &[&str],
    embeddings: &[&str],
    meta: BTreeMap<String, String>,
) -> std::result::Result<Example, String> {
    if audio.trim().is_empty() {
        return Err("empty `audio`".into());
    }
    let mut ex = Example::new(
        id.filter(|s| !s.is_empty()).unwrap_or(audio),
        resolve(base, audio),
    );
    ex.split = match split.map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(Split::parse(s).ok_or_else(|| format!("unknown split {s:?}"))?),
    };
    ex.fold = fold;
    for l in labels.iter().map(|l| l.trim()).filter(|l| !l.is_empty()) {
        ex.labels.push(labeler.index(l)?);
    }
    ex.captions = captions;
    ex.images = images
        .iter()
        .map(|i| i.trim())
        .filter(|i| !i.is_empty())
        .map(|i| ImageRef::File(resolve(base, i)))
        .chain(
            embeddings
                .iter()
                .map(|e| e.trim())
                .filter(|e| !e.is_empty())
                .map(|e| ImageRef::Embedding(e.to_string())),
        )
        .collect();
    ex.meta = meta;
    Ok(ex)
}

/// Reads a manifest; the format follows the extension (`.jsonl`/`.json` or `.csv`).
pub fn read(path: &Path, options: &ManifestOptions) -> Result<Dataset> {
    let base = path.parent().unwrap_or(Path::new("")).to_path_buf();
    let mut labeler = Labeler {
        fixed: options
            .classes
            .as_ref()
            .map(|c| c.iter().enumerate().map(|(i, n)| (n.as_str(), i)).collect()),
        vocab: ClassVocab::default(),
    };
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let mut examples = match ext.as_str() {
        "jsonl" | "json" => read_jsonl(path, &base, &mut labeler)?,
        "csv" => read_csv(path, &base, &mut labeler)?,
        _ => {
            return Err(DataError::layout(
                path,
                "manifest must end in .jsonl, .json or .csv",
            ));
        }
    };
    let classes = match &options.classes {
        Some(c) => {
            for e in &mut examples {
                e.labels.sort_unstable();
                e.labels.dedup();
            }
            c.clone()
        }
        None => labeler.vocab.finish_sorted(&mut examples),
    };
    let multi_label = options
        .multi_label
        .unwrap_or_else(|| examples.iter().any(|e| e.labels.len() > 1));
    let name = options.name.clone().unwrap_or_else(|| {
        path.file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("manifest")
            .to_string()
    });
    let mut ds = Dataset::new(name, classes, multi_label);
    ds.examples = examples;
    ds.check()?;
    Ok(ds)
}

fn read_jsonl(path: &Path, base: &Path, labeler: &mut Labeler<'_>) -> Result<Vec<Example>> {
    let file = open_required(path, "a JSON Lines manifest")?;
    let mut out = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line_no = i as u64 + 1;
        let line = line.map_err(|e| DataError::io(path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let entry: JsonEntry = serde_json::from_str(&line)
            .map_err(|e| DataError::malformed(path, line_no, format!("invalid entry: {e}")))?;
        let labels: Vec<&str> = entry.labels.iter().map(String::as_str).collect();
        let images: Vec<&str> = entry.images.iter().map(String::as_str).collect();
        let embeddings: Vec<&str> = entry.image_embeddings.iter().map(String::as_str).collect();
        let ex = build_example(
            base,
            labeler,
            &entry.audio,
            entry.id.as_deref(),
            entry.split.as_deref(),
            entry.fold,
            &labels,
            entry.captions.clone(),
            &images,
            &embeddings,
            entry.meta.clone(),
        )
        .map_err(|m| DataError::malformed(path, line_no, m))?;
        out.push(ex);
    }
    Ok(out)
}

fn read_csv(path: &Path, base: &Path, labeler: &mut Labeler<'_>) -> Result<Vec<Example>> {
    const KNOWN: [&str; 8] = [
        "audio",
        "id",
        "split",
        "fold",
        "labels",
        "captions",
        "images",
        "image_embeddings",
    ];
    let mut csv = CsvFile::open(path, "a CSV manifest", true)?;
    let c_audio = csv.column("audio")?;
    let col = |n: &str| csv.optional_column(n);
    let (c_id, c_split, c_fold) = (col("id"), col("split"), col("fold"));
    let (c_labels, c_caps, c_imgs, c_embs) = (
        col("labels"),
        col("captions"),
        col("images"),
        col("image_embeddings"),
    );
    let extra: Vec<(usize, String)> = csv
        .headers()
        .iter()
        .enumerate()
        .filter(|(_, h)| !KNOWN.contains(&h.as_str()))
        .map(|(i, h)| (i, h.clone()))
        .collect();
    let mut out = Vec::new();
    while let Some(row) = csv.next_row() {
        let row = row?;
        let get = |c: Option<usize>, n: &str| -> Result<&str> {
            match c {
                Some(c) => row.get(c, n),
                None => Ok(""),
            }
        };
        let list = |s: &str| -> Vec<String> {
            s.split('|')
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .map(str::to_string)
                .collect()
        };
        let fold = match get(c_fold, "fold")? {
            "" => None,
            _ => Some(row.parse::<u32>(c_fold.unwrap_or(0), "fold")?),
        };
        let labels = list(get(c_labels, "labels")?);
        let images = list(get(c_imgs, "images")?);
        let embeddings = list(get(c_embs, "image_embeddings")?);
        let mut meta = BTreeMap::new();
        for (c, h) in &extra {
            meta.insert(h.clone(), row.get(*c, h)?.to_string());
        }
        let labels_ref: Vec<&str> = labels.iter().map(String::as_str).collect();
        let images_ref: Vec<&str> = images.iter().map(String::as_str).collect();
        let emb_ref: Vec<&str> = embeddings.iter().map(String::as_str).collect();
        let id = get(c_id, "id")?;
        let ex = build_example(
            base,
            labeler,
            row.get(c_audio, "audio")?,
            Some(id),
            Some(get(c_split, "split")?),
            fold,
            &labels_ref,
            list(get(c_caps, "captions")?),
            &images_ref,
            &emb_ref,
            meta,
        )
        .map_err(|m| row.error(m))?;
        out.push(ex);
    }
    Ok(out)
}
