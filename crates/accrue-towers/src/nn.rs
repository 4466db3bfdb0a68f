//! Small building blocks shared by the transformer towers.

use burn::tensor::activation::softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};

/// Scaled dot-product attention over packed heads.
///
/// - `q`, `k`, `v`: `[B, T, H·Dh]`
/// - `mask`: optional additive mask broadcastable to `[B, H, T, T]` (0 keeps, a large
///   negative value removes)
/// - output: `[B, T, H·Dh]`
pub(crate) fn attention(
    q: Tensor<3>,
    k: Tensor<3>,
    v: Tensor<3>,
    n_heads: usize,
    mask: Option<Tensor<4>>,
) -> Tensor<3> {
    let [b, t, d] = q.dims();
    let dh = d / n_heads;
    let split = |x: Tensor<3>| x.reshape([b, t, n_heads, dh]).swap_dims(1, 2);
    let (q, k, v) = (split(q), split(k), split(v));
    let scale = 1.0 / (dh as f64).sqrt();
    let mut scores = q.matmul(k.swap_dims(2, 3)).mul_scalar(scale);
    if let Some(m) = mask {
        scores = scores + m;
    }
    let probs = softmax(scores, 3);
    probs.matmul(v).swap_dims(1, 2).reshape([b, t, d])
}

/// An additive causal mask `[1, 1, T, T]`: `-inf`-like strictly above the diagonal.
pub(crate) fn causal_mask(t: usize, device: &Device) -> Tensor<4> {
    let mut m = vec![0.0f32; t * t];
    for i in 0..t {
        for j in (i + 1)..t {
            m[i * t + j] = f32::NEG_INFINITY;
        }
    }
    Tensor::from_data(TensorData::new(m, [1, 1, t, t]), device)
}

/// `[B, T]` integer tensor from rows of ids (all rows of equal length).
pub(crate) fn int_tensor(rows: &[Vec<i64>], device: &Device) -> Tensor<2, Int> {
    let b = rows.len();
    let t = rows.first().map_or(0, Vec::len);
    let flat: Vec<i64> = rows.iter().flatten().copied().collect();
    Tensor::from_data(TensorData::new(flat, [b, t]), device)
}

/// `0, 1, …, t-1` repeated for each of `b` rows: `[B, T]`.
pub(crate) fn positions(b: usize, t: usize, device: &Device) -> Tensor<2, Int> {
    let flat: Vec<i64> = (0..b).flat_map(|_| 0..t as i64).collect();
    Tensor::from_data(TensorData::new(flat, [b, t]), device)
}
