//! The PANNs log-mel front end as a Burn module.
//!
//! Paper: Kong et al., "PANNs: Large-Scale Pretrained Audio Neural Networks for Audio Pattern
//! Recognition", TASLP 2020. Reference implementation:
//! `qiuqiangkong/torchlibrosa@f32fd82935c34eb3a2713fc89c4fe68edff61cce` (`torchlibrosa/stft.py`: `Spectrogram`, `LogmelFilterBank`; `augmentation.py`:
//! `SpecAugmentation`) as used by `qiuqiangkong/audioset_tagging_cnn:pytorch/models.py`.
//! Exact specification: method-spec §1.1–1.3.
//!
//! Pipeline, for a batch of waveforms `[B, L]`:
//! (optional peak normalisation) → reflect- or zero-pad `n_fft/2` → STFT with a periodic Hann window → power (`re² + im²`) →
//! `· melW` (Slaney mel filterbank) → `10·log10(max(x, amin)) − 10·log10(max(amin, ref))`
//! (optional top-dB clipping) → `[B, 1, T, n_mels]` → `bn0` over the mel axis →
//! SpecAugment (training mode only).
//!
//! The STFT runs either as an FFT ([`StftImpl::Fft`], fast, the default) or as a matrix product
//! with the stored `conv_real`/`conv_imag` kernels ([`StftImpl::Kernels`], the torchlibrosa
//! computation, bit-for-bit the kernels of a loaded checkpoint). Both are differentiable and run
//! on every backend. The kernels and `melW` are frozen parameters, so a PANNs checkpoint loads
//! into this module unchanged (see [`panns_key_remaps`]).

use burn::config::Config;
use burn::module::{Flag, Module, Param};
use burn::tensor::ops::PadMode;
use burn::tensor::signal::rfft;
use burn::tensor::{Device, Distribution, Tensor, TensorData};

use crate::error::{AudioError, Result};
use crate::mel::{MelNorm, MelScale, mel_filterbank};
use accrue_core::nn::{BatchNorm, BatchNormConfig};
use std::sync::Arc;

/// How the STFT is computed.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum StftImpl {
    /// Real FFT of Hann-windowed frames (`burn::tensor::signal::stft`). Needs a power-of-two
    /// `n_fft`. Ignores the stored kernels.
    Fft,
    /// Frames times the stored `conv_real`/`conv_imag` kernels, as torchlibrosa's strided
    /// convolution computes it. Use it to reproduce a checkpoint's own kernels exactly.
    Kernels,
}

/// How frames are padded at the clip's edges (`center=True`).
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum EdgePad {
    /// Reflect `n_fft/2` samples (torchlibrosa, PyTorch `stft`; PANNs).
    Reflect,
    /// Zeros (librosa ≥ 0.10 `pad_mode="constant"`; the aisfx checkpoint).
    Constant,
}

/// How mel power is compressed.
#[derive(Config, Debug, Copy, PartialEq)]
pub enum Compression {
    /// `10·log10(max(x, amin)) − 10·log10(max(amin, ref))` with optional top-dB clipping (PANNs).
    Db,
    /// `(log10(gain·x + 1) − min) / (max − min)`: Essentia's "shift_scale_log" followed by the
    /// min–max scaling of the aisfx package (`gain` 1e4, `min` 0, `max` 9.457798957824707).
    ShiftScaleLog {
        /// Multiplier inside the log.
        gain: f64,
        /// Value mapped to 0.
        min: f64,
        /// Value mapped to 1.
        max: f64,
    },
}

/// SpecAugment as torchlibrosa's `SpecAugmentation` (method-spec §1.3): per example, on the
/// time axis first, then the frequency axis, `stripes` times: a width `w ~ U{0, …, drop_width−1}`
/// and a start `s ~ U{0, …, total − w − 1}`; the stripe `[s, s + w)` is set to zero.
#[derive(Config, Debug)]
pub struct SpecAugmentConfig {
    /// Maximum time-stripe width + 1 (frames).
    #[config(default = 64)]
    pub time_drop_width: usize,
    /// Number of time stripes.
    #[config(default = 2)]
    pub time_stripes_num: usize,
    /// Maximum frequency-stripe width + 1 (mel bins).
    #[config(default = 8)]
    pub freq_drop_width: usize,
    /// Number of frequency stripes.
    #[config(default = 2)]
    pub freq_stripes_num: usize,
}

impl SpecAugmentConfig {
    /// PANNs' setting: `SpecAugmentation(64, 2, 8, 2)`.
    pub fn panns() -> Self {
        Self::new()
    }
}

/// Configuration of the [`FrontEnd`].
#[derive(Config, Debug)]
pub struct FrontEndConfig {
    /// Sample rate of the input waveform (Hz).
    pub sample_rate: u32,
    /// FFT size = window length (samples).
    pub n_fft: usize,
    /// Hop between frames (samples).
    pub hop_length: usize,
    /// Number of mel bins.
    pub n_mels: usize,
    /// Lowest mel-filter edge (Hz).
    pub f_min: f64,
    /// Highest mel-filter edge (Hz); at most `sample_rate / 2`.
    pub f_max: f64,
    /// Floor of the power before the log (`amin`).
    #[config(default = 1e-10)]
    pub amin: f64,
    /// Reference power of 0 dB (`ref`).
    #[config(default = 1.0)]
    pub ref_value: f64,
    /// Clip the log-mel to `max − top_db` (torchlibrosa's rule, global max of the batch);
    /// `None` in PANNs.
    #[config(default = "None")]
    pub top_db: Option<f64>,
    /// Mel scale.
    #[config(default = "MelScale::Slaney")]
    pub mel_scale: MelScale,
    /// Filter normalisation.
    #[config(default = "MelNorm::Slaney")]
    pub mel_norm: MelNorm,
    /// How the STFT is computed.
    #[config(default = "StftImpl::Fft")]
    pub stft_impl: StftImpl,
    /// Edge padding of the centred frames.
    #[config(default = "EdgePad::Reflect")]
    pub edge_pad: EdgePad,
    /// Compression of the mel power.
    #[config(default = "Compression::Db")]
    pub compression: Compression,
    /// Divide each waveform by its peak absolute value first (the aisfx package does).
    #[config(default = false)]
    pub peak_normalize: bool,
    /// Apply `bn0` (a learned batch norm over the mel bins). PANNs: yes; aisfx: no — then
    /// [`FrontEnd::forward`] returns the compressed mel unchanged (the `bn0` module is still
    /// built, at identity, so that every front end has the same fields).
    #[config(default = true)]
    pub use_bn0: bool,
    /// SpecAugment applied in training mode after `bn0`; `None` disables it.
    #[config(default = "Some(SpecAugmentConfig::panns())")]
    pub spec_augment: Option<SpecAugmentConfig>,
    /// Inputs shorter than this are zero-padded at the end before the STFT (method-spec §1.1;
    /// at least `n_fft/2 + 1` is always enforced, since reflect padding needs it).
    #[config(default = 0)]
    pub min_samples: usize,
}

impl FrontEndConfig {
    /// PANNs' front end (method-spec §1.2): 32 kHz, window 1024, hop 320, 64 Slaney mels over
    /// 50–14 000 Hz, `amin` 1e-10, no top-dB, SpecAugment(64, 2, 8, 2) in training.
    pub fn panns_32k() -> Self {
        Self::new(32_000, 1024, 320, 64, 50.0, 14_000.0)
    }

    /// The 44.1 kHz front end of the `aisfx` checkpoint, as its package computes it with librosa
    /// (`aisfx/spectrogram/spectrogram_librosa.py` + `preprocessing.spectrogram_normalize`):
    /// peak-normalised waveform, window 2048, hop 1024, zero edge padding, power 2, 96 HTK mels
    /// over 0–22 050 Hz with unit-sum filters, `log10(10⁴·x + 1) / 9.4578`, no `bn0`, no
    /// SpecAugment.
    pub fn aisfx_44k() -> Self {
        Self::new(44_100, 2048, 1024, 96, 0.0, 22_050.0)
            .with_spec_augment(None)
            .with_mel_scale(MelScale::Htk)
            .with_mel_norm(MelNorm::UnitSum)
            .with_edge_pad(EdgePad::Constant)
            .with_compression(Compression::ShiftScaleLog {
                gain: 1e4,
                min: 0.0,
                max: 9.457_798_957_824_707,
            })
            .with_peak_normalize(true)
            .with_use_bn0(false)
    }

    /// This configuration with `min_samples` raised to what a network with `time_poolings`
    /// ×2 time poolings needs ([`crate::crop::min_samples`]): shorter inputs are zero-padded
    /// (as PANNs pads short clips) instead of failing inside the pooling.
    pub fn padded_for_poolings(&self, time_poolings: u32) -> Self {
        Self {
            min_samples: self
                .min_samples
                .max(crate::crop::min_samples(self.hop_length, time_poolings)),
            ..self.clone()
        }
    }

    /// Number of frequency bins of the one-sided STFT.
    pub fn n_freqs(&self) -> usize {
        self.n_fft / 2 + 1
    }

    /// Number of STFT frames for an input of `len` samples (after padding to the minimum).
    pub fn n_frames(&self, len: usize) -> usize {
        1 + len.max(self.effective_min_samples()) / self.hop_length
    }

    fn effective_min_samples(&self) -> usize {
        self.min_samples.max(self.n_fft / 2 + 1)
    }

    /// Checks the configuration; [`FrontEndConfig::init`] panics on what this rejects.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(AudioError::Config(m));
        if self.n_fft < 2 || self.hop_length == 0 || self.n_mels == 0 {
            return bad(format!(
                "n_fft ({}) must be ≥ 2 and hop_length ({}) and n_mels ({}) ≥ 1",
                self.n_fft, self.hop_length, self.n_mels
            ));
        }
        if self.stft_impl == StftImpl::Fft && !self.n_fft.is_power_of_two() {
            return bad(format!(
                "StftImpl::Fft needs a power-of-two n_fft, got {}; use StftImpl::Kernels",
                self.n_fft
            ));
        }
        if self.hop_length > self.n_fft {
            return bad(format!(
                "hop_length {} exceeds n_fft {}",
                self.hop_length, self.n_fft
            ));
        }
        let nyquist = f64::from(self.sample_rate) / 2.0;
        if !(0.0 <= self.f_min && self.f_min < self.f_max && self.f_max <= nyquist) {
            return bad(format!(
                "need 0 ≤ f_min ({}) < f_max ({}) ≤ Nyquist ({nyquist})",
                self.f_min, self.f_max
            ));
        }
        if !(self.amin > 0.0 && self.ref_value > 0.0) {
            return bad("amin and ref_value must be positive".into());
        }
        Ok(())
    }

    /// Builds the front end with computed kernels and mel matrix and a fresh `bn0`.
    ///
    /// # Panics
    /// On a configuration that [`FrontEndConfig::validate`] rejects.
    pub fn init(&self, device: &Device) -> FrontEnd {
        if let Err(e) = self.validate() {
            panic!("{e}");
        }
        let (real, imag) = stft_kernels(self.n_fft);
        let f = self.n_freqs();
        let frozen3 = |v: Vec<f32>| {
            Param::from_tensor(Tensor::<3>::from_data(
                TensorData::new(v, [f, 1, self.n_fft]),
                device,
            ))
            .set_require_grad(false)
        };
        let mel = mel_filterbank(
            f64::from(self.sample_rate),
            self.n_fft,
            self.n_mels,
            self.f_min,
            self.f_max,
            self.mel_scale,
            self.mel_norm,
        );
        FrontEnd {
            spectrogram_extractor: Spectrogram {
                stft: ConvStft {
                    conv_real: KernelWeight {
                        weight: frozen3(real),
                    },
                    conv_imag: KernelWeight {
                        weight: frozen3(imag),
                    },
                },
            },
            logmel_extractor: LogMelFilterBank {
                mel_w: Param::from_tensor(Tensor::<2>::from_data(
                    TensorData::new(mel, [f, self.n_mels]),
                    device,
                ))
                .set_require_grad(false),
            },
            bn0: BatchNormConfig::new(self.n_mels).init(device),
            training: Param::from_bool(true),
            config: self.clone(),
        }
    }
}

/// Periodic-Hann-windowed DFT kernels `[F·n_fft]` each (row-major `[F, 1, n_fft]`), computed in
/// `f64` as torchlibrosa's `STFT` does: `real[k, n] = w[n]·cos(2πkn/N)`,
/// `imag[k, n] = −w[n]·sin(2πkn/N)`.
pub fn stft_kernels(n_fft: usize) -> (Vec<f32>, Vec<f32>) {
    let f = n_fft / 2 + 1;
    let n = n_fft as f64;
    let window: Vec<f64> = (0..n_fft)
        .map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n).cos())
        .collect();
    let mut real = Vec::with_capacity(f * n_fft);
    let mut imag = Vec::with_capacity(f * n_fft);
    for k in 0..f {
        for (i, w) in window.iter().enumerate() {
            // Reduce k·i modulo N first: exact integer phase, no large-angle rounding.
            let phase = 2.0 * std::f64::consts::PI * ((k * i) % n_fft) as f64 / n;
            real.push((w * phase.cos()) as f32);
            imag.push((-w * phase.sin()) as f32);
        }
    }
    (real, imag)
}

/// The periodic Hann window of length `n` (`scipy.signal.get_window("hann", n, fftbins=True)`).
pub fn hann_periodic(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos()) as f32)
        .collect()
}

/// One stored convolution kernel (`…conv_real.weight`), `[n_freqs, 1, n_fft]`, frozen.
#[derive(Module, Debug)]
pub struct KernelWeight {
    /// The kernel, `[n_fft/2 + 1, 1, n_fft]`.
    pub weight: Param<Tensor<3>>,
}

/// torchlibrosa's `STFT`: the two DFT kernels.
#[derive(Module, Debug)]
pub struct ConvStft {
    /// Real part: windowed cosines.
    pub conv_real: KernelWeight,
    /// Imaginary part: negated windowed sines.
    pub conv_imag: KernelWeight,
}

/// torchlibrosa's `Spectrogram` (checkpoint prefix `spectrogram_extractor`).
#[derive(Module, Debug)]
pub struct Spectrogram {
    /// The STFT kernels (checkpoint prefix `spectrogram_extractor.stft`).
    pub stft: ConvStft,
}

/// torchlibrosa's `LogmelFilterBank` (checkpoint prefix `logmel_extractor`).
#[derive(Module, Debug)]
pub struct LogMelFilterBank {
    /// The mel matrix `[n_fft/2 + 1, n_mels]` (checkpoint key `logmel_extractor.melW`).
    pub mel_w: Param<Tensor<2>>,
}

/// The PANNs front end: waveform → log-mel → `bn0` → SpecAugment (training only).
#[derive(Module, Debug)]
pub struct FrontEnd {
    /// STFT kernels (frozen).
    pub spectrogram_extractor: Spectrogram,
    /// Mel filterbank (frozen).
    pub logmel_extractor: LogMelFilterBank,
    /// Batch norm over the mel bins (trainable, with running statistics; PyTorch semantics).
    pub bn0: BatchNorm,
    /// Whether SpecAugment is active (also requires an autodiff device, like dropout).
    pub training: Param<Flag>,
    /// The configuration it was built from.
    #[module(skip)]
    pub config: FrontEndConfig,
}

/// Key remappings from a PANNs/torchlibrosa checkpoint to this module's field paths, as
/// `(regex, replacement)` pairs for burn-store. Prefix-agnostic: a model that holds the front
/// end under a field still matches after its own prefix remap.
pub fn panns_key_remaps() -> Vec<(String, String)> {
    vec![(
        r"^(.*)logmel_extractor\.melW$".to_string(),
        "${1}logmel_extractor.mel_w".to_string(),
    )]
}

impl FrontEnd {
    /// The full front end.
    ///
    /// # Shapes
    /// - `wave`: `[B, L]` mono waveform at `config.sample_rate`
    /// - output: `[B, 1, T, n_mels]` with `T = 1 + ⌊max(L, min_samples)/hop⌋`
    pub fn forward(&self, wave: Tensor<2>) -> Tensor<4> {
        self.forward_logmel(self.logmel(wave))
    }

    /// The front end after the log-mel: `bn0`, then SpecAugment (training mode only).
    ///
    /// # Shapes
    /// - `x`: `[B, 1, T, n_mels]` from [`Self::logmel`] or [`Self::logmel_memoized`]
    /// - output: `[B, 1, T, n_mels]`
    pub fn forward_logmel(&self, x: Tensor<4>) -> Tensor<4> {
        let x = if self.config.use_bn0 {
            self.apply_bn0(x)
        } else {
            x
        };
        match &self.config.spec_augment {
            Some(cfg) if self.training.is_enabled() && x.device().is_autodiff() => {
                spec_augment(x, cfg)
            }
            _ => x,
        }
    }

    /// `bn0` over the mel axis: `[B, 1, T, M]` → transpose to `[B, M, T, 1]` → BN → back.
    pub fn apply_bn0(&self, x: Tensor<4>) -> Tensor<4> {
        self.bn0.forward(x.swap_dims(1, 3)).swap_dims(1, 3)
    }

    /// What makes this front end's log-mel what it is: the xxh3-128 of its configuration (less
    /// `bn0` and SpecAugment, which act after the log-mel), its mel matrix and (when
    /// [`StftImpl::Kernels`] uses them) its STFT kernels. Two front ends
    /// with equal fingerprints compute equal log-mels of the same clip.
    pub fn fingerprint(&self) -> u128 {
        // Only what comes before the log-mel's output: `bn0` and SpecAugment act after it.
        let mut config = self.config.clone();
        config.use_bn0 = true;
        config.spec_augment = None;
        let mut bytes = format!("{config:?}").into_bytes();
        let mut push = |t: TensorData| bytes.extend_from_slice(t.as_bytes());
        push(self.logmel_extractor.mel_w.val().to_data());
        if self.config.stft_impl == StftImpl::Kernels {
            let stft = &self.spectrogram_extractor.stft;
            for kernel in [&stft.conv_real, &stft.conv_imag] {
                push(kernel.weight.val().to_data());
            }
        }
        accrue_core::hash::xxh3_128(&bytes)
    }

    /// [`Self::logmel`] of `rows` clips of equal length stored row-major in `audio` (at the
    /// configured sample rate), each row served from the process's memo ([`crate::memo`]) when
    /// a front end with the same [`Self::fingerprint`] has computed it for the same samples,
    /// and computed (then added) otherwise. The result equals [`Self::logmel`] of the whole
    /// batch to the bit. A batch-wide `top_db`, or a memo with no budget, computes the batch
    /// as [`Self::logmel`] does.
    ///
    /// # Shapes
    /// - `audio`: `rows · L` samples
    /// - output: `[rows, 1, T, n_mels]` on the front end's device (where [`Self::logmel`]
    ///   puts it)
    ///
    /// # Errors
    /// [`AudioError::InvalidArgument`] when `audio` does not split into `rows` equal clips.
    pub fn logmel_memoized(&self, audio: &[f32], rows: usize) -> Result<Tensor<4>> {
        let device = &self.logmel_extractor.mel_w.val().device();
        if rows == 0 || audio.is_empty() || audio.len() % rows != 0 {
            return Err(AudioError::InvalidArgument(format!(
                "{} samples do not split into {rows} clips of equal length",
                audio.len()
            )));
        }
        let len = audio.len() / rows;
        let batch = |audio: &[f32]| {
            let n = audio.len() / len;
            Tensor::<1>::from_floats(audio, device).reshape([n, len])
        };
        if self.config.top_db.is_some() || !crate::memo::enabled() {
            return Ok(self.logmel(batch(audio)));
        }
        let fingerprint = self.fingerprint();
        let keys: Vec<u128> = audio
            .chunks_exact(len)
            .map(accrue_core::hash::xxh3_128_f32)
            .collect();
        let mut found = crate::memo::lookup(fingerprint, &keys);
        let missing: Vec<usize> = (0..rows).filter(|&i| found[i].is_none()).collect();
        if !missing.is_empty() {
            let mut wave = Vec::with_capacity(missing.len() * len);
            for &i in &missing {
                wave.extend_from_slice(&audio[i * len..(i + 1) * len]);
            }
            let computed = self
                .logmel(batch(&wave))
                .into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .map_err(|e| AudioError::InvalidArgument(format!("log-mel data: {e:?}")))?;
            let per_row = computed.len() / missing.len();
            for (&i, row) in missing.iter().zip(computed.chunks_exact(per_row)) {
                let row: Arc<[f32]> = Arc::from(row);
                crate::memo::insert(fingerprint, keys[i], row.clone());
                found[i] = Some(row);
            }
        }
        let m = self.config.n_mels;
        let mut out = Vec::new();
        for row in found.iter().flatten() {
            out.extend_from_slice(row);
        }
        let t = out.len() / (rows * m);
        Ok(Tensor::<4>::from_data(
            TensorData::new(out, [rows, 1, t, m]),
            device,
        ))
    }

    /// Log-mel spectrogram before `bn0` (dB).
    ///
    /// # Shapes
    /// - `wave`: `[B, L]`
    /// - output: `[B, 1, T, n_mels]`
    pub fn logmel(&self, wave: Tensor<2>) -> Tensor<4> {
        let power = self.power_spectrogram(wave);
        let [b, t, f] = power.dims();
        let m = self.config.n_mels;
        let mel = power
            .reshape([b * t, f])
            .matmul(self.logmel_extractor.mel_w.val());
        let out = match self.config.compression {
            Compression::Db => {
                let db = mel.clamp_min(self.config.amin).log() * (10.0 / std::f64::consts::LN_10)
                    - 10.0 * self.config.amin.max(self.config.ref_value).log10();
                match self.config.top_db {
                    Some(top) => {
                        let max = db.clone().max().into_scalar::<f32>();
                        db.clamp_min(f64::from(max) - top)
                    }
                    None => db,
                }
            }
            Compression::ShiftScaleLog { gain, min, max } => {
                let l = (mel * gain + 1.0).log() / std::f64::consts::LN_10;
                (l - min) / (max - min)
            }
        };
        out.reshape([b, 1, t, m])
    }

    /// Power spectrogram `re² + im²`.
    ///
    /// # Shapes
    /// - `wave`: `[B, L]`
    /// - output: `[B, T, n_fft/2 + 1]`
    pub fn power_spectrogram(&self, wave: Tensor<2>) -> Tensor<3> {
        let cfg = &self.config;
        let [b, len] = wave.dims();
        let min = cfg.effective_min_samples();
        let wave = if len < min {
            wave.pad([(0, 0), (0, min - len)], PadMode::Constant(0.0))
        } else {
            wave
        };
        let device = wave.device();
        let wave = if cfg.peak_normalize {
            // x / max|x| per clip; an all-zero clip is left as is (the package divides by 1).
            let peak = wave.clone().abs().max_dim(1);
            let peak = peak.clone().mask_fill(peak.equal_elem(0.0), 1.0);
            wave / peak
        } else {
            wave
        };
        let edge = match cfg.edge_pad {
            EdgePad::Reflect => PadMode::Reflect,
            EdgePad::Constant => PadMode::Constant(0.0),
        };
        match cfg.stft_impl {
            StftImpl::Fft => {
                // Same framing as `burn::tensor::signal::stft` (reflect pad, unfold, window),
                // then one real FFT along the frame axis; power straight from (re, im) without
                // stacking them into a [B, T, F, 2] tensor first.
                let n = cfg.n_fft;
                let half = n / 2;
                let padded = wave.pad([(0, 0), (half, half)], edge);
                let frames: Tensor<3> = padded.unfold(1, n, cfg.hop_length); // [B, T, N]
                let window =
                    Tensor::<1>::from_data(TensorData::new(hann_periodic(n), [n]), &device)
                        .reshape([1, 1, n]);
                let (re, im) = rfft(frames * window, 2, Some(n)); // [B, T, F] each
                re.clone() * re + im.clone() * im
            }
            StftImpl::Kernels => {
                let n = cfg.n_fft;
                let half = n / 2;
                let padded = wave.pad([(0, 0), (half, half)], edge);
                let frames: Tensor<3> = padded.unfold(1, n, cfg.hop_length); // [B, T, N]
                let [_, t, _] = frames.dims();
                let f = cfg.n_freqs();
                let real = self
                    .spectrogram_extractor
                    .stft
                    .conv_real
                    .weight
                    .val()
                    .reshape([f, n]);
                let imag = self
                    .spectrogram_extractor
                    .stft
                    .conv_imag
                    .weight
                    .val()
                    .reshape([f, n]);
                let kernels = Tensor::cat(vec![real, imag], 0).transpose(); // [N, 2F]
                let spec = frames.reshape([b * t, n]).matmul(kernels); // [B·T, 2F]
                let re = spec.clone().slice([0..b * t, 0..f]);
                let im = spec.slice([0..b * t, f..2 * f]);
                (re.powi_scalar(2) + im.powi_scalar(2)).reshape([b, t, f])
            }
        }
    }

    /// Largest absolute difference between the stored STFT kernels and freshly computed
    /// periodic-Hann kernels. A loaded PANNs checkpoint should give ≈1e-7; a larger value means
    /// the checkpoint used other kernels and [`StftImpl::Kernels`] should be used.
    pub fn kernel_deviation(&self) -> f32 {
        let (real, imag) = stft_kernels(self.config.n_fft);
        let stored_r = self
            .spectrogram_extractor
            .stft
            .conv_real
            .weight
            .val()
            .into_data();
        let stored_i = self
            .spectrogram_extractor
            .stft
            .conv_imag
            .weight
            .val()
            .into_data();
        let dev = |a: &[f32], b: TensorData| match b.try_to_vec::<f32>() {
            Ok(v) => a
                .iter()
                .zip(v.iter())
                .map(|(x, y)| (x - y).abs())
                .fold(0f32, f32::max),
            Err(_) => f32::INFINITY,
        };
        dev(&real, stored_r).max(dev(&imag, stored_i))
    }
}

/// Log-mel frames of a long signal in bounded memory: the same frames as
/// [`FrontEnd::logmel`] over the whole signal, computed a block at a time.
///
/// Frame `j` is centred on sample `j·hop` and reads `n_fft` samples around it; a block of
/// frames is computed on a window that starts `C = ⌈n_fft/2 / hop⌉` frames before the block
/// (so its frames never see the window's edge padding) and ends at the last sample the block
/// reads. Only the signal's own start and end are padded, exactly as the whole-signal front end
/// pads them, so the concatenated blocks are the whole signal's frames (tested bit for bit).
/// Memory: one window, `block_frames + C` frames of samples. Settings that need the whole
/// signal (`top_db`, peak normalisation) are refused.
pub struct LogMelStream<'a> {
    front: &'a FrontEnd,
    device: Device,
    block: usize,
    context: usize,
    /// Samples from `buf_start` on.
    buf: Vec<f32>,
    buf_start: usize,
    total: usize,
    next_frame: usize,
}

impl<'a> LogMelStream<'a> {
    /// A stream over `front` computing `block_frames` frames (at least 64) per pass on `device`.
    ///
    /// # Errors
    /// [`AudioError::Config`] when the front end needs whole-signal statistics.
    pub fn new(front: &'a FrontEnd, block_frames: usize, device: &Device) -> Result<Self> {
        let cfg = &front.config;
        if cfg.top_db.is_some() || cfg.peak_normalize {
            return Err(AudioError::Config(
                "a streamed log-mel needs a front end without top_db and peak normalisation \
                 (both depend on the whole signal)"
                    .into(),
            ));
        }
        Ok(Self {
            front,
            device: device.clone(),
            block: block_frames.max(64),
            context: (cfg.n_fft / 2).div_ceil(cfg.hop_length),
            buf: Vec::new(),
            buf_start: 0,
            total: 0,
            next_frame: 0,
        })
    }

    /// Frames of `buf[..len]` starting at frame `from` of the window, `count` of them (or all to
    /// the end when `None`), to `sink` as `[frames · n_mels]` row-major values.
    fn emit(
        &self,
        len: usize,
        from: usize,
        count: Option<usize>,
        sink: &mut dyn FnMut(&[f32], usize),
    ) -> Result<usize> {
        let wave = Tensor::<1>::from_floats(&self.buf[..len], &self.device).reshape([1, len]);
        let x = self.front.logmel(wave); // [1, 1, T, M]
        let [_, _, t, m] = x.dims();
        let to = count.map_or(t, |c| (from + c).min(t));
        if from >= to {
            return Ok(0);
        }
        let rows = x.slice([0..1, 0..1, from..to, 0..m]);
        let values = rows
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .map_err(|e| AudioError::Config(format!("reading log-mel frames: {e:?}")))?;
        sink(&values, to - from);
        Ok(to - from)
    }

    /// Adds samples; every block of frames they complete goes to `sink` (values `[frames ·
    /// n_mels]`, frame count).
    ///
    /// # Errors
    /// A tensor read-back failure.
    pub fn push(&mut self, samples: &[f32], sink: &mut dyn FnMut(&[f32], usize)) -> Result<()> {
        self.buf.extend_from_slice(samples);
        self.total += samples.len();
        let (hop, half) = (self.front.config.hop_length, self.front.config.n_fft / 2);
        loop {
            // The block's last frame reads up to this sample (exclusive).
            let end = (self.next_frame + self.block - 1) * hop + half;
            if end > self.total {
                return Ok(());
            }
            let from = self.next_frame - self.buf_start / hop;
            let n = self.emit(end - self.buf_start, from, Some(self.block), sink)?;
            self.next_frame += n;
            let start = self.next_frame.saturating_sub(self.context) * hop;
            self.buf.drain(..start - self.buf_start);
            self.buf_start = start;
        }
    }

    /// Emits the remaining frames; returns the number of frames of the whole signal
    /// (`1 + ⌊max(L, min_samples)/hop⌋`, as [`FrontEnd::logmel`]).
    ///
    /// # Errors
    /// A tensor read-back failure.
    pub fn finish(self, sink: &mut dyn FnMut(&[f32], usize)) -> Result<usize> {
        let hop = self.front.config.hop_length;
        if self.total == 0 {
            return Ok(0);
        }
        let from = self.next_frame - self.buf_start / hop;
        let n = self.emit(self.buf.len(), from, None, sink)?;
        Ok(self.next_frame + n)
    }
}

/// Applies SpecAugment to `[B, C, T, M]` log-mels (zeros in the normalised domain), drawing the
/// stripes from Burn's seeded RNG on the tensor's device.
pub fn spec_augment(x: Tensor<4>, cfg: &SpecAugmentConfig) -> Tensor<4> {
    let [b, _, t, m] = x.dims();
    let device = x.device();
    let n_draws = 2 * (cfg.time_stripes_num + cfg.freq_stripes_num);
    if b == 0 || n_draws == 0 {
        return x;
    }
    let u: Vec<f32> = Tensor::<2>::random([b, n_draws], Distribution::Uniform(0.0, 1.0), &device)
        .into_data()
        .try_to_vec()
        .unwrap_or_else(|_| vec![0.0; b * n_draws]);
    let mut time_mask = vec![1f32; b * t];
    let mut freq_mask = vec![1f32; b * m];
    let uniform_int = |u: f32, n: usize| ((u * n as f32) as usize).min(n.saturating_sub(1));
    for n in 0..b {
        let mut draws = u[n * n_draws..(n + 1) * n_draws].iter().copied();
        let mut stripes = |mask: &mut [f32], total: usize, width: usize, count: usize| {
            for _ in 0..count {
                let (Some(a), Some(c)) = (draws.next(), draws.next()) else {
                    return;
                };
                let w = uniform_int(a, width.max(1)).min(total.saturating_sub(1));
                let s = uniform_int(c, total - w);
                mask[s..s + w].iter_mut().for_each(|v| *v = 0.0);
            }
        };
        stripes(
            &mut time_mask[n * t..(n + 1) * t],
            t,
            cfg.time_drop_width,
            cfg.time_stripes_num,
        );
        stripes(
            &mut freq_mask[n * m..(n + 1) * m],
            m,
            cfg.freq_drop_width,
            cfg.freq_stripes_num,
        );
    }
    let tm = Tensor::<4>::from_data(TensorData::new(time_mask, [b, 1, t, 1]), &device);
    let fm = Tensor::<4>::from_data(TensorData::new(freq_mask, [b, 1, 1, m]), &device);
    x * tm * fm
}

/// Mixup (PANNs' `do_mixup`, method-spec §1.3): for a batch of `2N` items and `N` coefficients,
/// item `i` of the output is `λ_i·x[2i] + (1 − λ_i)·x[2i + 1]`.
///
/// # Shapes
/// - `x`: `[2N, …]`
/// - output: `[N, …]`
pub fn mixup<const D: usize>(x: Tensor<D>, lambdas: &[f32]) -> Result<Tensor<D>> {
    let dims = x.dims();
    let n = lambdas.len();
    if dims[0] != 2 * n {
        return Err(AudioError::Config(format!(
            "mixup needs 2·{n} items for {n} coefficients, got {}",
            dims[0]
        )));
    }
    let device = x.device();
    let even = Tensor::<1, burn::tensor::Int>::from_data(
        TensorData::new((0..n).map(|i| (2 * i) as i64).collect::<Vec<_>>(), [n]),
        &device,
    );
    let odd = even.clone() + 1;
    let mut shape = [1usize; D];
    shape[0] = n;
    let lam =
        Tensor::<1>::from_data(TensorData::new(lambdas.to_vec(), [n]), &device).reshape(shape);
    let a = x.clone().select(0, even);
    let b = x.select(0, odd);
    Ok(a * lam.clone() + b * (lam.neg() + 1.0))
}

/// Draws `n` mixup coefficients from `Beta(alpha, alpha)` (PANNs: `alpha = 1`).
pub fn mixup_lambdas<R: rand::Rng + ?Sized>(n: usize, alpha: f64, rng: &mut R) -> Result<Vec<f32>> {
    use rand_distr::Distribution as _;
    let beta = rand_distr::Beta::new(alpha, alpha)
        .map_err(|e| AudioError::Config(format!("mixup alpha {alpha}: {e}")))?;
    Ok((0..n).map(|_| beta.sample(rng) as f32).collect())
}
