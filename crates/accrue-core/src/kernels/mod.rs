//! CPU kernels for the `flex` backend, each behind a Burn backend extension with its own
//! backward pass, where Burn 0.22's generic implementation leaves most of the train step on the
//! table (profiles in docs/benchmarks.md).
//!
//! | module | op | used by |
//! |---|---|---|
//! | [`conv`] | 2-D convolution: forward, input and weight gradients | every encoder convolution |
//! | [`batch_norm`] | training-mode batch norm: statistics, forward, gradients | [`crate::nn::BatchNorm`] |
//! | [`pool`] | non-overlapping average pooling: forward, gradient | every encoder `avg_pool2d` |
//!
//! Each op applies only to `f32` tensors on `flex` and answers `None` (or falls back to Burn's
//! op) elsewhere, so every other backend keeps Burn's implementation. Each is proven equal to
//! Burn's op, forward and gradients, by its tests.

pub mod batch_norm;
pub mod conv;
pub mod pool;

pub use batch_norm::{FastBatchNorm, batch_norm_train};
pub use conv::{FastConv2d, conv2d};
pub use pool::{FastAvgPool2d, avg_pool2d};

use burn::backend::flex::{FlexTensor, Layout};
use burn::backend::{Bytes, DType, DispatchDevice, Shape};
use burn::tensor::Tensor;

/// Whether `x` is an `f32` tensor on `flex` (with or without autodiff).
fn on_flex_f32<const D: usize>(x: &Tensor<D>) -> bool {
    x.dtype() == DType::F32 && matches!(x.device().inner().as_dispatch(), DispatchDevice::Flex(_))
}

/// A raw pointer that may cross threads: each task writes a disjoint range.
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: used only for disjoint writes by construction (see the call sites).
unsafe impl Send for SendPtr {}
// SAFETY: as above.
unsafe impl Sync for SendPtr {}

impl SendPtr {
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// `n` zeros, written rather than `calloc`ed: a buffer that is read before it is written (an
/// accumulation) would otherwise map the kernel's shared zero page first and then take a
/// copy-on-write fault per page, and each of those flushes the TLB of every other thread's core
/// (an inter-processor interrupt; under a hypervisor, a VM exit). On two threads that cost more
/// than the convolution itself.
fn zeroed(n: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(n);
    v.resize(n, 0.0f32);
    v
}

/// The elements of a contiguous `f32` tensor.
fn slice_f32(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>()
        .expect("accrue kernels: a contiguous f32 tensor (checked by the caller)")
}

/// A contiguous `f32` tensor of shape `dims` owning `data`.
fn flex_tensor(data: Vec<f32>, dims: Vec<usize>) -> FlexTensor {
    FlexTensor::new(
        Bytes::from_elems(data),
        Layout::contiguous(Shape::from(dims)),
        DType::F32,
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use burn::tensor::Tensor;

    /// Largest absolute difference over the largest absolute reference value (at least 1).
    pub(crate) fn rel_err(a: Tensor<4>, b: Tensor<4>) -> f32 {
        assert_eq!(a.dims(), b.dims());
        let a = a.into_data().try_into_vec::<f32>().expect("f32");
        let b = b.into_data().try_into_vec::<f32>().expect("f32");
        let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        a.iter()
            .zip(&b)
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()))
            / scale
    }
}
