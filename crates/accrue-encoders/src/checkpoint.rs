//! Checkpoint import and export with a complete, strict load report.
//!
//! * PyTorch `.pth`/`.pt` files in the zip format (torch ≥ 1.6) **and** the legacy pickle
//!   format (torch < 1.6, the format of the released PANNs checkpoints), read by burn-store's
//!   `PytorchStore` (no Python, no libtorch). Nested checkpoints (`{'model': state_dict}`) are
//!   opened with [`LoadOptions::top_level_key`]; checkpoints whose root is a tuple, such as
//!   aisfx's `(state_dict, ds_dict)`, with [`LoadOptions::tuple_root`].
//! * The project's own checkpoints as safetensors ([`save_safetensors`] / [`load_safetensors`]),
//!   which round-trip every parameter and the BN running statistics.
//!
//! Loading is strict by default: any missing, unexpected or wrongly-shaped tensor fails with
//! [`EncoderError::CheckpointMismatch`], whose [`LoadReport`] lists all of them. With
//! [`LoadOptions::allow_partial`] the matching tensors are loaded, the rest keep their
//! initialisation, and the report is returned for the caller to inspect.
//!
//! PyTorch's `num_batches_tracked` BN counters have no counterpart in Burn (momentum is fixed)
//! and are reported as ignored, not unexpected.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use burn::module::Module;
use burn::store::{ApplyResult, ModuleSnapshot, PytorchStore, SafetensorsStore};

use crate::aisfx::Aisfx;
use crate::cnn::PannsCnn;
use crate::error::{EncoderError, Result};
use crate::resnet38::ResNet38;

pub use accrue_core::load::{LoadReport, ShapeMismatch};

/// How to read a PyTorch checkpoint.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Load what matches and return the report instead of failing.
    pub allow_partial: bool,
    /// Take the state dict from this key of a dict checkpoint (`"model"` for PANNs).
    pub top_level_key: Option<String>,
    /// Take the state dict from this element of a tuple checkpoint (aisfx: 0).
    pub tuple_root: Option<usize>,
    /// `(regex, replacement)` key remappings, applied in order.
    pub remaps: Vec<(String, String)>,
    /// File keys ending in one of these are ignored (default: `num_batches_tracked`).
    pub ignore_suffixes: Vec<String>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            allow_partial: false,
            top_level_key: None,
            tuple_root: None,
            remaps: Vec::new(),
            ignore_suffixes: vec!["num_batches_tracked".into()],
        }
    }
}

impl LoadOptions {
    /// Options for a released PANNs checkpoint (`{'model': state_dict, …}`) with the given
    /// remaps.
    pub fn panns(remaps: Vec<(String, String)>) -> Self {
        Self {
            top_level_key: Some("model".into()),
            remaps,
            ..Default::default()
        }
    }

    /// Same options, allowing a partial load.
    pub fn allow_partial(mut self, allow: bool) -> Self {
        self.allow_partial = allow;
        self
    }
}

/// Loads a PyTorch checkpoint into `model`.
///
/// Returns the loaded model and the report. Strict unless `options.allow_partial`: a report
/// that is not clean yields [`EncoderError::CheckpointMismatch`] (the partially-loaded model is
/// dropped).
pub fn load_pytorch<M: Module>(
    mut model: M,
    path: &Path,
    options: &LoadOptions,
) -> Result<(M, LoadReport)> {
    let read_err = |detail: String| EncoderError::CheckpointRead {
        path: path.to_path_buf(),
        detail,
    };
    if !path.is_file() {
        return Err(read_err("no such file".into()));
    }
    let mut remaps = options.remaps.clone();
    let mut _tmp = None;
    let source = match options.tuple_root {
        Some(index) => {
            let wrapped = TempFile::new("pth")?;
            wrap_tuple_root(path, &wrapped.0)?;
            remaps.insert(0, (format!(r"^root\.{index}\."), String::new()));
            let p = wrapped.0.clone();
            _tmp = Some(wrapped);
            p
        }
        None => path.to_path_buf(),
    };
    if options.tuple_root.is_none() {
        refuse_non_f32_pytorch(path, options.top_level_key.as_deref())?;
    }
    let mut store = PytorchStore::from_file(&source)
        .map_indices_contiguous(false)
        .allow_partial(true)
        .validate(false);
    if let Some(key) = &options.top_level_key {
        store = store.with_top_level_key(key.clone());
    }
    for (from, to) in &remaps {
        check_regex(from)?;
        store = store.with_key_remapping(from, to);
    }
    let result = model
        .load_from(&mut store)
        .map_err(|e| read_err(e.to_string()))?;
    finish(
        model,
        path,
        options.allow_partial,
        result,
        &options.ignore_suffixes,
    )
}

/// Refuses a PyTorch checkpoint holding a floating-point tensor of another dtype than F32
/// (F64, F16, BF16): accrue's models are F32, and such a tensor would load and then fail deep
/// inside the backend. Integer tensors (BatchNorm's `num_batches_tracked`) are never loaded.
fn refuse_non_f32_pytorch(path: &Path, top_level_key: Option<&str>) -> Result<()> {
    use burn::store::pytorch_reader::{DType, PytorchReader};
    let reader = match top_level_key {
        Some(k) => PytorchReader::with_top_level_key(path, k),
        None => PytorchReader::new(path),
    };
    // A file the reader cannot open is reported by the load that follows.
    let Ok(reader) = reader else {
        return Ok(());
    };
    let mut bad: Vec<String> = reader
        .tensors()
        .iter()
        .filter(|(_, t)| matches!(t.dtype(), DType::F64 | DType::F16 | DType::BF16))
        .map(|(name, t)| format!("`{name}` is {:?}", t.dtype()))
        .collect();
    if bad.is_empty() {
        return Ok(());
    }
    bad.sort();
    Err(EncoderError::CheckpointRead {
        path: path.to_path_buf(),
        detail: format!(
            "accrue's models are F32, but {}; convert the file to F32 first (e.g. \
             `{{k: v.float() for k, v in sd.items()}}` in PyTorch)",
            bad.join(", ")
        ),
    })
}

fn finish<M>(
    model: M,
    path: &Path,
    allow_partial: bool,
    result: ApplyResult,
    ignore: &[String],
) -> Result<(M, LoadReport)> {
    let report = LoadReport::from_apply(result, ignore);
    tracing::debug!(path = %path.display(), %report, "checkpoint applied");
    if !report.is_clean() && !allow_partial {
        return Err(EncoderError::CheckpointMismatch {
            path: path.to_path_buf(),
            report: Box::new(report),
        });
    }
    if !report.is_clean() {
        tracing::warn!(path = %path.display(), %report, "partial checkpoint load");
    }
    Ok((model, report))
}

fn check_regex(pattern: &str) -> Result<()> {
    // burn-store panics on an invalid pattern; validate it first so the caller gets an error.
    burn::store::KeyRemapper::new()
        .add_pattern(pattern, "")
        .map(|_| ())
        .map_err(|e| EncoderError::Remap {
            pattern: pattern.to_string(),
            detail: e.to_string(),
        })
}

/// Loads a released PANNs ResNet-38 checkpoint (`ResNet38_mAP=0.434.pth`, either pickle
/// format).
pub fn load_resnet38_panns(
    model: ResNet38,
    path: &Path,
    allow_partial: bool,
) -> Result<(ResNet38, LoadReport)> {
    let options = LoadOptions::panns(ResNet38::pytorch_key_remaps()).allow_partial(allow_partial);
    load_pytorch(model, path, &options)
}

/// Loads a released PANNs Cnn14 / Cnn10 / Cnn6 checkpoint.
pub fn load_cnn_panns(
    model: PannsCnn,
    path: &Path,
    allow_partial: bool,
) -> Result<(PannsCnn, LoadReport)> {
    let options = LoadOptions::panns(model.pytorch_key_remaps()).allow_partial(allow_partial);
    load_pytorch(model, path, &options)
}

/// Loads aisfx's `checkpoint.pth` (a zip pickle of `(state_dict, ds_dict)`).
pub fn load_aisfx(model: Aisfx, path: &Path, allow_partial: bool) -> Result<(Aisfx, LoadReport)> {
    let options = LoadOptions {
        tuple_root: Some(0),
        remaps: Aisfx::pytorch_key_remaps(),
        allow_partial,
        ..Default::default()
    };
    load_pytorch(model, path, &options)
}

/// Saves every parameter and running statistic of `model` as safetensors (Burn layout and
/// names). Overwrites `path`.
pub fn save_safetensors<M: Module>(model: &M, path: &Path) -> Result<()> {
    let write_err = |detail: String| EncoderError::CheckpointWrite {
        path: path.to_path_buf(),
        detail,
    };
    // `valid()` applies the BatchNorm running-statistics updates that Burn keeps pending after
    // a training forward, so the file holds the current statistics, not those one step old.
    // Written to a temporary file beside the target and renamed: a killed process never leaves
    // a half-written checkpoint under the real name.
    accrue_core::atomic::create_parent(path).map_err(|e| write_err(e.to_string()))?;
    let tmp = accrue_core::atomic::temp_path(path);
    let mut store = SafetensorsStore::from_file(&tmp).overwrite(true);
    model
        .valid()
        .save_into(&mut store)
        .map_err(|e| write_err(e.to_string()))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        write_err(e.to_string())
    })
}

/// The tensor names and shapes stored in a safetensors file (read from its header only).
///
/// # Errors
/// Unreadable file or a malformed header.
pub fn safetensors_keys(path: &Path) -> Result<std::collections::BTreeMap<String, Vec<usize>>> {
    Ok(safetensors_header(path)?
        .into_iter()
        .map(|(name, (_, shape))| (name, shape))
        .collect())
}

/// The tensor names, dtypes (`"F32"`, `"F16"`, …) and shapes of a safetensors file, read from
/// its header only.
fn safetensors_header(
    path: &Path,
) -> Result<std::collections::BTreeMap<String, (String, Vec<usize>)>> {
    use std::io::Read;
    let bad = |detail: String| EncoderError::CheckpointRead {
        path: path.to_path_buf(),
        detail,
    };
    let mut file = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len)
        .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
    let len = u64::from_le_bytes(len);
    let file_len = file.metadata().map_err(|e| bad(e.to_string()))?.len();
    if len > file_len.saturating_sub(8) || len > 100 << 20 {
        return Err(bad(format!("header length {len} exceeds the file")));
    }
    let mut header = vec![0u8; len as usize];
    file.read_exact(&mut header)
        .map_err(|e| bad(format!("truncated header: {e}")))?;
    let json: serde_json::Value =
        serde_json::from_slice(&header).map_err(|e| bad(format!("header: {e}")))?;
    let obj = json
        .as_object()
        .ok_or_else(|| bad("header is not a JSON object".into()))?;
    let mut out = std::collections::BTreeMap::new();
    for (name, info) in obj {
        if name == "__metadata__" {
            continue;
        }
        let shape = info
            .get("shape")
            .and_then(|s| s.as_array())
            .ok_or_else(|| bad(format!("tensor `{name}` has no shape")))?
            .iter()
            .map(|d| d.as_u64().map(|d| d as usize))
            .collect::<Option<Vec<usize>>>()
            .ok_or_else(|| bad(format!("tensor `{name}` has a malformed shape")))?;
        let dtype = info
            .get("dtype")
            .and_then(|d| d.as_str())
            .ok_or_else(|| bad(format!("tensor `{name}` has no dtype")))?;
        out.insert(name.clone(), (dtype.to_string(), shape));
    }
    Ok(out)
}

/// Loads a safetensors file written by [`save_safetensors`] (strict unless `allow_partial`).
pub fn load_safetensors<M: Module>(
    mut model: M,
    path: &Path,
    allow_partial: bool,
) -> Result<(M, LoadReport)> {
    if !path.is_file() {
        return Err(EncoderError::CheckpointRead {
            path: path.to_path_buf(),
            detail: "no such file".into(),
        });
    }
    // The models are f32: a tensor of another dtype would load and then fail deep inside a
    // backend kernel, so it is refused here, named.
    let other: Vec<String> = safetensors_header(path)?
        .into_iter()
        .filter(|(_, (dtype, _))| dtype != "F32")
        .map(|(name, (dtype, _))| format!("`{name}` is {dtype}"))
        .collect();
    if !other.is_empty() {
        return Err(EncoderError::CheckpointRead {
            path: path.to_path_buf(),
            detail: format!(
                "accrue's models are F32, but {}; convert the file to F32 first",
                other.join(", ")
            ),
        });
    }
    let mut store = SafetensorsStore::from_file(path)
        .allow_partial(true)
        .validate(false);
    let result = model
        .load_from(&mut store)
        .map_err(|e| EncoderError::CheckpointRead {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
    finish(model, path, allow_partial, result, &[])
}

/// The tensor keys a module exposes (Burn names), for diagnostics.
pub fn module_keys<M: Module>(model: &M) -> BTreeSet<String> {
    model
        .collect(None, None, false)
        .into_iter()
        .map(|t| t.name)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Tuple-root checkpoints
// ---------------------------------------------------------------------------------------------

/// A file in the temporary directory, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(ext: &str) -> Result<Self> {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("accrue-encoders-{}-{n}.{ext}", std::process::id()));
        Ok(Self(path))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Rewrites a zip checkpoint whose pickle root is not a dict (e.g. a tuple) so that the root
/// becomes `{"root": <original root>}`: the tensors are then named `root.<i>.<key>`. Only the
/// small `data.pkl` entry changes; the tensor storages are copied verbatim.
fn wrap_tuple_root(src: &Path, dst: &Path) -> Result<()> {
    let read_err = |detail: String| EncoderError::CheckpointRead {
        path: src.to_path_buf(),
        detail,
    };
    let write_err = |detail: String| EncoderError::CheckpointWrite {
        path: dst.to_path_buf(),
        detail,
    };
    let file = File::open(src).map_err(|e| read_err(e.to_string()))?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| {
        read_err(format!(
            "tuple-root checkpoints are supported in the zip format only: {e}"
        ))
    })?;
    let out = File::create(dst).map_err(|e| write_err(e.to_string()))?;
    let mut writer = zip::ZipWriter::new(out);
    let mut found = false;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(|e| read_err(e.to_string()))?;
        let name = entry
            .name()
            .map_err(|e| read_err(e.to_string()))?
            .to_string();
        if name.ends_with("data.pkl") && !found {
            found = true;
            let mut pickle = Vec::new();
            entry
                .read_to_end(&mut pickle)
                .map_err(|e| read_err(e.to_string()))?;
            let wrapped = wrap_pickle_root(&pickle).map_err(read_err)?;
            drop(entry);
            let options = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Stored);
            writer
                .start_file(name, options)
                .map_err(|e| write_err(e.to_string()))?;
            writer
                .write_all(&wrapped)
                .map_err(|e| write_err(e.to_string()))?;
        } else {
            writer
                .raw_copy_file(entry)
                .map_err(|e| write_err(e.to_string()))?;
        }
    }
    if !found {
        return Err(read_err("no data.pkl entry in the archive".into()));
    }
    writer.finish().map_err(|e| write_err(e.to_string()))?;
    Ok(())
}

/// `PROTO 2, EMPTY_DICT, BINUNICODE "root", <original body>, SETITEM, STOP`.
fn wrap_pickle_root(pickle: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let body = match pickle {
        [0x80, _, rest @ ..] => rest,
        other => other,
    };
    let body = match body {
        [rest @ .., b'.'] => rest,
        _ => return Err("data.pkl does not end with the pickle STOP opcode".into()),
    };
    let key = b"root";
    let mut out = Vec::with_capacity(body.len() + 16);
    out.extend_from_slice(&[0x80, 0x02, b'}', b'X']);
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(body);
    out.extend_from_slice(b"s.");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pickle_wrapping_keeps_the_body() {
        // pickle.dumps((1, 2), protocol=2) = 80 02 4b 01 4b 02 86 71 00 2e
        let original = [0x80, 0x02, 0x4b, 0x01, 0x4b, 0x02, 0x86, 0x71, 0x00, 0x2e];
        let wrapped = wrap_pickle_root(&original).unwrap_or_default();
        assert_eq!(&wrapped[..4], &[0x80, 0x02, b'}', b'X']);
        assert_eq!(&wrapped[8..12], b"root");
        assert_eq!(&wrapped[12..19], &original[2..9]);
        assert_eq!(&wrapped[19..], b"s.");
        assert!(wrap_pickle_root(&[0x80, 0x02, 0x4b]).is_err());
    }
}
