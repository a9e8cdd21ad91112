//! Matrix multiplication, 2-D and batched (leading axes broadcast like NumPy).
//!
//! Forward: C = A·B. Backward: dL/dA = G·Bᵀ and dL/dB = Aᵀ·G, where G = dL/dC.
//! The transposes are never materialised: the GEMM reads Bᵀ and Aᵀ through swapped
//! strides.

use crate::device::{MatRef, gemm_batched};
use crate::element::Float;
use crate::tensor::{Tensor, shape};

/// The forward formula and backward rule of each op in this file, as `nabla explain`
/// shows them.
pub(crate) const RULES: &[super::Rule] = &[
    super::Rule {
        op: "matmul",
        forward: "C = A·B",
        backward: "dL/dA = G·Bᵀ; dL/dB = Aᵀ·G",
    },
    super::Rule {
        op: "matmul_t",
        forward: "C = A·Bᵀ",
        backward: "dL/dA = G·B; dL/dB = Gᵀ·A",
    },
];

impl<T: Float> Tensor<T> {
    /// The matrix product of the last two axes; leading (batch) axes broadcast.
    ///
    /// ```
    /// use nabla::Tensor;
    /// let a = Tensor::<f32>::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]);
    /// let b = Tensor::<f32>::from_vec(vec![1.0, 0.0, 0.0, 1.0], &[2, 2]);
    /// assert_eq!(a.matmul(&b).to_vec(), a.to_vec());
    /// ```
    ///
    /// Panics, naming both shapes, if either operand has fewer than two axes, the
    /// inner sizes differ or the batch axes do not broadcast.
    pub fn matmul(&self, rhs: &Tensor<T>) -> Tensor<T> {
        matmul_op(self, false, rhs, false)
    }

    /// `self · rhsᵀ` (the last two axes of `rhs` swapped), without copying `rhs`:
    /// how a linear layer applies its `[out, in]` weight.
    pub fn matmul_t(&self, rhs: &Tensor<T>) -> Tensor<T> {
        matmul_op(self, false, rhs, true)
    }
}

/// C = op(A)·op(B), recorded with its backward rule. For C = A·B:
/// dL/dA = G·Bᵀ and dL/dB = Aᵀ·G; the transposed cases follow by transposing
/// those equations (for C = A·Bᵀ: dL/dA = G·B, dL/dB = Gᵀ·A).
fn matmul_op<T: Float>(
    a: &Tensor<T>,
    transpose_a: bool,
    b: &Tensor<T>,
    transpose_b: bool,
) -> Tensor<T> {
    let (values, out_shape) = product(a, transpose_a, b, transpose_b);
    let name = if transpose_b { "matmul_t" } else { "matmul" };
    Tensor::from_op(values, &out_shape, name, &[a, b], move |ctx| {
        let (a, b, g) = (ctx.input(0), ctx.input(1), ctx.grad_output);
        let grad_a = ctx.needs_grad(0).then(|| {
            let (values, shape) = if transpose_a {
                product(b, transpose_b, g, true) // (G·op(B)ᵀ)ᵀ = op(B)·Gᵀ
            } else {
                product(g, false, b, !transpose_b) // G·op(B)ᵀ
            };
            Tensor::from_vec(values, &shape).sum_to(a.shape())
        });
        let grad_b = ctx.needs_grad(1).then(|| {
            let (values, shape) = if transpose_b {
                product(g, true, a, transpose_a) // (op(A)ᵀ·G)ᵀ = Gᵀ·op(A)
            } else {
                product(a, !transpose_a, g, false) // op(A)ᵀ·G
            };
            Tensor::from_vec(values, &shape).sum_to(b.shape())
        });
        vec![grad_a, grad_b]
    })
}

/// `op(A)·op(B)` over broadcast batch axes, where `op` transposes the last two
/// axes when asked (through strides). Returns the values and their shape.
fn product<T: Float>(
    a: &Tensor<T>,
    transpose_a: bool,
    b: &Tensor<T>,
    transpose_b: bool,
) -> (Vec<T>, Vec<usize>) {
    let fail = |why: &str| -> ! {
        panic!(
            "matmul: cannot multiply shapes {:?} and {:?}: {why}",
            a.shape(),
            b.shape()
        )
    };
    if a.ndim() < 2 || b.ndim() < 2 {
        fail("both operands need at least two axes");
    }
    let (a_batch, a_rows, a_cols) = split_matrix(a.shape());
    let (b_batch, b_rows, b_cols) = split_matrix(b.shape());
    let (m, k) = if transpose_a {
        (a_cols, a_rows)
    } else {
        (a_rows, a_cols)
    };
    let (k_b, n) = if transpose_b {
        (b_cols, b_rows)
    } else {
        (b_rows, b_cols)
    };
    if k != k_b {
        fail(&format!("inner sizes {k} and {k_b} differ"));
    }
    let batch_shape = shape::broadcast_shapes(a_batch, b_batch)
        .unwrap_or_else(|| fail("the batch axes do not broadcast"));
    let batches = shape::numel(&batch_shape);
    let a_strides = shape::broadcast_strides(a_batch, &batch_shape);
    let b_strides = shape::broadcast_strides(b_batch, &batch_shape);
    // Which matrix of A and of B each output matrix uses.
    let matrix_index = |batch: usize, strides: &[usize]| {
        let mut rest = batch;
        let mut index = 0;
        for axis in (0..batch_shape.len()).rev() {
            index += (rest % batch_shape[axis]) * strides[axis];
            rest /= batch_shape[axis];
        }
        index
    };
    let (a_guard, b_guard) = (a.data(), b.data());
    let (a_data, b_data): (&[T], &[T]) = (&a_guard, &b_guard);
    let (a_size, b_size) = (a_rows * a_cols, b_rows * b_cols);
    let operands = |batch: usize| {
        let a_at = matrix_index(batch, &a_strides) * a_size;
        let b_at = matrix_index(batch, &b_strides) * b_size;
        let lhs = MatRef::row_major(&a_data[a_at..a_at + a_size], a_rows, a_cols).t_if(transpose_a);
        let rhs = MatRef::row_major(&b_data[b_at..b_at + b_size], b_rows, b_cols).t_if(transpose_b);
        (lhs, rhs)
    };
    let out = gemm_batched(batches, (m, n, k), operands);
    let mut out_shape = batch_shape;
    out_shape.extend([m, n]);
    (out, out_shape)
}

/// `[batch…, rows, cols]` → (batch axes, rows, cols).
fn split_matrix(shape: &[usize]) -> (&[usize], usize, usize) {
    let nd = shape.len();
    (&shape[..nd - 2], shape[nd - 2], shape[nd - 1])
}
