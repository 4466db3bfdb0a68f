//! On-disk embedding cache: a frozen tower never embeds the same input twice.
//!
//! Layout: `<root>/<identity digest>/identity.json` (the full [`TowerIdentity`]) and
//! `shard-NNNNN.safetensors` files, each holding `embeddings` `[n, D]` (F32) and `digests`
//! `[n, 32]` (U8, the [`FrozenTower::input_digest`] of each row's input), with the identity
//! also in the safetensors metadata. Shards are only ever added (written to a temporary file
//! and renamed), so an interrupted run loses at most its last batch of work.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::tensor::{Tensor, TensorData};
use indicatif::{ProgressBar, ProgressStyle};

use crate::tower::{FrozenTower, TowerIdentity};
use crate::{Error, Result};

/// Embeddings of one tower, keyed by input digest.
#[derive(Debug)]
pub struct EmbeddingCache {
    dir: PathBuf,
    identity: TowerIdentity,
    dim: usize,
    entries: HashMap<[u8; 32], Vec<f32>>,
    n_shards: usize,
}

fn cache_err(path: &Path, message: impl Into<String>) -> Error {
    Error::Cache {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

impl EmbeddingCache {
    /// Opens (creating if needed) the cache of the tower `identity` with width `dim` under
    /// `root`, loading every shard.
    pub fn open(root: &Path, identity: &TowerIdentity, dim: usize) -> Result<Self> {
        let dir = root.join(identity.digest());
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let id_path = dir.join("identity.json");
        let record = serde_json::json!({ "identity": identity, "dim": dim });
        if id_path.exists() {
            let text = std::fs::read_to_string(&id_path).map_err(|e| Error::io(&id_path, e))?;
            let found: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| cache_err(&id_path, format!("unreadable identity: {e}")))?;
            if found != record {
                return Err(cache_err(
                    &id_path,
                    format!("belongs to another tower: {found} (expected {record})"),
                ));
            }
        } else {
            accrue_core::atomic::write(&id_path, record.to_string().as_bytes())
                .map_err(|e| cache_err(&id_path, e.to_string()))?;
        }
        let mut cache = Self {
            dir: dir.clone(),
            identity: identity.clone(),
            dim,
            entries: HashMap::new(),
            n_shards: 0,
        };
        let mut shards: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(|e| Error::io(&dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("shard-") && n.ends_with(".safetensors"))
            })
            .collect();
        shards.sort();
        for shard in &shards {
            cache.load_shard(shard)?;
        }
        cache.n_shards = shards.len();
        tracing::debug!(dir = %dir.display(), entries = cache.entries.len(), "opened embedding cache");
        Ok(cache)
    }

    fn load_shard(&mut self, path: &Path) -> Result<()> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let st = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| cache_err(path, e.to_string()))?;
        let emb = st
            .tensor("embeddings")
            .map_err(|e| cache_err(path, e.to_string()))?;
        let dig = st
            .tensor("digests")
            .map_err(|e| cache_err(path, e.to_string()))?;
        let (n, d) = match emb.shape() {
            [n, d] => (*n, *d),
            s => return Err(cache_err(path, format!("embeddings of shape {s:?}"))),
        };
        if d != self.dim
            || dig.shape() != [n, 32]
            || emb.dtype() != safetensors::Dtype::F32
            || dig.dtype() != safetensors::Dtype::U8
        {
            return Err(cache_err(
                path,
                "shard does not match the cache's width or layout",
            ));
        }
        let values: Vec<f32> = emb
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        for (i, key) in dig.data().chunks_exact(32).enumerate() {
            let mut k = [0u8; 32];
            k.copy_from_slice(key);
            self.entries.insert(k, values[i * d..(i + 1) * d].to_vec());
        }
        Ok(())
    }

    /// The tower this cache belongs to.
    pub fn identity(&self) -> &TowerIdentity {
        &self.identity
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Number of cached embeddings.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The cached embedding of an input digest.
    pub fn get(&self, digest: &[u8; 32]) -> Option<&[f32]> {
        self.entries.get(digest).map(Vec::as_slice)
    }

    /// Embeddings of `inputs` in order, `[N, D]` on the tower's device: cached rows are
    /// read, the others are computed in batches of `batch_size` (with a progress bar when
    /// `progress` is set) and appended to the cache as one new shard.
    pub fn compute<T: FrozenTower>(
        &mut self,
        tower: &T,
        inputs: &[&T::Input],
        batch_size: usize,
        progress: bool,
    ) -> Result<Tensor<2>> {
        if tower.identity() != &self.identity || tower.embed_dim() != self.dim {
            return Err(cache_err(
                &self.dir,
                format!(
                    "tower {} does not own this cache ({})",
                    tower.identity(),
                    self.identity
                ),
            ));
        }
        let digests: Vec<[u8; 32]> = inputs.iter().map(|x| T::input_digest(x)).collect();
        let mut todo: Vec<usize> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (i, d) in digests.iter().enumerate() {
            if !self.entries.contains_key(d) && seen.insert(*d) {
                todo.push(i);
            }
        }
        if !todo.is_empty() {
            let bar = if progress {
                let b = ProgressBar::new(todo.len() as u64);
                if let Ok(style) = ProgressStyle::with_template(
                    "{msg} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})",
                ) {
                    b.set_style(style);
                }
                b.set_message(self.identity.architecture.clone());
                b
            } else {
                ProgressBar::hidden()
            };
            let mut new_rows: Vec<f32> = Vec::with_capacity(todo.len() * self.dim);
            let mut new_keys: Vec<u8> = Vec::with_capacity(todo.len() * 32);
            for chunk in todo.chunks(batch_size.max(1)) {
                let batch: Vec<&T::Input> = chunk.iter().map(|&i| inputs[i]).collect();
                let e = tower.embed(&batch)?;
                let v: Vec<f32> = e
                    .into_data()
                    .convert::<f32>()
                    .try_into_vec()
                    .map_err(|e| Error::Invalid(format!("{e:?}")))?;
                for (j, &i) in chunk.iter().enumerate() {
                    let row = v[j * self.dim..(j + 1) * self.dim].to_vec();
                    new_rows.extend_from_slice(&row);
                    new_keys.extend_from_slice(&digests[i]);
                    self.entries.insert(digests[i], row);
                }
                bar.inc(chunk.len() as u64);
            }
            bar.finish_and_clear();
            self.write_shard(&new_rows, &new_keys)?;
            tracing::info!(
                computed = todo.len(),
                cached = inputs.len() - todo.len(),
                "embedding cache updated"
            );
        }
        let mut flat = Vec::with_capacity(inputs.len() * self.dim);
        for d in &digests {
            let row = self
                .entries
                .get(d)
                .ok_or_else(|| cache_err(&self.dir, "entry vanished"))?;
            flat.extend_from_slice(row);
        }
        Ok(Tensor::from_data(
            TensorData::new(flat, [inputs.len(), self.dim]),
            tower.device(),
        ))
    }

    fn write_shard(&mut self, rows: &[f32], keys: &[u8]) -> Result<()> {
        let n = keys.len() / 32;
        let emb_bytes: Vec<u8> = rows.iter().flat_map(|x| x.to_le_bytes()).collect();
        let err = |e: safetensors::SafeTensorError| cache_err(&self.dir, e.to_string());
        let emb = safetensors::tensor::TensorView::new(
            safetensors::Dtype::F32,
            vec![n, self.dim],
            &emb_bytes,
        )
        .map_err(err)?;
        let dig = safetensors::tensor::TensorView::new(safetensors::Dtype::U8, vec![n, 32], keys)
            .map_err(err)?;
        let meta: HashMap<String, String> = [(
            "identity".to_string(),
            serde_json::to_string(&self.identity).unwrap_or_default(),
        )]
        .into();
        // never overwrite an existing shard (another process may have added one)
        let mut idx = self.n_shards;
        let path = loop {
            let p = self.dir.join(format!("shard-{idx:05}.safetensors"));
            if !p.exists() {
                break p;
            }
            idx += 1;
        };
        let bytes = safetensors::serialize(vec![("embeddings", emb), ("digests", dig)], Some(meta))
            .map_err(err)?;
        accrue_core::atomic::write(&path, &bytes).map_err(|e| cache_err(&path, e.to_string()))?;
        self.n_shards = idx + 1;
        Ok(())
    }
}
