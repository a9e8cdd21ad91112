//! Kernels that work along one axis of a tensor viewed as `[outer, len, inner]`.

use super::parallel::{for_each_task, map_tasks, pieces, pieces_mut};
use super::{CHUNK, PARALLEL_MIN_ELEMENTS};
use crate::element::Float;

/// Columns per task when [`sum_axis`] shares out the columns of one matrix.
const COLUMNS_PER_TASK: usize = 64;

/// `out += partials[0] + partials[1] + …`, each partial `out.len()` long, added in
/// order: sums computed in parallel from fixed chunks come out the same whichever
/// thread computed which chunk.
pub fn add_partials<T: Float>(out: &mut [T], partials: &[T]) {
    if out.is_empty() {
        return;
    }
    for partial in partials.chunks_exact(out.len()) {
        out.iter_mut().zip(partial).for_each(|(o, &p)| *o += p);
    }
}

/// `out[o, i] = Σₖ x[o, k, i]`.
pub fn sum_axis<T: Float>(x: &[T], outer: usize, len: usize, inner: usize) -> Vec<T> {
    let mut out = super::buffer::zeroed(outer * inner);
    let parallel = x.len() >= PARALLEL_MIN_ELEMENTS;
    if inner == 1 {
        // Reducing the contiguous axis: each output is a dot with ones.
        let sum_row = |o: usize, slot: &mut [T]| slot[0] = sum_slice(&x[o * len..(o + 1) * len]);
        for_each_task(pieces_mut(&mut out, 1), parallel && outer > 1, &sum_row);
        return out;
    }
    if outer == 1 && parallel && inner >= 2 * COLUMNS_PER_TASK {
        // One long sum per column (a bias gradient: [4096, 512] summed over its rows):
        // share out the columns. Each column is still summed row by row, in order.
        let sum_columns = |task: usize, columns: &mut [T]| {
            let first = task * COLUMNS_PER_TASK;
            for row in x.chunks_exact(inner) {
                let row = &row[first..first + columns.len()];
                for (acc, &v) in columns.iter_mut().zip(row) {
                    *acc += v;
                }
            }
        };
        for_each_task(pieces_mut(&mut out, COLUMNS_PER_TASK), true, &sum_columns);
        return out;
    }
    let sum_block = |o: usize, out_row: &mut [T]| {
        for k in 0..len {
            let row = &x[(o * len + k) * inner..(o * len + k + 1) * inner];
            for (acc, &v) in out_row.iter_mut().zip(row) {
                *acc += v;
            }
        }
    };
    for_each_task(
        pieces_mut(&mut out, inner),
        parallel && outer > 1,
        &sum_block,
    );
    out
}

/// The sum of a slice, in fixed-size chunks so the result does not depend on the
/// number of threads, with several accumulators so the loop vectorises.
pub fn sum_slice<T: Float>(x: &[T]) -> T {
    if x.len() >= PARALLEL_MIN_ELEMENTS {
        let partials = map_tasks(pieces(x, CHUNK), true, &|_, chunk| sum_serial(chunk));
        return sum_serial(&partials);
    }
    sum_serial(x)
}

/// `Σᵢ aᵢ·bᵢ`, with 32 accumulators so the loop vectorises and several vector
/// multiply-adds are in flight at once (16 or 8 floats wide where the CPU has AVX-512 or AVX2).
pub fn dot<T: Float>(a: &[T], b: &[T]) -> T {
    super::wide_simd(LaneSum(a, b, |x: T, y: T| x * y))
}

/// `Σᵢ f(aᵢ, bᵢ)` in 32 interleaved partial sums (lane k takes every 32nd term),
/// added up at the end: a fixed order, whatever the CPU, that the compiler turns
/// into SIMD. Its `run` must be called through [`super::wide_simd`].
pub struct LaneSum<'a, T, F>(pub &'a [T], pub &'a [T], pub F);

impl<T: Float, F: Fn(T, T) -> T> super::SimdKernel for LaneSum<'_, T, F> {
    type Output = T;

    #[inline(always)]
    fn run(self) -> T {
        const LANES: usize = 32;
        let LaneSum(a, b, f) = self;
        let mut lanes = [T::zero(); LANES];
        let (mut a_chunks, mut b_chunks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
        for (a_chunk, b_chunk) in (&mut a_chunks).zip(&mut b_chunks) {
            // fixed-length arrays: the compiler sees the trip count and emits SIMD
            let (a_chunk, b_chunk): (&[T; LANES], &[T; LANES]) =
                (a_chunk.try_into().unwrap(), b_chunk.try_into().unwrap());
            for k in 0..LANES {
                lanes[k] += f(a_chunk[k], b_chunk[k]);
            }
        }
        let tail: T = a_chunks
            .remainder()
            .iter()
            .zip(b_chunks.remainder())
            .map(|(&x, &y)| f(x, y))
            .sum();
        lanes.iter().copied().sum::<T>() + tail
    }
}

/// `Σ_rows −log_probabilities[row, targets[row]]` for `[rows, classes]` log-probabilities.
pub fn negative_log_likelihood<T: Float>(log_probabilities: &[T], targets: &[usize]) -> T {
    let classes = log_probabilities.len() / targets.len().max(1);
    targets
        .iter()
        .enumerate()
        .map(|(row, &t)| -log_probabilities[row * classes + t])
        .sum()
}

/// `factor · (softmax − onehot(targets))` from `[rows, classes]` log-probabilities:
/// the gradient of softmax cross-entropy.
pub fn softmax_minus_onehot<T: Float>(
    log_probabilities: &[T],
    targets: &[usize],
    factor: T,
) -> Vec<T> {
    let classes = log_probabilities.len() / targets.len().max(1);
    let mut grad = super::buffer::take(log_probabilities.len());
    for (g, &lp) in grad.iter_mut().zip(log_probabilities) {
        *g = lp.fast_exp() * factor;
    }
    for (row, &t) in targets.iter().enumerate() {
        grad[row * classes + t] -= factor;
    }
    grad
}

/// Whether every value is finite (no NaN, no ±∞): what training checks of every
/// gradient before each update. `0·v` is 0 for a finite `v` and NaN otherwise, so
/// a sum of `0·v` is NaN exactly when some value is not finite — and a sum
/// vectorises, where a search that stops at the first bad value does not.
pub fn all_finite<T: Float>(x: &[T]) -> bool {
    let chunk_finite = |chunk: &[T]| super::wide_simd(ZeroTimesSum(chunk)) == T::zero();
    if x.len() >= PARALLEL_MIN_ELEMENTS {
        let finite = map_tasks(pieces(x, CHUNK), true, &|_, chunk| chunk_finite(chunk));
        return finite.into_iter().all(|finite| finite);
    }
    chunk_finite(x)
}

/// `Σ 0·v` over a slice, 8 lanes at a time.
struct ZeroTimesSum<'a, T>(&'a [T]);

impl<T: Float> super::SimdKernel for ZeroTimesSum<'_, T> {
    type Output = T;

    #[inline(always)]
    fn run(self) -> T {
        const LANES: usize = 16;
        let mut lanes = [T::zero(); LANES];
        let mut chunks = self.0.chunks_exact(LANES);
        for chunk in &mut chunks {
            let chunk: &[T; LANES] = chunk.try_into().unwrap();
            for k in 0..LANES {
                lanes[k] += T::zero() * chunk[k];
            }
        }
        let tail: T = chunks.remainder().iter().map(|&v| T::zero() * v).sum();
        lanes.iter().copied().sum::<T>() + tail
    }
}

fn sum_serial<T: Float>(x: &[T]) -> T {
    const LANES: usize = 8;
    let mut lanes = [T::zero(); LANES];
    let mut chunks = x.chunks_exact(LANES);
    for chunk in &mut chunks {
        let chunk: &[T; LANES] = chunk.try_into().unwrap();
        for k in 0..LANES {
            lanes[k] += chunk[k];
        }
    }
    let tail: T = chunks.remainder().iter().copied().sum();
    lanes.iter().copied().sum::<T>() + tail
}

/// The gradient of [`max_axis`]: each output's gradient goes to the position of
/// its maximum (`arg_max`), zeros elsewhere; the input is `[outer, len, inner]`.
pub fn max_axis_backward<T: Float>(
    grad_output: &[T],
    arg_max: &[usize],
    len: usize,
    inner: usize,
) -> Vec<T> {
    let mut grad = super::buffer::zeroed(grad_output.len() * len);
    for (slot, (&g, &k)) in grad_output.iter().zip(arg_max).enumerate() {
        let (o, i) = (slot / inner, slot % inner);
        grad[(o * len + k) * inner + i] = g;
    }
    grad
}

/// `(max over k of x[o, k, i], the first k where it occurs)`.
pub fn max_axis<T: Float>(x: &[T], outer: usize, len: usize, inner: usize) -> (Vec<T>, Vec<usize>) {
    let mut values = super::buffer::take(outer * inner);
    values.fill(T::neg_infinity());
    let mut arg = super::buffer::zeroed(outer * inner);
    for o in 0..outer {
        for k in 0..len {
            for i in 0..inner {
                let v = x[(o * len + k) * inner + i];
                let slot = o * inner + i;
                // NaN wins, as in PyTorch: a NaN anywhere shows up in the max.
                if v > values[slot] || (v.is_nan() && !values[slot].is_nan()) || k == 0 {
                    values[slot] = v;
                    arg[slot] = k;
                }
            }
        }
    }
    (values, arg)
}

/// Softmax along the axis, computed as `exp(x − max) / Σ exp(x − max)` so large
/// logits cannot overflow. With `log = true`, `x − max − log Σ exp(x − max)`.
pub fn softmax_axis<T: Float>(
    x: &[T],
    outer: usize,
    len: usize,
    inner: usize,
    log: bool,
) -> Vec<T> {
    let mut out = super::buffer::take(x.len());
    let block = len * inner;
    let one_block = |o: usize, out: &mut [T]| {
        let x = &x[o * block..(o + 1) * block];
        for i in 0..inner {
            let max = (0..len)
                .map(|k| x[k * inner + i])
                .fold(T::neg_infinity(), T::max);
            // the exponentials first, then their sum: a loop of exponentials vectorises
            if inner == 1 {
                out.copy_from_slice(x);
                super::exp_shifted(out, max, T::one());
            } else {
                for k in 0..len {
                    out[k * inner + i] = (x[k * inner + i] - max).fast_exp();
                }
            }
            let total = (0..len).fold(T::zero(), |total, k| total + out[k * inner + i]);
            if log {
                let log_total = total.ln();
                for k in 0..len {
                    out[k * inner + i] = x[k * inner + i] - max - log_total;
                }
            } else {
                let scale = T::one() / total;
                for k in 0..len {
                    out[k * inner + i] *= scale;
                }
            }
        }
    };
    if block == 0 {
        return out;
    }
    let parallel = x.len() >= PARALLEL_MIN_ELEMENTS && outer > 1;
    for_each_task(pieces_mut(&mut out, block), parallel, &one_block);
    out
}

/// Backward of softmax / log-softmax along the axis, from the output `y`:
/// softmax:     dx = y ⊙ (g − Σₖ g·y)
/// log-softmax: dx = g − exp(y) ⊙ Σₖ g
pub fn softmax_axis_backward<T: Float>(
    grad_output: &[T],
    y: &[T],
    len: usize,
    inner: usize,
    log: bool,
) -> Vec<T> {
    let mut out = super::buffer::take(y.len());
    let block = len * inner;
    if block == 0 {
        return out;
    }
    for (o, out) in out.chunks_mut(block).enumerate() {
        let (g, y) = (
            &grad_output[o * block..(o + 1) * block],
            &y[o * block..(o + 1) * block],
        );
        for i in 0..inner {
            let at = |k: usize| k * inner + i;
            if log {
                let g_sum: T = (0..len).map(|k| g[at(k)]).sum();
                for k in 0..len {
                    out[at(k)] = g[at(k)] - y[at(k)].fast_exp() * g_sum;
                }
            } else {
                let gy_sum: T = (0..len).map(|k| g[at(k)] * y[at(k)]).sum();
                for k in 0..len {
                    out[at(k)] = y[at(k)] * (g[at(k)] - gy_sum);
                }
            }
        }
    }
    out
}
