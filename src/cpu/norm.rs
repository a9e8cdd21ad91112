//! Batch-norm kernels: the input viewed as `[N, C, L]` (L = H·W for images, 1 for
//! `[N, C]`), every channel normalised over its N·L values. Channels are independent,
//! so they are shared out among threads; inside a channel the sums run in a fixed
//! order, so results do not depend on the thread count.

use super::parallel::{for_each_task, map_tasks, pieces_mut};

use super::PARALLEL_MIN_ELEMENTS;
use super::reduce::{LaneSum, sum_slice};
use crate::element::Float;

/// The `[N, C, L]` view of a batch-norm input.
#[derive(Clone, Copy, Debug)]
pub struct ChannelLayout {
    /// N, the samples.
    pub batch: usize,
    /// C, the channels.
    pub channels: usize,
    /// L, the values per sample and channel.
    pub inner: usize,
}

impl ChannelLayout {
    /// Values that share one channel's statistics: N·L.
    pub fn count(&self) -> usize {
        self.batch * self.inner
    }

    /// The `inner`-long runs of channel `c`, one per sample.
    fn runs<'a, T>(&self, x: &'a [T], c: usize) -> impl Iterator<Item = &'a [T]> {
        let (channels, inner) = (self.channels, self.inner);
        (0..self.batch).map(move |n| &x[(n * channels + c) * inner..][..inner])
    }
}

/// Each channel's batch mean and biased variance σ² (what training normalises
/// with), in two passes (mean, then squared deviations) so no large sums cancel.
pub fn statistics<T: Float>(x: &[T], layout: ChannelLayout) -> (Vec<T>, Vec<T>) {
    let count = T::cast(layout.count() as f64);
    let mut mean = super::buffer::take(layout.channels);
    let mut var = super::buffer::take(layout.channels);
    let per_channel = |c: usize, (mean, var): (&mut [T], &mut [T])| {
        let (mean, var) = (&mut mean[0], &mut var[0]);
        *mean = layout
            .runs(x, c)
            .map(sum_slice)
            .fold(T::zero(), |a, s| a + s)
            / count;
        let squares = layout.runs(x, c).map(|run| squared_deviations(run, *mean));
        *var = squares.fold(T::zero(), |a, s| a + s) / count;
    };
    let channels = (pieces_mut(&mut mean, 1), pieces_mut(&mut var, 1));
    for_each_task(channels, x.len() >= PARALLEL_MIN_ELEMENTS, &per_channel);
    (mean, var)
}

/// `Σ (x − mean)²` over a run.
fn squared_deviations<T: Float>(run: &[T], mean: T) -> T {
    super::wide_simd(LaneSum(run, run, move |v: T, _| (v - mean) * (v - mean)))
}

/// `Σ g·(x − mean)` over a run (centred first, so a large mean cancels nothing).
fn centered_dot<T: Float>(g: &[T], x: &[T], mean: T) -> T {
    super::wide_simd(LaneSum(g, x, move |g: T, v: T| g * (v - mean)))
}

/// `y = (x − μ_c)·(s_c·γ_c) + β_c` for every value of channel c (s = 1/√(σ² + ε)).
pub fn normalize<T: Float>(
    x: &[T],
    layout: ChannelLayout,
    mean: &[T],
    inv_std: &[T],
    weight: &[T],
    bias: &[T],
) -> Vec<T> {
    let mut y = super::buffer::take(x.len());
    let scale: Vec<T> = (0..layout.channels)
        .map(|c| inv_std[c] * weight[c])
        .collect();
    for_each_run(&mut y, layout, |c, offset, out| {
        let run = &x[offset..][..out.len()];
        let (mean, scale, bias) = (mean[c], scale[c], bias[c]);
        out.iter_mut()
            .zip(run)
            .for_each(|(o, &v)| *o = (v - mean) * scale + bias);
    });
    y
}

/// Per channel, `Σ g` (= dL/dβ) and `Σ g·x̂` (= dL/dγ), with x̂ = (x − μ)·s.
pub fn grad_sums<T: Float>(
    grad_output: &[T],
    x: &[T],
    layout: ChannelLayout,
    mean: &[T],
    inv_std: &[T],
) -> (Vec<T>, Vec<T>) {
    let mut sum_g = super::buffer::take(layout.channels);
    let mut sum_g_xhat = super::buffer::take(layout.channels);
    let per_channel = |c: usize, (sum_g, sum_g_xhat): (&mut [T], &mut [T])| {
        let runs = layout.runs(grad_output, c).zip(layout.runs(x, c));
        let (total, centered) = runs.fold((T::zero(), T::zero()), |(total, centered), (g, v)| {
            (total + sum_slice(g), centered + centered_dot(g, v, mean[c]))
        });
        // Σ g·x̂ = s·Σ g·(x − μ)
        (sum_g[0], sum_g_xhat[0]) = (total, inv_std[c] * centered);
    };
    let channels = (pieces_mut(&mut sum_g, 1), pieces_mut(&mut sum_g_xhat, 1));
    for_each_task(channels, x.len() >= PARALLEL_MIN_ELEMENTS, &per_channel);
    (sum_g, sum_g_xhat)
}

/// dL/dx = γ·s/m · (m·g − Σg − x̂·Σ(g·x̂)), m = N·L: the gradient through the
/// normalisation, including how every value moves the batch mean and variance.
pub fn grad_input<T: Float>(
    grad_output: &[T],
    x: &[T],
    layout: ChannelLayout,
    (mean, inv_std, weight): (&[T], &[T], &[T]),
    (sum_g, sum_g_xhat, count): (&[T], &[T], usize),
) -> Vec<T> {
    // `count` is the batch's values per channel: this slice's, or all processes' together
    let count = T::cast(count as f64);
    let mut dx = super::buffer::take(x.len());
    // dx = a·g + b·(x − μ) + d per channel, with a = γ·s, b = −a·s·Σ(g·x̂)/m, d = −a·Σg/m
    let coefficients: Vec<(T, T, T)> = (0..layout.channels)
        .map(|c| {
            let a = weight[c] * inv_std[c];
            (
                a,
                -a * inv_std[c] * sum_g_xhat[c] / count,
                -a * sum_g[c] / count,
            )
        })
        .collect();
    for_each_run(&mut dx, layout, |c, offset, out| {
        let ((a, b, d), mean) = (coefficients[c], mean[c]);
        let (g, v) = (
            &grad_output[offset..][..out.len()],
            &x[offset..][..out.len()],
        );
        out.iter_mut()
            .zip(g.iter().zip(v))
            .for_each(|(o, (&g, &v))| *o = a * g + b * (v - mean) + d);
    });
    dx
}

/// Calls `body(channel, offset, run)` for every `inner`-long run of `out`, in
/// parallel for large tensors (each run is written by one task).
fn for_each_run<T: Float>(
    out: &mut [T],
    layout: ChannelLayout,
    body: impl Fn(usize, usize, &mut [T]) + Sync,
) {
    let inner = layout.inner.max(1);
    let parallel = out.len() >= PARALLEL_MIN_ELEMENTS;
    if inner >= 64 {
        let run = |index: usize, out: &mut [T]| body(index % layout.channels, index * inner, out);
        for_each_task(pieces_mut(out, inner), parallel, &run);
    } else {
        // short runs: one task per sample instead
        let sample = layout.channels * inner;
        let per_sample = |n: usize, out: &mut [T]| {
            for (c, run) in out.chunks_mut(inner).enumerate() {
                body(c, (n * layout.channels + c) * inner, run);
            }
        };
        for_each_task(pieces_mut(out, sample.max(1)), parallel, &per_sample);
    }
}

/// Rows per parallel task of the layer-norm kernels: fixed, so the weight and bias
/// gradients (summed per task, then over tasks in order) do not depend on the
/// thread count.
const ROWS_PER_TASK: usize = 64;

/// One task's rows of the output, and their means and inverse deviations.
type RowBlock<'a, T> = (&'a mut [T], &'a mut [T], &'a mut [T]);

/// Layer norm forward over rows of `features` values: per row the mean μ and
/// s = 1/√(σ² + ε) (two passes, centred), then `y = (x − μ)·s·γ + β`.
/// Returns `(y, mean, inv_std)`.
pub fn layer_norm<T: Float>(
    x: &[T],
    features: usize,
    weight: &[T],
    bias: &[T],
    eps: T,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let rows = x.len() / features.max(1);
    let mut y = super::buffer::take(x.len());
    let mut mean = super::buffer::take(rows);
    let mut inv_std = super::buffer::take(rows);
    let count = T::cast(features as f64);
    let task = |t: usize, (y, mean, inv_std): RowBlock<'_, T>| {
        let start = t * ROWS_PER_TASK;
        for (r, y) in y.chunks_exact_mut(features).enumerate() {
            let row = &x[(start + r) * features..][..features];
            let mu = sum_slice(row) / count;
            let s = T::one() / (squared_deviations(row, mu) / count + eps).sqrt();
            for (((o, &v), &g), &b) in y.iter_mut().zip(row).zip(weight).zip(bias) {
                *o = (v - mu) * s * g + b;
            }
            (mean[r], inv_std[r]) = (mu, s);
        }
    };
    if features == 0 || rows == 0 {
        return (y, mean, inv_std);
    }
    let row_block = ROWS_PER_TASK * features;
    let tasks = (
        pieces_mut(&mut y, row_block),
        pieces_mut(&mut mean, ROWS_PER_TASK),
        pieces_mut(&mut inv_std, ROWS_PER_TASK),
    );
    for_each_task(tasks, x.len() >= PARALLEL_MIN_ELEMENTS, &task);
    (y, mean, inv_std)
}

/// Layer norm backward. With x̂ = (x − μ)·s and ĝ = g·γ per row of n features:
/// `dx = s·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂))`, `dγ = Σ_rows g·x̂`, `dβ = Σ_rows g`.
/// Returns `(dx, dγ, dβ)`.
pub fn layer_norm_backward<T: Float>(
    grad_output: &[T],
    x: &[T],
    features: usize,
    weight: &[T],
    (mean, inv_std): (&[T], &[T]),
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let mut dx = super::buffer::take(x.len());
    let count = T::cast(features as f64);
    // each task: its rows' dx, and its partial dγ, dβ
    let task = |t: usize, dx: &mut [T]| {
        let start = t * ROWS_PER_TASK;
        let mut partial = vec![T::zero(); 2 * features];
        let (dgamma, dbeta) = partial.split_at_mut(features);
        for (r, dx) in dx.chunks_exact_mut(features).enumerate() {
            let at = (start + r) * features;
            let (g, row) = (&grad_output[at..][..features], &x[at..][..features]);
            let (mu, s) = (mean[start + r], inv_std[start + r]);
            let (mut sum_gw, mut sum_gw_xhat) = (T::zero(), T::zero());
            for i in 0..features {
                let xhat = (row[i] - mu) * s;
                let gw = g[i] * weight[i];
                sum_gw += gw;
                sum_gw_xhat += gw * xhat;
                dgamma[i] += g[i] * xhat;
                dbeta[i] += g[i];
            }
            let (mean_gw, mean_gw_xhat) = (sum_gw / count, sum_gw_xhat / count);
            for i in 0..features {
                let xhat = (row[i] - mu) * s;
                dx[i] = s * (g[i] * weight[i] - mean_gw - xhat * mean_gw_xhat);
            }
        }
        partial
    };
    let row_block = ROWS_PER_TASK * features.max(1);
    let partials = map_tasks(
        pieces_mut(&mut dx, row_block),
        x.len() >= PARALLEL_MIN_ELEMENTS,
        &task,
    );
    let mut dgamma = super::buffer::zeroed(features);
    let mut dbeta = super::buffer::zeroed(features);
    for partial in &partials {
        let (pg, pb) = partial.split_at(features);
        dgamma.iter_mut().zip(pg).for_each(|(d, &p)| *d += p);
        dbeta.iter_mut().zip(pb).for_each(|(d, &p)| *d += p);
    }
    (dx, dgamma, dbeta)
}
