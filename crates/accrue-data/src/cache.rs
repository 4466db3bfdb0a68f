//! On-disk cache of decoded, resampled audio.
//!
//! One file per (source file, target rate): `<dir>/<hh>/<hash>.pcm`, where the hash is FNV-1a 64
//! of the key `v1|<absolute source path>|<size>|<mtime ns>|<target rate>`. Editing, replacing or
//! touching a source file changes its key, so a stale entry is never served. File format: the
//! project's one array format ([`accrue_core::arrays`], safetensors), one `f32` array
//! `samples` `[n]` and metadata `key` (checked on read, which guards against hash collisions)
//! and `rate`. Files are written atomically ([`accrue_core::atomic`]), so a killed run never
//! leaves a half-written entry under the final name; an unreadable or truncated entry is
//! treated as a miss and rewritten.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use accrue_core::arrays;

use crate::error::{DataError, Result};

/// Hit/miss counters of an [`AudioCache`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Entries served from disk.
    pub hits: u64,
    /// Lookups that found no valid entry.
    pub misses: u64,
    /// Entries written.
    pub writes: u64,
}

/// A directory of decoded audio, keyed by source path, size, modification time and target rate.
#[derive(Debug)]
pub struct AudioCache {
    dir: PathBuf,
    hits: AtomicU64,
    misses: AtomicU64,
    writes: AtomicU64,
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

impl AudioCache {
    /// Opens (creating if needed) a cache directory.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|e| DataError::io(&dir, e))?;
        Ok(AudioCache {
            dir,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            writes: AtomicU64::new(0),
        })
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Counters since this cache was opened.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
        }
    }

    /// The key and cache file for a source file at a target rate. Fails when the source cannot
    /// be stat'ed (a missing file).
    pub fn entry(&self, source: &Path, rate: u32) -> std::io::Result<(String, PathBuf)> {
        let meta = fs::metadata(source)?;
        let abs = fs::canonicalize(source)?;
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        let key = format!("v1|{}|{}|{}|{}", abs.display(), meta.len(), mtime, rate);
        let hash = format!("{:016x}", fnv1a64(key.as_bytes()));
        let file = self
            .dir
            .join(&hash[..2])
            .join(format!("{hash}.safetensors"));
        Ok((key, file))
    }

    /// The cached samples of `source` at `rate`, if a valid entry exists.
    pub fn get(&self, source: &Path, rate: u32) -> Option<Vec<f32>> {
        let found = self
            .entry(source, rate)
            .ok()
            .and_then(|(key, file)| read_entry(&file, &key, rate));
        match &found {
            Some(_) => self.hits.fetch_add(1, Ordering::Relaxed),
            None => self.misses.fetch_add(1, Ordering::Relaxed),
        };
        found
    }

    /// Stores the samples of `source` at `rate`, atomically (temporary file + rename).
    pub fn put(&self, source: &Path, rate: u32, samples: &[f32]) -> Result<()> {
        let (key, file) = self
            .entry(source, rate)
            .map_err(|e| DataError::io(source, e))?;
        let meta = BTreeMap::from([
            ("key".to_string(), key),
            ("rate".to_string(), rate.to_string()),
        ]);
        arrays::write(&file, &[("samples", &[samples.len()], samples)], &meta).map_err(|e| {
            DataError::Cache {
                path: file.clone(),
                message: e.to_string(),
            }
        })?;
        self.writes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

fn read_entry(file: &Path, key: &str, rate: u32) -> Option<Vec<f32>> {
    if !file.is_file() {
        return None;
    }
    let invalid = |why: &str| {
        tracing::warn!(file = %file.display(), "ignoring invalid audio cache entry: {why}");
        None
    };
    let mut entry = match arrays::read(file) {
        Ok(e) => e,
        Err(e) => return invalid(&e.to_string()),
    };
    if entry.metadata.get("key").map(String::as_str) != Some(key) {
        return None; // hash collision or different source: a miss
    }
    if entry.metadata.get("rate") != Some(&rate.to_string()) {
        return invalid("sample rate differs from its key");
    }
    match entry.take(file, "samples") {
        Ok(a) if a.shape.len() == 1 => Some(a.data),
        Ok(_) => invalid("samples are not one-dimensional"),
        Err(e) => invalid(&e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_invalidation() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("a.wav");
        fs::write(&src, b"0123").unwrap();
        let cache = AudioCache::open(dir.path().join("cache")).unwrap();
        assert_eq!(cache.get(&src, 16000), None);
        let x = vec![0.5f32, -1.0, 3.25];
        cache.put(&src, 16000, &x).unwrap();
        assert_eq!(cache.get(&src, 16000), Some(x.clone()));
        // Another rate is another entry.
        assert_eq!(cache.get(&src, 32000), None);
        // A changed source (size) invalidates the entry.
        fs::write(&src, b"0123456").unwrap();
        assert_eq!(cache.get(&src, 16000), None);
        // A truncated entry is a miss, not an error.
        cache.put(&src, 16000, &x).unwrap();
        let (_, file) = cache.entry(&src, 16000).unwrap();
        let bytes = fs::read(&file).unwrap();
        fs::write(&file, &bytes[..bytes.len() - 2]).unwrap();
        assert_eq!(cache.get(&src, 16000), None);
        let s = cache.stats();
        assert_eq!((s.hits, s.writes), (1, 2));
        assert_eq!(s.misses, 4);
    }
}
