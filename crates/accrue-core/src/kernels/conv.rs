//! A faster 2-D convolution for the CPU (`flex`) backend, forward and both gradients.
//!
//! Why: Burn 0.22's `flex` convolution converts its input to NHWC, builds the im2col matrix one
//! channel at a time, multiplies into a scratch buffer and scatters it back to NCHW. Its backward
//! pass is Burn's default: the input gradient is a transposed convolution, and the weight
//! gradient is a convolution of the input by the output gradient (kernel = the whole output
//! plane), so one GEMM of width `kh·kw` (9) is packed once per input channel. On ResNet-38 those
//! three passes are most of the train step (docs/benchmarks.md).
//!
//! What: the classic lowering of Caffe and PyTorch's `slow_conv2d` (Chellapilla et al., "High
//! Performance Convolutional Neural Networks for Document Processing", IWFHR 2006), on NCHW data
//! and the `gemm` crate that `flex` itself uses, in tiles of output rows so the scratch matrix
//! stays in cache:
//!
//! - forward: `y[b][:, tile] = W[O, C·kh·kw] · col(x[b], tile)`, written in place;
//! - input gradient: `col = Wᵀ · dy[b][:, tile]`, folded back into `dx[b]` (col2im);
//! - weight gradient: `dW += dy[b][:, tile] · col(x[b], tile)ᵀ`, one partial per thread.
//!
//! A 1×1 stride-1 convolution skips the im2col: the input plane is the matrix. Work is split
//! over batch items and tiles (coarse, one fork/join per op); with fewer items than threads the
//! GEMMs run in parallel instead.
//!
//! How it plugs in: [`FastConv2d`] is a Burn backend extension (`#[backend_extension]`),
//! implemented for `Flex` and for `Autodiff<Flex>` with its own backward node. [`conv2d`] takes
//! a `burn::nn::conv::Conv2d` and uses the extension when the tensor lives on `flex`, is `f32`,
//! and the convolution is ungrouped, undilated and symmetrically padded; anything else goes
//! through Burn's own `Conv2d::forward`, so every backend and every module stays correct. The
//! tests prove the kernels equal to Burn's op, forward and both gradients.

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Backend, DType, Flex, Shape, backend_extension};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::Tensor;

use super::{SendPtr, flex_tensor, on_flex_f32, slice_f32, zeroed};

/// The convolution as a Burn backend extension: `x [N, C, H, W]`, `weight [O, C, kh, kw]` →
/// `[N, O, OH, OW]`, no bias, no groups, no dilation, `padding` on both sides of each axis.
#[backend_extension(Flex, Autodiff)]
pub trait FastConv2d: Backend {
    /// Cross-correlation of `x` with `weight` (PyTorch's `conv2d` without bias).
    fn fast_conv2d(
        x: burn::backend::tensor::FloatTensor<Self>,
        weight: burn::backend::tensor::FloatTensor<Self>,
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> burn::backend::tensor::FloatTensor<Self>;
}

impl FastConv2d for Flex {
    fn fast_conv2d(
        x: FlexTensor,
        weight: FlexTensor,
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> FlexTensor {
        forward(&x, &weight, stride, padding)
    }
}

impl<C: CheckpointStrategy> FastConv2d for Autodiff<Flex, C> {
    fn fast_conv2d(
        x: burn::backend::tensor::FloatTensor<Self>,
        weight: burn::backend::tensor::FloatTensor<Self>,
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> burn::backend::tensor::FloatTensor<Self> {
        #[derive(Debug)]
        struct FastConv2dBackward;

        impl Backward<Flex, 2> for FastConv2dBackward {
            type State = (NodeId, NodeId, [usize; 2], [usize; 2]);

            fn backward(
                self,
                ops: Ops<Self::State, 2>,
                grads: &mut Gradients,
                checkpointer: &mut Checkpointer,
            ) {
                let [node_x, node_w] = ops.parents;
                let grad = grads.consume::<Flex>(&ops.node);
                let (x_state, w_state, stride, padding) = ops.state;
                let x = checkpointer.retrieve_node_output::<FlexTensor>(x_state);
                let w = checkpointer.retrieve_node_output::<FlexTensor>(w_state);
                if let Some(node) = node_x {
                    grads.register::<Flex>(node.id, input_grad(&x, &w, &grad, stride, padding));
                }
                if let Some(node) = node_w {
                    grads.register::<Flex>(node.id, weight_grad(&x, &w, &grad, stride, padding));
                }
            }
        }

        match FastConv2dBackward
            .prepare::<C>([x.node(), weight.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let w_state = prep.checkpoint(&weight);
                let out = forward(x.primitive(), weight.primitive(), stride, padding);
                prep.finish((x_state, w_state, stride, padding), out)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(forward(x.primitive(), weight.primitive(), stride, padding))
            }
        }
    }
}

/// Applies `conv` to `x` (`[N, C, H, W]` → `[N, O, OH, OW]`), exactly as `conv.forward(x)` does,
/// through [`FastConv2d`] where it applies (see the module doc) and through Burn's op elsewhere.
pub fn conv2d(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    match fast_padding(conv, &x) {
        Some(padding) => {
            let out = <burn::backend::Dispatch as FastConv2d>::fast_conv2d(
                x.into_dispatch(),
                conv.weight.val().into_dispatch(),
                conv.stride,
                padding,
            );
            let out = Tensor::<4>::from_dispatch(out);
            match &conv.bias {
                Some(bias) => {
                    let o = bias.dims()[0];
                    out + bias.val().reshape([1, o, 1, 1])
                }
                None => out,
            }
        }
        None => conv.forward(x),
    }
}

/// The symmetric padding `[ph, pw]` when the fast path applies to `conv` on `x`, else `None`.
fn fast_padding(conv: &Conv2d, x: &Tensor<4>) -> Option<[usize; 2]> {
    if !on_flex_f32(x)
        || conv.weight.val().dtype() != DType::F32
        || conv.groups != 1
        || conv.dilation != [1, 1]
    {
        return None;
    }
    // `Same` padding may be asymmetric; Burn's own op handles it.
    let (top, left, bottom, right) = match conv.padding {
        PaddingConfig2d::Valid => (0, 0, 0, 0),
        PaddingConfig2d::Explicit(top, left, bottom, right) => (top, left, bottom, right),
        PaddingConfig2d::Same => return None,
    };
    (top == bottom && left == right).then_some([top, left])
}

/// Sizes of one convolution.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    o: usize,
    kh: usize,
    kw: usize,
    sh: usize,
    sw: usize,
    ph: usize,
    pw: usize,
    oh: usize,
    ow: usize,
}

impl Geometry {
    fn new(x: &Shape, w: &Shape, stride: [usize; 2], padding: [usize; 2]) -> Self {
        let [n, c, h, wi] = [x[0], x[1], x[2], x[3]];
        let [o, cw, kh, kw] = [w[0], w[1], w[2], w[3]];
        assert_eq!(
            c, cw,
            "fast_conv2d: input has {c} channels, weight expects {cw}"
        );
        let [sh, sw] = stride;
        let [ph, pw] = padding;
        assert!(sh > 0 && sw > 0, "fast_conv2d: stride must be positive");
        assert!(
            h + 2 * ph >= kh && wi + 2 * pw >= kw,
            "fast_conv2d: kernel {kh}×{kw} larger than the padded input {h}×{wi}"
        );
        let oh = (h + 2 * ph - kh) / sh + 1;
        let ow = (wi + 2 * pw - kw) / sw + 1;
        Self {
            n,
            c,
            h,
            w: wi,
            o,
            kh,
            kw,
            sh,
            sw,
            ph,
            pw,
            oh,
            ow,
        }
    }

    /// Rows of the im2col matrix: `C·kh·kw`.
    fn k(&self) -> usize {
        self.c * self.kh * self.kw
    }

    /// Output positions per plane.
    fn p(&self) -> usize {
        self.oh * self.ow
    }

    /// A 1×1, stride-1, unpadded convolution: the input plane is already the im2col matrix.
    fn pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.sh == 1 && self.sw == 1 && self.ph == 0 && self.pw == 0
    }

    /// Output rows per tile: about `TILE_ELEMS` scratch floats, at least one row.
    fn rows_per_tile(&self) -> usize {
        const TILE_ELEMS: usize = 1 << 19;
        (TILE_ELEMS / (self.k() * self.ow).max(1)).clamp(1, self.oh.max(1))
    }

    /// The output-row tiles `(row_start, row_end)` of one plane.
    fn row_tiles(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        let rows = self.rows_per_tile();
        (0..self.oh)
            .step_by(rows)
            .map(move |r0| (r0, (r0 + rows).min(self.oh)))
    }

    /// The tiles `(b, row_start, row_end)` of every batch item.
    fn tiles(&self) -> Vec<(usize, usize, usize)> {
        (0..self.n)
            .flat_map(|b| self.row_tiles().map(move |(r0, r1)| (b, r0, r1)))
            .collect()
    }

    /// Elements of one batch item's input (`C·H·W`).
    fn in_item(&self) -> usize {
        self.c * self.h * self.w
    }

    /// Elements of one batch item's output (`O·OH·OW`).
    fn out_item(&self) -> usize {
        self.o * self.p()
    }

    /// The output columns `ow` whose input column `ow·sw + kj − pw` lies inside `[0, W)`.
    fn valid_cols(&self, kj: usize) -> (usize, usize) {
        let lo = if self.pw > kj {
            (self.pw - kj).div_ceil(self.sw)
        } else {
            0
        };
        let hi = if self.w + self.pw > kj {
            (self.w + self.pw - kj).div_ceil(self.sw).min(self.ow)
        } else {
            0
        };
        (lo.min(hi), hi)
    }

    /// The input row of output row `oh` at kernel row `ki`, if inside the input.
    fn input_row(&self, oh: usize, ki: usize) -> Option<usize> {
        (oh * self.sh + ki)
            .checked_sub(self.ph)
            .filter(|&ih| ih < self.h)
    }
}

/// Fills `col` (`[C·kh·kw, T]`, `T = (r1 − r0)·OW`) with the patches of output rows `r0..r1`
/// of one input plane set `x` (`[C, H, W]`).
fn im2col(g: &Geometry, x: &[f32], r0: usize, r1: usize, col: &mut [f32]) {
    let t = (r1 - r0) * g.ow;
    for c in 0..g.c {
        let plane = &x[c * g.h * g.w..(c + 1) * g.h * g.w];
        for ki in 0..g.kh {
            for kj in 0..g.kw {
                let row = ((c * g.kh + ki) * g.kw + kj) * t;
                let row = &mut col[row..row + t];
                let (lo, hi) = g.valid_cols(kj);
                for (ri, oh) in (r0..r1).enumerate() {
                    let dst = &mut row[ri * g.ow..(ri + 1) * g.ow];
                    let Some(ih) = g.input_row(oh, ki) else {
                        dst.fill(0.0);
                        continue;
                    };
                    let src = &plane[ih * g.w..(ih + 1) * g.w];
                    dst[..lo].fill(0.0);
                    dst[hi..].fill(0.0);
                    if g.sw == 1 {
                        let s0 = lo + kj - g.pw;
                        dst[lo..hi].copy_from_slice(&src[s0..s0 + hi - lo]);
                    } else {
                        for (ow, d) in dst.iter_mut().enumerate().take(hi).skip(lo) {
                            *d = src[ow * g.sw + kj - g.pw];
                        }
                    }
                }
            }
        }
    }
}

/// Adds `col` (`[C·kh·kw, T]`, output rows `r0..r1`) back onto the input planes `dx`
/// (`[C, H, W]`): the adjoint of [`im2col`].
fn col2im(g: &Geometry, col: &[f32], r0: usize, r1: usize, dx: &mut [f32]) {
    let t = (r1 - r0) * g.ow;
    for c in 0..g.c {
        let plane = &mut dx[c * g.h * g.w..(c + 1) * g.h * g.w];
        for ki in 0..g.kh {
            for kj in 0..g.kw {
                let row = ((c * g.kh + ki) * g.kw + kj) * t;
                let row = &col[row..row + t];
                let (lo, hi) = g.valid_cols(kj);
                for (ri, oh) in (r0..r1).enumerate() {
                    let Some(ih) = g.input_row(oh, ki) else {
                        continue;
                    };
                    let src = &row[ri * g.ow..(ri + 1) * g.ow];
                    let dst = &mut plane[ih * g.w..(ih + 1) * g.w];
                    if g.sw == 1 {
                        let d0 = lo + kj - g.pw;
                        for (d, s) in dst[d0..d0 + hi - lo].iter_mut().zip(&src[lo..hi]) {
                            *d += s;
                        }
                    } else {
                        for (ow, s) in src.iter().enumerate().take(hi).skip(lo) {
                            dst[ow * g.sw + kj - g.pw] += s;
                        }
                    }
                }
            }
        }
    }
}

/// A row-major matrix view for [`matmul`]: element `(i, j)` at `ptr + i·rs + j·cs`.
#[derive(Clone, Copy)]
struct Mat {
    ptr: *const f32,
    rs: isize,
    cs: isize,
}
// SAFETY: a read-only view; the buffers it points into outlive every task that reads them.
unsafe impl Send for Mat {}
// SAFETY: as above.
unsafe impl Sync for Mat {}

/// `dst[m, n] (+)= lhs[m, k] · rhs[k, n]` (accumulating when `accumulate`), any strides.
///
/// # Safety
/// Every view must cover its `m×k`, `k×n` and `m×n` elements, and `dst` must not alias the
/// inputs or be written by another thread meanwhile.
#[allow(clippy::too_many_arguments)]
unsafe fn matmul(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_rs: isize,
    lhs: Mat,
    rhs: Mat,
    accumulate: bool,
    parallel: bool,
) {
    let parallelism = if parallel && m * n * k >= 64 * 64 * 64 {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: forwarded from the caller's contract.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_rs,
            accumulate,
            lhs.ptr,
            lhs.cs,
            lhs.rs,
            rhs.ptr,
            rhs.cs,
            rhs.rs,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// Whether to split work over items (`true`) or inside each GEMM (`false`).
fn split_items(items: usize) -> bool {
    items >= rayon::current_num_threads()
}

/// The forward pass on `flex`: `[N, C, H, W]` ⋆ `[O, C, kh, kw]` → `[N, O, OH, OW]`.
pub fn forward(
    x: &FlexTensor,
    w: &FlexTensor,
    stride: [usize; 2],
    padding: [usize; 2],
) -> FlexTensor {
    use rayon::prelude::*;
    let (x, w) = (x.to_contiguous(), w.to_contiguous());
    let g = Geometry::new(x.layout().shape(), w.layout().shape(), stride, padding);
    let (xs, ws) = (slice_f32(&x), slice_f32(&w));
    let (k, p) = (g.k(), g.p());
    let mut out = vec![0.0f32; g.n * g.out_item()];
    let out_ptr = SendPtr(out.as_mut_ptr());
    let tiles = g.tiles();
    let by_item = split_items(tiles.len());
    let lhs = Mat {
        ptr: ws.as_ptr(),
        rs: k as isize,
        cs: 1,
    };
    let run = |col: &mut Vec<f32>, &(b, r0, r1): &(usize, usize, usize)| {
        let t = (r1 - r0) * g.ow;
        let x_b = &xs[b * g.in_item()..(b + 1) * g.in_item()];
        let rhs = if g.pointwise() {
            Mat {
                ptr: x_b[r0 * g.ow..].as_ptr(),
                rs: p as isize,
                cs: 1,
            }
        } else {
            col.resize(k * t, 0.0);
            im2col(&g, x_b, r0, r1, &mut col[..k * t]);
            Mat {
                ptr: col.as_ptr(),
                rs: t as isize,
                cs: 1,
            }
        };
        // SAFETY: `out` holds N·O·P floats; this tile writes rows 0..O of batch item b at
        // columns r0·OW..r1·OW, which no other tile touches.
        unsafe {
            let dst = out_ptr.get().add(b * g.out_item() + r0 * g.ow);
            matmul(g.o, t, k, dst, p as isize, lhs, rhs, false, !by_item);
        }
    };
    if by_item {
        tiles.par_iter().for_each_init(Vec::new, run);
    } else {
        let mut col = Vec::new();
        tiles.iter().for_each(|tile| run(&mut col, tile));
    }
    flex_tensor(out, vec![g.n, g.o, g.oh, g.ow])
}

/// The input gradient on `flex`: `dx [N, C, H, W]` from `dy [N, O, OH, OW]`.
pub fn input_grad(
    x: &FlexTensor,
    w: &FlexTensor,
    dy: &FlexTensor,
    stride: [usize; 2],
    padding: [usize; 2],
) -> FlexTensor {
    use rayon::prelude::*;
    let xd = x.layout().shape().to_vec();
    let (w, dy) = (w.to_contiguous(), dy.to_contiguous());
    let g = Geometry::new(x.layout().shape(), w.layout().shape(), stride, padding);
    let (ws, dys) = (slice_f32(&w), slice_f32(&dy));
    let (k, p, plane) = (g.k(), g.p(), g.in_item());
    let mut dx = zeroed(g.n * plane);
    let by_item = split_items(g.n);
    // Wᵀ: element (k, o) of the [K, O] matrix is W[o, k].
    let lhs = Mat {
        ptr: ws.as_ptr(),
        rs: 1,
        cs: k as isize,
    };
    let run = |col: &mut Vec<f32>, (b, dx_b): (usize, &mut [f32])| {
        let dy_b = &dys[b * g.out_item()..(b + 1) * g.out_item()];
        // Sequential within an item: neighbouring tiles' col2im overlap on the input rows.
        for (r0, r1) in g.row_tiles() {
            let t = (r1 - r0) * g.ow;
            let rhs = Mat {
                ptr: dy_b[r0 * g.ow..].as_ptr(),
                rs: p as isize,
                cs: 1,
            };
            if g.pointwise() {
                // SAFETY: dx_b holds C·P floats; rows 0..C at columns r0·OW..r1·OW.
                unsafe {
                    let dst = dx_b.as_mut_ptr().add(r0 * g.ow);
                    matmul(g.c, t, g.o, dst, p as isize, lhs, rhs, false, !by_item);
                }
            } else {
                col.resize(k * t, 0.0);
                // SAFETY: col holds K·T floats, written whole as a [K, T] matrix.
                unsafe {
                    matmul(
                        k,
                        t,
                        g.o,
                        col.as_mut_ptr(),
                        t as isize,
                        lhs,
                        rhs,
                        false,
                        !by_item,
                    );
                }
                col2im(&g, &col[..k * t], r0, r1, dx_b);
            }
        }
    };
    if by_item {
        dx.par_chunks_mut(plane)
            .enumerate()
            .for_each_init(Vec::new, run);
    } else {
        let mut col = Vec::new();
        dx.chunks_mut(plane)
            .enumerate()
            .for_each(|item| run(&mut col, item));
    }
    flex_tensor(dx, xd)
}

/// The weight gradient on `flex`: `dW [O, C, kh, kw]` from `x` and `dy [N, O, OH, OW]`.
pub fn weight_grad(
    x: &FlexTensor,
    w: &FlexTensor,
    dy: &FlexTensor,
    stride: [usize; 2],
    padding: [usize; 2],
) -> FlexTensor {
    use rayon::prelude::*;
    let wd = w.layout().shape().to_vec();
    let (x, dy) = (x.to_contiguous(), dy.to_contiguous());
    let g = Geometry::new(x.layout().shape(), w.layout().shape(), stride, padding);
    let (xs, dys) = (slice_f32(&x), slice_f32(&dy));
    let (k, p) = (g.k(), g.p());
    let tiles = g.tiles();
    // The tiles are summed in a fixed number of contiguous groups, each into its own partial,
    // and the partials in group order: the sum's association depends on the geometry alone,
    // never on the thread count or on which thread stole which tile, so the gradient is the
    // same to the bit on any number of threads.
    let groups = partial_sums(g.o * k, tiles.len());
    let per_group = tiles.len().div_ceil(groups).max(1);
    let parallel_groups = groups > 1 && split_items(groups);
    // Accumulates one tile's dy · colᵀ into `dw` ([O, K]).
    let run = |dw: &mut [f32], col: &mut Vec<f32>, &(b, r0, r1): &(usize, usize, usize)| {
        let t = (r1 - r0) * g.ow;
        let x_b = &xs[b * g.in_item()..(b + 1) * g.in_item()];
        let lhs = Mat {
            ptr: dys[b * g.out_item() + r0 * g.ow..].as_ptr(),
            rs: p as isize,
            cs: 1,
        };
        // colᵀ: element (t, k) of the [T, K] matrix is col[k, t].
        let rhs = if g.pointwise() {
            Mat {
                ptr: x_b[r0 * g.ow..].as_ptr(),
                rs: 1,
                cs: p as isize,
            }
        } else {
            col.resize(k * t, 0.0);
            im2col(&g, x_b, r0, r1, &mut col[..k * t]);
            Mat {
                ptr: col.as_ptr(),
                rs: 1,
                cs: t as isize,
            }
        };
        // SAFETY: dw holds O·K floats owned by this task.
        unsafe {
            matmul(
                g.o,
                k,
                t,
                dw.as_mut_ptr(),
                k as isize,
                lhs,
                rhs,
                true,
                !parallel_groups,
            );
        }
    };
    let group = |chunk: &[(usize, usize, usize)]| {
        let (mut dw, mut col) = (zeroed(g.o * k), Vec::new());
        chunk.iter().for_each(|tile| run(&mut dw, &mut col, tile));
        dw
    };
    let partials: Vec<Vec<f32>> = if parallel_groups {
        tiles.par_chunks(per_group).map(group).collect()
    } else {
        tiles.chunks(per_group).map(group).collect()
    };
    let mut partials = partials.into_iter();
    let mut dw = partials.next().unwrap_or_else(|| zeroed(g.o * k));
    for part in partials {
        dw.iter_mut().zip(&part).for_each(|(a, b)| *a += b);
    }
    flex_tensor(dw, wd)
}

/// How many partial sums the weight gradient keeps: up to 4 (two per core of a 2-core machine,
/// for balance), fewer when each would exceed 32 MiB (the full model's widest layers keep one
/// and parallelise inside the GEMM instead), never more than the tiles. A function of the
/// geometry only: see [`weight_grad`].
fn partial_sums(weights: usize, tiles: usize) -> usize {
    const MAX_PARTIALS: usize = 4;
    const PARTIAL_BYTES: usize = 32 << 20;
    (PARTIAL_BYTES / (weights * 4).max(1))
        .clamp(1, MAX_PARTIALS)
        .min(tiles.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::tests::rel_err;
    use burn::nn::conv::Conv2dConfig;
    use burn::tensor::{Device, Distribution};

    /// Burn's `Conv2d::forward` and [`conv2d`] give the same output and the same gradients for
    /// input, weight and bias: max abs error ≤ 1e-5 of the largest reference value (f32 sums
    /// of up to a few hundred products, in another order).
    #[allow(clippy::too_many_arguments)]
    fn check(
        n: usize,
        c: usize,
        o: usize,
        hw: [usize; 2],
        k: [usize; 2],
        s: [usize; 2],
        p: [usize; 2],
        bias: bool,
    ) {
        let device = Device::flex().autodiff();
        let conv = Conv2dConfig::new([c, o], k)
            .with_stride(s)
            .with_padding(PaddingConfig2d::Explicit(p[0], p[1], p[0], p[1]))
            .with_bias(bias)
            .init(&device);
        let x = Tensor::<4>::random(
            [n, c, hw[0], hw[1]],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        // A non-uniform upstream gradient, drawn once and shared by both runs.
        let out = |i: usize| (hw[i] + 2 * p[i] - k[i]) / s[i] + 1;
        let pattern = Tensor::<4>::random(
            [n, o, out(0), out(1)],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        let run = |fast: bool| {
            let x = x.clone().detach().require_grad();
            let y = if fast {
                conv2d(&conv, x.clone())
            } else {
                conv.forward(x.clone())
            };
            let grads = (y.clone() * pattern.clone()).sum().backward();
            let gx = x.grad(&grads).expect("input grad");
            let gw = conv.weight.val().grad(&grads).expect("weight grad");
            let gb = conv
                .bias
                .as_ref()
                .map(|b| b.val().grad(&grads).expect("bias grad"));
            (y.detach(), gx, gw, gb)
        };
        let (y0, gx0, gw0, gb0) = run(false);
        let (y1, gx1, gw1, gb1) = run(true);
        assert_eq!(y1.dims(), y0.dims());
        assert!(rel_err(y1, y0) <= 1e-5, "forward");
        assert!(
            rel_err(gx1.unsqueeze(), gx0.unsqueeze()) <= 1e-5,
            "input grad"
        );
        assert!(
            rel_err(gw1.unsqueeze(), gw0.unsqueeze()) <= 1e-5,
            "weight grad"
        );
        if let (Some(a), Some(b)) = (gb1, gb0) {
            assert!(rel_err(a.unsqueeze(), b.unsqueeze()) <= 1e-5, "bias grad");
        }
    }

    /// Forward, input and weight gradient are the same to the bit on 1, 2 and 3 threads, and
    /// from one 2-thread run to the next (a run's numbers must not depend on scheduling).
    #[test]
    fn the_gradients_do_not_depend_on_the_thread_count() {
        // Seeded values (not the global RNG); many tiles, so threads would steal.
        let values = |n: usize, seed: u64| -> Vec<f32> {
            let mut rng = crate::seed::SplitMix64::new(seed);
            (0..n).map(|_| rng.next_f64() as f32 - 0.5).collect()
        };
        let (n, c, o, h, w) = (8, 16, 16, 40, 32);
        let x = flex_tensor(values(n * c * h * w, 1), vec![n, c, h, w]);
        let wt = flex_tensor(values(o * c * 9, 2), vec![o, c, 3, 3]);
        let dy = flex_tensor(values(n * o * h * w, 3), vec![n, o, h, w]);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("pool");
            pool.install(|| {
                let y = forward(&x, &wt, [1, 1], [1, 1]);
                let dx = input_grad(&x, &wt, &dy, [1, 1], [1, 1]);
                let dw = weight_grad(&x, &wt, &dy, [1, 1], [1, 1]);
                [y, dx, dw].map(|t| slice_f32(&t).to_vec())
            })
        };
        let one = run(1);
        for threads in [2, 2, 2, 3] {
            let other = run(threads);
            for (name, (a, b)) in ["output", "input grad", "weight grad"]
                .iter()
                .zip(one.iter().zip(&other))
            {
                assert!(a == b, "{name} differs between 1 and {threads} threads");
            }
        }
    }

    /// The cases: ResNet-38's 3×3 "same" convolutions, its first layer (one input channel),
    /// its 1×1 shortcut (here with a bias), strided, unpadded, rectangular and large kernels,
    /// and a plane wide enough (K·OW) to span several row tiles.
    #[test]
    fn equals_burn_conv() {
        type Case = (
            usize,
            usize,
            usize,
            [usize; 2],
            [usize; 2],
            [usize; 2],
            [usize; 2],
            bool,
        );
        let cases: [(&str, Case); 6] = [
            (
                "3x3 same",
                (2, 8, 16, [20, 12], [3, 3], [1, 1], [1, 1], false),
            ),
            (
                "first layer",
                (3, 1, 8, [17, 16], [3, 3], [1, 1], [1, 1], false),
            ),
            (
                "pointwise + bias",
                (2, 16, 8, [9, 7], [1, 1], [1, 1], [0, 0], true),
            ),
            (
                "strided rectangular",
                (2, 3, 5, [15, 11], [3, 2], [2, 3], [0, 0], true),
            ),
            (
                "strided 5x5",
                (1, 4, 6, [13, 14], [5, 5], [2, 2], [2, 1], false),
            ),
            (
                "many tiles",
                (2, 64, 8, [40, 64], [3, 3], [1, 1], [1, 1], false),
            ),
        ];
        for (name, (n, c, o, hw, k, s, p, bias)) in cases {
            eprintln!("case {name}");
            check(n, c, o, hw, k, s, p, bias);
        }
    }

    #[test]
    fn non_flex_or_grouped_falls_back() {
        let device = Device::flex();
        let conv = Conv2dConfig::new([4, 4], [3, 3])
            .with_groups(2)
            .init(&device);
        let x = Tensor::<4>::ones([1, 4, 5, 5], &device);
        assert!(fast_padding(&conv, &x).is_none());
        let plain = Conv2dConfig::new([4, 4], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init(&device);
        assert_eq!(fast_padding(&plain, &x), Some([1, 1]));
    }
}
