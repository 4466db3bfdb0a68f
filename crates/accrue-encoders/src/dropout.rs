//! Dropout whose mask is drawn on the host when the tensor lives on the CPU backend.
//!
//! `burn::nn::Dropout` draws its Bernoulli mask through Burn's generic sampler: one ChaCha draw
//! and one sampler dispatch per element, then a second pass for the `1/keep` scale. On the
//! full-size ResNet-38 train step (batch 1 × 10 s, 2 threads) that was about a tenth of the step
//! on `flex` (profiled with `perf`; `docs/benchmarks.md`). Here, on `flex`, one 64-bit seed is
//! drawn from the device RNG — so `Device::seed` still makes runs reproducible — and a
//! xoshiro256++ stream fills a mask that already holds `0` or `1/keep`: one product with the
//! input instead of two passes. Other backends keep Burn's own `Dropout` (a host mask would cost
//! a transfer on a GPU).
//!
//! Same semantics as `Dropout::forward`: identity unless the layer's training flag is on, the
//! tensor is on an autodiff device and `prob > 0`; otherwise each element is kept with
//! probability `1 − prob` and scaled by `1 / (1 − prob)`.

use burn::nn::Dropout;
use burn::tensor::{Device, Distribution, Tensor, TensorData};

/// `dropout.forward(x)`, with the mask drawn on the host on the `flex` CPU backend.
pub fn dropout<const D: usize>(dropout: &Dropout, x: Tensor<D>) -> Tensor<D> {
    let device = x.device();
    if !dropout.training.is_enabled() || !device.is_autodiff() || dropout.prob == 0.0 {
        return x;
    }
    let plain = device.clone().inner();
    if plain != Device::flex() {
        return dropout.forward(x);
    }
    let keep = 1.0 - dropout.prob;
    let seed = Tensor::<1>::random([2], Distribution::Uniform(0.0, 1.0), &plain)
        .into_data()
        .iter::<f32>()
        .fold(0u64, |acc, v| (acc << 32) | u64::from(v.to_bits()));
    let shape = x.shape();
    let mask = keep_mask(shape.num_elements(), keep, seed);
    x * Tensor::<D>::from_data(TensorData::new(mask, shape), &device)
}

/// `n` values, each `1/keep` with probability `keep` and `0` otherwise, from `seed`.
pub fn keep_mask(n: usize, keep: f64, seed: u64) -> Vec<f32> {
    let scale = (1.0 / keep) as f32;
    // Keep when a uniform 32-bit draw is below keep · 2³².
    let threshold = (keep * 4_294_967_296.0) as u64;
    let mut rng = Xoshiro256pp::new(seed);
    let mut mask = Vec::with_capacity(n);
    while mask.len() < n {
        let r = rng.next();
        for half in [r & 0xFFFF_FFFF, r >> 32] {
            if mask.len() < n {
                mask.push(if half < threshold { scale } else { 0.0 });
            }
        }
    }
    mask
}

/// xoshiro256++ (Blackman & Vigna), seeded through SplitMix64.
struct Xoshiro256pp([u64; 4]);

impl Xoshiro256pp {
    fn new(seed: u64) -> Self {
        let mut g = accrue_core::seed::SplitMix64::new(seed);
        Self([g.next_u64(), g.next_u64(), g.next_u64(), g.next_u64()])
    }

    fn next(&mut self) -> u64 {
        let s = &mut self.0;
        let out = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::DropoutConfig;

    #[test]
    fn mask_keeps_the_right_fraction_with_the_right_scale() {
        let n = 200_000;
        for keep in [0.5, 0.8, 0.9] {
            let mask = keep_mask(n, keep, 42);
            assert_eq!(mask.len(), n);
            let scale = (1.0 / keep) as f32;
            assert!(mask.iter().all(|&v| v == 0.0 || v == scale));
            let kept = mask.iter().filter(|&&v| v > 0.0).count() as f64 / n as f64;
            // Binomial standard deviation at n = 2e5 is ≤ 0.0012: 5σ.
            assert!((kept - keep).abs() < 0.006, "keep {keep}: kept {kept}");
            // E[mask] = 1, so the expected activation is unchanged.
            let mean = mask.iter().map(|&v| f64::from(v)).sum::<f64>() / n as f64;
            assert!((mean - 1.0).abs() < 0.015, "mean {mean}");
        }
        assert_eq!(keep_mask(101, 0.9, 7), keep_mask(101, 0.9, 7));
        assert_ne!(keep_mask(101, 0.9, 7), keep_mask(101, 0.9, 8));
    }

    #[test]
    fn follows_the_seed_and_the_training_flag_and_passes_gradients() {
        let device = Device::flex().autodiff();
        let layer = DropoutConfig::new(0.3).init();
        let x = Tensor::<2>::ones([64, 64], &device).require_grad();
        device.seed(1);
        let a = dropout(&layer, x.clone());
        device.seed(1);
        let b = dropout(&layer, x.clone());
        assert_eq!(a.to_data(), b.to_data(), "same seed, same mask");
        let values = a.to_data().try_to_vec::<f32>().unwrap();
        let zeros = values.iter().filter(|&&v| v == 0.0).count();
        assert!(
            zeros > 64 * 64 / 5 && zeros < 64 * 64 * 2 / 5,
            "{zeros} dropped"
        );
        // d(sum(x·m))/dx = m.
        let grads = a.sum().backward();
        let g = x
            .grad(&grads)
            .unwrap()
            .to_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert_eq!(g, values);
        // Eval (no autodiff) and a frozen layer are the identity.
        let plain = Tensor::<2>::ones([4, 4], &Device::flex());
        assert_eq!(dropout(&layer, plain.clone()).to_data(), plain.to_data());
        let frozen = burn::module::Module::freeze(layer);
        assert_eq!(dropout(&frozen, x.clone()).to_data(), x.to_data());
    }
}
