//! CPU kernels: the loops behind the ops, on plain slices.
//!
//! This is the device seam: ops in `crate::ops` describe *what* to compute and how
//! gradients flow; the functions here decide *how* to loop, when to use threads and
//! which GEMM to call. A GPU backend would add a sibling of this module.

pub mod attention;
pub mod buffer;
pub mod conv;
pub mod gemm;
pub mod isa;
pub mod norm;
pub mod parallel;
pub mod pool;
pub mod reduce;
pub mod shape;
pub mod update;

use smallvec::SmallVec;

use crate::element::Float;

/// What the CPU kernels need of an element type: a GEMM kernel and a buffer pool.
pub trait CpuElement: gemm::Gemm + buffer::Recycle {}

impl<T: gemm::Gemm + buffer::Recycle> CpuElement for T {}

/// Below this many elements a kernel stays on the calling thread: handing work to
/// the pool costs a few microseconds, more than the work itself.
pub const PARALLEL_MIN_ELEMENTS: usize = 1 << 15;

/// Elements per parallel task: large enough to amortise scheduling, and fixed so
/// that results never depend on the thread count.
pub const CHUNK: usize = 1 << 13;

/// A piece of kernel work that [`wide_simd`] can compile for wider vectors. Its
/// `run` must be `#[inline(always)]`, so that it is compiled inside the caller.
pub trait SimdKernel {
    /// What the work returns.
    type Output;
    /// Does the work.
    fn run(self) -> Self::Output;
}

/// Runs `kernel` compiled for AVX-512 (512-bit vectors) or AVX2 (256-bit) when the
/// CPU has them, so that its loops vectorise 16 or 8 floats wide rather than the
/// baseline x86-64's 4. The arithmetic is the same either way (no fused multiply-adds
/// are introduced, and the kernels fix their summation order themselves), so results
/// do not depend on the CPU. AVX-512 was measured on this project's machine: the GPT
/// step's non-GEMM time −13% against AVX2, LeNet's −7%, ResNet-20's unchanged.
#[inline]
pub fn wide_simd<K: SimdKernel>(kernel: K) -> K::Output {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2")]
        unsafe fn with_avx2<K: SimdKernel>(kernel: K) -> K::Output {
            kernel.run()
        }
        #[target_feature(enable = "avx512f")]
        unsafe fn with_avx512<K: SimdKernel>(kernel: K) -> K::Output {
            kernel.run()
        }
        match isa::isa() {
            // SAFETY: `with_avx512` only needs the CPU to support AVX-512F, and
            // `isa()` is Avx512 only where it was detected.
            isa::Isa::Avx512 => return unsafe { with_avx512(kernel) },
            // SAFETY: `with_avx2` only needs AVX2, detected wherever `isa()` is Avx2
            // (on a CPU capped to it by NABLA_ISA too: Avx512 implies AVX2).
            isa::Isa::Avx2 => return unsafe { with_avx2(kernel) },
            isa::Isa::Baseline => {}
        }
    }
    kernel.run()
}

/// Whether the kernels may use AVX-512 with fused multiply-adds ([`isa::isa`]):
/// what [`fused_simd`] kernels need to run at speed.
pub fn has_avx512_fma() -> bool {
    isa::isa() == isa::Isa::Avx512
}

/// Runs `kernel` compiled for AVX-512 with fused multiply-adds when the CPU has
/// them ([`has_avx512_fma`]). For kernels written with `mul_add` whose register
/// tiles need AVX-512's 32 vector registers: compiled for AVX2 (16 registers) the
/// tiles spilled and ran 4× slower than GEMM, so callers choose such a kernel only
/// where `has_avx512_fma` holds, and elsewhere it runs unvectorised (tests). An FMA
/// rounds once, in hardware or in software, so the results are the same bits on
/// every CPU.
#[inline]
pub fn fused_simd<K: SimdKernel>(kernel: K) -> K::Output {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,fma")]
        unsafe fn with_avx512<K: SimdKernel>(kernel: K) -> K::Output {
            kernel.run()
        }
        if has_avx512_fma() {
            // SAFETY: `with_avx512` only needs AVX-512F and FMA, checked just above.
            return unsafe { with_avx512(kernel) };
        }
    }
    kernel.run()
}

/// `dst.copy_from_slice(src)` for the short rows of image planes (8 to 64 values),
/// eight values at a time as array moves: `copy_from_slice` calls `memcpy`, whose
/// fixed cost per call was 7% of a ResNet-20 step spent on rows of 8–32 floats.
#[inline(always)]
pub fn copy_row<T: Copy>(dst: &mut [T], src: &[T]) {
    assert_eq!(dst.len(), src.len(), "copy_row: rows of different lengths");
    let mut dst_runs = dst.chunks_exact_mut(8);
    let mut src_runs = src.chunks_exact(8);
    for (d, s) in (&mut dst_runs).zip(&mut src_runs) {
        let d: &mut [T; 8] = d.try_into().expect("a run of 8");
        *d = s.try_into().expect("a run of 8");
    }
    for (d, s) in dst_runs
        .into_remainder()
        .iter_mut()
        .zip(src_runs.remainder())
    {
        *d = *s;
    }
}

/// `f(x)` for every element.
pub fn map<T: Float>(x: &[T], f: impl Fn(T) -> T + Sync) -> Vec<T> {
    let mut out = buffer::take(x.len());
    fill_chunks(&mut out, &|start, out| {
        let x = &x[start..start + out.len()];
        wide_simd(Elementwise(
            out,
            (x, x, x),
            #[inline(always)]
            |v, _, _| f(v),
        ));
    });
    out
}

/// `f(a, b)` for every pair of elements of two equally long slices.
pub fn zip<T: Float>(a: &[T], b: &[T], f: impl Fn(T, T) -> T + Sync) -> Vec<T> {
    debug_assert_eq!(a.len(), b.len());
    let mut out = buffer::take(a.len());
    fill_chunks(&mut out, &|start, out| {
        let range = start..start + out.len();
        let (a, b) = (&a[range.clone()], &b[range]);
        wide_simd(Elementwise(
            out,
            (a, b, b),
            #[inline(always)]
            |x, y, _| f(x, y),
        ));
    });
    out
}

/// `f(a, b, c)` for every triple of elements of three equally long slices — the
/// shape of most elementwise backward rules: `grad_output · f'(input, output)`.
pub fn zip3<T: Float>(a: &[T], b: &[T], c: &[T], f: impl Fn(T, T, T) -> T + Sync) -> Vec<T> {
    debug_assert!(a.len() == b.len() && b.len() == c.len());
    let mut out = buffer::take(a.len());
    fill_chunks(&mut out, &|start, out| {
        let range = start..start + out.len();
        let (a, b, c) = (&a[range.clone()], &b[range.clone()], &c[range]);
        // a closure, not `&f`, and inlined always: otherwise LLVM may leave `f` a call
        // per element of the wide-vector loop (see `ops::activation`)
        #[allow(clippy::redundant_closure)]
        wide_simd(Elementwise(
            out,
            (a, b, c),
            #[inline(always)]
            |x, y, z| f(x, y, z),
        ));
    });
    out
}

/// `out[i] = f(a[i], b[i], c[i])` for [`wide_simd`]: compiled inside its AVX-512 or
/// AVX2 function, the loop vectorises 16 or 8 floats wide — which matters for loops over
/// `exp` and `erf`. (`map` and `zip` pass an input twice and ignore it.)
struct Elementwise<'a, T, F>(&'a mut [T], (&'a [T], &'a [T], &'a [T]), F);

impl<T: Float, F: Fn(T, T, T) -> T> SimdKernel for Elementwise<'_, T, F> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        let Elementwise(out, (a, b, c), f) = self;
        for (((o, &x), &y), &z) in out.iter_mut().zip(a).zip(b).zip(c) {
            *o = f(x, y, z);
        }
    }
}

/// Every row of `out` (a row-major matrix with `row.len()` columns) set to `row`, on
/// the thread pool when `out` is large: a linear layer's output starts as its bias.
pub fn fill_rows<T: Float>(out: &mut [T], row: &[T]) {
    let width = row.len();
    if width == 0 {
        return;
    }
    fill_chunks(out, &|start, piece| {
        // the piece starts `start % width` into a row: finish that row, then whole rows
        let mut column = start % width;
        let mut rest = piece;
        while !rest.is_empty() {
            let len = (width - column).min(rest.len());
            let (now, later) = rest.split_at_mut(len);
            now.copy_from_slice(&row[column..column + len]);
            (rest, column) = (later, 0);
        }
    });
}

/// Calls `fill(start, piece)` on `out` cut into pieces of [`CHUNK`] elements
/// (`start`: where the piece begins in `out`), on the thread pool when `out` is large.
fn fill_chunks<T: Float>(out: &mut [T], fill: &(dyn Fn(usize, &mut [T]) + Sync)) {
    fill_pieces(out, CHUNK, fill);
}

/// [`fill_chunks`] with pieces of `piece_len` elements.
fn fill_pieces<T: Float>(out: &mut [T], piece_len: usize, fill: &(dyn Fn(usize, &mut [T]) + Sync)) {
    if out.len() < PARALLEL_MIN_ELEMENTS || piece_len == 0 || piece_len >= out.len() {
        fill(0, out);
        return;
    }
    parallel::for_each_task(
        parallel::pieces_mut(out, piece_len),
        true,
        &|index, piece| fill(index * piece_len, piece),
    );
}

/// `row[i] ← e^((row[i] − shift)·scale)`: the exponentials of a softmax, in one loop
/// that vectorises (see [`Float::fast_exp`]).
pub fn exp_shifted<T: Float>(row: &mut [T], shift: T, scale: T) {
    wide_simd(ExpShifted(row, shift, scale));
}

struct ExpShifted<'a, T>(&'a mut [T], T, T);

impl<T: Float> SimdKernel for ExpShifted<'_, T> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        let ExpShifted(row, shift, scale) = self;
        for value in row.iter_mut() {
            *value = ((*value - shift) * scale).fast_exp();
        }
    }
}

/// `f(a, b)` with NumPy broadcasting into `out_shape`.
pub fn zip_broadcast<T: Float>(
    a: &[T],
    a_shape: &[usize],
    b: &[T],
    b_shape: &[usize],
    out_shape: &[usize],
    f: impl Fn(T, T) -> T + Sync,
) -> Vec<T> {
    if a_shape == b_shape {
        return zip(a, b, f);
    }
    if b.len() == 1 {
        let y = b[0];
        return map(a, |x| f(x, y));
    }
    if a.len() == 1 {
        let x = a[0];
        return map(b, |y| f(x, y));
    }
    let a_strides = shape::broadcast_strides(a_shape, out_shape);
    let b_strides = shape::broadcast_strides(b_shape, out_shape);
    let ndim = out_shape.len();
    let row_len = out_shape[ndim - 1];
    let (a_step, b_step) = (a_strides[ndim - 1], b_strides[ndim - 1]);
    let fill_out_rows = |first_row: usize, out: &mut [T]| {
        for (r, out_row) in out.chunks_mut(row_len).enumerate() {
            // Where this output row starts in a and b.
            let (mut a_at, mut b_at) = (0, 0);
            let mut rest = first_row + r;
            for axis in (0..ndim - 1).rev() {
                let index = rest % out_shape[axis];
                rest /= out_shape[axis];
                a_at += index * a_strides[axis];
                b_at += index * b_strides[axis];
            }
            match (a_step, b_step) {
                (1, 1) => {
                    let (a_row, b_row) = (&a[a_at..a_at + row_len], &b[b_at..b_at + row_len]);
                    for ((o, &x), &y) in out_row.iter_mut().zip(a_row).zip(b_row) {
                        *o = f(x, y);
                    }
                }
                (1, 0) => {
                    let y = b[b_at];
                    for (o, &x) in out_row.iter_mut().zip(&a[a_at..a_at + row_len]) {
                        *o = f(x, y);
                    }
                }
                (0, 1) => {
                    let x = a[a_at];
                    for (o, &y) in out_row.iter_mut().zip(&b[b_at..b_at + row_len]) {
                        *o = f(x, y);
                    }
                }
                _ => {
                    for (i, o) in out_row.iter_mut().enumerate() {
                        *o = f(a[a_at + i * a_step], b[b_at + i * b_step]);
                    }
                }
            }
        }
    };
    let mut out = buffer::take(shape::numel(out_shape));
    if row_len == 0 {
        return out;
    }
    let rows_per_task = CHUNK.div_ceil(row_len);
    fill_pieces(&mut out, rows_per_task * row_len, &|start, piece| {
        fill_out_rows(start / row_len, piece)
    });
    out
}

/// Reads `src` through arbitrary strides into a new contiguous array of
/// `out_shape`: `out[i₀, i₁, …] = src[Σ iₖ·strides[k]]`. With zero strides this
/// broadcasts; with permuted strides it transposes.
pub fn gather_strided<T: Float>(src: &[T], strides: &[usize], out_shape: &[usize]) -> Vec<T> {
    let total = shape::numel(out_shape);
    let ndim = out_shape.len();
    let mut out = buffer::take(total);
    if ndim == 0 {
        out.fill(src[0]);
        return out;
    }
    let row_len = out_shape[ndim - 1];
    let step = strides[ndim - 1];
    let mut index: SmallVec<[usize; 4]> = smallvec::smallvec![0; ndim - 1];
    let mut start = 0usize;
    for out_row in out
        .chunks_exact_mut(row_len.max(1))
        .take(total.checked_div(row_len).unwrap_or(0))
    {
        if step == 1 {
            out_row.copy_from_slice(&src[start..start + row_len]);
        } else {
            for (i, o) in out_row.iter_mut().enumerate() {
                *o = src[start + i * step];
            }
        }
        // Advance the multi-index over all but the last axis, like an odometer.
        for axis in (0..ndim - 1).rev() {
            index[axis] += 1;
            start += strides[axis];
            if index[axis] < out_shape[axis] {
                break;
            }
            start -= index[axis] * strides[axis];
            index[axis] = 0;
        }
    }
    out
}

/// Copies the whole of `src` (shape `src_shape`) into `dst` (shape `dst_shape`,
/// at least as large on every axis) with its corner at `offset`.
pub fn copy_into_box<T: Float>(
    src: &[T],
    src_shape: &[usize],
    dst: &mut [T],
    dst_shape: &[usize],
    offset: &[usize],
) {
    for_each_row(src_shape, dst_shape, offset, |src_at, dst_at, len| {
        dst[dst_at..dst_at + len].copy_from_slice(&src[src_at..src_at + len]);
    });
}

/// The box of shape `box_shape` with its corner at `offset`, cut out of `src`.
pub fn extract_box<T: Float>(
    src: &[T],
    src_shape: &[usize],
    offset: &[usize],
    box_shape: &[usize],
) -> Vec<T> {
    let mut out = buffer::take(shape::numel(box_shape));
    for_each_row(box_shape, src_shape, offset, |box_at, src_at, len| {
        out[box_at..box_at + len].copy_from_slice(&src[src_at..src_at + len]);
    });
    out
}

/// Calls `visit(small_at, large_at, row_len)` for every last-axis row of a box of
/// shape `small` placed at `offset` inside an array of shape `large`.
fn for_each_row(
    small: &[usize],
    large: &[usize],
    offset: &[usize],
    mut visit: impl FnMut(usize, usize, usize),
) {
    let ndim = small.len();
    if shape::numel(small) == 0 {
        return;
    }
    if ndim == 0 {
        visit(0, 0, 1);
        return;
    }
    let large_strides = shape::strides(large);
    let row_len = small[ndim - 1];
    let rows = shape::numel(&small[..ndim - 1]);
    let mut index = vec![0usize; ndim - 1];
    for row in 0..rows {
        let mut large_at = offset[ndim - 1];
        for axis in 0..ndim - 1 {
            large_at += (index[axis] + offset[axis]) * large_strides[axis];
        }
        visit(row * row_len, large_at, row_len);
        for axis in (0..ndim - 1).rev() {
            index[axis] += 1;
            if index[axis] < small[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_rows_repeats_the_row_for_every_width() {
        // widths that divide the parallel pieces, straddle them, and exceed them
        for width in [1, 3, 64, 1000, CHUNK + 5, 3 * CHUNK] {
            let rows = PARALLEL_MIN_ELEMENTS.div_ceil(width) + 1;
            let row: Vec<f32> = (0..width).map(|i| i as f32).collect();
            let mut out = vec![-1.0f32; rows * width];
            fill_rows(&mut out, &row);
            for (r, out_row) in out.chunks_exact(width).enumerate() {
                assert_eq!(out_row, &row[..], "width {width}, row {r}");
            }
        }
    }

    #[test]
    fn column_sums_of_a_wide_matrix_match_the_row_by_row_sum() {
        // [rows, columns] summed over its rows, on the parallel path (shared-out columns)
        let (rows, columns) = (300, 250);
        let x: Vec<f32> = (0..rows * columns)
            .map(|i| ((i * 37) % 101) as f32 / 7.0)
            .collect();
        let sums = reduce::sum_axis(&x, 1, rows, columns);
        for (c, &sum) in sums.iter().enumerate() {
            let expected = (0..rows).fold(0.0f32, |total, r| total + x[r * columns + c]);
            assert_eq!(sum, expected, "column {c}");
        }
    }
}
