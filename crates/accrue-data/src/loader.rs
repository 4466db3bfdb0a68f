//! The batch loader: parallel decoding, on-disk caching, seeded shuffling, per-split cropping,
//! prefetching, bad-file handling and data-wait accounting.
//!
//! A [`Loader`] is built once per dataset split. [`Loader::new`] checks every example (audio file
//! present, image files present and — when a cache is configured — audio decodable, filling the
//! cache in parallel). [`Loader::epoch`] then starts a background thread that assembles batches
//! (decoding the clips of a batch in parallel with rayon) up to [`LoaderConfig::prefetch`] batches
//! ahead of the consumer, and returns an iterator over them.
//!
//! Determinism: the example order of epoch `e` depends only on `(seed, e)`, and the crop offset and
//! caption choice of example `i` in epoch `e` only on `(seed, e, i)` — never on thread scheduling,
//! prefetch depth or where iteration started. [`Loader::epoch_from`] therefore resumes an epoch at
//! any batch with exactly the batches an uninterrupted run would have seen.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use accrue_audio::crop::{CropMode, crop_or_pad};
use accrue_core::seed::mix2;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::cache::{AudioCache, CacheStats};
use crate::dataset::{Dataset, ImageRef};
use crate::error::{DataError, Result};

/// How each clip is brought to the batch length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Crop {
    /// A window of this many samples at a seeded random offset (training, method-spec §5);
    /// shorter clips are zero-padded at the end.
    Random(usize),
    /// The centre window of this many samples; shorter clips are zero-padded at the end.
    Centre(usize),
    /// The first this-many samples (PANNs' rule); shorter clips are zero-padded at the end.
    Start(usize),
    /// Whole clips (evaluation); the batch is zero-padded to its longest clip and
    /// [`Batch::lengths`] gives each clip's true length.
    Full,
}

/// Which caption of a multi-caption clip a batch carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaptionPick {
    /// One caption drawn uniformly per clip per epoch (seeded; method-spec §5).
    #[default]
    Random,
    /// Always the first caption.
    First,
}

/// Loader settings. Start from [`LoaderConfig::train`] or [`LoaderConfig::eval`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoaderConfig {
    /// Target sample rate in Hz (clips are decoded to mono and resampled to it).
    pub sample_rate: u32,
    /// Clips per batch.
    pub batch_size: usize,
    /// Cropping rule.
    pub crop: Crop,
    /// Shuffle the example order each epoch (seeded).
    pub shuffle: bool,
    /// Drop the last, incomplete batch.
    pub drop_last: bool,
    /// Seed for shuffling, crops and caption choice.
    pub seed: u64,
    /// Caption choice for audio–text data.
    pub caption: CaptionPick,
    /// Directory of the on-disk cache of decoded, resampled audio (`None`: no disk cache).
    pub cache_dir: Option<PathBuf>,
    /// Keep decoded clips in memory after their first use (small datasets only).
    pub memory_cache: bool,
    /// Skip missing/corrupt files (counted and listed in [`Loader::report`]) instead of failing.
    pub skip_bad: bool,
    /// Number of batches prepared ahead of the consumer (at least 1).
    pub prefetch: usize,
    /// Decoding threads (`None`: rayon's global pool, one thread per core).
    pub threads: Option<usize>,
}

impl Default for LoaderConfig {
    fn default() -> Self {
        LoaderConfig {
            sample_rate: 32_000,
            batch_size: 32,
            crop: Crop::Full,
            shuffle: false,
            drop_last: false,
            seed: 0,
            caption: CaptionPick::First,
            cache_dir: None,
            memory_cache: false,
            skip_bad: false,
            prefetch: 2,
            threads: None,
        }
    }
}

impl LoaderConfig {
    /// Training: random crops of `crop_len` samples, shuffled, last incomplete batch dropped,
    /// one random caption per clip per epoch.
    pub fn train(sample_rate: u32, batch_size: usize, crop_len: usize) -> Self {
        LoaderConfig {
            sample_rate,
            batch_size,
            crop: Crop::Random(crop_len),
            shuffle: true,
            drop_last: true,
            caption: CaptionPick::Random,
            ..Default::default()
        }
    }

    /// Evaluation: whole clips in dataset order, every clip kept, first caption.
    pub fn eval(sample_rate: u32, batch_size: usize) -> Self {
        LoaderConfig {
            sample_rate,
            batch_size,
            crop: Crop::Full,
            shuffle: false,
            drop_last: false,
            caption: CaptionPick::First,
            ..Default::default()
        }
    }

    fn validate(&self) -> Result<()> {
        if self.sample_rate == 0 {
            return Err(DataError::Config("sample_rate must be positive".into()));
        }
        if self.batch_size == 0 {
            return Err(DataError::Config("batch_size must be positive".into()));
        }
        if let Crop::Random(0) | Crop::Centre(0) | Crop::Start(0) = self.crop {
            return Err(DataError::Config("crop length must be positive".into()));
        }
        if self.threads == Some(0) {
            return Err(DataError::Config("threads must be positive".into()));
        }
        Ok(())
    }
}

/// A batch of audio as a plain row-major buffer plus what is paired with each clip.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// The epoch this batch belongs to.
    pub epoch: u64,
    /// Position of the batch within its epoch.
    pub index: usize,
    /// Indices of the clips in [`Dataset::examples`].
    pub examples: Vec<usize>,
    /// Clip ids.
    pub clip_ids: Vec<String>,
    /// Audio, `[B, L]` row-major (`B = examples.len()`, `L = length`), zero-padded.
    pub audio: Vec<f32>,
    /// `L`, samples per row.
    pub length: usize,
    /// Number of real (non-padding) samples in each row.
    pub lengths: Vec<usize>,
    /// Class indices of each clip.
    pub labels: Vec<Vec<usize>>,
    /// Chosen caption of each clip (index into [`Example::captions`](crate::Example::captions)),
    /// `None` for clips without captions.
    pub captions: Vec<Option<usize>>,
    /// Image refs of each clip.
    pub images: Vec<Vec<ImageRef>>,
}

impl Batch {
    /// Number of clips.
    pub fn len(&self) -> usize {
        self.examples.len()
    }

    /// Whether the batch is empty (never yielded by the loader).
    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }

    /// The samples of row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.audio[i * self.length..(i + 1) * self.length]
    }

    /// `[B, num_classes]` multi-hot targets, row-major.
    pub fn multi_hot(&self, num_classes: usize) -> Vec<f32> {
        let mut out = vec![0.0; self.len() * num_classes];
        for (i, labels) in self.labels.iter().enumerate() {
            for &l in labels.iter().filter(|&&l| l < num_classes) {
                out[i * num_classes + l] = 1.0;
            }
        }
        out
    }

    /// One class index per clip, when every clip has exactly one label.
    pub fn class_targets(&self) -> Option<Vec<usize>> {
        self.labels
            .iter()
            .map(|l| if l.len() == 1 { Some(l[0]) } else { None })
            .collect()
    }

    /// The chosen caption texts.
    pub fn caption_texts<'a>(&self, dataset: &'a Dataset) -> Vec<Option<&'a str>> {
        self.examples
            .iter()
            .zip(&self.captions)
            .map(|(&e, c)| c.and_then(|c| dataset.examples[e].captions.get(c).map(String::as_str)))
            .collect()
    }
}

/// A file that was skipped because it was missing or could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedFile {
    /// Index of the clip in [`Dataset::examples`].
    pub index: usize,
    /// Clip id.
    pub clip_id: String,
    /// The bad file.
    pub path: PathBuf,
    /// Why it was skipped.
    pub reason: String,
}

/// What the loader left out, for the run's report. Nothing is dropped without appearing here.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataReport {
    /// Dataset name.
    pub dataset: String,
    /// Clips in the dataset.
    pub total: usize,
    /// Skipped clips, in dataset order.
    pub skipped: Vec<SkippedFile>,
}

impl DataReport {
    /// Number of skipped clips.
    pub fn skipped_count(&self) -> usize {
        self.skipped.len()
    }

    /// Number of clips in use.
    pub fn used(&self) -> usize {
        self.total - self.skipped.len()
    }
}

impl std::fmt::Display for DataReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "dataset `{}`: {} of {} clips used, {} skipped",
            self.dataset,
            self.used(),
            self.total,
            self.skipped.len()
        )?;
        for s in &self.skipped {
            write!(
                f,
                "\n  skipped `{}` ({}): {}",
                s.clip_id,
                s.path.display(),
                s.reason
            )?;
        }
        Ok(())
    }
}

/// Time spent waiting for data versus total time, to detect data-bound training.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DataTiming {
    /// Time the consumer spent blocked waiting for the next batch.
    pub waited: Duration,
    /// Wall time from the start of iteration to the last batch handed out.
    pub elapsed: Duration,
    /// Time the background thread spent assembling batches (decode, crop, copy).
    pub produce: Duration,
    /// Batches handed out.
    pub batches: u64,
}

impl DataTiming {
    /// Fraction of wall time spent waiting for data (0 when nothing was timed).
    pub fn wait_fraction(&self) -> f64 {
        if self.elapsed.is_zero() {
            0.0
        } else {
            self.waited.as_secs_f64() / self.elapsed.as_secs_f64()
        }
    }

    /// Whether more than `threshold` (e.g. 0.1) of the time went to waiting for data.
    pub fn is_data_bound(&self, threshold: f64) -> bool {
        self.wait_fraction() > threshold
    }

    fn add(&mut self, other: &DataTiming) {
        self.waited += other.waited;
        self.elapsed += other.elapsed;
        self.produce += other.produce;
        self.batches += other.batches;
    }
}

struct Inner {
    dataset: Dataset,
    config: LoaderConfig,
    active: Vec<usize>,
    cache: Option<AudioCache>,
    memory: Vec<OnceLock<Arc<Vec<f32>>>>,
    report: Mutex<DataReport>,
    pool: Option<rayon::ThreadPool>,
}

/// Batches over a dataset. See the [module documentation](self).
pub struct Loader {
    inner: Arc<Inner>,
    timing: Arc<Mutex<DataTiming>>,
}

impl std::fmt::Debug for Loader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loader")
            .field("dataset", &self.inner.dataset.name)
            .field("clips", &self.inner.active.len())
            .field("config", &self.inner.config)
            .finish()
    }
}

struct Item {
    index: usize,
    samples: Vec<f32>,
    length: usize,
    caption: Option<usize>,
}

impl Inner {
    fn install<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        match &self.pool {
            Some(pool) => pool.install(f),
            None => f(),
        }
    }

    /// Existence checks (audio, image files) for one example.
    fn check_files(&self, i: usize) -> Result<()> {
        let ex = &self.dataset.examples[i];
        if !ex.audio.is_file() {
            return Err(DataError::MissingFile {
                what: "audio",
                path: ex.audio.clone(),
                clip_id: ex.id.clone(),
            });
        }
        for img in &ex.images {
            if let ImageRef::File(p) = img
                && !p.is_file()
            {
                return Err(DataError::MissingFile {
                    what: "image",
                    path: p.clone(),
                    clip_id: ex.id.clone(),
                });
            }
        }
        Ok(())
    }

    /// Decodes (or fetches from cache) the whole clip of example `i` at the target rate.
    fn full_clip(&self, i: usize) -> Result<Arc<Vec<f32>>> {
        if let Some(s) = self.memory.get(i).and_then(OnceLock::get) {
            return Ok(Arc::clone(s));
        }
        let ex = &self.dataset.examples[i];
        let rate = self.config.sample_rate;
        if !ex.audio.is_file() {
            return Err(DataError::MissingFile {
                what: "audio",
                path: ex.audio.clone(),
                clip_id: ex.id.clone(),
            });
        }
        let cached = self.cache.as_ref().and_then(|c| c.get(&ex.audio, rate));
        let samples = match cached {
            Some(s) => s,
            None => {
                let s = accrue_audio::load(&ex.audio, rate).map_err(|source| DataError::Audio {
                    path: ex.audio.clone(),
                    clip_id: ex.id.clone(),
                    source,
                })?;
                if let Some(cache) = &self.cache
                    && let Err(e) = cache.put(&ex.audio, rate, &s)
                {
                    tracing::warn!("could not write the audio cache: {e}");
                }
                s
            }
        };
        let samples = Arc::new(samples);
        if self.config.memory_cache {
            let _ = self.memory[i].set(Arc::clone(&samples));
        }
        Ok(samples)
    }

    fn epoch_seed(&self, epoch: u64) -> u64 {
        mix2(self.config.seed, epoch)
    }

    fn order(&self, epoch: u64) -> Vec<usize> {
        let mut order = self.active.clone();
        if self.config.shuffle {
            let mut rng = StdRng::seed_from_u64(self.epoch_seed(epoch));
            order.shuffle(&mut rng);
        }
        order
    }

    fn item(&self, i: usize, epoch: u64) -> Result<Item> {
        let mut rng = StdRng::seed_from_u64(mix2(self.epoch_seed(epoch), i as u64));
        let n_caps = self.dataset.examples[i].captions.len();
        let caption = match (n_caps, self.config.caption) {
            (0, _) => None,
            (_, CaptionPick::First) => Some(0),
            (n, CaptionPick::Random) => Some(rng.random_range(0..n)),
        };
        let full = self.full_clip(i)?;
        let (samples, length) = match self.config.crop {
            Crop::Full => (full.as_ref().clone(), full.len()),
            Crop::Random(len) => (
                crop_or_pad(&full, len, CropMode::Random, &mut rng),
                full.len().min(len),
            ),
            Crop::Centre(len) => (
                crop_or_pad(&full, len, CropMode::Centre, &mut rng),
                full.len().min(len),
            ),
            Crop::Start(len) => (
                crop_or_pad(&full, len, CropMode::Start, &mut rng),
                full.len().min(len),
            ),
        };
        Ok(Item {
            index: i,
            samples,
            length,
            caption,
        })
    }

    fn record_skip(&self, i: usize, err: &DataError) {
        let ex = &self.dataset.examples[i];
        let path = match err {
            DataError::MissingFile { path, .. } | DataError::Audio { path, .. } => path.clone(),
            _ => ex.audio.clone(),
        };
        let mut report = self.report.lock().unwrap_or_else(|p| p.into_inner());
        if report.skipped.iter().any(|s| s.index == i) {
            return;
        }
        tracing::warn!("skipping clip `{}`: {err}", ex.id);
        report.skipped.push(SkippedFile {
            index: i,
            clip_id: ex.id.clone(),
            path,
            reason: err.to_string(),
        });
        report.skipped.sort_by_key(|s| s.index);
    }

    /// Builds batch `index` of `epoch` from its example indices. `Ok(None)`: every clip skipped.
    fn batch(&self, epoch: u64, index: usize, ids: &[usize]) -> Result<Option<Batch>> {
        let items: Vec<Result<Item>> =
            self.install(|| ids.par_iter().map(|&i| self.item(i, epoch)).collect());
        let mut good = Vec::with_capacity(items.len());
        for (r, &i) in items.into_iter().zip(ids) {
            match r {
                Ok(item) => good.push(item),
                Err(e) if self.config.skip_bad => self.record_skip(i, &e),
                Err(e) => return Err(e),
            }
        }
        if good.is_empty() {
            return Ok(None);
        }
        let length = good.iter().map(|it| it.samples.len()).max().unwrap_or(0);
        let mut audio = vec![0.0f32; good.len() * length];
        for (row, it) in good.iter().enumerate() {
            audio[row * length..row * length + it.samples.len()].copy_from_slice(&it.samples);
        }
        let ds = &self.dataset;
        Ok(Some(Batch {
            epoch,
            index,
            examples: good.iter().map(|it| it.index).collect(),
            clip_ids: good
                .iter()
                .map(|it| ds.examples[it.index].id.clone())
                .collect(),
            audio,
            length,
            lengths: good.iter().map(|it| it.length).collect(),
            labels: good
                .iter()
                .map(|it| ds.examples[it.index].labels.clone())
                .collect(),
            captions: good.iter().map(|it| it.caption).collect(),
            images: good
                .iter()
                .map(|it| ds.examples[it.index].images.clone())
                .collect(),
        }))
    }

    fn num_batches(&self) -> usize {
        let (n, b) = (self.active.len(), self.config.batch_size);
        if self.config.drop_last {
            n / b
        } else {
            n.div_ceil(b)
        }
    }
}

impl Loader {
    /// Checks every clip and returns a loader.
    ///
    /// Every clip's audio file (and image files, if any) must exist; with a disk or memory cache
    /// configured, every clip is also decoded and resampled now, in parallel, filling the cache.
    /// Bad clips make this fail with an error naming the (first) file, unless
    /// [`LoaderConfig::skip_bad`] is set, in which case they are left out and listed in
    /// [`Loader::report`]. Without a cache, a file that exists but does not decode is found when
    /// its batch is built, and handled the same way.
    pub fn new(dataset: Dataset, config: LoaderConfig) -> Result<Loader> {
        config.validate()?;
        let cache = config
            .cache_dir
            .as_ref()
            .map(AudioCache::open)
            .transpose()?;
        let pool = config
            .threads
            .map(|n| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .thread_name(|i| format!("accrue-data-{i}"))
                    .build()
                    .map_err(|e| DataError::Config(format!("cannot start decoding threads: {e}")))
            })
            .transpose()?;
        let n = dataset.len();
        let mut inner = Inner {
            report: Mutex::new(DataReport {
                dataset: dataset.name.clone(),
                total: n,
                skipped: Vec::new(),
            }),
            memory: (0..n).map(|_| OnceLock::new()).collect(),
            dataset,
            config,
            active: Vec::new(),
            cache,
            pool,
        };
        let decode = inner.cache.is_some() || inner.config.memory_cache;
        let started = Instant::now();
        let checks: Vec<Result<()>> = inner.install(|| {
            (0..n)
                .into_par_iter()
                .map(|i| {
                    inner.check_files(i)?;
                    if decode {
                        inner.full_clip(i)?;
                    }
                    Ok(())
                })
                .collect()
        });
        let mut bad = Vec::new();
        for (i, r) in checks.into_iter().enumerate() {
            match r {
                Ok(()) => inner.active.push(i),
                Err(e) => bad.push((i, e)),
            }
        }
        if !bad.is_empty() && !inner.config.skip_bad {
            let count = bad.len();
            let (_, first) = bad.swap_remove(0);
            return Err(if count == 1 {
                first
            } else {
                DataError::BadFiles {
                    first: Box::new(first),
                    count,
                }
            });
        }
        for (i, e) in &bad {
            inner.record_skip(*i, e);
        }
        tracing::info!(
            dataset = %inner.dataset.name,
            clips = inner.active.len(),
            skipped = bad.len(),
            decoded = decode,
            seconds = started.elapsed().as_secs_f64(),
            "data loader ready"
        );
        Ok(Loader {
            inner: Arc::new(inner),
            timing: Arc::new(Mutex::new(DataTiming::default())),
        })
    }

    /// The dataset (all clips, including skipped ones).
    pub fn dataset(&self) -> &Dataset {
        &self.inner.dataset
    }

    /// The configuration.
    pub fn config(&self) -> &LoaderConfig {
        &self.inner.config
    }

    /// Number of clips in use (dataset size minus clips skipped when the loader was built).
    pub fn len(&self) -> usize {
        self.inner.active.len()
    }

    /// Whether no clip is in use.
    pub fn is_empty(&self) -> bool {
        self.inner.active.is_empty()
    }

    /// Batches per epoch (fewer can be yielded when `skip_bad` drops a whole batch).
    pub fn num_batches(&self) -> usize {
        self.inner.num_batches()
    }

    /// The example order (indices into [`Dataset::examples`]) of an epoch.
    pub fn order(&self, epoch: u64) -> Vec<usize> {
        self.inner.order(epoch)
    }

    /// Skipped files so far.
    pub fn report(&self) -> DataReport {
        self.inner
            .report
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Data-wait accounting summed over all finished (dropped) epochs.
    pub fn timing(&self) -> DataTiming {
        *self.timing.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Disk-cache counters, when a disk cache is configured.
    pub fn cache_stats(&self) -> Option<CacheStats> {
        self.inner.cache.as_ref().map(AudioCache::stats)
    }

    /// The whole decoded clip of example `index` (served from the caches when possible).
    pub fn clip(&self, index: usize) -> Result<Arc<Vec<f32>>> {
        if index >= self.inner.dataset.len() {
            return Err(DataError::Config(format!(
                "clip index {index} out of range ({} clips)",
                self.inner.dataset.len()
            )));
        }
        self.inner.full_clip(index)
    }

    /// Iterates over the batches of `epoch`, prepared in the background.
    pub fn epoch(&self, epoch: u64) -> Epoch {
        self.epoch_from(epoch, 0)
    }

    /// Iterates over the batches of `epoch` starting at batch `start_batch` (for resuming):
    /// the batches are exactly those an uninterrupted epoch yields from that position on.
    pub fn epoch_from(&self, epoch: u64, start_batch: usize) -> Epoch {
        let (tx, rx) = sync_channel(self.inner.config.prefetch.max(1));
        let inner = Arc::clone(&self.inner);
        let produce_ns = Arc::new(AtomicU64::new(0));
        let produce = Arc::clone(&produce_ns);
        let handle = std::thread::Builder::new()
            .name("accrue-data-prefetch".into())
            .spawn(move || producer(inner, epoch, start_batch, tx, produce));
        let (rx, handle, early) = match handle {
            Ok(h) => (Some(rx), Some(h), None),
            Err(e) => (
                None,
                None,
                Some(DataError::Worker(format!(
                    "cannot start the prefetch thread: {e}"
                ))),
            ),
        };
        Epoch {
            rx,
            handle,
            early,
            started: Instant::now(),
            timing: DataTiming::default(),
            produce_ns,
            totals: Arc::clone(&self.timing),
            done: false,
        }
    }
}

enum Msg {
    Batch(Result<Batch>),
    Done,
}

fn producer(
    inner: Arc<Inner>,
    epoch: u64,
    start_batch: usize,
    tx: SyncSender<Msg>,
    produce_ns: Arc<AtomicU64>,
) {
    let order = inner.order(epoch);
    let b = inner.config.batch_size;
    for index in start_batch..inner.num_batches() {
        let ids = &order[index * b..((index + 1) * b).min(order.len())];
        let t = Instant::now();
        let result = inner.batch(epoch, index, ids);
        produce_ns.fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
        let msg = match result {
            Ok(Some(batch)) => Msg::Batch(Ok(batch)),
            Ok(None) => continue,
            Err(e) => {
                let _ = tx.send(Msg::Batch(Err(e)));
                return;
            }
        };
        if tx.send(msg).is_err() {
            return; // the consumer went away
        }
    }
    let _ = tx.send(Msg::Done);
}

/// The batches of one epoch; see [`Loader::epoch`]. Yields `Err` once (naming the file) and then
/// stops when a clip is bad and `skip_bad` is off.
pub struct Epoch {
    rx: Option<Receiver<Msg>>,
    handle: Option<JoinHandle<()>>,
    early: Option<DataError>,
    started: Instant,
    timing: DataTiming,
    produce_ns: Arc<AtomicU64>,
    totals: Arc<Mutex<DataTiming>>,
    done: bool,
}

impl Epoch {
    /// Data-wait accounting of this epoch so far.
    pub fn timing(&self) -> DataTiming {
        let mut t = self.timing;
        t.produce = Duration::from_nanos(self.produce_ns.load(Ordering::Relaxed));
        t
    }

    fn finish(&mut self) -> Option<DataError> {
        self.done = true;
        self.rx = None;
        match self.handle.take().map(JoinHandle::join) {
            Some(Err(panic)) => {
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panic".to_string());
                Some(DataError::Worker(msg))
            }
            _ => None,
        }
    }
}

impl Iterator for Epoch {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        if let Some(e) = self.early.take() {
            self.done = true;
            return Some(Err(e));
        }
        if self.done {
            return None;
        }
        let rx = self.rx.as_ref()?;
        let t = Instant::now();
        let msg = match rx.try_recv() {
            Ok(m) => Ok(m),
            Err(TryRecvError::Empty) => rx.recv().map_err(|_| ()),
            Err(TryRecvError::Disconnected) => Err(()),
        };
        self.timing.waited += t.elapsed();
        self.timing.elapsed = self.started.elapsed();
        match msg {
            Ok(Msg::Batch(Ok(b))) => {
                self.timing.batches += 1;
                Some(Ok(b))
            }
            Ok(Msg::Batch(Err(e))) => {
                let _ = self.finish();
                Some(Err(e))
            }
            Ok(Msg::Done) => {
                let _ = self.finish();
                None
            }
            Err(()) => Some(Err(self.finish().unwrap_or_else(|| {
                DataError::Worker("the prefetch thread ended without finishing the epoch".into())
            }))),
        }
    }
}

impl Drop for Epoch {
    fn drop(&mut self) {
        self.rx = None;
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        let t = self.timing();
        self.totals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .add(&t);
    }
}
