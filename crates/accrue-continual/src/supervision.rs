//! Supervision-embedding tables: precomputed frozen-tower embeddings looked up per batch, so
//! that no tower ever runs inside the training loop.
//!
//! Format (JSON): `{"dim": D, "entries": {"<key>": [D floats], …}}`. Keys are
//! - audio–text: the caption text (the batch's chosen caption, method-spec §5);
//! - audio–image: each image reference (`image_embeddings` id, or the image path as written
//!   in the manifest); a clip's target is the plain mean over its images (§3.2), normalised
//!   later inside the loss;
//! - either: the clip id, as a fallback for clips without captions/images.
//!
//! Export such a table from an `accrue-towers` embedding cache with the facade's `embed`
//! command (the cache itself is keyed by input digests).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use accrue_data::{Batch, Dataset};
use serde::{Deserialize, Serialize};

use crate::error::{ContinualError, Result};
use crate::model::TaskKind;

/// An in-memory supervision table.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupervisionTable {
    /// Embedding width.
    pub dim: usize,
    /// Key → embedding.
    pub entries: HashMap<String, Vec<f32>>,
    #[serde(skip)]
    path: PathBuf,
}

/// The largest accepted absolute embedding value (its square, summed over a row, stays finite
/// in f32).
pub const MAX_ABS_VALUE: f32 = 1e15;

impl SupervisionTable {
    /// A table in memory (for writing test fixtures).
    pub fn new(dim: usize) -> Self {
        Self {
            dim,
            ..Self::default()
        }
    }

    /// Reads a table and checks every row's width.
    ///
    /// # Errors
    /// Unreadable/malformed file, or a row of the wrong width.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| ContinualError::io(path, e))?;
        let mut table: Self =
            serde_json::from_str(&text).map_err(|e| ContinualError::Supervision {
                path: path.to_path_buf(),
                detail: e.to_string(),
            })?;
        table.path = path.to_path_buf();
        if let Some((k, v)) = table.entries.iter().find(|(_, v)| v.len() != table.dim) {
            return Err(ContinualError::Supervision {
                path: path.to_path_buf(),
                detail: format!("entry `{k}` has {} values, expected {}", v.len(), table.dim),
            });
        }
        // A value whose square overflows f32 turns the entry's norm, and then the loss, into
        // NaN at training time: refuse it here, naming the entry.
        if let Some((k, v)) = table
            .entries
            .iter()
            .find(|(_, v)| v.iter().any(|x| !x.is_finite() || x.abs() > MAX_ABS_VALUE))
        {
            let bad = v
                .iter()
                .copied()
                .find(|x| !x.is_finite() || x.abs() > MAX_ABS_VALUE)
                .unwrap_or(f32::NAN);
            return Err(ContinualError::Supervision {
                path: path.to_path_buf(),
                detail: format!(
                    "entry `{k}` holds {bad:e}: tower embeddings must be finite and within \
                     ±{MAX_ABS_VALUE:e} (their squares overflow otherwise)"
                ),
            });
        }
        Ok(table)
    }

    /// Writes the table as JSON.
    ///
    /// # Errors
    /// I/O errors.
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string(self).map_err(|e| ContinualError::Supervision {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        Ok(accrue_core::atomic::write(path, text.as_bytes())?)
    }

    fn get(&self, key: &str) -> Option<&[f32]> {
        self.entries.get(key).map(Vec::as_slice)
    }

    /// The `[B, dim]` row-major supervision of a batch.
    ///
    /// # Errors
    /// A clip whose caption / images / id has no entry (named).
    pub fn batch_embeddings(
        &self,
        kind: TaskKind,
        batch: &Batch,
        dataset: &Dataset,
    ) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(batch.len() * self.dim);
        for (row, &ex) in batch.examples.iter().enumerate() {
            let example = &dataset.examples[ex];
            let mut keys: Vec<String> = Vec::new();
            match kind {
                TaskKind::AT => {
                    if let Some(Some(c)) = batch.captions.get(row)
                        && let Some(text) = example.captions.get(*c)
                    {
                        keys.push(text.clone());
                    }
                }
                TaskKind::AV => {
                    for image in batch.images.get(row).map(Vec::as_slice).unwrap_or(&[]) {
                        keys.push(image.key());
                    }
                }
                TaskKind::A => {}
            }
            let rows: Vec<&[f32]> = keys.iter().filter_map(|k| self.get(k)).collect();
            let rows = if rows.is_empty() || rows.len() != keys.len() {
                match self.get(&example.id) {
                    Some(r) if rows.len() != keys.len() && !keys.is_empty() => {
                        let missing = keys.iter().find(|k| self.get(k).is_none());
                        tracing::debug!(
                            clip = example.id,
                            ?missing,
                            "falling back to the clip-id entry"
                        );
                        vec![r]
                    }
                    Some(r) => vec![r],
                    None => {
                        return Err(ContinualError::Supervision {
                            path: self.path.clone(),
                            detail: format!(
                                "no embedding for clip `{}` (keys tried: {:?} and the clip id)",
                                example.id, keys
                            ),
                        });
                    }
                }
            } else {
                rows
            };
            let n = rows.len() as f32;
            for d in 0..self.dim {
                out.push(rows.iter().map(|r| r[d]).sum::<f32>() / n);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflowing_or_misshapen_entries_are_refused_by_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.json");
        let write = |body: &str| std::fs::write(&path, body).expect("write");
        write(r#"{"dim": 2, "entries": {"ok": [0.5, 1.0], "huge": [1e30, 0.0]}}"#);
        let err = SupervisionTable::load(&path).expect_err("huge").to_string();
        assert!(err.contains("`huge`") && err.contains("t.json"), "{err}");
        // 1e39 does not fit f32: it parses as infinity.
        write(r#"{"dim": 2, "entries": {"inf": [1e39, 0.0]}}"#);
        let err = SupervisionTable::load(&path).expect_err("inf").to_string();
        assert!(err.contains("`inf`"), "{err}");
        write(r#"{"dim": 2, "entries": {"short": [1.0]}}"#);
        let err = SupervisionTable::load(&path)
            .expect_err("short")
            .to_string();
        assert!(err.contains("`short` has 1 values"), "{err}");
        write(r#"{"dim": 2, "entries": {"ok": [0.5, 1.0]}}"#);
        assert_eq!(SupervisionTable::load(&path).expect("ok").entries.len(), 1);
    }
}
