//! Matrix products through the `matrixmultiply` crate.
//!
//! Every operand is a slice plus row and column strides, so a transposed operand is
//! the same slice with its strides swapped — backward of matmul never copies.
//! (`matrixmultiply` was measured against `gemm` on this project's shapes; see the
//! README's Performance notes.)

use crate::element::Float;

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

/// `c = a · b` (or `c += a · b` when `accumulate`), with `c` contiguous row-major
/// `a.rows × b.cols`.
pub fn gemm<T: Float>(a: MatRef<'_, T>, b: MatRef<'_, T>, c: &mut [T], accumulate: bool) {
    assert_eq!(
        a.cols, b.rows,
        "gemm: inner dimensions differ: [{}, {}] · [{}, {}]",
        a.rows, a.cols, b.rows, b.cols
    );
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(c.len(), m * n, "gemm: output buffer has the wrong size");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c.fill(T::zero());
        }
        return;
    }
    assert!(a.last_index() < a.data.len() && b.last_index() < b.data.len());
    crate::threads::ensure_init();
    // matrixmultiply shares its threads out along the rows of C, so give it the longer
    // side: for a wide C compute Cᵀ = Bᵀ·Aᵀ, written through transposed strides
    // (measured: 95 → 125 GFLOP/s for the MLP's 128×784·784×256 on 2 threads).
    let (lhs, rhs, rows, cols, c_strides) = if n > m {
        (b.t(), a.t(), n, m, (1, n as isize))
    } else {
        (a, b, m, n, (n as isize, 1))
    };
    // SAFETY: the asserts above check that the largest strided index of a, b and c
    // lies inside its slice (transposing swaps strides, not extents), and `c` is
    // borrowed mutably so nothing else aliases it.
    unsafe {
        T::gemm_raw(
            rows,
            k,
            cols,
            lhs.data.as_ptr(),
            (lhs.row_stride as isize, lhs.col_stride as isize),
            rhs.data.as_ptr(),
            (rhs.row_stride as isize, rhs.col_stride as isize),
            accumulate,
            c.as_mut_ptr(),
            c_strides,
        );
    }
}
