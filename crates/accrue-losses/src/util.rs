//! Small shared helpers: shape checks, L2 normalisation, cosine-similarity matrices and masks.

use burn::tensor::{Bool, Int, Tensor};

use crate::error::{LossError, Result};

/// Default `eps` of [`l2_normalize`], the same as PyTorch's `F.normalize`.
pub const NORMALIZE_EPS: f64 = 1e-12;

/// Divides every vector along the last axis by its Euclidean norm, `x / max(‖x‖₂, eps)`.
///
/// This is PyTorch's `F.normalize(x, dim=-1, eps=eps)`. Its gradient is finite for every
/// non-zero vector; an all-zero vector yields a zero output (and a NaN gradient, as the norm
/// is not differentiable at 0).
///
/// # Shapes
///
/// - `x`: `[..., D]`
/// - output: `[..., D]`
pub fn l2_normalize<const D: usize>(x: Tensor<D>, eps: f64) -> Tensor<D> {
    let norm = x
        .clone()
        .powi_scalar(2)
        .sum_dim(D - 1)
        .sqrt()
        .clamp_min(eps);
    x.div(norm)
}

/// Cosine-similarity matrix `norm(a) · norm(b)ᵀ` (rows index `a`, columns index `b`).
///
/// Both sides are normalised with [`l2_normalize`] and [`NORMALIZE_EPS`].
///
/// # Shapes
///
/// - `a`: `[B_a, D]`
/// - `b`: `[B_b, D]`
/// - output: `[B_a, B_b]`
pub fn cosine_similarity_matrix(a: Tensor<2>, b: Tensor<2>) -> Tensor<2> {
    l2_normalize(a, NORMALIZE_EPS).matmul(l2_normalize(b, NORMALIZE_EPS).transpose())
}

/// Boolean identity matrix `[n, n]` (true on the diagonal).
pub(crate) fn identity_mask(n: usize, device: &burn::tensor::Device) -> Tensor<2, Bool> {
    let (rows, cols) = index_grids(n, device);
    rows.equal(cols)
}

/// Strictly-lower-triangular mask `[n, n]`: `mask[i, j] = j < i`.
pub(crate) fn strictly_lower_mask(n: usize, device: &burn::tensor::Device) -> Tensor<2, Bool> {
    let (rows, cols) = index_grids(n, device);
    cols.lower(rows)
}

/// Row-index and column-index grids of shape `[n, n]`.
fn index_grids(n: usize, device: &burn::tensor::Device) -> (Tensor<2, Int>, Tensor<2, Int>) {
    let idx = Tensor::<1, Int>::arange(0..n as i64, device);
    let rows = idx.clone().reshape([n, 1]).expand([n, n]);
    let cols = idx.reshape([1, n]).expand([n, n]);
    (rows, cols)
}

/// Checks that a tensor is a `[B, D]` matrix with `B ≥ 1`.
pub(crate) fn check_matrix(
    term: &'static str,
    input: &'static str,
    t: &Tensor<2>,
) -> Result<[usize; 2]> {
    let dims = t.dims();
    if dims[0] == 0 {
        return Err(LossError::EmptyBatch { term });
    }
    if dims[1] == 0 {
        return Err(LossError::Shape {
            term,
            input,
            got: dims.to_vec(),
            expected: "[B, D] with D ≥ 1".into(),
        });
    }
    Ok(dims)
}

/// Checks that two tensors have the same shape.
pub(crate) fn check_same<const D: usize>(
    term: &'static str,
    input: &'static str,
    reference: &Tensor<D>,
    other: &Tensor<D>,
) -> Result<()> {
    let (r, o) = (reference.dims(), other.dims());
    if r != o {
        return Err(LossError::Shape {
            term,
            input,
            got: o.to_vec(),
            expected: format!("{r:?}"),
        });
    }
    Ok(())
}

/// Checks that a tensor is square `[B, B]` with `B ≥ 1`.
pub(crate) fn check_square(
    term: &'static str,
    input: &'static str,
    t: &Tensor<2>,
) -> Result<usize> {
    let [r, c] = check_matrix(term, input, t)?;
    if r != c {
        return Err(LossError::Shape {
            term,
            input,
            got: vec![r, c],
            expected: "a square [B, B] matrix".into(),
        });
    }
    Ok(r)
}

/// Checks that a temperature is finite and positive.
pub(crate) fn check_temperature(t: f64) -> Result<()> {
    if !(t.is_finite() && t > 0.0) {
        return Err(LossError::InvalidConfig {
            field: "temperature",
            reason: format!("must be finite and > 0, got {t}"),
        });
    }
    Ok(())
}
