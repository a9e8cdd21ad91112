//! Scaled dot-product attention kernels. Each (batch, head) pair is one problem:
//! scores `S = Q·Kᵀ·scale`, hidden positions left out, row-wise softmax `P`,
//! output `O = P·V`. Backward from `P` (kept from forward):
//!
//! ```text
//! dV = Pᵀ·dO      dP = dO·Vᵀ      dS = P ⊙ (dP − rowsum(dP ⊙ P))·scale
//! dQ = dS·K       dK = dSᵀ·Q
//! ```
//!
//! Operands may sit in their buffers with strides ([`Placement`]): a
//! transformer's packed `[batch, time, 3·dim]` projections are read in place, one
//! head's columns at a time, and the output is written with its heads already
//! merged — no permuted copies either way. Work is shared out by group (a batch
//! element's heads); every problem is computed by one thread in a fixed order, so
//! results do not depend on the thread count.

use super::parallel::{for_each_task, pieces_mut};

use super::PARALLEL_MIN_ELEMENTS;
use super::buffer::{self, Scratch};
use super::gemm::{MatRef, gemm_serial, gemm_serial_strided};
use crate::element::Float;

/// The sizes of one attention call: `groups × heads` independent problems, each
/// with `queries` query rows and `keys` key/value rows.
#[derive(Clone, Copy, Debug)]
pub struct AttentionShape {
    /// Groups of problems that share a contiguous piece of every buffer (batch elements).
    pub groups: usize,
    /// Problems per group (heads).
    pub heads: usize,
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

    fn problems(&self) -> usize {
        self.groups * self.heads
    }
}

/// Where an operand's matrices lie in their buffer: row i of problem (g, h)
/// starts at `offset + g·group_len + h·head_stride + i·row_stride`, and group g
/// owns `group_len` elements from `g·group_len`.
#[derive(Clone, Copy, Debug)]
pub struct Placement {
    /// Where the first group's first matrix starts within a group's piece.
    pub offset: usize,
    /// Elements per group.
    pub group_len: usize,
    /// Distance between the first rows of consecutive heads.
    pub head_stride: usize,
    /// Distance between consecutive rows.
    pub row_stride: usize,
}

impl Placement {
    /// One `rows × cols` row-major matrix per group.
    pub fn contiguous(rows: usize, cols: usize) -> Self {
        Placement {
            offset: 0,
            group_len: rows * cols,
            head_stride: 0,
            row_stride: cols,
        }
    }

    /// Group g's piece of a buffer.
    fn piece<'a, T>(&self, buffer: &'a [T], g: usize) -> &'a [T] {
        &buffer[g * self.group_len..][..self.group_len]
    }

    /// Head h's `rows × cols` matrix within group `piece`.
    fn matrix<'a, T: Float>(
        &self,
        piece: &'a [T],
        h: usize,
        rows: usize,
        cols: usize,
    ) -> MatRef<'a, T> {
        let start = self.offset + h * self.head_stride;
        let end = start + (rows.max(1) - 1) * self.row_stride + cols;
        MatRef {
            data: &piece[start..end],
            rows,
            cols,
            row_stride: self.row_stride,
            col_stride: 1,
        }
    }

    /// Head h's matrix within group `piece`, to be written: from its first element
    /// on, rows `row_stride` apart.
    fn matrix_mut<'a, T>(&self, piece: &'a mut [T], h: usize) -> &'a mut [T] {
        &mut piece[self.offset + h * self.head_stride..]
    }
}

/// Which scores are hidden.
#[derive(Clone, Copy, Debug)]
pub enum Hidden<'a> {
    /// None.
    Nothing,
    /// Keys after the query's position, the last query aligned with the last key.
    Later,
    /// A mask `[problems, queries, keys]`, `true` = hidden.
    Given(&'a [bool]),
}

/// Forward. `q`, `k`, `v` are read through their placements; the output is
/// written through `out` into a buffer of `groups · out.group_len` elements.
/// Returns the output and the attention probabilities `[problems, queries, keys]`
/// (what backward needs). A query whose every key is hidden attends to nothing:
/// its probabilities and output are 0.
pub fn forward<T: Float>(
    (q, k, v): (&[T], &[T], &[T]),
    places: [Placement; 3],
    out: Placement,
    shape: AttentionShape,
    scale: T,
    hidden: Hidden<'_>,
) -> (Vec<T>, Vec<T>) {
    let AttentionShape {
        heads,
        queries,
        keys,
        dim,
        value_dim,
        ..
    } = shape;
    let mut output = buffer::zeroed(shape.groups * out.group_len);
    let mut probabilities = buffer::take(shape.problems() * shape.scores_len());
    if output.is_empty() || probabilities.is_empty() {
        return (output, probabilities); // no queries, or no keys to attend to
    }
    let [q_place, k_place, v_place] = places;
    let one_group = |g: usize, (out_piece, p_piece): (&mut [T], &mut [T])| {
        let (q, k, v) = (
            q_place.piece(q, g),
            k_place.piece(k, g),
            v_place.piece(v, g),
        );
        for (h, p) in p_piece.chunks_exact_mut(shape.scores_len()).enumerate() {
            // S = Q·Kᵀ
            let q = q_place.matrix(q, h, queries, dim);
            let k = k_place.matrix(k, h, keys, dim);
            gemm_serial(q, k.t(), p, false);
            let problem = g * heads + h;
            for (i, row) in p.chunks_exact_mut(keys).enumerate() {
                match hidden {
                    Hidden::Nothing => softmax_prefix(row, scale, keys),
                    // key j is visible while j + queries ≤ i + keys
                    Hidden::Later => {
                        softmax_prefix(row, scale, (i + keys + 1).saturating_sub(queries))
                    }
                    Hidden::Given(mask) => {
                        let at = (problem * queries + i) * keys;
                        softmax_masked(row, scale, &mask[at..at + keys]);
                    }
                }
            }
            // O = P·V, written straight into head h's columns of the output
            let p = MatRef::row_major(p, queries, keys);
            let v = v_place.matrix(v, h, keys, value_dim);
            gemm_serial_strided(p, v, out.matrix_mut(out_piece, h), out.row_stride, false);
        }
    };
    let (out_len, p_len) = (out.group_len, heads * shape.scores_len());
    let tasks = (
        pieces_mut(&mut output, out_len),
        pieces_mut(&mut probabilities, p_len),
    );
    for_each_task(tasks, parallel(shape), &one_group);
    (output, probabilities)
}

/// `row ← softmax(row·scale)` over its first `visible` entries; the rest get 0.
fn softmax_prefix<T: Float>(row: &mut [T], scale: T, visible: usize) {
    let (seen, rest) = row.split_at_mut(visible.min(row.len()));
    rest.fill(T::zero());
    if seen.is_empty() {
        return; // every key hidden: attend to nothing
    }
    let max = seen.iter().fold(T::neg_infinity(), |m, &s| m.max(s));
    // the exponentials first, then their sum: a loop of exponentials vectorises
    super::exp_shifted(seen, max, scale);
    let total = seen.iter().fold(T::zero(), |total, &s| total + s);
    let inverse = T::one() / total;
    seen.iter_mut().for_each(|s| *s *= inverse);
}

/// `row ← softmax(row·scale)` over the keys the mask leaves visible; hidden keys get 0.
fn softmax_masked<T: Float>(row: &mut [T], scale: T, hidden: &[bool]) {
    let max = row
        .iter()
        .zip(hidden)
        .filter(|&(_, &h)| !h)
        .fold(T::neg_infinity(), |m, (&s, _)| m.max(s));
    if max == T::neg_infinity() {
        row.fill(T::zero()); // every key hidden: attend to nothing
        return;
    }
    for (s, &h) in row.iter_mut().zip(hidden) {
        let e = ((*s - max) * scale).fast_exp();
        *s = if h { T::zero() } else { e };
    }
    let total = row.iter().fold(T::zero(), |total, &s| total + s);
    let inverse = T::one() / total;
    row.iter_mut().for_each(|s| *s *= inverse);
}

/// Backward: from `grad_output` (read through `out`) and the forward's
/// probabilities, writes dQ, dK and dV through `grad_places` into `grads`: a list
/// of buffers, each `groups · group_len` long, `grad_places[i] = (buffer, placement)`
/// (one buffer for packed projections, three otherwise). Every element of the
/// buffers is written.
pub fn backward<T: Float>(
    grad_output: &[T],
    (q, k, v): (&[T], &[T], &[T]),
    probabilities: &[T],
    (places, out): ([Placement; 3], Placement),
    grad_places: [(usize, Placement); 3],
    grads: &mut [Vec<T>],
    (shape, scale): (AttentionShape, T),
) {
    let AttentionShape {
        heads,
        queries,
        keys,
        dim,
        value_dim,
        ..
    } = shape;
    for grad in grads.iter_mut() {
        grad.fill(T::zero()); // packed buffers may have gaps; problems without keys get 0
    }
    if probabilities.is_empty() || shape.problems() == 0 {
        return;
    }
    let [q_place, k_place, v_place] = places;
    let one_group = |g: usize, mut pieces: Vec<&mut [T]>| {
        let (q, k, v) = (
            q_place.piece(q, g),
            k_place.piece(k, g),
            v_place.piece(v, g),
        );
        let grad_out = out.piece(grad_output, g);
        let p_piece =
            &probabilities[g * heads * shape.scores_len()..][..heads * shape.scores_len()];
        let mut ds = Scratch::new(shape.scores_len());
        // dQ, dK, dV are written straight into their places in the gradient buffers
        let [
            (dq_buffer, dq_place),
            (dk_buffer, dk_place),
            (dv_buffer, dv_place),
        ] = grad_places;
        for (h, p) in p_piece.chunks_exact(shape.scores_len()).enumerate() {
            let p = MatRef::row_major(p, queries, keys);
            let (q, k, v) = (
                q_place.matrix(q, h, queries, dim),
                k_place.matrix(k, h, keys, dim),
                v_place.matrix(v, h, keys, value_dim),
            );
            let grad_out = out.matrix(grad_out, h, queries, value_dim);
            // dV = Pᵀ·dO
            let dv = dv_place.matrix_mut(pieces[dv_buffer], h);
            gemm_serial_strided(p.t(), grad_out, dv, dv_place.row_stride, false);
            // dP = dO·Vᵀ, then dS = P ⊙ (dP − rowsum(dP ⊙ P))·scale in place
            gemm_serial(grad_out, v.t(), &mut ds, false);
            for (ds_row, p_row) in ds.chunks_exact_mut(keys).zip(p.data.chunks_exact(keys)) {
                let weighted: T = ds_row.iter().zip(p_row).map(|(&d, &p)| d * p).sum();
                for (d, &p) in ds_row.iter_mut().zip(p_row) {
                    *d = p * (*d - weighted) * scale;
                }
            }
            let ds = MatRef::row_major(&ds, queries, keys);
            // dQ = dS·K,  dK = dSᵀ·Q
            let dq = dq_place.matrix_mut(pieces[dq_buffer], h);
            gemm_serial_strided(ds, k, dq, dq_place.row_stride, false);
            let dk = dk_place.matrix_mut(pieces[dk_buffer], h);
            gemm_serial_strided(ds.t(), q, dk, dk_place.row_stride, false);
        }
    };
    // task g gets group g's piece of every gradient buffer (each `groups · group_len` long)
    let per_group: Vec<_> = (grads.iter_mut().enumerate())
        .map(|(buffer, grad)| {
            let group_len = grad_places
                .iter()
                .find(|(b, _)| *b == buffer)
                .map(|(_, place)| place.group_len)
                .expect("every buffer receives a gradient");
            pieces_mut(grad, group_len)
        })
        .collect();
    for_each_task(per_group, parallel(shape), &one_group);
}

/// Worth sharing out among threads: more than one group, and enough work.
fn parallel(shape: AttentionShape) -> bool {
    let work = shape.scores_len() * (shape.dim + shape.value_dim) * shape.problems();
    shape.groups > 1 && work >= PARALLEL_MIN_ELEMENTS
}
