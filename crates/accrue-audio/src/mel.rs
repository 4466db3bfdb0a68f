//! Mel scales and the Slaney mel filterbank, computed as `librosa.filters.mel` does.
//!
//! Reference: librosa 0.11 `librosa/filters.py::mel` and `librosa/core/convert.py::{hz_to_mel,
//! mel_to_hz, mel_frequencies}`; method-spec §1.2 step 4. Everything is computed in `f64` and
//! rounded once to `f32` (librosa's default output dtype).

/// Which mel scale to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MelScale {
    /// Slaney's Auditory Toolbox scale: linear below 1 kHz, logarithmic above (librosa's
    /// default, `htk=False`; what PANNs uses).
    #[default]
    Slaney,
    /// The HTK formula `2595·log10(1 + f/700)`.
    Htk,
}

/// How each triangular filter is normalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MelNorm {
    /// Slaney area normalisation: each triangle scaled by `2 / (f_{m+2} − f_m)` (librosa's
    /// default `norm="slaney"`; what PANNs uses).
    #[default]
    Slaney,
    /// Unnormalised triangles with peak 1.
    None,
    /// Each filter divided by its sum (librosa `norm=1.0`, what the aisfx checkpoint used).
    UnitSum,
}

const F_SP: f64 = 200.0 / 3.0;
const MIN_LOG_HZ: f64 = 1000.0;
const MIN_LOG_MEL: f64 = MIN_LOG_HZ / F_SP;

fn log_step() -> f64 {
    6.4f64.ln() / 27.0
}

/// Hertz to mels.
pub fn hz_to_mel(hz: f64, scale: MelScale) -> f64 {
    match scale {
        MelScale::Htk => 2595.0 * (1.0 + hz / 700.0).log10(),
        MelScale::Slaney => {
            if hz >= MIN_LOG_HZ {
                MIN_LOG_MEL + (hz / MIN_LOG_HZ).ln() / log_step()
            } else {
                hz / F_SP
            }
        }
    }
}

/// Mels to hertz.
pub fn mel_to_hz(mel: f64, scale: MelScale) -> f64 {
    match scale {
        MelScale::Htk => 700.0 * (10f64.powf(mel / 2595.0) - 1.0),
        MelScale::Slaney => {
            if mel >= MIN_LOG_MEL {
                MIN_LOG_HZ * (log_step() * (mel - MIN_LOG_MEL)).exp()
            } else {
                F_SP * mel
            }
        }
    }
}

/// `n` frequencies (Hz) evenly spaced on the mel scale between `f_min` and `f_max` inclusive
/// (`librosa.mel_frequencies`).
pub fn mel_frequencies(n: usize, f_min: f64, f_max: f64, scale: MelScale) -> Vec<f64> {
    let lo = hz_to_mel(f_min, scale);
    let hi = hz_to_mel(f_max, scale);
    // numpy.linspace: start + i·step, with the last point pinned to `stop`.
    let step = if n > 1 {
        (hi - lo) / (n - 1) as f64
    } else {
        0.0
    };
    (0..n)
        .map(|i| {
            let m = if i + 1 == n && n > 1 {
                hi
            } else {
                i as f64 * step + lo
            };
            mel_to_hz(m, scale)
        })
        .collect()
}

/// The mel filterbank as a row-major `[n_fft/2 + 1, n_mels]` matrix (PANNs' `melW` layout, the
/// transpose of librosa's `[n_mels, n_fft/2 + 1]`), so that `mel = power · melW`.
pub fn mel_filterbank(
    sample_rate: f64,
    n_fft: usize,
    n_mels: usize,
    f_min: f64,
    f_max: f64,
    scale: MelScale,
    norm: MelNorm,
) -> Vec<f32> {
    let n_freqs = n_fft / 2 + 1;
    let fft_freqs: Vec<f64> = (0..n_freqs)
        .map(|k| k as f64 * sample_rate / n_fft as f64)
        .collect();
    let mel_f = mel_frequencies(n_mels + 2, f_min, f_max, scale);
    let fdiff: Vec<f64> = mel_f.windows(2).map(|w| w[1] - w[0]).collect();
    let mut w = vec![0f32; n_freqs * n_mels];
    for m in 0..n_mels {
        // librosa stores each triangle as f32, then normalises it.
        let tri: Vec<f32> = fft_freqs
            .iter()
            .map(|&f| {
                let lower = -(mel_f[m] - f) / fdiff[m];
                let upper = (mel_f[m + 2] - f) / fdiff[m + 1];
                lower.min(upper).max(0.0) as f32
            })
            .collect();
        match norm {
            MelNorm::UnitSum => {
                // librosa.util.normalize(norm=1): divide by the L1 norm, in float32.
                let sum: f32 = tri.iter().sum();
                let sum = if sum > 0.0 { sum } else { 1.0 };
                for (k, &v) in tri.iter().enumerate() {
                    w[k * n_mels + m] = v / sum;
                }
            }
            MelNorm::Slaney | MelNorm::None => {
                let enorm = match norm {
                    MelNorm::Slaney => 2.0 / (mel_f[m + 2] - mel_f[m]),
                    _ => 1.0,
                };
                for (k, &v) in tri.iter().enumerate() {
                    w[k * n_mels + m] = (f64::from(v) * enorm) as f32;
                }
            }
        }
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slaney_scale_round_trips_and_is_linear_below_1khz() {
        for &hz in &[0.0, 50.0, 440.0, 999.0, 1000.0, 4000.0, 14_000.0] {
            let m = hz_to_mel(hz, MelScale::Slaney);
            assert!((mel_to_hz(m, MelScale::Slaney) - hz).abs() < 1e-9);
        }
        assert!((hz_to_mel(600.0, MelScale::Slaney) - 9.0).abs() < 1e-12);
        assert!((hz_to_mel(1000.0, MelScale::Slaney) - 15.0).abs() < 1e-12);
    }

    #[test]
    fn triangles_have_slaney_area() {
        let w = mel_filterbank(
            32_000.0,
            1024,
            64,
            50.0,
            14_000.0,
            MelScale::Slaney,
            MelNorm::Slaney,
        );
        assert_eq!(w.len(), 513 * 64);
        // Every filter is non-negative and non-empty.
        for m in 0..64 {
            let col: Vec<f32> = (0..513).map(|k| w[k * 64 + m]).collect();
            assert!(col.iter().all(|&v| v >= 0.0));
            assert!(col.iter().any(|&v| v > 0.0), "filter {m} is empty");
        }
    }
}
