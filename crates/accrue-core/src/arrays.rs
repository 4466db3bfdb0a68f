//! Named `f32` arrays on disk, as safetensors: the one array format of the project's caches
//! (decoded audio, embeddings of a stage model, tower embeddings) besides checkpoints, which
//! are safetensors too. A file carries string metadata (e.g. its cache key), checked on read.
//! Writes are atomic ([`crate::atomic`]).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};

use crate::{Error, Result, atomic};

/// One named array: its shape and its row-major values.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    /// Shape (row-major).
    pub shape: Vec<usize>,
    /// Values; `shape.iter().product()` of them.
    pub data: Vec<f32>,
}

/// The arrays and metadata of one file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ArrayFile {
    /// Arrays by name.
    pub arrays: BTreeMap<String, Array>,
    /// String metadata (the safetensors `__metadata__`).
    pub metadata: BTreeMap<String, String>,
}

fn to_bytes(data: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() * 4);
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Writes `arrays` (name, shape, values) and `metadata` to `path` atomically.
///
/// # Errors
/// [`Error::Format`] when a shape does not match its values; [`Error::Io`] naming `path`.
pub fn write(
    path: &Path,
    arrays: &[(&str, &[usize], &[f32])],
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    let bytes: Vec<Vec<u8>> = arrays.iter().map(|(_, _, d)| to_bytes(d)).collect();
    let mut views = Vec::with_capacity(arrays.len());
    for ((name, shape, _), b) in arrays.iter().zip(&bytes) {
        let view = TensorView::new(Dtype::F32, shape.to_vec(), b)
            .map_err(|e| Error::format(path, format!("array `{name}`: {e}")))?;
        views.push((name.to_string(), view));
    }
    let meta: HashMap<String, String> = metadata.clone().into_iter().collect();
    let buf = safetensors::serialize(views, Some(meta))
        .map_err(|e| Error::format(path, e.to_string()))?;
    atomic::write(path, &buf)
}

/// Reads every array of `path` (all must be `f32`) and its metadata.
///
/// # Errors
/// [`Error::Io`] for an unreadable file, [`Error::Format`] for one that is not a complete
/// safetensors file of `f32` arrays; both name `path`.
pub fn read(path: &Path) -> Result<ArrayFile> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| Error::format(path, format!("not a safetensors file: {e}")))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| Error::format(path, format!("not a safetensors file: {e}")))?;
    let mut out = ArrayFile {
        metadata: header
            .metadata()
            .clone()
            .map(|m| m.into_iter().collect())
            .unwrap_or_default(),
        ..Default::default()
    };
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(Error::format(
                path,
                format!("array `{name}` is {:?}, expected F32", view.dtype()),
            ));
        }
        let data = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        out.arrays.insert(
            name,
            Array {
                shape: view.shape().to_vec(),
                data,
            },
        );
    }
    Ok(out)
}

impl ArrayFile {
    /// The array `name`, or an error naming `path` and the array.
    ///
    /// # Errors
    /// [`Error::Format`] when it is absent.
    pub fn take(&mut self, path: &Path, name: &str) -> Result<Array> {
        self.arrays
            .remove(name)
            .ok_or_else(|| Error::format(path, format!("array `{name}` is missing")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_metadata_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.safetensors");
        let meta = BTreeMap::from([("key".to_string(), "v1|x".to_string())]);
        write(
            &p,
            &[("x", &[2, 3], &[1., 2., 3., 4., 5., 6.]), ("e", &[0], &[])],
            &meta,
        )
        .unwrap();
        let mut f = read(&p).unwrap();
        assert_eq!(f.metadata, meta);
        let x = f.take(&p, "x").unwrap();
        assert_eq!(x.shape, vec![2, 3]);
        assert_eq!(x.data, vec![1., 2., 3., 4., 5., 6.]);
        assert!(
            f.take(&p, "x")
                .unwrap_err()
                .to_string()
                .contains("`x` is missing")
        );
        // A wrong shape is refused before anything is written.
        assert!(write(&p, &[("y", &[4], &[1.0])], &meta).is_err());
        // A truncated file is an error naming it, not a panic.
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 3]).unwrap();
        let err = read(&p).unwrap_err().to_string();
        assert!(err.contains("a.safetensors"), "{err}");
    }
}
