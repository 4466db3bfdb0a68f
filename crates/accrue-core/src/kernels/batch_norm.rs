//! Training-mode batch norm for the CPU (`flex`) backend in two passes per direction.
//!
//! Why: Burn 0.22's `batch_norm_train` (and its backward) is written with tensor ops: it swaps
//! the batch and channel axes twice (two full copies) and makes about eight element-wise passes
//! forward and ten backward. ResNet-38 has a batch norm after every convolution, so on the small
//! encoder these passes cost as much as the convolutions (docs/benchmarks.md).
//!
//! What: per channel, in parallel over channels, on the NC… layout as it is:
//!
//! - statistics: mean, then the biased variance as the mean of squared deviations (the
//!   two-pass formula Burn uses), partial sums in `f32` lanes, totals in `f64`;
//! - forward: `y = x·a + b` with `a = γ/√(σ² + ε)`, `b = β − μ·a`;
//! - backward (the formula of Burn's `batch_norm_train_backward`): with `x̂ = (x − μ)/√(σ² + ε)`,
//!   `∂β = Σ∂y`, `∂γ = Σ∂y·x̂`, `∂x = γ/√(σ² + ε)·(∂y − ∂β/M − x̂·∂γ/M)`.
//!
//! [`FastBatchNorm`] is a Burn backend extension implemented for `Flex` and `Autodiff<Flex>`;
//! [`batch_norm_train`] applies it where the tensor lives on `flex` and is `f32`, and returns
//! `None` elsewhere so the caller keeps Burn's op. The tests prove it equal to Burn's op, output,
//! statistics and the three gradients.

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, AutodiffBackend, Backend, DType, Flex, backend_extension};
use burn::tensor::Tensor;

use super::{SendPtr, flex_tensor, on_flex_f32, slice_f32};

/// Batch norm with the batch's own statistics, as a Burn backend extension. `x` is
/// `[N, C, …]`; `gamma`, `beta` are `[C]`; `stats` is `[2, C]` (mean, biased variance) from
/// [`FastBatchNorm::fast_batch_norm_stats`].
#[backend_extension(Flex, Autodiff)]
pub trait FastBatchNorm: Backend {
    /// Per-channel mean and biased variance of `x` (`[N, C, …]` → `[2, C]`); not differentiated.
    fn fast_batch_norm_stats(x: FloatTensor<Self>) -> FloatTensor<Self>;

    /// `(x − μ)/√(σ² + ε)·γ + β` with `stats = [μ; σ²]`, differentiated in `x`, `γ` and `β`
    /// (through the statistics too, as in `batch_norm_train`).
    fn fast_batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self>;
}

impl FastBatchNorm for Flex {
    fn fast_batch_norm_stats(x: FlexTensor) -> FlexTensor {
        stats(&x)
    }

    fn fast_batch_norm_train(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        stats: FlexTensor,
        epsilon: f64,
    ) -> FlexTensor {
        forward(&x, &gamma, &beta, &stats, epsilon)
    }
}

impl<C: CheckpointStrategy> FastBatchNorm for Autodiff<Flex, C> {
    fn fast_batch_norm_stats(x: FloatTensor<Self>) -> FloatTensor<Self> {
        // Constants for the graph: the caller feeds them to the running statistics and back into
        // `fast_batch_norm_train`, whose backward accounts for their dependence on `x`.
        <Self as AutodiffBackend>::from_inner(stats(x.primitive()))
    }

    fn fast_batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct FastBatchNormBackward;

        impl Backward<Flex, 3> for FastBatchNormBackward {
            type State = (NodeId, NodeId, FlexTensor, f64);

            fn backward(
                self,
                ops: Ops<Self::State, 3>,
                grads: &mut Gradients,
                checkpointer: &mut Checkpointer,
            ) {
                let [node_x, node_gamma, node_beta] = ops.parents;
                let dy = grads.consume::<Flex>(&ops.node);
                let (x_state, gamma_state, stats, epsilon) = ops.state;
                let x = checkpointer.retrieve_node_output::<FlexTensor>(x_state);
                let gamma = checkpointer.retrieve_node_output::<FlexTensor>(gamma_state);
                let (dx, dgamma, dbeta) =
                    backward(&x, &gamma, &stats, epsilon, &dy, node_x.is_some());
                if let (Some(node), Some(dx)) = (node_x, dx) {
                    grads.register::<Flex>(node.id, dx);
                }
                if let Some(node) = node_gamma {
                    grads.register::<Flex>(node.id, dgamma);
                }
                if let Some(node) = node_beta {
                    grads.register::<Flex>(node.id, dbeta);
                }
            }
        }

        let stats = stats.into_primitive();
        match FastBatchNormBackward
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let gamma_state = prep.checkpoint(&gamma);
                let out = forward(
                    x.primitive(),
                    gamma.primitive(),
                    beta.primitive(),
                    &stats,
                    epsilon,
                );
                prep.finish((x_state, gamma_state, stats, epsilon), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(forward(
                x.primitive(),
                gamma.primitive(),
                beta.primitive(),
                &stats,
                epsilon,
            )),
        }
    }
}

/// Training-mode batch norm of `x` (`[N, C, …]`) through [`FastBatchNorm`]: the output and the
/// batch's mean and biased variance (`[C]` each, detached), as `batch_norm_train` returns them.
/// `None` when `x` is not an `f32` tensor on `flex` or has fewer than two axes.
pub fn batch_norm_train<const D: usize>(
    x: &Tensor<D>,
    gamma: &Tensor<1>,
    beta: &Tensor<1>,
    epsilon: f64,
) -> Option<(Tensor<D>, Tensor<1>, Tensor<1>)> {
    if D < 2 || !on_flex_f32(x) || gamma.dtype() != DType::F32 || beta.dtype() != DType::F32 {
        return None;
    }
    let stats = <burn::backend::Dispatch as FastBatchNorm>::fast_batch_norm_stats(
        x.clone().into_dispatch(),
    );
    let stats = Tensor::<2>::from_dispatch(stats);
    let out = <burn::backend::Dispatch as FastBatchNorm>::fast_batch_norm_train(
        x.clone().into_dispatch(),
        gamma.clone().into_dispatch(),
        beta.clone().into_dispatch(),
        stats.clone().into_dispatch(),
        epsilon,
    );
    let c = gamma.dims()[0];
    let stats = stats.detach();
    let mean = stats.clone().slice([0..1, 0..c]).reshape([c]);
    let var = stats.slice([1..2, 0..c]).reshape([c]);
    Some((Tensor::<D>::from_dispatch(out), mean, var))
}

/// `(N, C, S)`: batch, channels, elements per channel and batch item.
fn blocks(x: &FlexTensor) -> (usize, usize, usize) {
    let dims = x.layout().shape();
    (dims[0], dims[1], dims[2..].iter().product())
}

/// `1/√(σ² + ε)`.
fn inv_std(variance: f32, epsilon: f64) -> f64 {
    1.0 / (f64::from(variance) + epsilon).sqrt()
}

/// `Σ f(aᵢ, bᵢ)` over two blocks of one length, in sixteen `f32` lanes (vectorised), then in
/// `f64`.
fn lane_sum2(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f64 {
    let mut lanes = [0.0f32; 16];
    let (ac, bc) = (a.chunks_exact(16), b.chunks_exact(16));
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (av, bv) in ac.zip(bc) {
        for ((l, x), y) in lanes.iter_mut().zip(av).zip(bv) {
            *l += f(*x, *y);
        }
    }
    let tail: f64 = ar.iter().zip(br).map(|(x, y)| f64::from(f(*x, *y))).sum();
    lanes.iter().map(|&l| f64::from(l)).sum::<f64>() + tail
}

/// `Σ f(vᵢ)` over a block, as [`lane_sum2`] does.
fn lane_sum(block: &[f32], f: impl Fn(f32) -> f32) -> f64 {
    lane_sum2(block, block, |v, _| f(v))
}

/// `[2, C]`: per-channel mean and biased variance.
pub fn stats(x: &FlexTensor) -> FlexTensor {
    use rayon::prelude::*;
    let x = x.to_contiguous();
    let xs = slice_f32(&x);
    let (n, c, s) = blocks(&x);
    let m = (n * s).max(1) as f64;
    let per_channel: Vec<(f32, f32)> = (0..c)
        .into_par_iter()
        .map(|ch| {
            let block = |b: usize| &xs[(b * c + ch) * s..(b * c + ch + 1) * s];
            let mean = (0..n).map(|b| lane_sum(block(b), |v| v)).sum::<f64>() / m;
            let mean32 = mean as f32;
            let var = (0..n)
                .map(|b| {
                    lane_sum(block(b), |v| {
                        let d = v - mean32;
                        d * d
                    })
                })
                .sum::<f64>()
                / m;
            (mean32, var as f32)
        })
        .collect();
    let mut out = Vec::with_capacity(2 * c);
    out.extend(per_channel.iter().map(|p| p.0));
    out.extend(per_channel.iter().map(|p| p.1));
    flex_tensor(out, vec![2, c])
}

/// The normalised output.
pub fn forward(
    x: &FlexTensor,
    gamma: &FlexTensor,
    beta: &FlexTensor,
    stats: &FlexTensor,
    epsilon: f64,
) -> FlexTensor {
    use rayon::prelude::*;
    let owned = [x, gamma, beta, stats].map(FlexTensor::to_contiguous);
    let [xs, gs, bs, st] = owned.each_ref().map(slice_f32);
    let x = &owned[0];
    let (n, c, s) = blocks(x);
    // Written whole below before `set_len`.
    let mut out = Vec::with_capacity(n * c * s);
    let dst = SendPtr(out.as_mut_ptr());
    (0..c).into_par_iter().for_each(|ch| {
        let inv_std = inv_std(st[c + ch], epsilon);
        let a = (f64::from(gs[ch]) * inv_std) as f32;
        let b = (f64::from(bs[ch]) - f64::from(st[ch]) * f64::from(gs[ch]) * inv_std) as f32;
        for bi in 0..n {
            let off = (bi * c + ch) * s;
            let src = &xs[off..off + s];
            // SAFETY: `out` has room for N·C·S floats; channel `ch` of item `bi` is written by
            // this task only.
            let dst = unsafe { std::slice::from_raw_parts_mut(dst.get().add(off), s) };
            for (d, v) in dst.iter_mut().zip(src) {
                *d = v * a + b;
            }
        }
    });
    // SAFETY: every one of the N·C·S elements was written above.
    unsafe { out.set_len(n * c * s) };
    flex_tensor(out, x.layout().shape().to_vec())
}

/// `(∂x, ∂γ, ∂β)`; `∂x` only when `want_dx`.
pub fn backward(
    x: &FlexTensor,
    gamma: &FlexTensor,
    stats: &FlexTensor,
    epsilon: f64,
    dy: &FlexTensor,
    want_dx: bool,
) -> (Option<FlexTensor>, FlexTensor, FlexTensor) {
    use rayon::prelude::*;
    let owned = [x, dy, gamma, stats].map(FlexTensor::to_contiguous);
    let [xs, dys, gs, st] = owned.each_ref().map(slice_f32);
    let x = &owned[0];
    let (n, c, s) = blocks(x);
    let m = (n * s).max(1) as f64;
    // Written whole below before `set_len`.
    let mut dx = Vec::with_capacity(if want_dx { n * c * s } else { 0 });
    let dst = SendPtr(dx.as_mut_ptr());
    let sums: Vec<(f32, f32)> = (0..c)
        .into_par_iter()
        .map(|ch| {
            let mean = st[ch];
            let inv_std = inv_std(st[c + ch], epsilon) as f32;
            let (mut sum_dy, mut sum_dy_xhat) = (0.0f64, 0.0f64);
            for bi in 0..n {
                let off = (bi * c + ch) * s;
                let (xb, db) = (&xs[off..off + s], &dys[off..off + s]);
                sum_dy += lane_sum(db, |v| v);
                sum_dy_xhat += lane_sum2(xb, db, |xi, di| di * ((xi - mean) * inv_std));
            }
            if want_dx {
                let scale = gs[ch] * inv_std;
                let mean_dy = (sum_dy / m) as f32;
                let mean_dy_xhat = (sum_dy_xhat / m) as f32;
                for bi in 0..n {
                    let off = (bi * c + ch) * s;
                    let (xb, db) = (&xs[off..off + s], &dys[off..off + s]);
                    // SAFETY: `dx` has room for N·C·S floats; this task alone writes channel
                    // `ch` of item `bi`.
                    let out = unsafe { std::slice::from_raw_parts_mut(dst.get().add(off), s) };
                    for ((o, xi), di) in out.iter_mut().zip(xb).zip(db) {
                        let xhat = (xi - mean) * inv_std;
                        *o = scale * (di - mean_dy - xhat * mean_dy_xhat);
                    }
                }
            }
            (sum_dy_xhat as f32, sum_dy as f32)
        })
        .collect();
    let dx = want_dx.then(|| {
        // SAFETY: every element was written by the channel tasks above.
        unsafe { dx.set_len(n * c * s) };
        flex_tensor(dx, x.layout().shape().to_vec())
    });
    let dgamma = flex_tensor(sums.iter().map(|p| p.0).collect(), vec![c]);
    let dbeta = flex_tensor(sums.iter().map(|p| p.1).collect(), vec![c]);
    (dx, dgamma, dbeta)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::tests::rel_err;
    use burn::tensor::{Device, Distribution};

    /// Burn's `batch_norm_train` and [`batch_norm_train`] agree: output, mean, variance and
    /// the gradients of `x`, `γ`, `β` within 1e-5 of the largest reference value.
    fn check(dims: [usize; 4]) {
        let device = Device::flex().autodiff();
        let c = dims[1];
        let x = Tensor::<4>::random(dims, Distribution::Normal(0.5, 2.0), &device);
        let gamma = Tensor::<1>::random([c], Distribution::Normal(1.0, 0.3), &device);
        let beta = Tensor::<1>::random([c], Distribution::Normal(0.0, 0.3), &device);
        // A non-uniform upstream gradient, drawn once and shared by both runs.
        let pattern = Tensor::<4>::random(dims, Distribution::Normal(0.0, 1.0), &device);
        let run = |fast: bool| {
            let x = x.clone().detach().require_grad();
            let gamma = gamma.clone().detach().require_grad();
            let beta = beta.clone().detach().require_grad();
            let (y, mean, var) = if fast {
                batch_norm_train(&x, &gamma, &beta, 1e-5).expect("flex f32")
            } else {
                let o = burn::tensor::module::batch_norm_train(
                    x.clone(),
                    gamma.clone(),
                    beta.clone(),
                    1e-5,
                );
                (o.output, o.mean, o.variance)
            };
            let grads = (y.clone() * pattern.clone()).sum().backward();
            let gx = x.grad(&grads).expect("x grad");
            let gg = gamma.grad(&grads).expect("gamma grad");
            let gb = beta.grad(&grads).expect("beta grad");
            (y.detach(), mean.detach(), var.detach(), gx, gg, gb)
        };
        let (y0, m0, v0, gx0, gg0, gb0) = run(false);
        let (y1, m1, v1, gx1, gg1, gb1) = run(true);
        assert!(rel_err(y1, y0) <= 1e-5, "output");
        assert!(rel_err(m1.unsqueeze(), m0.unsqueeze()) <= 1e-5, "mean");
        assert!(rel_err(v1.unsqueeze(), v0.unsqueeze()) <= 1e-5, "variance");
        assert!(rel_err(gx1, gx0) <= 1e-5, "x grad");
        assert!(
            rel_err(gg1.unsqueeze(), gg0.unsqueeze()) <= 1e-5,
            "gamma grad"
        );
        assert!(
            rel_err(gb1.unsqueeze(), gb0.unsqueeze()) <= 1e-5,
            "beta grad"
        );
    }

    #[test]
    fn equals_burn_batch_norm_train() {
        check([4, 8, 13, 7]);
    }

    #[test]
    fn equals_burn_batch_norm_train_one_wide_plane() {
        check([2, 3, 101, 64]);
    }
}
