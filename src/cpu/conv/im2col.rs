//! The copies of the im2col + GEMM path: every receptive field of an image into a
//! column (`im2col`), and the columns' gradients back onto the pixels they came
//! from (`col2im_add`).

use super::Window;
use crate::element::Float;

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
