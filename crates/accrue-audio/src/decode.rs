//! Decoding audio files to mono `f32` samples with symphonia.
//!
//! Supported: WAV (PCM 8/16/24/32-bit integer and 32/64-bit float), FLAC, OGG/Vorbis, MP3
//! (and whatever else symphonia's `all-codecs`/`all-formats` features bring: AIFF, CAF, MP4/AAC,
//! MKV). Channels are mixed down to mono by averaging. Integer PCM is scaled to `[-1, 1]`;
//! 16-bit PCM follows [`Int16Scale`] so that features match the reference pipeline exactly.
//!
//! Every failure is an [`AudioError`] naming the file; no input makes this module panic.

use std::fs::File;
use std::path::{Path, PathBuf};

use symphonia::core::audio::GenericAudioBufferRef;
use symphonia::core::codecs::audio::{AudioCodecId, AudioDecoderOptions};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::{MediaSource, MediaSourceStream};
use symphonia::core::meta::MetadataOptions;

use crate::error::{AudioError, Result};

/// How 16-bit integer PCM is mapped to floats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Int16Scale {
    /// Divide by 32 767, as PANNs' `int16_to_float32` does (method-spec §1.1). Default.
    #[default]
    Panns,
    /// Divide by 32 768, as libsndfile, librosa and symphonia do.
    Full,
}

/// Options of [`decode_file_with`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Scaling of 16-bit PCM.
    pub int16_scale: Int16Scale,
}

/// A decoded clip: mono samples at the file's own rate.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// Mono samples (channel average), nominally in `[-1, 1]`.
    pub samples: Vec<f32>,
    /// The file's sample rate in Hz.
    pub sample_rate: u32,
    /// Number of channels in the file before the mix-down.
    pub channels: usize,
}

impl Decoded {
    /// Duration in seconds.
    pub fn duration_s(&self) -> f64 {
        self.samples.len() as f64 / f64::from(self.sample_rate)
    }
}

/// Decodes an audio file to mono with default options ([`Int16Scale::Panns`]).
pub fn decode_file(path: &Path) -> Result<Decoded> {
    decode_file_with(path, DecodeOptions::default())
}

/// Decodes an audio file to mono.
pub fn decode_file_with(path: &Path, options: DecodeOptions) -> Result<Decoded> {
    let file = open_audio(path)?;
    decode_source(Box::new(file), hint_for(path), path.to_path_buf(), options)
}

/// A format hint from the file name's extension.
fn hint_for(name: &Path) -> Hint {
    let mut hint = Hint::new();
    if let Some(ext) = name.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    hint
}

fn open_audio(path: &Path) -> Result<File> {
    // Opening a directory succeeds on Unix; the decoder would then call it "unsupported".
    if path.is_dir() {
        return Err(AudioError::Unreadable {
            path: path.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::IsADirectory,
                "a directory, not an audio file",
            ),
        });
    }
    File::open(path).map_err(|source| AudioError::Unreadable {
        path: path.to_path_buf(),
        source,
    })
}

/// Decodes an in-memory encoded file (`name` is used in error messages and, through its
/// extension, as a format hint).
pub fn decode_bytes(bytes: Vec<u8>, name: &str, options: DecodeOptions) -> Result<Decoded> {
    decode_source(
        Box::new(std::io::Cursor::new(bytes)),
        hint_for(Path::new(name)),
        PathBuf::from(name),
        options,
    )
}

/// Where decoded runs go: the buffer may be taken (the whole-file decode keeps it without a
/// copy); whatever is left in it is discarded after the call.
type RunSink<'a> = dyn FnMut(&mut Vec<f32>, u32) -> Result<()> + 'a;

/// [`decode_source_inner`] with the decoder's own panics caught: a malformed header can make
/// symphonia overflow an integer (a panic in builds with overflow checks, found by fuzzing), and
/// a bad file must be an error naming it, never a crash.
fn decode_source(
    source: Box<dyn MediaSource>,
    hint: Hint,
    path: PathBuf,
    options: DecodeOptions,
) -> Result<Decoded> {
    let mut samples = Vec::new();
    let info = decode_source_streamed(source, hint, path, options, usize::MAX, &mut |run, _| {
        // One run for the whole file (`chunk` = MAX): kept as it is, not copied.
        if samples.is_empty() {
            samples = std::mem::take(run);
        } else {
            samples.extend_from_slice(run);
        }
        Ok(())
    })?;
    Ok(Decoded {
        samples,
        sample_rate: info.sample_rate,
        channels: info.channels,
    })
}

fn decode_source_streamed(
    source: Box<dyn MediaSource>,
    hint: Hint,
    path: PathBuf,
    options: DecodeOptions,
    chunk: usize,
    sink: &mut RunSink<'_>,
) -> Result<StreamInfo> {
    let name = path.clone();
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        decode_source_inner(source, hint, path, options, chunk, sink)
    }))
    .unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".into());
        Err(AudioError::Corrupt {
            path: name,
            detail: format!("the decoder failed on a malformed stream ({why})"),
        })
    })
}

/// What a streamed decode ([`decode_file_streamed`]) saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamInfo {
    /// The file's sample rate in Hz.
    pub sample_rate: u32,
    /// Number of channels in the file before the mix-down.
    pub channels: usize,
    /// Mono samples delivered.
    pub samples: usize,
}

/// Decodes an audio file to mono in bounded memory: `sink` receives consecutive runs of
/// samples (each at least `chunk` long, except the last) with the file's sample rate, already
/// scaled and checked exactly as [`decode_file_with`] scales and checks the whole file; the
/// concatenation of the runs is [`decode_file_with`]'s output. An error may come after some
/// runs were delivered (a corrupt packet late in the file).
///
/// # Errors
/// As [`decode_file_with`], and any error `sink` returns.
pub fn decode_file_streamed(
    path: &Path,
    options: DecodeOptions,
    chunk: usize,
    sink: &mut dyn FnMut(&[f32], u32) -> Result<()>,
) -> Result<StreamInfo> {
    let file = open_audio(path)?;
    decode_source_streamed(
        Box::new(file),
        hint_for(path),
        path.to_path_buf(),
        options,
        chunk.max(1),
        &mut |run, rate| sink(run, rate),
    )
}

/// Decoded samples on their way to a sink: scaled and checked per run.
struct Runs<'a> {
    buf: Vec<f32>,
    delivered: usize,
    scale16: bool,
    path: &'a Path,
    sink: &'a mut RunSink<'a>,
}

impl Runs<'_> {
    fn flush(&mut self, rate: u32) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        // symphonia maps 16-bit PCM (in any container: WAV, FLAC, …) to v / 32768 exactly;
        // PANNs divides by 32767.
        if self.scale16 {
            let k = 32_768.0f64 / 32_767.0;
            for v in &mut self.buf {
                *v = (f64::from(*v) * k) as f32;
            }
        }
        check_samples_at(&self.buf, self.path, self.delivered)?;
        self.delivered += self.buf.len();
        (self.sink)(&mut self.buf, rate)?;
        self.buf.clear();
        Ok(())
    }

    fn total(&self) -> usize {
        self.delivered + self.buf.len()
    }
}

fn decode_source_inner(
    source: Box<dyn MediaSource>,
    hint: Hint,
    path: PathBuf,
    options: DecodeOptions,
    chunk: usize,
    sink: &mut RunSink<'_>,
) -> Result<StreamInfo> {
    let mss = MediaSourceStream::new(source, Default::default());
    let mut format = symphonia::default::get_probe()
        .probe(
            &hint,
            mss,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(|e| classify(e, &path))?;

    let track = format
        .default_track(TrackType::Audio)
        .ok_or_else(|| AudioError::Unsupported {
            path: path.clone(),
            detail: "no audio track".into(),
        })?;
    let track_id = track.id;
    // Only lossless codecs announce an exact frame count; lossy ones pad or trim (encoder delay).
    let params_frames = track.num_frames.filter(|_| {
        track
            .codec_params
            .as_ref()
            .and_then(|p| p.audio())
            .is_some_and(|p| is_exact_length_codec(p.codec))
    });
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or_else(|| AudioError::Unsupported {
            path: path.clone(),
            detail: "track has no audio codec parameters".into(),
        })?
        .clone();
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(&params, &AudioDecoderOptions::default())
        .map_err(|e| classify(e, &path))?;

    let mut runs = Runs {
        buf: Vec::new(),
        delivered: 0,
        scale16: params.bits_per_sample == Some(16) && options.int16_scale == Int16Scale::Panns,
        path: &path,
        sink,
    };
    let mut sample_rate = params.sample_rate;
    let mut channels = params.channels.as_ref().map(|c| c.count()).unwrap_or(0);
    let mut planes: Vec<Vec<f32>> = Vec::new();

    loop {
        let packet = match format.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => break,
            // A stream that ends mid-packet: symphonia reports an unexpected EOF.
            Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(AudioError::Corrupt {
                    path: path.clone(),
                    detail: format!("stream truncated after {} decoded samples", runs.total()),
                });
            }
            Err(e) => return Err(classify(e, &path)),
        };
        if packet.track_id != track_id {
            continue;
        }
        let buf = decoder.decode(&packet).map_err(|e| classify(e, &path))?;
        let spec = buf.spec();
        sample_rate = Some(spec.rate());
        channels = spec.channels().count();
        mix_down(&buf, &mut planes, &mut runs.buf);
        if runs.buf.len() >= chunk {
            runs.flush(spec.rate())?;
        }
    }

    let sample_rate = sample_rate.ok_or_else(|| AudioError::Unsupported {
        path: path.clone(),
        detail: "unknown sample rate".into(),
    })?;
    let total = runs.total();
    if total == 0 {
        return Err(AudioError::Empty { path });
    }
    if let Some(expected) = params_frames
        && (total as u64) < expected
    {
        return Err(AudioError::Corrupt {
            path: path.clone(),
            detail: format!(
                "stream truncated: header announces {expected} frames, only {total} decoded"
            ),
        });
    }
    runs.flush(sample_rate)?;
    Ok(StreamInfo {
        sample_rate,
        channels: channels.max(1),
        samples: total,
    })
}

/// Checks decoded (or caller-supplied) samples the way every decoded file is checked: all
/// finite, none beyond ±[`MAX_ABS_SAMPLE`]. `path` names the source in the error (a file, or
/// a description such as an array row).
///
/// # Errors
/// [`AudioError::NonFinite`] or [`AudioError::OutOfRange`].
pub fn check_samples(mono: &[f32], path: &Path) -> Result<()> {
    check_samples_at(mono, path, 0)
}

/// [`check_samples`] for a run of samples starting at sample `offset` of its source (the
/// error gives the index in the source).
fn check_samples_at(mono: &[f32], path: &Path, offset: usize) -> Result<()> {
    let mut bad = mono.iter().enumerate().filter(|(_, v)| !v.is_finite());
    if let Some((first_index, _)) = bad.next() {
        let count = 1 + bad.count();
        return Err(AudioError::NonFinite {
            path: path.to_path_buf(),
            count,
            first_index: offset + first_index,
        });
    }
    if let Some((index, peak)) = mono
        .iter()
        .map(|v| v.abs())
        .enumerate()
        .filter(|(_, v)| *v > MAX_ABS_SAMPLE)
        .max_by(|a, b| a.1.total_cmp(&b.1))
    {
        return Err(AudioError::OutOfRange {
            path: path.to_path_buf(),
            peak,
            index: offset + index,
            limit: MAX_ABS_SAMPLE,
        });
    }
    Ok(())
}

/// The largest accepted absolute sample value: a frame of 1,024 samples at this amplitude keeps
/// the power spectrum (≈ (1024·A)²) and its mel sums well inside f32; real float audio is in
/// [-1, 1] (clipped masters exceed it slightly).
pub const MAX_ABS_SAMPLE: f32 = 1e6;

/// Appends the channel average of `buf` to `mono`.
fn mix_down(buf: &GenericAudioBufferRef<'_>, planes: &mut Vec<Vec<f32>>, mono: &mut Vec<f32>) {
    let frames = buf.frames();
    if frames == 0 {
        return;
    }
    buf.copy_to_vecs_planar(planes);
    let n = planes.len().max(1) as f32;
    let start = mono.len();
    mono.resize(start + frames, 0.0);
    for plane in planes.iter() {
        for (o, &s) in mono[start..].iter_mut().zip(plane.iter()) {
            *o += s;
        }
    }
    if n > 1.0 {
        for o in &mut mono[start..] {
            *o /= n;
        }
    }
}

fn is_exact_length_codec(id: AudioCodecId) -> bool {
    use symphonia::core::codecs::audio::well_known::*;
    (CODEC_ID_PCM_S32LE..=CODEC_ID_PCM_MULAW).contains(&id) || id == CODEC_ID_FLAC
}

fn classify(e: SymError, path: &Path) -> AudioError {
    let path = path.to_path_buf();
    match e {
        SymError::Unsupported(what) => AudioError::Unsupported {
            path,
            detail: what.to_string(),
        },
        SymError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            AudioError::Corrupt {
                path,
                detail: "unexpected end of stream".into(),
            }
        }
        SymError::IoError(source) => AudioError::Unreadable { path, source },
        other => AudioError::Corrupt {
            path,
            detail: other.to_string(),
        },
    }
}
