//! Convolution and pooling kernels on NCHW tensors.
//!
//! Convolution is lowered to a matrix product: `im2col` copies every receptive
//! field of an image into a column, so one GEMM computes all its output pixels.
//! Small stride-1 convolutions run directly instead (`conv_direct`).

use super::PARALLEL_MIN_ELEMENTS;
use super::parallel::{for_each_task, pieces_mut};
use crate::element::Float;

/// Sizes of a 2-D sliding-window op (convolution or pooling) on NCHW input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Images in the batch (N).
    pub batch: usize,
    /// Channels per image (C).
    pub channels: usize,
    /// Input height (H).
    pub height: usize,
    /// Input width (W).
    pub width: usize,
    /// Window size, (rows, columns).
    pub kernel: (usize, usize),
    /// Step between windows, (rows, columns).
    pub stride: (usize, usize),
    /// Zeros added on each side, (rows, columns).
    pub padding: (usize, usize),
    /// Spacing between window taps, (rows, columns).
    pub dilation: (usize, usize),
}

impl Window {
    /// Output height and width: `⌊(in + 2·pad − dilation·(k − 1) − 1) / stride⌋ + 1`,
    /// or `None` if the (dilated) kernel does not fit in the padded input.
    pub fn output_size(&self) -> Option<(usize, usize)> {
        let axis = |input: usize, kernel: usize, stride: usize, pad: usize, dilation: usize| {
            let span = dilation * (kernel - 1) + 1;
            (input + 2 * pad)
                .checked_sub(span)
                .map(|room| room / stride + 1)
        };
        Some((
            axis(
                self.height,
                self.kernel.0,
                self.stride.0,
                self.padding.0,
                self.dilation.0,
            )?,
            axis(
                self.width,
                self.kernel.1,
                self.stride.1,
                self.padding.1,
                self.dilation.1,
            )?,
        ))
    }

    /// Calls `visit` with each in-plane index (`iy·width + ix`) that output pixel
    /// (oy, ox) reads, skipping taps that fall in the padding.
    #[inline]
    fn for_each_tap(&self, oy: usize, ox: usize, mut visit: impl FnMut(usize)) {
        for i in 0..self.kernel.0 {
            let Some(iy) = Window::source(
                oy,
                i,
                self.stride.0,
                self.padding.0,
                self.dilation.0,
                self.height,
            ) else {
                continue;
            };
            for j in 0..self.kernel.1 {
                if let Some(ix) = Window::source(
                    ox,
                    j,
                    self.stride.1,
                    self.padding.1,
                    self.dilation.1,
                    self.width,
                ) {
                    visit(iy * self.width + ix);
                }
            }
        }
    }

    fn out(&self) -> (usize, usize) {
        self.output_size().expect("window checked by the op")
    }

    /// The input row that output row `oy`, kernel row `i` reads, or `None` in the padding.
    #[inline]
    fn source_row(&self, oy: usize, i: usize) -> Option<usize> {
        let (stride, pad, dilation) = (self.stride.0, self.padding.0, self.dilation.0);
        Window::source(oy, i, stride, pad, dilation, self.height)
    }

    /// The input column that output column `ox`, kernel column `j` reads; only for
    /// `ox` inside [`Window::inside_columns`].
    #[inline]
    fn source_column(&self, ox: usize, j: usize) -> usize {
        ox * self.stride.1 + j * self.dilation.1 - self.padding.1
    }

    /// The output columns whose kernel column `j` lands inside the input (not in the
    /// padding): one contiguous range, so rows can be copied instead of tested pixel by pixel.
    fn inside_columns(&self, j: usize, ow: usize) -> std::ops::Range<usize> {
        let (stride, pad, offset) = (self.stride.1, self.padding.1, j * self.dilation.1);
        // ix = ox·stride + offset − pad must satisfy 0 ≤ ix < width.
        let first = pad.saturating_sub(offset).div_ceil(stride);
        let end = (self.width + pad)
            .checked_sub(offset + 1)
            .map_or(0, |last| last / stride + 1)
            .min(ow);
        first.min(end)..end
    }

    /// The input coordinate that output position `o`, kernel tap `k` reads on one
    /// axis, or `None` if it falls in the padding.
    #[inline]
    fn source(
        o: usize,
        k: usize,
        stride: usize,
        pad: usize,
        dilation: usize,
        size: usize,
    ) -> Option<usize> {
        (o * stride + k * dilation)
            .checked_sub(pad)
            .filter(|&i| i < size)
    }
}

/// Calls `body(index, chunk)` for each `chunk`-long piece of `data`, in parallel
/// when asked (each piece is written by one task).
pub(crate) fn for_each_chunk<T: Float>(
    data: &mut [T],
    chunk: usize,
    parallel: bool,
    body: impl Fn(usize, &mut [T]) + Sync,
) {
    if chunk == 0 {
        return;
    }
    for_each_task(pieces_mut(data, chunk), parallel, &body);
}

/// The receptive fields of one image `[C, H, W]` as columns: `cols` becomes a
/// `[C·kh·kw, oh·ow]` matrix, row `(c, i, j)`, column `(oy, ox)` (zeros where the
/// tap falls in the padding). Every element of `cols` is written.
pub fn im2col<T: Float>(image: &[T], win: &Window, cols: &mut [T]) {
    let (oh, ow) = win.out();
    let (kh, kw) = win.kernel;
    let plane_len = win.height * win.width;
    for (row, out) in cols.chunks_exact_mut(oh * ow).enumerate() {
        let (c, i, j) = (row / (kh * kw), (row / kw) % kh, row % kw);
        let plane = &image[c * plane_len..][..plane_len];
        let inside = win.inside_columns(j, ow);
        let first_ix = win.source_column(inside.start, j);
        for (oy, dst) in out.chunks_exact_mut(ow).enumerate() {
            let Some(iy) = win.source_row(oy, i) else {
                dst.fill(T::zero());
                continue;
            };
            let src = &plane[iy * win.width..][..win.width];
            dst[..inside.start].fill(T::zero());
            dst[inside.end..].fill(T::zero());
            let dst = &mut dst[inside.clone()];
            if win.stride.1 == 1 {
                dst.copy_from_slice(&src[first_ix..][..dst.len()]);
            } else {
                let taps = src[first_ix..].iter().step_by(win.stride.1);
                dst.iter_mut().zip(taps).for_each(|(slot, &v)| *slot = v);
            }
        }
    }
}

/// The adjoint of [`im2col`] for one image: adds every column entry back onto the
/// pixel of `dx` (`[C, H, W]`) it was copied from (pixels in several receptive
/// fields collect several gradients).
pub fn col2im_add<T: Float>(cols: &[T], win: &Window, dx: &mut [T]) {
    let (oh, ow) = win.out();
    let (kh, kw) = win.kernel;
    let plane_len = win.height * win.width;
    for (row, grads) in cols.chunks_exact(oh * ow).enumerate() {
        let (c, i, j) = (row / (kh * kw), (row / kw) % kh, row % kw);
        let plane = &mut dx[c * plane_len..][..plane_len];
        let inside = win.inside_columns(j, ow);
        if inside.is_empty() {
            continue;
        }
        let first_ix = win.source_column(inside.start, j);
        for (oy, grads) in grads.chunks_exact(ow).enumerate() {
            let Some(iy) = win.source_row(oy, i) else {
                continue;
            };
            let grads = &grads[inside.clone()];
            let pixels = &mut plane[iy * win.width + first_ix..];
            if win.stride.1 == 1 {
                let pixels = &mut pixels[..grads.len()];
                pixels.iter_mut().zip(grads).for_each(|(p, &g)| *p += g);
            } else {
                let pixels = pixels.iter_mut().step_by(win.stride.1);
                pixels.zip(grads).for_each(|(p, &g)| *p += g);
            }
        }
    }
}

/// Planes zero-padded on every side and stored flat with the padded row length, so
/// that (with stride 1) a kernel tap (i, j) is just a shift of the whole plane by
/// `i·dilation·width + j·dilation`: each tap becomes one long, vectorisable run
/// instead of many short rows. Outputs are computed in the same "wide" layout (rows
/// of `width`, of which the first `ow` are real).
#[derive(Clone, Copy, Debug)]
pub struct Padded {
    /// Row length of a padded plane (`W + 2·pad`).
    pub width: usize,
    /// Elements per padded plane, including slack so every shifted run stays inside.
    pub plane_len: usize,
    /// Elements of an output plane in the wide layout (`oh · width`).
    pub wide_len: usize,
}

impl Padded {
    /// The padded layout of a stride-1 window.
    pub fn new(win: &Window) -> Self {
        let (oh, _) = win.out();
        let width = win.width + 2 * win.padding.1;
        let height = win.height + 2 * win.padding.0;
        let slack = (win.kernel.1 - 1) * win.dilation.1;
        Padded {
            width,
            plane_len: height * width + slack,
            wide_len: oh * width,
        }
    }

    /// How far tap (i, j) shifts a plane.
    pub fn shift(&self, win: &Window, i: usize, j: usize) -> usize {
        i * win.dilation.0 * self.width + j * win.dilation.1
    }

    /// Every input plane of `x`, zero-padded, then `tail` zeros.
    fn planes<T: Float>(&self, x: &[T], win: &Window, tail: usize) -> Vec<T> {
        let image_len = win.channels * win.height * win.width;
        let planes_len = win.batch * win.channels * self.plane_len;
        let mut out = super::buffer::take(planes_len + tail);
        out[planes_len..].fill(T::zero());
        for (padded, image) in out
            .chunks_exact_mut(win.channels * self.plane_len)
            .zip(x.chunks_exact(image_len))
        {
            self.pad_image(image, win, padded);
        }
        out
    }

    /// The planes of one image `[C, H, W]`, zero-padded, into `padded` (`C` planes
    /// of `plane_len`; every element is written).
    pub fn pad_image<T: Float>(&self, image: &[T], win: &Window, padded: &mut [T]) {
        let plane_len = win.height * win.width;
        for (padded, plane) in padded
            .chunks_exact_mut(self.plane_len)
            .zip(image.chunks_exact(plane_len))
        {
            // zeros only where no pixel lands: the rows and columns of padding
            let mut end = 0;
            for (y, row) in plane.chunks_exact(win.width).enumerate() {
                let at = (y + win.padding.0) * self.width + win.padding.1;
                padded[end..at].fill(T::zero());
                super::copy_row(&mut padded[at..at + win.width], row);
                end = at + win.width;
            }
            padded[end..].fill(T::zero());
        }
    }

    /// The columns of one padded image in the wide layout: row `(c, i, j)` of the
    /// `[C·kh·kw, wide_len]` matrix is plane c shifted by tap (i, j) — one copy per row.
    pub fn wide_columns<T: Float>(&self, padded: &[T], win: &Window, cols: &mut [T]) {
        let (kh, kw) = win.kernel;
        for (row, out) in cols.chunks_exact_mut(self.wide_len).enumerate() {
            let (c, i, j) = (row / (kh * kw), (row / kw) % kh, row % kw);
            let start = c * self.plane_len + self.shift(win, i, j);
            out.copy_from_slice(&padded[start..][..self.wide_len]);
        }
    }

    /// The adjoint of [`Padded::pad_image`] then [`Padded::wide_columns`]: adds each
    /// row of `cols` onto its shifted place in `padded` (scratch, `C` planes), then
    /// writes the unpadded interior to `dx` (`[C, H, W]`).
    pub fn add_wide_columns<T: Float>(
        &self,
        cols: &[T],
        win: &Window,
        padded: &mut [T],
        dx: &mut [T],
    ) {
        let (kh, kw) = win.kernel;
        padded.fill(T::zero());
        for (row, grads) in cols.chunks_exact(self.wide_len).enumerate() {
            let (c, i, j) = (row / (kh * kw), (row / kw) % kh, row % kw);
            let start = c * self.plane_len + self.shift(win, i, j);
            let pixels = &mut padded[start..][..self.wide_len];
            pixels.iter_mut().zip(grads).for_each(|(p, &g)| *p += g);
        }
        let plane_len = win.height * win.width;
        for (plane, padded) in dx
            .chunks_exact_mut(plane_len)
            .zip(padded.chunks_exact(self.plane_len))
        {
            for (y, row) in plane.chunks_exact_mut(win.width).enumerate() {
                let at = (y + win.padding.0) * self.width + win.padding.1;
                super::copy_row(row, &padded[at..at + win.width]);
            }
        }
    }

    /// Output planes in the wide layout (`wide_len` each) → their real `oh × ow`
    /// pixels, plus `bias[p]` on plane p if given.
    pub fn narrow<T: Float>(&self, wide: &[T], ow: usize, bias: Option<&[T]>, out: &mut [T]) {
        let oh = self.wide_len / self.width;
        for (p, (plane, wide)) in out
            .chunks_exact_mut(oh * ow)
            .zip(wide.chunks_exact(self.wide_len))
            .enumerate()
        {
            let b = bias.map_or(T::zero(), |b| b[p]);
            for (row, wide_row) in plane
                .chunks_exact_mut(ow)
                .zip(wide.chunks_exact(self.width))
            {
                row.iter_mut().zip(wide_row).for_each(|(o, &v)| *o = v + b);
            }
        }
    }

    /// The adjoint of [`Padded::narrow`]: `oh × ow` planes → wide planes, zeros in
    /// the extra columns.
    pub fn widen<T: Float>(&self, planes: &[T], ow: usize, wide: &mut [T]) {
        let oh = self.wide_len / self.width;
        for (plane, wide) in planes
            .chunks_exact(oh * ow)
            .zip(wide.chunks_exact_mut(self.wide_len))
        {
            for (row, wide_row) in plane
                .chunks_exact(ow)
                .zip(wide.chunks_exact_mut(self.width))
            {
                super::copy_row(&mut wide_row[..ow], row);
                wide_row[ow..].fill(T::zero());
            }
        }
    }
}

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

impl<T: Float> super::SimdKernel for DirectPlane<'_, T> {
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
    let mut out = super::buffer::take(win.batch * out_channels * oh * ow);
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
        super::wide_simd(DirectPlane {
            plane_index,
            out,
            ..plane
        })
    });
    super::buffer::give(xp);
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
    let mut grad_wide = super::buffer::zeroed(win.batch * out_channels * padded.wide_len);
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
    let mut dw = super::buffer::take(out_channels * group_in * kh * kw);
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
                    super::reduce::dot(grads, plane)
                })
                .fold(T::zero(), |total, d| total + d);
        }
    });
    super::buffer::give(xp);
    super::buffer::give(grad_wide);
    dw
}

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
