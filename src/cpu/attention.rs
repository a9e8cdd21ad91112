//! Scaled dot-product attention kernels, one independent `(batch, head)` matrix
//! per task: scores `S = Q·Kᵀ·scale`, hidden positions set to −∞, row-wise
//! softmax `P`, output `O = P·V`. Backward from `P` (kept from forward):
//!
//! ```text
//! dV = Pᵀ·dO      dP = dO·Vᵀ      dS = P ⊙ (dP − rowsum(dP ⊙ P))·scale
//! dQ = dS·K       dK = dSᵀ·Q
//! ```
//!
//! Every matrix is computed by one thread, in a fixed order, so results do not
//! depend on the thread count.

use rayon::prelude::*;

use super::PARALLEL_MIN_ELEMENTS;
use super::buffer::{self, Scratch};
use super::gemm::{MatRef, gemm_serial};
use crate::element::Float;

/// The sizes of one attention call: `matrices` independent (batch × head) problems,
/// each with `queries` query rows and `keys` key/value rows.
#[derive(Clone, Copy, Debug)]
pub struct AttentionShape {
    /// Independent problems (batch × heads).
    pub matrices: usize,
    /// Query rows per problem.
    pub queries: usize,
    /// Key (and value) rows per problem.
    pub keys: usize,
    /// Length of a query and key vector.
    pub dim: usize,
    /// Length of a value vector (and of an output row).
    pub value_dim: usize,
}

impl AttentionShape {
    fn scores_len(&self) -> usize {
        self.queries * self.keys
    }
}

/// Whether matrix `m`'s query `i` may not look at key `j`.
pub trait Hidden: Fn(usize, usize, usize) -> bool + Sync {}
impl<F: Fn(usize, usize, usize) -> bool + Sync> Hidden for F {}

/// Forward: returns the output `[matrices, queries, value_dim]` and the attention
/// probabilities `[matrices, queries, keys]` (what backward needs). A query row
/// whose every key is hidden attends to nothing: its probabilities and output are 0.
pub fn forward<T: Float>(
    q: &[T],
    k: &[T],
    v: &[T],
    shape: AttentionShape,
    scale: T,
    hidden: impl Hidden,
) -> (Vec<T>, Vec<T>) {
    let AttentionShape {
        queries,
        keys,
        dim,
        value_dim,
        ..
    } = shape;
    let mut out = buffer::take(shape.matrices * queries * value_dim);
    let mut probabilities = buffer::take(shape.matrices * shape.scores_len());
    if out.is_empty() || probabilities.is_empty() {
        out.fill(T::zero()); // no keys: every query attends to nothing
        return (out, probabilities);
    }
    let one_matrix = |(m, (out, p)): (usize, (&mut [T], &mut [T]))| {
        let (q, k) = (matrix(q, m, queries, dim), matrix(k, m, keys, dim));
        let v = matrix(v, m, keys, value_dim);
        // S = Q·Kᵀ
        gemm_serial(q, k.t(), p, false);
        for (i, row) in p.chunks_exact_mut(keys).enumerate() {
            softmax_row(row, scale, |j| hidden(m, i, j));
        }
        // O = P·V
        let p = MatRef::row_major(p, queries, keys);
        gemm_serial(p, v, out, false);
    };
    let (out_len, scores_len) = (queries * value_dim, shape.scores_len());
    if parallel(shape) {
        crate::threads::ensure_init();
        let tasks = out
            .par_chunks_mut(out_len)
            .zip(probabilities.par_chunks_mut(scores_len));
        tasks.enumerate().for_each(one_matrix);
    } else {
        let tasks = out
            .chunks_mut(out_len)
            .zip(probabilities.chunks_mut(scores_len));
        tasks.enumerate().for_each(one_matrix);
    }
    (out, probabilities)
}

/// `row ← softmax(row·scale)` over the keys not hidden; hidden keys get 0.
fn softmax_row<T: Float>(row: &mut [T], scale: T, hidden: impl Fn(usize) -> bool) {
    let mut max = T::neg_infinity();
    for (j, s) in row.iter_mut().enumerate() {
        *s = if hidden(j) {
            T::neg_infinity()
        } else {
            *s * scale
        };
        max = max.max(*s);
    }
    if max == T::neg_infinity() {
        row.fill(T::zero()); // every key hidden: attend to nothing
        return;
    }
    let mut total = T::zero();
    for s in row.iter_mut() {
        *s = (*s - max).exp(); // exp(−∞) = 0 for hidden keys
        total += *s;
    }
    let inverse = T::one() / total;
    row.iter_mut().for_each(|s| *s *= inverse);
}

/// One matrix's `((dQ, dK), dV)` output slices, as the zipped chunks deliver them.
type MatrixGrads<'a, T> = ((&'a mut [T], &'a mut [T]), &'a mut [T]);

/// Backward: from `grad_output` `[matrices, queries, value_dim]` and the forward's
/// probabilities, the gradients `(dQ, dK, dV)` in the layouts of `q`, `k`, `v`.
pub fn backward<T: Float>(
    grad_output: &[T],
    (q, k, v): (&[T], &[T], &[T]),
    probabilities: &[T],
    shape: AttentionShape,
    scale: T,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let AttentionShape {
        queries,
        keys,
        dim,
        value_dim,
        ..
    } = shape;
    let mut dq = buffer::take(q.len());
    let mut dk = buffer::take(k.len());
    let mut dv = buffer::take(v.len());
    if probabilities.is_empty() || dv.is_empty() || dq.is_empty() {
        for grad in [&mut dq, &mut dk, &mut dv] {
            grad.fill(T::zero());
        }
        return (dq, dk, dv);
    }
    let one_matrix = |(m, ((dq, dk), dv)): (usize, MatrixGrads<'_, T>)| {
        let (q, k, v) = (
            matrix(q, m, queries, dim),
            matrix(k, m, keys, dim),
            matrix(v, m, keys, value_dim),
        );
        let grad_out = matrix(grad_output, m, queries, value_dim);
        let p = matrix(probabilities, m, queries, keys);
        // dV = Pᵀ·dO
        gemm_serial(p.t(), grad_out, dv, false);
        // dP = dO·Vᵀ, then dS = P ⊙ (dP − rowsum(dP ⊙ P))·scale in place
        let mut ds = Scratch::new(shape.scores_len());
        gemm_serial(grad_out, v.t(), &mut ds, false);
        for (ds_row, p_row) in ds.chunks_exact_mut(keys).zip(p.data.chunks_exact(keys)) {
            let weighted: T = ds_row.iter().zip(p_row).map(|(&d, &p)| d * p).sum();
            for (d, &p) in ds_row.iter_mut().zip(p_row) {
                *d = p * (*d - weighted) * scale;
            }
        }
        let ds = MatRef::row_major(&ds, queries, keys);
        // dQ = dS·K,  dK = dSᵀ·Q
        gemm_serial(ds, k, dq, false);
        gemm_serial(ds.t(), q, dk, false);
    };
    let (q_len, k_len, v_len) = (queries * dim, keys * dim, keys * value_dim);
    if parallel(shape) {
        crate::threads::ensure_init();
        let tasks = dq
            .par_chunks_mut(q_len)
            .zip(dk.par_chunks_mut(k_len))
            .zip(dv.par_chunks_mut(v_len));
        tasks.enumerate().for_each(one_matrix);
    } else {
        let tasks = dq
            .chunks_mut(q_len)
            .zip(dk.chunks_mut(k_len))
            .zip(dv.chunks_mut(v_len));
        tasks.enumerate().for_each(one_matrix);
    }
    (dq, dk, dv)
}

/// Matrix `m` of a stack of `rows × cols` row-major matrices.
fn matrix<T: Float>(stack: &[T], m: usize, rows: usize, cols: usize) -> MatRef<'_, T> {
    MatRef::row_major(&stack[m * rows * cols..][..rows * cols], rows, cols)
}

/// Worth sharing out among threads: more than one problem, and enough work.
fn parallel(shape: AttentionShape) -> bool {
    let work = shape.scores_len() * (shape.dim + shape.value_dim);
    shape.matrices > 1 && work * shape.matrices >= PARALLEL_MIN_ELEMENTS
}
