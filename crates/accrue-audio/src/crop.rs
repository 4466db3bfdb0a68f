//! Cropping and padding clips to a fixed length.
//!
//! PANNs trained on exactly 10-s clips (zero-padded at the end or truncated, method-spec §1.1);
//! contrastive stages crop long clips at random for training and use the centre or the full clip
//! for evaluation (§5).

use rand::{Rng, RngExt};

/// How to bring a clip to a fixed length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CropMode {
    /// A window starting at a uniformly drawn offset (training).
    Random,
    /// The centre window (deterministic evaluation).
    Centre,
    /// The first `len` samples (PANNs' truncation rule).
    Start,
    /// Keep the whole clip; only pad it when it is shorter than `len`.
    Full,
}

/// Crops `samples` to `len` samples with `mode`, or zero-pads them at the end when shorter.
///
/// With [`CropMode::Full`] a longer clip is returned whole. `rng` is only drawn from by
/// [`CropMode::Random`] on a clip longer than `len`.
pub fn crop_or_pad<R: Rng + ?Sized>(
    samples: &[f32],
    len: usize,
    mode: CropMode,
    rng: &mut R,
) -> Vec<f32> {
    if samples.len() <= len {
        return pad_to(samples, len);
    }
    let excess = samples.len() - len;
    let start = match mode {
        CropMode::Full => return samples.to_vec(),
        CropMode::Start => 0,
        CropMode::Centre => excess / 2,
        CropMode::Random => rng.random_range(0..=excess),
    };
    samples[start..start + len].to_vec()
}

/// Zero-pads `samples` at the end to at least `min_len` samples (a longer clip is copied as is).
pub fn pad_to(samples: &[f32], min_len: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(samples.len().max(min_len));
    out.extend_from_slice(samples);
    if out.len() < min_len {
        out.resize(min_len, 0.0);
    }
    out
}

/// The shortest clip, in samples, that a PANNs-style network with `time_poolings` ×2 time
/// poolings can take: the STFT must give at least `2^time_poolings` frames (method-spec §1.1:
/// 9 920 samples for ResNet-38's five poolings at hop 320).
pub fn min_samples(hop_length: usize, time_poolings: u32) -> usize {
    let frames = 1usize << time_poolings;
    (frames - 1) * hop_length
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn pads_short_clips_with_trailing_zeros() {
        let mut rng = StdRng::seed_from_u64(0);
        let out = crop_or_pad(&[1.0, 2.0], 4, CropMode::Random, &mut rng);
        assert_eq!(out, vec![1.0, 2.0, 0.0, 0.0]);
    }

    #[test]
    fn crops_deterministically_for_centre_and_start() {
        let x: Vec<f32> = (0..10).map(|v| v as f32).collect();
        let mut rng = StdRng::seed_from_u64(0);
        assert_eq!(
            crop_or_pad(&x, 4, CropMode::Centre, &mut rng),
            vec![3.0, 4.0, 5.0, 6.0]
        );
        assert_eq!(
            crop_or_pad(&x, 4, CropMode::Start, &mut rng),
            vec![0.0, 1.0, 2.0, 3.0]
        );
        assert_eq!(crop_or_pad(&x, 4, CropMode::Full, &mut rng), x);
    }

    #[test]
    fn random_crop_is_seeded_and_in_range() {
        let x: Vec<f32> = (0..100).map(|v| v as f32).collect();
        let a = crop_or_pad(&x, 10, CropMode::Random, &mut StdRng::seed_from_u64(7));
        let b = crop_or_pad(&x, 10, CropMode::Random, &mut StdRng::seed_from_u64(7));
        assert_eq!(a, b);
        assert_eq!(a.len(), 10);
        // Contiguous window of the input.
        assert!(a.windows(2).all(|w| w[1] - w[0] == 1.0));
        let mut starts = std::collections::BTreeSet::new();
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..200 {
            starts.insert(crop_or_pad(&x, 10, CropMode::Random, &mut rng)[0] as usize);
        }
        assert!(starts.len() > 50, "random crops should cover many offsets");
        assert!(starts.iter().all(|&s| s <= 90));
    }

    #[test]
    fn panns_minimum_length() {
        // method-spec §1.1: five ×2 time poolings at hop 320 need 32 frames = 9 920 samples.
        assert_eq!(min_samples(320, 5), 9_920);
    }
}
