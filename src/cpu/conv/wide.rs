//! The "wide" layout of stride-1 convolutions: zero-padded planes stored flat, so
//! that each kernel tap is one shifted run over the whole plane.

use super::Window;
use crate::element::Float;

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
    pub(crate) fn planes<T: Float>(&self, x: &[T], win: &Window, tail: usize) -> Vec<T> {
        let image_len = win.channels * win.height * win.width;
        let planes_len = win.batch * win.channels * self.plane_len;
        let mut out = crate::cpu::buffer::take(planes_len + tail);
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
                crate::cpu::copy_row(&mut padded[at..at + win.width], row);
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
                crate::cpu::copy_row(row, &padded[at..at + win.width]);
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
                crate::cpu::copy_row(&mut wide_row[..ow], row);
                wide_row[ow..].fill(T::zero());
            }
        }
    }
}
