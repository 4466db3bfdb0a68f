//! Band-limited resampling with `rubato`.
//!
//! Clips are resampled whole with rubato's synchronous FFT resampler (windowed-sinc anti-alias
//! filter applied in the frequency domain, exact for any rational ratio). Its startup delay is
//! trimmed, so the output is time-aligned with the input and has `ceil(len · to / from)`
//! samples. Accepted rates: [`MIN_RATE`]..=[`MAX_RATE`] Hz on either side.

use audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Indexing, Resampler, WindowFunction};

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
    let err = |e: String| resample_error(from_rate, to_rate, e);
    let mut resampler = make_resampler(from_rate, to_rate)?;
    let input = InterleavedSlice::new(samples, 1, samples.len()).map_err(|e| err(e.to_string()))?;
    let out = resampler
        .process_all(&input, samples.len(), None)
        .map_err(|e| err(e.to_string()))?;
    Ok(out.take_data())
}

/// [`resample`] over a stream in bounded memory: feed consecutive runs of samples with
/// [`StreamResampler::push`], then call [`StreamResampler::finish`]; the concatenated output is
/// exactly (bit for bit) [`resample`] of the concatenated input, whatever the run lengths.
pub struct StreamResampler {
    /// `None` for equal rates (a pass-through).
    inner: Option<Fft<f32>>,
    from: u32,
    to: u32,
    /// Input not yet processed (less than one block after each push).
    pending: Vec<f32>,
    /// Output frames of rubato's start-up delay still to drop.
    to_drop: usize,
    consumed: usize,
    emitted: usize,
    out_buf: Vec<f32>,
}

impl StreamResampler {
    /// A resampler from `from_rate` to `to_rate` Hz.
    ///
    /// # Errors
    /// A rate outside [`MIN_RATE`]..=[`MAX_RATE`].
    pub fn new(from_rate: u32, to_rate: u32) -> Result<Self> {
        check_rate(from_rate)?;
        check_rate(to_rate)?;
        let inner = (from_rate != to_rate)
            .then(|| make_resampler(from_rate, to_rate))
            .transpose()?;
        let to_drop = inner.as_ref().map_or(0, |r| r.output_delay());
        let out_buf = vec![0.0; inner.as_ref().map_or(0, |r| r.output_frames_max())];
        Ok(Self {
            inner,
            from: from_rate,
            to: to_rate,
            pending: Vec::new(),
            to_drop,
            consumed: 0,
            emitted: 0,
            out_buf,
        })
    }

    /// Resamples what `input` completes, appending the output to `out`.
    ///
    /// # Errors
    /// A resampler failure.
    pub fn push(&mut self, input: &[f32], out: &mut Vec<f32>) -> Result<()> {
        self.consumed += input.len();
        let Some(r) = &self.inner else {
            out.extend_from_slice(input);
            self.emitted += input.len();
            return Ok(());
        };
        let block = r.input_frames_next();
        self.pending.extend_from_slice(input);
        // As rubato's `process_all`: whole blocks while more than one block is left; the rest
        // (at most one block) waits for more input or for `finish`.
        let mut start = 0;
        while self.pending.len() - start > block {
            let n = self.process(start, None, out)?;
            start += n;
        }
        self.pending.drain(..start);
        Ok(())
    }

    /// Processes `pending[start..]` (`partial`: that many frames, zero-filled to a block);
    /// returns the input frames used.
    fn process(
        &mut self,
        start: usize,
        partial: Option<usize>,
        out: &mut Vec<f32>,
    ) -> Result<usize> {
        let (from, to) = (self.from, self.to);
        let err = |e: String| resample_error(from, to, e);
        let Some(r) = self.inner.as_mut() else {
            return Ok(0);
        };
        let avail = &self.pending[start..];
        let input = InterleavedSlice::new(avail, 1, avail.len()).map_err(|e| err(e.to_string()))?;
        let frames = self.out_buf.len();
        let mut output = InterleavedSlice::new_mut(&mut self.out_buf, 1, frames)
            .map_err(|e| err(e.to_string()))?;
        let indexing = Indexing {
            input_offset: 0,
            output_offset: 0,
            active_channels_mask: None,
            partial_len: partial,
        };
        let (used, produced) = r
            .process_into_buffer(&input, &mut output, Some(&indexing))
            .map_err(|e| err(e.to_string()))?;
        let drop = self.to_drop.min(produced);
        self.to_drop -= drop;
        out.extend_from_slice(&self.out_buf[drop..produced]);
        self.emitted += produced - drop;
        Ok(used)
    }

    /// Flushes the rest, appending it to `out`; the whole output then has
    /// `ceil(len · to / from)` samples.
    ///
    /// # Errors
    /// A resampler failure.
    pub fn finish(mut self, out: &mut Vec<f32>) -> Result<()> {
        let Some(r) = &self.inner else {
            return Ok(());
        };
        let ratio = r.resample_ratio();
        let expected = (ratio * self.consumed as f64).ceil() as usize;
        let mut tail = Vec::new();
        if !self.pending.is_empty() {
            let n = self.pending.len();
            self.process(0, Some(n), &mut tail)?;
            self.pending.clear();
        }
        // Zeros until the output covers the input (rubato's `process_all` pumps the same way).
        let mut guard = 0;
        while self.emitted < expected {
            self.process(0, Some(0), &mut tail)?;
            guard += 1;
            if guard > 1_000 {
                return Err(resample_error(
                    self.from,
                    self.to,
                    "the resampler stopped producing output".into(),
                ));
            }
        }
        let keep = tail.len() - (self.emitted - expected);
        out.extend_from_slice(&tail[..keep]);
        Ok(())
    }
}

fn resample_error(from: u32, to: u32, detail: String) -> AudioError {
    AudioError::Resample { from, to, detail }
}

fn make_resampler(from_rate: u32, to_rate: u32) -> Result<Fft<f32>> {
    let err = |e: String| resample_error(from_rate, to_rate, e);
    // rubato's FFT block is a multiple k of the minimal block (rate / gcd on each side). An odd
    // block size shifts the output by half an input sample (the window is centred between two
    // samples), so k is made even whenever a minimal block is odd.
    let gcd = gcd(from_rate as usize, to_rate as usize);
    let (min_in, min_out) = (from_rate as usize / gcd, to_rate as usize / gcd);
    let mut k = CHUNK.div_ceil(min_in).max(1);
    if k % 2 == 1 && (min_in % 2 == 1 || min_out % 2 == 1) {
        k += 1;
    }
    Fft::<f32>::new_custom(
        from_rate as usize,
        to_rate as usize,
        k * min_in,
        1,
        1,
        WindowFunction::BlackmanHarris2,
        FixedSync::Both,
    )
    .map_err(|e| err(e.to_string()))
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
    fn streamed_equals_whole_bit_for_bit() {
        let mut rng = 12345u64;
        let mut noise = |n: usize| -> Vec<f32> {
            (0..n)
                .map(|_| {
                    rng = rng
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((rng >> 40) as f32 / (1u64 << 24) as f32) - 0.5
                })
                .collect()
        };
        for &(from, to) in &[
            (44_100, 32_000),
            (48_000, 32_000),
            (22_050, 32_000),
            (5_000, 32_000),
            (32_000, 32_000),
            (32_000, 48_000),
        ] {
            for &len in &[1usize, 777, 44_100, 100_003] {
                let x = noise(len);
                let whole = resample(&x, from, to).unwrap();
                for &run in &[1usize, 333, 1024, 4096, 65_536] {
                    let mut s = StreamResampler::new(from, to).unwrap();
                    let mut out = Vec::new();
                    for c in x.chunks(run) {
                        s.push(c, &mut out).unwrap();
                    }
                    s.finish(&mut out).unwrap();
                    assert_eq!(
                        out.len(),
                        whole.len(),
                        "{from}->{to}, len {len}, runs of {run}"
                    );
                    assert!(
                        out.iter()
                            .zip(&whole)
                            .all(|(a, b)| a.to_bits() == b.to_bits()),
                        "{from}->{to}, len {len}, runs of {run}: values differ"
                    );
                }
            }
        }
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
