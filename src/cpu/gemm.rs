//! Matrix products through the `matrixmultiply` crate.
//!
//! Every operand is a slice plus row and column strides, so a transposed operand is
//! the same slice with its strides swapped — backward of matmul never copies.
//! (`matrixmultiply` was measured against `gemm` on this project's shapes; see the
//! README's Performance notes.)

use super::parallel::{for_each_task, pieces_mut};

use crate::element::Float;

/// The GEMM kernel of an element type (the GEMM crate's `sgemm` or `dgemm`).
pub trait Gemm: Sized {
    /// `C = A·B (+ C if accumulate)`, with every matrix given by its row and column
    /// strides, so transposes cost nothing. Dispatches to the GEMM crate's kernel.
    ///
    /// # Safety
    /// Every index `i*rs + j*cs` the shapes reach must lie inside the slices
    /// (checked by the caller, `cpu::gemm`).
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm_raw(
        m: usize,
        k: usize,
        n: usize,
        a: *const Self,
        a_strides: (isize, isize),
        b: *const Self,
        b_strides: (isize, isize),
        accumulate: bool,
        c: *mut Self,
        c_strides: (isize, isize),
    );
}

macro_rules! impl_gemm {
    ($t:ty, $gemm:path) => {
        impl Gemm for $t {
            unsafe fn gemm_raw(
                m: usize,
                k: usize,
                n: usize,
                a: *const Self,
                a_strides: (isize, isize),
                b: *const Self,
                b_strides: (isize, isize),
                accumulate: bool,
                c: *mut Self,
                c_strides: (isize, isize),
            ) {
                let beta = if accumulate { 1.0 } else { 0.0 };
                // SAFETY: forwarded from this function's contract: the caller has checked
                // that all strided indices stay inside the buffers.
                unsafe {
                    $gemm(
                        m,
                        k,
                        n,
                        1.0,
                        a,
                        a_strides.0,
                        a_strides.1,
                        b,
                        b_strides.0,
                        b_strides.1,
                        beta,
                        c,
                        c_strides.0,
                        c_strides.1,
                    )
                }
            }
        }
    };
}

impl_gemm!(f32, matrixmultiply::sgemm);
impl_gemm!(f64, matrixmultiply::dgemm);

/// A read-only matrix view: element `(r, c)` is `data[r * row_stride + c * col_stride]`.
#[derive(Clone, Copy)]
pub struct MatRef<'a, T> {
    /// The elements.
    pub data: &'a [T],
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// Distance in `data` between consecutive rows.
    pub row_stride: usize,
    /// Distance in `data` between consecutive columns.
    pub col_stride: usize,
}

impl<'a, T: Float> MatRef<'a, T> {
    /// A contiguous row-major `rows × cols` matrix.
    pub fn row_major(data: &'a [T], rows: usize, cols: usize) -> Self {
        MatRef {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose, by swapping strides (no copy).
    pub fn t(self) -> Self {
        MatRef {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }

    /// Transposes when `transpose` is true.
    pub fn t_if(self, transpose: bool) -> Self {
        if transpose { self.t() } else { self }
    }

    fn last_index(&self) -> usize {
        (self.rows.max(1) - 1) * self.row_stride + (self.cols.max(1) - 1) * self.col_stride
    }
}

/// Below this many multiply-adds a product runs on the calling thread: handing it
/// to the pool would cost more than it saves.
const PARALLEL_MIN_WORK: usize = 1 << 18;

/// At most this many multiply-adds, a product is computed by its definition: the
/// GEMM crate's packing buffers and edge kernels would cost more than the
/// arithmetic (a tiny network's whole step is a handful of such products; measured
/// crossover: 200–300 multiply-adds).
const SMALL_PRODUCT: usize = 1 << 8;

/// A product whose output has at most this many elements but whose inner dimension
/// is long (a convolution's weight gradient: `[16, 150]` summed over 6,400 pixels
/// per image) is split along `k` instead, in chunks of [`K_CHUNK`].
const SMALL_OUTPUT: usize = 64 * 64;
const K_CHUNK: usize = 4096;

/// `A·B` into a new buffer; with `row`, `A·B + row` added to every row of the
/// product (a linear layer's bias: the GEMM starts from it rather than adding it
/// in a second pass).
pub fn product<T: Float>(a: MatRef<'_, T>, b: MatRef<'_, T>, row: Option<&[T]>) -> Vec<T> {
    let mut out = super::buffer::take(a.rows * b.cols);
    if let Some(row) = row {
        super::fill_rows(&mut out, row);
    }
    gemm(a, b, &mut out, row.is_some());
    out
}

/// `batches` products of the same size `(m, n, k)`, one after another in the
/// returned buffer: `operands(b)` gives output matrix `b`'s `(A, B)`. Many small
/// products run one per task (the GEMM would not split them itself); large ones
/// are split by the GEMM.
pub fn gemm_batched<'a, T: Float>(
    batches: usize,
    (m, n, k): (usize, usize, usize),
    operands: impl Fn(usize) -> (MatRef<'a, T>, MatRef<'a, T>) + Sync,
) -> Vec<T> {
    let mut out = super::buffer::take(batches * m * n);
    if m * n == 0 {
        return out;
    }
    let multiply = |batch: usize, out: &mut [T]| {
        let (a, b) = operands(batch);
        gemm(a, b, out, false);
    };
    let small_matrices = m * n * k < 64 * 64 * 64;
    let parallel = batches > 1 && small_matrices && out.len() >= super::PARALLEL_MIN_ELEMENTS;
    for_each_task(pieces_mut(&mut out, m * n), parallel, &multiply);
    out
}

/// `c = a · b` (or `c += a · b` when `accumulate`), with `c` contiguous row-major
/// `a.rows × b.cols`.
///
/// Threads: the rows of the output are shared out among the pool's threads, each
/// running a single-threaded GEMM on its block (the result does not depend on how
/// many threads there are). A small output with a long inner dimension is instead
/// summed from fixed-size chunks of `k`, in order — again the same for any thread count.
pub fn gemm<T: Float>(a: MatRef<'_, T>, b: MatRef<'_, T>, c: &mut [T], accumulate: bool) {
    let n = b.cols;
    multiply(a, b, (c, n), accumulate, true);
}

/// [`gemm`] on the calling thread only: for callers that are already one of many
/// parallel tasks (a convolution's per-image products), where splitting further
/// would only add scheduling — and let a waiting task pick up a sibling's work
/// while it holds its own scratch buffers.
pub fn gemm_serial<T: Float>(a: MatRef<'_, T>, b: MatRef<'_, T>, c: &mut [T], accumulate: bool) {
    let n = b.cols;
    multiply(a, b, (c, n), accumulate, false);
}

/// [`gemm_serial`] into a `a.rows × b.cols` matrix whose rows lie `c_row_stride`
/// apart in `c` — one head's columns inside a wider row-major buffer — so that the
/// product lands where it belongs, with no copy afterwards.
pub fn gemm_serial_strided<T: Float>(
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    c: &mut [T],
    c_row_stride: usize,
    accumulate: bool,
) {
    multiply(a, b, (c, c_row_stride), accumulate, false);
}

/// `c (+)= a · b` with `c`'s rows `c_row_stride` apart (`b.cols` when contiguous).
fn multiply<T: Float>(
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    (c, c_row_stride): (&mut [T], usize),
    accumulate: bool,
    may_split: bool,
) {
    assert_eq!(
        a.cols, b.rows,
        "gemm: inner dimensions differ: [{}, {}] · [{}, {}]",
        a.rows, a.cols, b.rows, b.cols
    );
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if c_row_stride == n {
        assert_eq!(c.len(), m * n, "gemm: output buffer has the wrong size");
    }
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        n <= c_row_stride && (m - 1) * c_row_stride + n <= c.len(),
        "gemm: a [{m}, {n}] output with rows {c_row_stride} apart does not fit in {} elements",
        c.len()
    );
    if k == 0 {
        if !accumulate {
            c.chunks_mut(c_row_stride)
                .take(m)
                .for_each(|row| row[..n].fill(T::zero()));
        }
        return;
    }
    assert!(a.last_index() < a.data.len() && b.last_index() < b.data.len());
    if m * n * k <= SMALL_PRODUCT {
        return multiply_by_definition(a, b, (c, c_row_stride), accumulate);
    }
    if may_split && c_row_stride == n && m * n <= SMALL_OUTPUT && k >= 2 * K_CHUNK {
        return gemm_split_k(a, b, c, accumulate);
    }
    let threads = if may_split && m * n * k >= PARALLEL_MIN_WORK {
        crate::threads::ensure_init();
        rayon::current_num_threads()
    } else {
        1
    };
    // Share out the longer side of C: for a wide C that is its columns, i.e. the
    // rows of Cᵀ = Bᵀ·Aᵀ, written through transposed strides.
    let (lhs, rhs, rows, cols, c_strides) = if n > m {
        (b.t(), a.t(), n, m, (1, c_row_stride))
    } else {
        (a, b, m, n, (c_row_stride, 1))
    };
    let block = rows.div_ceil(threads).next_multiple_of(16).min(rows);
    let c_ptr = SharedOut(c.as_mut_ptr());
    let multiply_block = |first_row: usize| {
        let block_rows = block.min(rows - first_row);
        // SAFETY: the asserts above check that the largest strided index of a, b and
        // c lies inside its slice (transposing swaps strides, not extents); `c` is
        // borrowed mutably for the whole call, and each block writes only its own
        // rows `first_row..first_row + block_rows` of the (possibly transposed)
        // output, so no two blocks touch the same element.
        unsafe {
            T::gemm_raw(
                block_rows,
                k,
                cols,
                lhs.data.as_ptr().add(first_row * lhs.row_stride),
                (lhs.row_stride as isize, lhs.col_stride as isize),
                rhs.data.as_ptr(),
                (rhs.row_stride as isize, rhs.col_stride as isize),
                accumulate,
                c_ptr.get().add(first_row * c_strides.0),
                (c_strides.0 as isize, c_strides.1 as isize),
            );
        }
    };
    let blocks = rows.div_ceil(block);
    for_each_task(0..blocks, blocks > 1, &|index, _| {
        multiply_block(index * block)
    });
}

/// `c (+)= a · b` by the definition, `c[i][j] = Σ_p a[i][p]·b[p][j]` summed in order
/// of `p`, for products too small to be worth packing.
fn multiply_by_definition<T: Float>(
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    (c, c_row_stride): (&mut [T], usize),
    accumulate: bool,
) {
    let a_at = |i: usize, p: usize| a.data[i * a.row_stride + p * a.col_stride];
    let b_at = |p: usize, j: usize| b.data[p * b.row_stride + j * b.col_stride];
    for (i, c_row) in c.chunks_mut(c_row_stride).take(a.rows).enumerate() {
        for (j, out) in c_row[..b.cols].iter_mut().enumerate() {
            let dot = (0..a.cols).fold(T::zero(), |sum, p| sum + a_at(i, p) * b_at(p, j));
            *out = if accumulate { *out + dot } else { dot };
        }
    }
}

/// `c (+)= a · b` as the sum over fixed chunks of the inner dimension, computed in
/// parallel and added up in chunk order.
fn gemm_split_k<T: Float>(a: MatRef<'_, T>, b: MatRef<'_, T>, c: &mut [T], accumulate: bool) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    let chunks = k.div_ceil(K_CHUNK);
    let mut partials = super::buffer::take(chunks * m * n);
    let multiply_chunk = |chunk: usize, partial: &mut [T]| {
        let inner = chunk * K_CHUNK..((chunk + 1) * K_CHUNK).min(k);
        let a_part = MatRef {
            data: &a.data[inner.start * a.col_stride..],
            cols: inner.len(),
            ..a
        };
        let b_part = MatRef {
            data: &b.data[inner.start * b.row_stride..],
            rows: inner.len(),
            ..b
        };
        gemm(a_part, b_part, partial, false);
    };
    for_each_task(pieces_mut(&mut partials, m * n), true, &multiply_chunk);
    if !accumulate {
        c.fill(T::zero());
    }
    super::reduce::add_partials(&mut c[..m * n], &partials);
    super::buffer::give(partials);
}

/// The output pointer, shared by the tasks that each write their own block of it.
#[derive(Clone, Copy)]
struct SharedOut<T>(*mut T);

impl<T> SharedOut<T> {
    fn get(self) -> *mut T {
        self.0
    }
}

// SAFETY: the pointer is only used by `gemm`, whose tasks write disjoint blocks of
// an output that `gemm` borrows mutably until they have all finished.
unsafe impl<T: Send> Send for SharedOut<T> {}
unsafe impl<T: Send> Sync for SharedOut<T> {}

#[cfg(test)]
mod tests {
    use super::*;

    /// The small-product path and the GEMM kernel compute the same `C (+)= A·B`, for
    /// plain and transposed operands, and shapes on both sides of [`SMALL_PRODUCT`].
    #[test]
    fn products_by_definition_match_the_gemm_kernel() {
        for (m, k, n) in [(4, 2, 8), (1, 8, 1), (8, 4, 8), (3, 5, 7), (6, 7, 9)] {
            let a: Vec<f64> = (0..m * k).map(|i| (i as f64 * 0.37).sin()).collect();
            let b: Vec<f64> = (0..k * n).map(|i| (i as f64 * 0.73).cos()).collect();
            for (transpose_a, transpose_b, accumulate) in [
                (false, false, false),
                (true, false, true),
                (false, true, false),
                (true, true, true),
            ] {
                // stored transposed, read back through swapped strides
                let a_ref = if transpose_a {
                    MatRef::row_major(&a, k, m).t()
                } else {
                    MatRef::row_major(&a, m, k)
                };
                let b_ref = if transpose_b {
                    MatRef::row_major(&b, n, k).t()
                } else {
                    MatRef::row_major(&b, k, n)
                };
                let start: Vec<f64> = (0..m * n).map(|i| i as f64).collect();
                let mut direct = start.clone();
                multiply_by_definition(a_ref, b_ref, (&mut direct, n), accumulate);
                let mut kernel = start;
                // SAFETY: the strides and extents describe the vectors above.
                unsafe {
                    f64::gemm_raw(
                        m,
                        k,
                        n,
                        a_ref.data.as_ptr(),
                        (a_ref.row_stride as isize, a_ref.col_stride as isize),
                        b_ref.data.as_ptr(),
                        (b_ref.row_stride as isize, b_ref.col_stride as isize),
                        accumulate,
                        kernel.as_mut_ptr(),
                        (n as isize, 1),
                    )
                };
                for (d, g) in direct.iter().zip(&kernel) {
                    assert!(
                        (d - g).abs() <= 1e-12 * (1.0 + g.abs()),
                        "{m}×{k}×{n}: {d} vs {g}"
                    );
                }
            }
        }
    }
}
