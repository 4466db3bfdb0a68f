//! The process's memo of log-mel rows: a clip's log-mel is computed once and then served from
//! memory, to every front end with the same configuration and the same weights.
//!
//! Why: without waveform augmentation a training clip's log-mel is the same every epoch, the
//! teacher of a distilling method computes it again for the same clips, and evaluation computes
//! it once more per stage model (docs/benchmarks.md: the front end was 9 % of a main-job run).
//!
//! How: an entry's key is the front end's fingerprint ([`FrontEnd::fingerprint`]: its
//! configuration, mel matrix and STFT kernels) and the xxh3-128 of the clip's samples, so a
//! crop, a mixed clip or a padded one is another key, and nothing can be served to the wrong
//! clip or front end. Entries are kept until the budget is full (then nothing more is added);
//! the budget is 1 GiB by default, `ACCRUE_LOGMEL_MEMO_MIB` sets it at start-up (0 turns the
//! memo off) and [`set_budget`] at run time.
//!
//! A row is computed exactly as the front end computes it in a batch: every step of the log-mel
//! is per clip (the framing, the FFT, the mel product and the dB), so a clip's row does not
//! depend on its batch mates; the one batch-wide step, `top_db` clamping to the batch's
//! maximum, is never memoised ([`FrontEnd::logmel_memoized`] computes that whole batch). A test
//! pins the equality to the bit.
//!
//! [`FrontEnd::fingerprint`]: crate::frontend::FrontEnd::fingerprint
//! [`FrontEnd::logmel_memoized`]: crate::frontend::FrontEnd::logmel_memoized

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

/// The budget when `ACCRUE_LOGMEL_MEMO_MIB` is not set: 1 GiB (40,000 one-second clips of the
/// PANNs front end, 4,000 ten-second ones).
pub const DEFAULT_BUDGET_BYTES: usize = 1 << 30;

/// The environment variable that sets the budget at start-up, in MiB (0: off).
pub const BUDGET_ENV: &str = "ACCRUE_LOGMEL_MEMO_MIB";

/// Counters of the memo (for logs and tests).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoStats {
    /// Rows held.
    pub entries: usize,
    /// Bytes held.
    pub bytes: usize,
    /// The budget in bytes.
    pub budget: usize,
    /// Rows served from the memo.
    pub hits: u64,
    /// Rows computed.
    pub misses: u64,
}

struct Memo {
    rows: HashMap<(u128, u128), Arc<[f32]>>,
    stats: MemoStats,
}

impl Memo {
    /// Drops every entry; the budget and the hit and miss counters stay.
    fn drop_entries(&mut self) {
        self.rows.clear();
        self.stats.entries = 0;
        self.stats.bytes = 0;
    }
}

fn memo() -> &'static Mutex<Memo> {
    static MEMO: OnceLock<Mutex<Memo>> = OnceLock::new();
    MEMO.get_or_init(|| {
        Mutex::new(Memo {
            rows: HashMap::new(),
            stats: MemoStats {
                budget: budget_from_env(),
                ..MemoStats::default()
            },
        })
    })
}

fn budget_from_env() -> usize {
    match std::env::var(BUDGET_ENV) {
        Err(_) => DEFAULT_BUDGET_BYTES,
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(mib) => mib.saturating_mul(1 << 20),
            Err(_) => {
                tracing::warn!(
                    variable = BUDGET_ENV,
                    value = %v,
                    "not a whole number of MiB; the log-mel memo keeps its default budget of \
                     1024 MiB"
                );
                DEFAULT_BUDGET_BYTES
            }
        },
    }
}

fn lock() -> std::sync::MutexGuard<'static, Memo> {
    // A panic while the lock was held cannot leave a half-inserted row (inserts are single
    // `HashMap` operations), so a poisoned memo is still consistent.
    memo().lock().unwrap_or_else(PoisonError::into_inner)
}

/// Sets the budget in bytes (0 turns the memo off); a budget below what is held drops every
/// entry.
pub fn set_budget(bytes: usize) {
    let mut m = lock();
    m.stats.budget = bytes;
    if m.stats.bytes > bytes {
        m.drop_entries();
    }
}

/// The memo's counters.
pub fn stats() -> MemoStats {
    lock().stats
}

/// Drops every entry (the counters of hits and misses are kept).
pub fn clear() {
    lock().drop_entries();
}

/// Whether the memo is on (its budget is above zero).
pub(crate) fn enabled() -> bool {
    lock().stats.budget > 0
}

/// The held rows of `keys` under `fingerprint` (`None` where absent); counts hits and misses.
pub(crate) fn lookup(fingerprint: u128, keys: &[u128]) -> Vec<Option<Arc<[f32]>>> {
    let mut m = lock();
    let found: Vec<Option<Arc<[f32]>>> = keys
        .iter()
        .map(|k| m.rows.get(&(fingerprint, *k)).cloned())
        .collect();
    let hits = found.iter().filter(|f| f.is_some()).count() as u64;
    m.stats.hits += hits;
    m.stats.misses += keys.len() as u64 - hits;
    found
}

/// Adds `row` under `(fingerprint, key)` if the budget has room for it.
pub(crate) fn insert(fingerprint: u128, key: u128, row: Arc<[f32]>) {
    let mut m = lock();
    let bytes = std::mem::size_of_val(&*row);
    if m.stats.bytes + bytes > m.stats.budget || m.rows.contains_key(&(fingerprint, key)) {
        return;
    }
    m.rows.insert((fingerprint, key), row);
    m.stats.entries += 1;
    m.stats.bytes += bytes;
}
