//! # accrue-data
//!
//! Datasets in their own on-disk layouts, and a batch loader that keeps a trainer fed.
//!
//! ## Data model
//!
//! Every reader returns a [`Dataset`]: a list of [`Example`]s (clip id, audio path, optional
//! [`Split`] and fold, class labels, captions, [`ImageRef`]s, extra metadata) plus the class
//! vocabulary. One representation covers the three pair kinds ([`PairKind`]):
//!
//! - **audio–label**: `labels` holds one class index (single-label, e.g. ESC-50) or several
//!   ([`Dataset::multi_label`], e.g. AudioSet);
//! - **audio–image**: `images` holds one or several image files (video frames) or embedding ids;
//!   [`ImagePairing`] says whether they belong to the clip (instance-level) or to its class
//!   (class-level, see [`Dataset::set_class_images`]);
//! - **audio–text**: `captions` holds one or several captions (Clotho: 5).
//!
//! ## Readers ([`readers`])
//!
//! | dataset | reader | layout |
//! |---|---|---|
//! | ESC-50 | [`readers::esc50::read`] | `meta/esc50.csv`, `audio/`, folds 1–5 |
//! | UrbanSound8K | [`readers::urbansound8k::read`] | `metadata/UrbanSound8K.csv`, `audio/foldN/`, folds 1–10 |
//! | Clotho v2 | [`readers::clotho::read`] | `clotho_captions_{development,validation,evaluation}.csv`, audio dir per split |
//! | AudioCaps | [`readers::audiocaps::read`] | `{train,val,test}.csv` (`audiocap_id,youtube_id,start_time,caption`) |
//! | VGGSound | [`readers::vggsound::read`] | `vggsound.csv` (`youtube_id,start,label,split`), frame dirs |
//! | AVE | [`readers::ave::read`] | `Annotations.txt` (`&`-separated), `{train,val,test}Set.txt` |
//! | AudioSet | [`readers::audioset::read`] | segments CSV (3 `#` lines), `class_labels_indices.csv` |
//! | HEAR tasks | [`readers::hear::read`] | `task_metadata.json`, `<split>.json`, `<rate>/<split>/*.wav` |
//! | your own data | [`readers::manifest::read`] | JSON Lines or CSV manifest (format documented there) |
//!
//! Malformed rows fail with [`DataError::Malformed`], which names the file and the line.
//!
//! ## Loader ([`Loader`])
//!
//! Decodes and resamples clips in parallel (rayon, through `accrue_audio::load`), optionally
//! caches the decoded audio on disk ([`AudioCache`], keyed by path, size, mtime and target rate)
//! and/or in memory, shuffles with a seed, crops per split ([`Crop`]: random crop for training,
//! centre or full clip for evaluation, zero-padding short clips), and delivers [`Batch`]es as
//! plain `Vec<f32>` buffers `[B, L]` with labels, chosen caption indices and image refs. A
//! background thread prepares batches ahead of the consumer; [`DataTiming`] records how long the
//! consumer waited for data versus the total, so a trainer can report a data-bound run.
//!
//! Missing or corrupt files fail with an error naming the file, or — with
//! [`LoaderConfig::skip_bad`] — are skipped, counted and listed in [`Loader::report`]
//! ([`DataReport`]). Nothing is dropped silently. The same seed gives the same batches.
//!
//! Architecture invariant: this crate produces plain buffers, never tensors; it knows nothing
//! of models, losses or training loops.

pub mod cache;
pub mod dataset;
pub mod error;
pub mod loader;
pub mod readers;

pub use cache::{AudioCache, CacheStats};
pub use dataset::{Dataset, Example, FoldSplit, ImagePairing, ImageRef, PairKind, Split};
pub use error::{DataError, Result};
pub use loader::{
    Batch, CaptionPick, Crop, DataReport, DataTiming, Epoch, Loader, LoaderConfig, SkippedFile,
};
pub use readers::Template;
