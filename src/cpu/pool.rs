//! Pooling kernels on NCHW tensors: max and average pooling over windows, global
//! and adaptive average pooling, forward and backward.

use super::PARALLEL_MIN_ELEMENTS;
use super::conv::Window;
use super::parallel::{for_each_chunk, for_each_task, pieces_mut};
use crate::element::Float;

/// Max pooling: the largest value in each window, and where it was (an index
/// into its input plane) for the backward pass.
pub fn max_pool2d<T: Float>(x: &[T], win: &Window) -> (Vec<T>, Vec<usize>) {
    let (oh, ow) = win.out();
    let planes = win.batch * win.channels;
    let plane_len = win.height * win.width;
    let mut out = super::buffer::take(planes * oh * ow);
    let mut arg = super::buffer::take(planes * oh * ow);
    let parallel = x.len() >= PARALLEL_MIN_ELEMENTS;
    let unpadded = win.padding == (0, 0) && win.dilation == (1, 1);
    let two_by_two = unpadded && win.kernel == (2, 2) && win.stride == (2, 2);
    let body = |p: usize, out: &mut [T], arg: &mut [usize]| {
        let plane = &x[p * plane_len..][..plane_len];
        if two_by_two {
            // the common case, unrolled: taps in the same order as the general loop
            for oy in 0..oh {
                let top = 2 * oy * win.width;
                let (upper, lower) = (&plane[top..][..2 * ow], &plane[top + win.width..][..2 * ow]);
                let (out, arg) = (&mut out[oy * ow..][..ow], &mut arg[oy * ow..][..ow]);
                for ox in 0..ow {
                    let (mut best, mut best_at) = (upper[2 * ox], top + 2 * ox);
                    for (v, at) in [
                        (upper[2 * ox + 1], top + 2 * ox + 1),
                        (lower[2 * ox], top + win.width + 2 * ox),
                        (lower[2 * ox + 1], top + win.width + 2 * ox + 1),
                    ] {
                        if v > best || v.is_nan() {
                            (best, best_at) = (v, at);
                        }
                    }
                    out[ox] = best;
                    arg[ox] = best_at;
                }
            }
            return;
        }
        for oy in 0..oh {
            for ox in 0..ow {
                let (mut best, mut best_at) = (T::neg_infinity(), 0);
                let mut visit = |at: usize| {
                    let v = plane[at];
                    if v > best || v.is_nan() {
                        (best, best_at) = (v, at);
                    }
                };
                if unpadded {
                    // every tap is inside the plane: plain index arithmetic
                    let corner = oy * win.stride.0 * win.width + ox * win.stride.1;
                    for i in 0..win.kernel.0 {
                        let row = corner + i * win.width;
                        (row..row + win.kernel.1).for_each(&mut visit);
                    }
                } else {
                    win.for_each_tap(oy, ox, visit);
                }
                out[oy * ow + ox] = best;
                arg[oy * ow + ox] = best_at;
            }
        }
    };
    let out_plane = oh * ow;
    if out_plane > 0 {
        let planes = (
            pieces_mut(&mut out, out_plane),
            pieces_mut(&mut arg, out_plane),
        );
        for_each_task(planes, parallel, &|p, (out, arg)| body(p, out, arg));
    }
    (out, arg)
}

/// Backward of max pooling: each output's gradient goes to the input it came from.
pub fn max_pool2d_backward<T: Float>(grad_output: &[T], arg: &[usize], win: &Window) -> Vec<T> {
    let (oh, ow) = win.out();
    let plane_len = win.height * win.width;
    let mut dx = super::buffer::zeroed(win.batch * win.channels * plane_len);
    let parallel = dx.len() >= PARALLEL_MIN_ELEMENTS;
    for_each_chunk(&mut dx, plane_len, parallel, |p, plane| {
        let range = p * oh * ow..(p + 1) * oh * ow;
        for (&g, &at) in grad_output[range.clone()].iter().zip(&arg[range]) {
            plane[at] += g;
        }
    });
    dx
}

/// Average pooling over each window; padding counts as zeros in the average
/// (PyTorch's default `count_include_pad=True`).
pub fn avg_pool2d<T: Float>(x: &[T], win: &Window) -> Vec<T> {
    let (oh, ow) = win.out();
    let plane_len = win.height * win.width;
    let scale = T::one() / T::cast((win.kernel.0 * win.kernel.1) as f64);
    let mut out = super::buffer::take(win.batch * win.channels * oh * ow);
    let parallel = x.len() >= PARALLEL_MIN_ELEMENTS;
    for_each_chunk(&mut out, oh * ow, parallel, |p, out| {
        let plane = &x[p * plane_len..][..plane_len];
        for oy in 0..oh {
            for ox in 0..ow {
                let mut total = T::zero();
                win.for_each_tap(oy, ox, |at| total += plane[at]);
                out[oy * ow + ox] = total * scale;
            }
        }
    });
    out
}

/// Backward of average pooling: each output's gradient is shared equally by its window.
pub fn avg_pool2d_backward<T: Float>(grad_output: &[T], win: &Window) -> Vec<T> {
    let (oh, ow) = win.out();
    let plane_len = win.height * win.width;
    let scale = T::one() / T::cast((win.kernel.0 * win.kernel.1) as f64);
    let mut dx = super::buffer::zeroed(win.batch * win.channels * plane_len);
    let parallel = dx.len() >= PARALLEL_MIN_ELEMENTS;
    for_each_chunk(&mut dx, plane_len, parallel, |p, plane| {
        let grads = &grad_output[p * oh * ow..][..oh * ow];
        for oy in 0..oh {
            for ox in 0..ow {
                let share = grads[oy * ow + ox] * scale;
                win.for_each_tap(oy, ox, |at| plane[at] += share);
            }
        }
    });
    dx
}

/// The mean of each plane of `pixels` consecutive values (global average pooling).
pub fn plane_means<T: Float>(x: &[T], pixels: usize) -> Vec<T> {
    let scale = T::one() / T::cast(pixels as f64);
    let mut means = super::buffer::take(x.len() / pixels);
    for (mean, plane) in means.iter_mut().zip(x.chunks_exact(pixels)) {
        *mean = super::reduce::sum_slice(plane) * scale;
    }
    means
}

/// Backward of [`plane_means`]: every pixel of plane `p` gets `grad_output[p] / pixels`.
pub fn plane_means_backward<T: Float>(grad_output: &[T], pixels: usize) -> Vec<T> {
    let scale = T::one() / T::cast(pixels as f64);
    let mut dx = super::buffer::take(grad_output.len() * pixels);
    let parallel = dx.len() >= PARALLEL_MIN_ELEMENTS;
    for_each_chunk(&mut dx, pixels, parallel, |p, plane| {
        plane.fill(grad_output[p] * scale)
    });
    dx
}

/// The input rows (or columns) that adaptive pooling averages for output `index` of
/// `out` along an axis of length `len`: `⌊index·len/out⌋ .. ⌈(index+1)·len/out⌉`,
/// PyTorch's rule (windows may overlap by one when `out` does not divide `len`).
pub fn adaptive_range(index: usize, out: usize, len: usize) -> std::ops::Range<usize> {
    index * len / out..((index + 1) * len).div_ceil(out)
}

/// Adaptive average pooling of `planes` planes of `size` (h, w) to `out` (oh, ow).
pub fn adaptive_avg_pool2d<T: Float>(x: &[T], size: (usize, usize), out: (usize, usize)) -> Vec<T> {
    let (plane_len, out_len) = (size.0 * size.1, out.0 * out.1);
    let mut pooled = super::buffer::take(x.len() / plane_len * out_len);
    let parallel = x.len() >= PARALLEL_MIN_ELEMENTS;
    for_each_chunk(&mut pooled, out_len, parallel, |p, pooled| {
        let plane = &x[p * plane_len..][..plane_len];
        for (oy, row) in pooled.chunks_exact_mut(out.1).enumerate() {
            let rows = adaptive_range(oy, out.0, size.0);
            for (ox, slot) in row.iter_mut().enumerate() {
                let cols = adaptive_range(ox, out.1, size.1);
                let count = T::cast((rows.len() * cols.len()) as f64);
                let total = rows.clone().fold(T::zero(), |total, y| {
                    total + super::reduce::sum_slice(&plane[y * size.1..][cols.clone()])
                });
                *slot = total / count;
            }
        }
    });
    pooled
}

/// Backward of [`adaptive_avg_pool2d`]: each output's gradient is shared equally by
/// its window (pixels in two overlapping windows collect from both).
pub fn adaptive_avg_pool2d_backward<T: Float>(
    grad_output: &[T],
    size: (usize, usize),
    out: (usize, usize),
) -> Vec<T> {
    let (plane_len, out_len) = (size.0 * size.1, out.0 * out.1);
    let mut dx = super::buffer::zeroed(grad_output.len() / out_len * plane_len);
    let parallel = dx.len() >= PARALLEL_MIN_ELEMENTS;
    for_each_chunk(&mut dx, plane_len, parallel, |p, plane| {
        let grads = &grad_output[p * out_len..][..out_len];
        for oy in 0..out.0 {
            let rows = adaptive_range(oy, out.0, size.0);
            for ox in 0..out.1 {
                let cols = adaptive_range(ox, out.1, size.1);
                let share = grads[oy * out.1 + ox] / T::cast((rows.len() * cols.len()) as f64);
                for y in rows.clone() {
                    plane[y * size.1..][cols.clone()]
                        .iter_mut()
                        .for_each(|d| *d += share);
                }
            }
        }
    });
    dx
}
