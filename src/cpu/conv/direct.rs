//! The direct convolution of small stride-1 layers (few taps: LeNet's first layer),
//! forward and weight gradient, on the wide layout.

use super::{Padded, Window, for_each_chunk};
use crate::cpu::PARALLEL_MIN_ELEMENTS;
use crate::element::Float;

/// Outputs computed per task in the wide layout: enough to keep the accumulators of
/// one block in registers across all taps (four runs of 16, see [`block_sums`]).
const DIRECT_BLOCK: usize = 64;
const _: () = assert!(DIRECT_BLOCK == 4 * 16);

/// One output plane of [`conv_direct`]: everything it reads, and the plane it writes.
struct DirectPlane<'a, T> {
    xp: &'a [T],
    w: &'a [T],
    bias: Option<&'a [T]>,
    win: &'a Window,
    padded: &'a Padded,
    /// How far each tap shifts a plane, in tap order.
    shifts: &'a [usize],
    out_channels: usize,
    groups: usize,
    plane_index: usize,
    out: &'a mut [T],
}

impl<T: Float> crate::cpu::SimdKernel for DirectPlane<'_, T> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        let DirectPlane {
            xp,
            w,
            bias,
            win,
            padded,
            shifts,
            out_channels,
            groups,
            plane_index,
            out,
        } = self;
        let (_, ow) = win.out();
        let (kh, kw) = win.kernel;
        let (group_in, group_out) = (win.channels / groups, out_channels / groups);
        let (n, o) = (plane_index / out_channels, plane_index % out_channels);
        let shifts = &shifts[..kh * kw];
        let first_channel = (o / group_out) * group_in;
        let b = bias.map_or(T::zero(), |b| b[o]);
        let planes = &xp[(n * win.channels + first_channel) * padded.plane_len..];
        let weights = &w[o * group_in * kh * kw..][..group_in * kh * kw];
        for start in (0..padded.wide_len).step_by(DIRECT_BLOCK) {
            let len = DIRECT_BLOCK.min(padded.wide_len - start);
            let acc = block_sums(b, &planes[start..], padded.plane_len, weights, shifts);
            // keep the real columns of the wide rows, a run at a time
            let mut q = start;
            while q < start + len {
                let (oy, ox) = (q / padded.width, q % padded.width);
                let run_end = (q - ox + padded.width).min(start + len);
                if ox < ow {
                    let real = (ow - ox).min(run_end - q);
                    out[oy * ow + ox..][..real].copy_from_slice(&acc[q - start..][..real]);
                }
                q = run_end;
            }
        }
    }
}

/// `bias + Σ_c Σ_tap weights[c, tap] · planes[c][shift(tap) + k]` for the
/// `DIRECT_BLOCK` outputs `k` of one block, `planes[c]` starting `plane_len · c` in.
/// The planes end in a block of slack, so every block reads a full run: a
/// fixed-length loop that the compiler turns into SIMD, with the sums returned by
/// value so that they stay in registers across all taps.
#[inline(always)]
fn block_sums<T: Float>(
    bias: T,
    planes: &[T],
    plane_len: usize,
    weights: &[T],
    shifts: &[usize],
) -> [T; DIRECT_BLOCK] {
    // four separate runs of 16: small enough for the compiler to unroll completely,
    // which is what lets it keep them in registers
    let [mut a0, mut a1, mut a2, mut a3] = [[bias; 16]; 4];
    for (c, taps) in weights.chunks_exact(shifts.len()).enumerate() {
        let plane = &planes[c * plane_len..];
        for (&weight, &shift) in taps.iter().zip(shifts) {
            let src = &plane[shift..][..DIRECT_BLOCK];
            a0 = scaled_add(a0, weight, &src[..16]);
            a1 = scaled_add(a1, weight, &src[16..32]);
            a2 = scaled_add(a2, weight, &src[32..48]);
            a3 = scaled_add(a3, weight, &src[48..]);
        }
    }
    let mut sums = [bias; DIRECT_BLOCK];
    for (run, part) in sums.chunks_exact_mut(16).zip([a0, a1, a2, a3]) {
        run.copy_from_slice(&part);
    }
    sums
}

/// `acc + weight · src`, element by element.
#[inline(always)]
fn scaled_add<T: Float>(mut acc: [T; 16], weight: T, src: &[T]) -> [T; 16] {
    let src: &[T; 16] = src.try_into().expect("a run of 16");
    for k in 0..16 {
        acc[k] += weight * src[k];
    }
    acc
}

/// Direct convolution with stride 1: each output plane is its bias plus, for every
/// tap, that tap's weight times the (padded) input plane shifted by the tap —
/// `out[n, o] = b[o] + Σ_c Σ_(i,j) w[o, c, i, j] · x[n, c] shifted by (i, j)`.
/// For convolutions with few taps per output (a first layer on greyscale images),
/// where im2col would copy far more than the arithmetic costs.
pub fn conv_direct<T: Float>(
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    win: &Window,
    out_channels: usize,
    groups: usize,
) -> Vec<T> {
    assert_eq!(win.stride, (1, 1), "conv_direct: stride 1 only");
    let (oh, ow) = win.out();
    let (kh, kw) = win.kernel;
    let group_in = win.channels / groups;
    let padded = Padded::new(win);
    let xp = padded.planes(x, win, DIRECT_BLOCK);
    let mut out = crate::cpu::buffer::take(win.batch * out_channels * oh * ow);
    let parallel = out.len() * group_in * kh * kw >= PARALLEL_MIN_ELEMENTS;
    let shifts: Vec<usize> = (0..kh * kw)
        .map(|tap| padded.shift(win, tap / kw, tap % kw))
        .collect();
    let plane = DirectPlane {
        xp: &xp,
        w,
        bias,
        win,
        padded: &padded,
        shifts: &shifts,
        out_channels,
        groups,
        plane_index: 0,
        out: &mut [],
    };
    for_each_chunk(&mut out, oh * ow, parallel, |plane_index, out| {
        crate::cpu::wide_simd(DirectPlane {
            plane_index,
            out,
            ..plane
        })
    });
    crate::cpu::buffer::give(xp);
    out
}

/// The weight gradient of [`conv_direct`]: `dw[o, c, i, j] = Σ_n Σ_(oy, ox)
/// g[n, o, oy, ox] · x[n, c, oy + i·d − pad, ox + j·d − pad]`, as long dot products
/// of the gradient (widened, zeros in the extra columns) with shifted padded planes;
/// one `[kh, kw]` block per (output, input) channel pair, summed in a fixed order.
pub fn conv_direct_grad_weight<T: Float>(
    grad_output: &[T],
    x: &[T],
    win: &Window,
    out_channels: usize,
    groups: usize,
) -> Vec<T> {
    let (oh, ow) = win.out();
    let (kh, kw) = win.kernel;
    let (group_in, group_out) = (win.channels / groups, out_channels / groups);
    let padded = Padded::new(win);
    let xp = padded.planes(x, win, 0);
    let mut grad_wide = crate::cpu::buffer::zeroed(win.batch * out_channels * padded.wide_len);
    for (wide, plane) in grad_wide
        .chunks_exact_mut(padded.wide_len)
        .zip(grad_output.chunks_exact(oh * ow))
    {
        for (wide_row, row) in wide
            .chunks_exact_mut(padded.width)
            .zip(plane.chunks_exact(ow))
        {
            wide_row[..ow].copy_from_slice(row);
        }
    }
    let mut dw = crate::cpu::buffer::take(out_channels * group_in * kh * kw);
    let parallel = grad_output.len() * group_in * kh * kw >= PARALLEL_MIN_ELEMENTS;
    for_each_chunk(&mut dw, kh * kw, parallel, |pair, dw| {
        let (o, c) = (pair / group_in, pair % group_in);
        let channel = (o / group_out) * group_in + c;
        for (tap, slot) in dw.iter_mut().enumerate() {
            let shift = padded.shift(win, tap / kw, tap % kw);
            *slot = (0..win.batch)
                .map(|n| {
                    let grads =
                        &grad_wide[(n * out_channels + o) * padded.wide_len..][..padded.wide_len];
                    let plane = &xp[(n * win.channels + channel) * padded.plane_len + shift..]
                        [..padded.wide_len];
                    crate::cpu::reduce::dot(grads, plane)
                })
                .fold(T::zero(), |total, d| total + d);
        }
    });
    crate::cpu::buffer::give(xp);
    crate::cpu::buffer::give(grad_wide);
    dw
}
