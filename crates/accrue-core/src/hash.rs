//! sha256 of bytes and files: the content hashes of provenance records, tower identities and
//! cache keys; and xxh3-128 of `f32` slices, the keys of in-memory memos (fast, not
//! cryptographic: a key that only has to tell apart the clips of one process).

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// Hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// `sha256:<hex>` of `bytes` (config text, a manifest, a checkpoint).
pub fn sha256_tag(bytes: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(bytes))
}

/// Hex sha256 of a file's bytes, read in 1 MiB blocks.
///
/// # Errors
/// [`Error::Io`] naming the file.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

/// `sha256:<hex>` of a file's bytes.
///
/// # Errors
/// [`Error::Io`] naming the file.
pub fn sha256_file_tag(path: &Path) -> Result<String> {
    Ok(format!("sha256:{}", sha256_file(path)?))
}

/// xxh3-128 of `bytes`: the key of an in-memory memo entry (fast, not cryptographic).
pub fn xxh3_128(bytes: &[u8]) -> u128 {
    xxhash_rust::xxh3::xxh3_128(bytes)
}

/// xxh3-128 of the bytes of `values` (native byte order): the key of an in-memory memo entry.
/// Equal slices give equal keys; different slices collide with probability ≈ 2⁻¹²⁸.
pub fn xxh3_128_f32(values: &[f32]) -> u128 {
    // SAFETY: an `f32` slice is `size_of_val(values)` initialised bytes; `u8` has no alignment
    // or validity requirement.
    let bytes = unsafe {
        std::slice::from_raw_parts(values.as_ptr().cast::<u8>(), std::mem::size_of_val(values))
    };
    xxh3_128(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() {
        // FIPS 180-2 test vector.
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(sha256_tag(b"abc"), format!("sha256:{}", sha256_hex(b"abc")));
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"abc").unwrap();
        assert_eq!(sha256_file(&p).unwrap(), sha256_hex(b"abc"));
        assert!(sha256_file(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn memo_keys_follow_the_bytes() {
        let a = [0.5f32, -1.0, 3.25];
        assert_eq!(xxh3_128_f32(&a), xxh3_128_f32(&[0.5, -1.0, 3.25]));
        assert_ne!(xxh3_128_f32(&a), xxh3_128_f32(&[0.5, -1.0, 3.0]));
        assert_ne!(xxh3_128_f32(&a), xxh3_128_f32(&a[..2]));
        // The key of the bytes, so +0 and −0 are different clips.
        assert_ne!(xxh3_128_f32(&[0.0]), xxh3_128_f32(&[-0.0]));
        assert_eq!(xxh3_128_f32(&[1.0]), xxh3_128(&1.0f32.to_ne_bytes()));
    }
}
