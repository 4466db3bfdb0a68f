//! Non-overlapping 2-D average pooling for the CPU (`flex`) backend, forward and gradient.
//!
//! Why: Burn 0.22's `flex` average pooling is the general 3-D one (padding, ceil mode, any
//! stride): per output element it recomputes the window's valid range and divides, with no
//! vector code, and its backward does the same per window and accumulates. On the main job's
//! encoder (`resnet38-tiny`, one thread) the two took 13 % of the train step, more than any
//! convolution but the largest (docs/benchmarks.md).
//!
//! What: PANNs pools with `F.avg_pool2d(x, kernel_size = stride = (kh, kw))`, floor mode, no
//! padding, so every input element belongs to at most one window:
//!
//! - forward: `y[i][j] = (Σ_a Σ_b x[i·kh + a][j·kw + b]) / (kh·kw)`, summed row by row from
//!   zero and divided, in the order of Burn's op (so the result is the same to the bit);
//! - gradient: `∂x[i][j] = ∂y[i / kh][j / kw] / (kh·kw)` inside the pooled area, `0` in the rows
//!   and columns that floor mode drops.
//!
//! Planes (`N·C` of them) are split over threads. [`FastAvgPool2d`] is a Burn backend extension
//! for `Flex` and `Autodiff<Flex>` with its own backward node; [`avg_pool2d`] uses it for `f32`
//! tensors on `flex` and Burn's `AvgPool2d` everywhere else. The tests prove it equal to Burn's
//! op, forward and gradient.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Flex, backend_extension};
use burn::nn::pool::AvgPool2dConfig;
use burn::tensor::Tensor;

use super::{SendPtr, flex_tensor, on_flex_f32, slice_f32};

/// Average pooling with `kernel = stride = [kh, kw]`, no padding, floor mode, as a Burn backend
/// extension: `[N, C, H, W]` → `[N, C, ⌊H/kh⌋, ⌊W/kw⌋]`.
#[backend_extension(Flex, Autodiff)]
pub trait FastAvgPool2d: Backend {
    /// PyTorch's `F.avg_pool2d(x, kernel, stride = kernel)`.
    fn fast_avg_pool2d(x: FloatTensor<Self>, kernel: [usize; 2]) -> FloatTensor<Self>;
}

impl FastAvgPool2d for Flex {
    fn fast_avg_pool2d(x: FlexTensor, kernel: [usize; 2]) -> FlexTensor {
        forward(&x, kernel)
    }
}

impl<C: CheckpointStrategy> FastAvgPool2d for Autodiff<Flex, C> {
    fn fast_avg_pool2d(x: FloatTensor<Self>, kernel: [usize; 2]) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct FastAvgPool2dBackward;

        impl Backward<Flex, 1> for FastAvgPool2dBackward {
            /// The input's dims and the kernel: the gradient needs no tensor of the forward.
            type State = ([usize; 4], [usize; 2]);

            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let [node_x] = ops.parents;
                let grad = grads.consume::<Flex>(&ops.node);
                let (dims, kernel) = ops.state;
                if let Some(node) = node_x {
                    grads.register::<Flex>(node.id, backward(&grad, dims, kernel));
                }
            }
        }

        match FastAvgPool2dBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let dims = input_dims(x.primitive());
                prep.finish((dims, kernel), forward(x.primitive(), kernel))
            }
            OpsKind::UnTracked(prep) => prep.finish(forward(x.primitive(), kernel)),
        }
    }
}

/// `F.avg_pool2d(x, kernel_size = stride = kernel)` (floor mode, no padding) of `x`
/// (`[N, C, H, W]` → `[N, C, ⌊H/kh⌋, ⌊W/kw⌋]`), exactly as Burn's `AvgPool2d` with that
/// kernel computes it, through [`FastAvgPool2d`] for `f32` tensors on `flex`.
///
/// # Panics
/// As Burn's op: a zero kernel, or a kernel larger than the input.
pub fn avg_pool2d(x: Tensor<4>, kernel: [usize; 2]) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    if on_flex_f32(&x) && kernel[0] >= 1 && kernel[1] >= 1 && kernel[0] <= h && kernel[1] <= w {
        Tensor::<4>::from_dispatch(<burn::backend::Dispatch as FastAvgPool2d>::fast_avg_pool2d(
            x.into_dispatch(),
            kernel,
        ))
    } else {
        AvgPool2dConfig::new(kernel).init().forward(x)
    }
}

fn input_dims(x: &FlexTensor) -> [usize; 4] {
    let d = x.layout().shape();
    [d[0], d[1], d[2], d[3]]
}

/// The pooled `[N, C, ⌊H/kh⌋, ⌊W/kw⌋]`.
pub fn forward(x: &FlexTensor, kernel: [usize; 2]) -> FlexTensor {
    use rayon::prelude::*;
    let x = x.to_contiguous();
    let xs = slice_f32(&x);
    let [n, c, h, w] = input_dims(&x);
    let [kh, kw] = kernel;
    let (oh, ow) = (h / kh, w / kw);
    let count = (kh * kw) as f32;
    let len = n * c * oh * ow;
    let mut out = Vec::with_capacity(len);
    if len > 0 {
        out.spare_capacity_mut()[..len]
            .par_chunks_mut(oh * ow)
            .enumerate()
            .for_each(|(plane, dst)| {
                let src = &xs[plane * h * w..(plane + 1) * h * w];
                for (i, row) in dst.chunks_exact_mut(ow).enumerate() {
                    let rows = &src[i * kh * w..(i + 1) * kh * w];
                    for (j, y) in row.iter_mut().enumerate() {
                        let mut sum = 0.0f32;
                        for r in rows.chunks_exact(w) {
                            for v in &r[j * kw..(j + 1) * kw] {
                                sum += v;
                            }
                        }
                        y.write(sum / count);
                    }
                }
            });
    }
    // SAFETY: every one of the `len` elements was written above.
    unsafe { out.set_len(len) };
    flex_tensor(out, vec![n, c, oh, ow])
}

/// The gradient `[N, C, H, W]` of the input with dims `dims`, from the output's `dy`.
pub fn backward(dy: &FlexTensor, dims: [usize; 4], kernel: [usize; 2]) -> FlexTensor {
    use rayon::prelude::*;
    let dy = dy.to_contiguous();
    let ds = slice_f32(&dy);
    let [n, c, h, w] = dims;
    let [kh, kw] = kernel;
    let (oh, ow) = (h / kh, w / kw);
    let count = (kh * kw) as f32;
    // Written whole below (the dropped rows and columns as zeros) before `set_len`.
    let mut dx = Vec::with_capacity(n * c * h * w);
    let dst = SendPtr(dx.as_mut_ptr());
    (0..n * c).into_par_iter().for_each(|plane| {
        // SAFETY: `dx` has room for N·C·H·W floats; this task alone writes plane `plane`.
        let out = unsafe { std::slice::from_raw_parts_mut(dst.get().add(plane * h * w), h * w) };
        let grad = &ds[plane * oh * ow..(plane + 1) * oh * ow];
        for (r, row) in out.chunks_exact_mut(w).enumerate() {
            if r >= oh * kh {
                row.fill(0.0);
                continue;
            }
            let g = &grad[(r / kh) * ow..(r / kh + 1) * ow];
            let (pooled, rest) = row.split_at_mut(ow * kw);
            for (cell, gv) in pooled.chunks_exact_mut(kw).zip(g) {
                cell.fill(gv / count);
            }
            rest.fill(0.0);
        }
    });
    // SAFETY: every element of every plane was written above.
    unsafe { dx.set_len(n * c * h * w) };
    flex_tensor(dx, dims.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution};

    /// Burn's `AvgPool2d` and [`avg_pool2d`] agree to the bit: the output, and the input
    /// gradient under a non-uniform upstream gradient (both sum the same terms in the same order
    /// and divide by the same count).
    fn check(dims: [usize; 4], kernel: [usize; 2]) {
        let device = Device::flex().autodiff();
        let x = Tensor::<4>::random(dims, Distribution::Normal(0.3, 2.0), &device);
        let out = [dims[0], dims[1], dims[2] / kernel[0], dims[3] / kernel[1]];
        let pattern = Tensor::<4>::random(out, Distribution::Normal(0.0, 1.0), &device);
        let run = |fast: bool| {
            let x = x.clone().detach().require_grad();
            let y = if fast {
                avg_pool2d(x.clone(), kernel)
            } else {
                AvgPool2dConfig::new(kernel).init().forward(x.clone())
            };
            let grads = (y.clone() * pattern.clone()).sum().backward();
            let gx = x.grad(&grads).expect("input grad");
            let dims = y.dims();
            (
                y.detach().into_data().try_to_vec::<f32>().expect("f32"),
                gx.into_data().try_to_vec::<f32>().expect("f32"),
                dims,
            )
        };
        let (y0, g0, d0) = run(false);
        let (y1, g1, d1) = run(true);
        assert_eq!(d1, d0, "output dims");
        assert_eq!(y1, y0, "forward");
        assert_eq!(g1, g0, "input grad");
    }

    #[test]
    fn equals_burn_avg_pool_2x2() {
        check([3, 4, 10, 8], [2, 2]);
    }

    #[test]
    fn equals_burn_avg_pool_with_floor_remainders() {
        check([2, 3, 11, 9], [2, 2]);
        check([2, 2, 7, 13], [3, 2]);
        check([1, 2, 5, 6], [1, 3]);
    }

    #[test]
    fn the_plain_backend_takes_the_kernel_too() {
        let device = Device::flex();
        let x = Tensor::<4>::random([2, 3, 6, 4], Distribution::Normal(0.0, 1.0), &device);
        let fast = avg_pool2d(x.clone(), [2, 2]).into_data();
        let burn = AvgPool2dConfig::new([2, 2]).init().forward(x).into_data();
        assert_eq!(
            fast.try_to_vec::<f32>().expect("f32"),
            burn.try_to_vec::<f32>().expect("f32")
        );
    }
}
