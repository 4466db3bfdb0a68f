//! Band-limited resampling with `rubato`.
//!
//! Clips are resampled whole with rubato's synchronous FFT resampler (windowed-sinc anti-alias
//! filter applied in the frequency domain, exact for any rational ratio). Its startup delay is
//! trimmed, so the output is time-aligned with the input and has `ceil(len · to / from)`
//! samples. Accepted rates: [`MIN_RATE`]..=[`MAX_RATE`] Hz on either side.

use audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler, WindowFunction};

use crate::error::{AudioError, Result};

/// Lowest accepted sample rate (Hz).
pub const MIN_RATE: u32 = 1_000;
/// Highest accepted sample rate (Hz).
pub const MAX_RATE: u32 = 192_000;

/// FFT chunk size asked of rubato (frames); rubato rounds it to fit the ratio.
const CHUNK: usize = 1024;

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

fn check_rate(rate: u32) -> Result<()> {
    if (MIN_RATE..=MAX_RATE).contains(&rate) {
        Ok(())
    } else {
        Err(AudioError::SampleRate {
            rate,
            min: MIN_RATE,
            max: MAX_RATE,
        })
    }
}

/// Resamples a mono clip from `from_rate` to `to_rate` Hz.
///
/// Equal rates return a copy. The output has `ceil(len · to / from)` samples.
pub fn resample(samples: &[f32], from_rate: u32, to_rate: u32) -> Result<Vec<f32>> {
    check_rate(from_rate)?;
    check_rate(to_rate)?;
    if from_rate == to_rate || samples.is_empty() {
        return Ok(samples.to_vec());
    }
    let err = |detail: String| AudioError::Resample {
        from: from_rate,
        to: to_rate,
        detail,
    };
    // rubato's FFT block is a multiple k of the minimal block (rate / gcd on each side). An odd
    // block size shifts the output by half an input sample (the window is centred between two
    // samples), so k is made even whenever a minimal block is odd.
    let gcd = gcd(from_rate as usize, to_rate as usize);
    let (min_in, min_out) = (from_rate as usize / gcd, to_rate as usize / gcd);
    let mut k = CHUNK.div_ceil(min_in).max(1);
    if k % 2 == 1 && (min_in % 2 == 1 || min_out % 2 == 1) {
        k += 1;
    }
    let mut resampler = Fft::<f32>::new_custom(
        from_rate as usize,
        to_rate as usize,
        k * min_in,
        1,
        1,
        WindowFunction::BlackmanHarris2,
        FixedSync::Both,
    )
    .map_err(|e| err(e.to_string()))?;
    let input = InterleavedSlice::new(samples, 1, samples.len()).map_err(|e| err(e.to_string()))?;
    let out = resampler
        .process_all(&input, samples.len(), None)
        .map_err(|e| err(e.to_string()))?;
    Ok(out.take_data())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(rate: u32, freq: f64, secs: f64) -> Vec<f32> {
        let n = (f64::from(rate) * secs) as usize;
        (0..n)
            .map(|i| (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin() as f32)
            .collect()
    }

    #[test]
    fn output_length_and_alignment() {
        let x = sine(44_100, 1000.0, 1.0);
        let y = resample(&x, 44_100, 32_000).unwrap();
        assert_eq!(y.len(), 32_000);
        // Time-aligned: the interior matches the analytic sine at the new rate.
        let reference = sine(32_000, 1000.0, 1.0);
        let err: f64 = y[2000..30_000]
            .iter()
            .zip(&reference[2000..30_000])
            .map(|(a, b)| f64::from(a - b).powi(2))
            .sum::<f64>()
            / 28_000.0;
        let snr = 10.0 * (0.5 / err).log10();
        assert!(snr > 80.0, "SNR {snr:.1} dB against the analytic sine");
    }

    #[test]
    fn rejects_out_of_range_rates() {
        assert!(matches!(
            resample(&[0.0; 10], 500, 32_000),
            Err(AudioError::SampleRate { rate: 500, .. })
        ));
        assert!(matches!(
            resample(&[0.0; 10], 32_000, 384_000),
            Err(AudioError::SampleRate { .. })
        ));
    }

    #[test]
    fn every_rate_in_range_works() {
        for &rate in &[
            5_000, 8_000, 11_025, 16_000, 22_050, 44_100, 48_000, 96_000, 192_000,
        ] {
            let x = sine(rate, 440.0, 0.25);
            let y = resample(&x, rate, 32_000).unwrap();
            let expected = (x.len() as f64 * 32_000.0 / f64::from(rate)).ceil() as usize;
            assert_eq!(y.len(), expected, "rate {rate}");
        }
    }
}
