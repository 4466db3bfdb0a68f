//! Row-major `f32` matrices: the currency of this crate (embeddings, similarities, scores).
//!
//! Evaluation works on plain buffers so that it needs no encoder: an encoder's output tensor is
//! turned into a [`Matrix`] once ([`Matrix::from_tensor`]) and every metric reads slices.

use burn::tensor::Tensor;
use rayon::prelude::*;

use crate::error::{EvalError, Result};

/// The L2 norm below which a row is left unnormalised (all zeros stays all zeros), as in
/// `torch.nn.functional.normalize`'s `eps`.
pub const NORMALIZE_EPS: f32 = 1e-12;

/// A borrowed row-major matrix `[rows, cols]`.
#[derive(Debug, Clone, Copy)]
pub struct MatrixRef<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
}

impl<'a> MatrixRef<'a> {
    /// Wraps `data` as a `[rows, cols]` matrix; fails if the length is not `rows * cols`.
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> Result<Self> {
        let expected = rows
            .checked_mul(cols)
            .ok_or_else(|| EvalError::shape("matrix", "rows * cols overflows"))?;
        if data.len() != expected {
            return Err(EvalError::shape(
                "matrix",
                format!(
                    "buffer has {} values, shape [{rows}, {cols}] needs {expected}",
                    data.len()
                ),
            ));
        }
        Ok(Self { data, rows, cols })
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The whole buffer, row-major.
    pub fn data(&self) -> &'a [f32] {
        self.data
    }

    /// Row `i` (panics if `i >= rows`; callers index within `0..rows`).
    pub fn row(&self, i: usize) -> &'a [f32] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// Fails with [`EvalError::NonFinite`] if any value is NaN or infinite.
    pub fn check_finite(&self, what: &'static str) -> Result<()> {
        if self.data.iter().all(|v| v.is_finite()) {
            Ok(())
        } else {
            Err(EvalError::NonFinite(what))
        }
    }

    /// An owned copy.
    pub fn to_owned(&self) -> Matrix {
        Matrix {
            data: self.data.to_vec(),
            rows: self.rows,
            cols: self.cols,
        }
    }
}

/// An owned row-major matrix `[rows, cols]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    data: Vec<f32>,
    rows: usize,
    cols: usize,
}

impl Matrix {
    /// Takes ownership of `data` as a `[rows, cols]` matrix.
    pub fn new(data: Vec<f32>, rows: usize, cols: usize) -> Result<Self> {
        MatrixRef::new(&data, rows, cols)?;
        Ok(Self { data, rows, cols })
    }

    /// Builds a matrix from equally long rows.
    pub fn from_rows(rows: &[Vec<f32>]) -> Result<Self> {
        let cols = rows.first().map_or(0, Vec::len);
        if let Some((i, r)) = rows.iter().enumerate().find(|(_, r)| r.len() != cols) {
            return Err(EvalError::shape(
                "rows",
                format!("row {i} has {} values, row 0 has {cols}", r.len()),
            ));
        }
        Ok(Self {
            data: rows.concat(),
            rows: rows.len(),
            cols,
        })
    }

    /// Copies a `[rows, cols]` Burn tensor (any backend, any float dtype) to the host as `f32`.
    pub fn from_tensor(tensor: Tensor<2>) -> Result<Self> {
        let [rows, cols] = tensor.dims();
        let data = tensor
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .map_err(|e| EvalError::shape("tensor", format!("{e:?}")))?;
        Self::new(data, rows, cols)
    }

    /// A borrowed view.
    pub fn view(&self) -> MatrixRef<'_> {
        MatrixRef {
            data: &self.data,
            rows: self.rows,
            cols: self.cols,
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The buffer, row-major.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// Consumes the matrix, returning its buffer.
    pub fn into_data(self) -> Vec<f32> {
        self.data
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// The rows selected by `indices`, in that order.
    pub fn select_rows(&self, indices: &[usize]) -> Result<Self> {
        let mut data = Vec::with_capacity(indices.len() * self.cols);
        for &i in indices {
            if i >= self.rows {
                return Err(EvalError::Index {
                    what: "row selection",
                    index: i,
                    bound: self.rows,
                });
            }
            data.extend_from_slice(self.row(i));
        }
        Ok(Self {
            data,
            rows: indices.len(),
            cols: self.cols,
        })
    }
}

/// L2-normalises every row of `m` (`x / max(‖x‖, eps)`), in `f32` with an `f64` accumulator.
pub fn l2_normalize_rows(m: MatrixRef<'_>) -> Matrix {
    let mut data = m.data().to_vec();
    if m.cols() > 0 {
        data.par_chunks_mut(m.cols()).for_each(normalize_in_place);
    }
    Matrix {
        data,
        rows: m.rows(),
        cols: m.cols(),
    }
}

pub(crate) fn normalize_in_place(row: &mut [f32]) {
    let norm = row
        .iter()
        .map(|&v| f64::from(v) * f64::from(v))
        .sum::<f64>()
        .sqrt()
        .max(f64::from(NORMALIZE_EPS)) as f32;
    row.iter_mut().for_each(|v| *v /= norm);
}

/// Dot product with four independent accumulators (lets the compiler vectorise).
#[inline]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let chunks_a = a.chunks_exact(8);
    let chunks_b = b.chunks_exact(8);
    let (ra, rb) = (chunks_a.remainder(), chunks_b.remainder());
    for (ca, cb) in chunks_a.zip(chunks_b) {
        for k in 0..8 {
            acc[k] += ca[k] * cb[k];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// Cosine similarity matrix `[a.rows, b.rows]` between the rows of `a` and `b`
/// (both L2-normalised first). Parallel over rows of `a`.
pub fn cosine_similarity(a: MatrixRef<'_>, b: MatrixRef<'_>) -> Result<Matrix> {
    if a.cols() != b.cols() {
        return Err(EvalError::shape(
            "cosine_similarity",
            format!("dimension mismatch: {} vs {}", a.cols(), b.cols()),
        ));
    }
    let (a, b) = (l2_normalize_rows(a), l2_normalize_rows(b));
    let cols = b.rows();
    let mut data = vec![0.0f32; a.rows() * cols];
    if cols > 0 {
        data.par_chunks_mut(cols).enumerate().for_each(|(i, out)| {
            let q = a.row(i);
            for (j, o) in out.iter_mut().enumerate() {
                *o = dot(q, b.row(j));
            }
        });
    }
    Matrix::new(data, a.rows(), cols)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_is_checked() {
        assert!(MatrixRef::new(&[1.0; 6], 2, 3).is_ok());
        assert!(MatrixRef::new(&[1.0; 5], 2, 3).is_err());
        assert!(Matrix::from_rows(&[vec![1.0, 2.0], vec![3.0]]).is_err());
    }

    #[test]
    fn cosine_of_parallel_rows_is_one() {
        let a = Matrix::from_rows(&[vec![3.0, 4.0], vec![0.0, 0.0]]).unwrap();
        let b = Matrix::from_rows(&[vec![6.0, 8.0], vec![-4.0, 3.0]]).unwrap();
        let s = cosine_similarity(a.view(), b.view()).unwrap();
        assert!((s.row(0)[0] - 1.0).abs() < 1e-6);
        assert!(s.row(0)[1].abs() < 1e-6);
        assert_eq!(s.row(1), &[0.0, 0.0]);
    }

    #[test]
    fn from_tensor_round_trips() {
        let device = burn::tensor::Device::default();
        let t = Tensor::<2>::from_floats([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], &device);
        let m = Matrix::from_tensor(t).unwrap();
        assert_eq!((m.rows(), m.cols()), (2, 3));
        assert_eq!(m.row(1), &[4.0, 5.0, 6.0]);
    }
}
