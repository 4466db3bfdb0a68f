//! Reading checkpoints (safetensors, PyTorch zip and legacy pickles) and applying them to a
//! Burn module **strictly**: every missing, unexpected or mis-shaped key is reported at once
//! and nothing is loaded unless everything matches.
//!
//! Loaders first bring a file's keys to the PyTorch names that the module mirrors (for
//! example openai CLIP names are converted to HF names, method-spec §2.6); this module then
//! applies them with burn-store's [`PyTorchToBurnAdapter`](burn::store::PyTorchToBurnAdapter)
//! (transposing `Linear` weights, `weight`/`bias` → `gamma`/`beta` for norms).

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use burn::module::Module;
use burn::store::{ModuleSnapshot, PyTorchToBurnAdapter};
use burn::tensor::{Bytes, DType};

use crate::{Error, Result};

/// One tensor of a checkpoint, converted to `f32`, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct RawTensor {
    /// Extents, outermost first (empty for a scalar).
    pub shape: Vec<usize>,
    /// The values, row-major.
    pub data: Vec<f32>,
}

impl RawTensor {
    /// A tensor from its shape and values; errors when they disagree.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Result<Self> {
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(Error::Invalid(format!(
                "tensor of shape {shape:?} needs {n} values, got {}",
                data.len()
            )));
        }
        Ok(Self { shape, data })
    }

    /// The transpose of a 2-D tensor.
    pub fn transpose(&self) -> Result<Self> {
        let [r, c] = self.shape[..] else {
            return Err(Error::Invalid(format!(
                "cannot transpose a tensor of shape {:?}",
                self.shape
            )));
        };
        let mut out = vec![0.0; r * c];
        for i in 0..r {
            for j in 0..c {
                out[j * r + i] = self.data[i * c + j];
            }
        }
        Ok(Self {
            shape: vec![c, r],
            data: out,
        })
    }

    /// Splits a tensor into `n` equal row blocks along its first axis.
    pub fn split_rows(&self, n: usize) -> Result<Vec<Self>> {
        let rows = self.shape.first().copied().unwrap_or(0);
        if n == 0 || rows % n != 0 {
            return Err(Error::Invalid(format!(
                "cannot split shape {:?} into {n} row blocks",
                self.shape
            )));
        }
        let per = self.data.len() / n;
        let mut shape = self.shape.clone();
        shape[0] = rows / n;
        Ok(self
            .data
            .chunks(per)
            .map(|c| Self {
                shape: shape.clone(),
                data: c.to_vec(),
            })
            .collect())
    }
}

/// A checkpoint's tensors by name.
pub type StateDict = BTreeMap<String, RawTensor>;

/// Reads every tensor of a checkpoint: `.safetensors` by extension, anything else as a
/// PyTorch file (zip or legacy pickle; a `state_dict` nested under a top-level
/// `"state_dict"`/`"model"` key is found too).
pub fn read_checkpoint(path: &Path) -> Result<StateDict> {
    if !path.exists() {
        return Err(Error::MissingFile {
            path: path.to_path_buf(),
            hint: "checkpoint not found (pre-trained tower files: scripts/fetch_towers.sh)".into(),
        });
    }
    match path.extension().and_then(|e| e.to_str()) {
        Some("safetensors") => read_safetensors(path),
        _ => read_pytorch(path),
    }
}

fn ck_err(path: &Path, message: impl fmt::Display) -> Error {
    Error::Checkpoint {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

/// Reads a safetensors file (F32, F16, BF16, F64 and integer tensors, all cast to `f32`).
pub fn read_safetensors(path: &Path) -> Result<StateDict> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| ck_err(path, e))?;
    let mut out = StateDict::new();
    for (name, view) in st.tensors() {
        use safetensors::Dtype as D;
        let b = view.data();
        let data: Vec<f32> = match view.dtype() {
            D::F32 => b
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            D::F16 => b
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            D::BF16 => b
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            D::F64 => b
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32)
                .collect(),
            D::I64 => b
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32)
                .collect(),
            D::I32 => b
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f32)
                .collect(),
            other => {
                return Err(ck_err(
                    path,
                    format!("tensor {name}: unsupported dtype {other:?}"),
                ));
            }
        };
        out.insert(name, RawTensor::new(view.shape().to_vec(), data)?);
    }
    Ok(out)
}

/// Reads a PyTorch checkpoint (zip or legacy pickle) with burn-store's reader.
pub fn read_pytorch(path: &Path) -> Result<StateDict> {
    use burn::store::pytorch_reader::{DType as P, PytorchReader};
    let mut reader = PytorchReader::new(path).map_err(|e| ck_err(path, e))?;
    if reader.is_empty() {
        for key in ["state_dict", "model"] {
            if let Ok(r) = PytorchReader::with_top_level_key(path, key)
                && !r.is_empty()
            {
                reader = r;
                break;
            }
        }
    }
    let mut out = StateDict::new();
    for (name, t) in reader.into_tensors() {
        let b = t.read().map_err(|e| ck_err(path, e))?;
        let data: Vec<f32> = match t.dtype() {
            P::F32 => b
                .chunks_exact(4)
                .map(|c| f32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            P::F16 => b
                .chunks_exact(2)
                .map(|c| half::f16::from_ne_bytes([c[0], c[1]]).to_f32())
                .collect(),
            P::BF16 => b
                .chunks_exact(2)
                .map(|c| half::bf16::from_ne_bytes([c[0], c[1]]).to_f32())
                .collect(),
            P::F64 => b
                .chunks_exact(8)
                .map(|c| f64::from_ne_bytes(c.try_into().unwrap_or([0; 8])) as f32)
                .collect(),
            P::I64 => b
                .chunks_exact(8)
                .map(|c| i64::from_ne_bytes(c.try_into().unwrap_or([0; 8])) as f32)
                .collect(),
            P::I32 => b
                .chunks_exact(4)
                .map(|c| i32::from_ne_bytes([c[0], c[1], c[2], c[3]]) as f32)
                .collect(),
            other => {
                return Err(ck_err(
                    path,
                    format!("tensor {name}: unsupported dtype {other:?}"),
                ));
            }
        };
        out.insert(name, RawTensor::new(t.shape().to_vec(), data)?);
    }
    Ok(out)
}

pub use accrue_core::load::LoadReport;

/// Applies `state` (PyTorch names and layouts, already remapped to the module's paths) to
/// `module`. Strict: returns [`Error::KeyMismatch`] listing every missing, unexpected and
/// mis-shaped key if anything does not match, so no partially loaded model escapes.
pub fn load_strict<M: Module + ModuleSnapshot>(
    mut module: M,
    state: StateDict,
    path: &Path,
) -> Result<M> {
    let tensors: Vec<burn::store::burn_pack::Tensor> = state
        .into_iter()
        .map(|(name, t)| {
            burn::store::burn_pack::Tensor::new(
                name,
                DType::F32,
                t.shape,
                None,
                Bytes::from_elems(t.data),
            )
        })
        .collect();
    let result = module.apply(tensors, None, Some(Box::new(PyTorchToBurnAdapter)), true);
    let report = LoadReport::from_apply(result, &[]);
    if report.is_clean() {
        tracing::debug!(
            path = %path.display(),
            applied = report.applied.len(),
            "checkpoint loaded"
        );
        Ok(module)
    } else {
        Err(Error::KeyMismatch {
            path: path.to_path_buf(),
            report,
        })
    }
}

/// Removes keys that a checkpoint carries but no model uses (buffers such as
/// `position_ids` or `num_batches_tracked`), returning how many were dropped.
pub fn drop_keys(state: &mut StateDict, pred: impl Fn(&str) -> bool) -> usize {
    let before = state.len();
    state.retain(|k, _| !pred(k));
    before - state.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_and_split() {
        let t = RawTensor::new(vec![3, 2], vec![1., 2., 3., 4., 5., 6.]).unwrap();
        assert_eq!(t.transpose().unwrap().data, vec![1., 3., 5., 2., 4., 6.]);
        let parts = t.split_rows(3).unwrap();
        assert_eq!(parts[2].data, vec![5., 6.]);
        assert_eq!(parts[2].shape, vec![1, 2]);
        assert!(t.split_rows(2).is_err());
        assert!(RawTensor::new(vec![2, 2], vec![0.0]).is_err());
    }
}
