//! One convolution, start to finish: sizes checked once, then either the direct
//! kernel (small stride-1 layers) or im2col + GEMM, forward and backward. Ops ask a
//! [`ConvPlan`] for values; the loops, scratch buffers and layout changes stay here.
//!
//! The GEMM path works one image at a time: the image's receptive fields become the
//! columns of `cols` (`[C·kh·kw, P]`, P output pixels), and `out_n = W · cols` is
//! its `[O, P]` output, already in NCHW order. Backward follows from the matmul
//! rule: `dW = Σ_n G_n · colsₙᵀ` and `dcolsₙ = Wᵀ · G_n`, whose columns are added
//! back onto the pixels they were copied from (`col2im`). An image's columns fit in
//! cache and are rebuilt in backward rather than kept: a batch's would take
//! `kh·kw` times the input's memory. At stride 1 the columns are built in the
//! "wide" layout ([`Padded`]): each row is one shifted copy of a padded plane,
//! and the product's rows come out at the padded width, narrowed afterwards.

use super::tiled::{TILE, TiledConv};
use super::{
    Conv2dOptions, Padded, Window, col2im_add, conv_direct, conv_direct_grad_weight,
    for_each_chunk, im2col,
};
use crate::cpu::buffer::{self, Scratch};
use crate::cpu::gemm::{MatRef, gemm, gemm_serial};
use crate::cpu::parallel::{for_each_task, pieces_mut};
use crate::cpu::reduce;
use crate::element::Float;

/// The smallest batch that takes the tiled path: its weight gradient is summed
/// over chunks of 4–16 images, in parallel only when there are several chunks.
const TILED_MIN_BATCH: usize = 8;

/// The most channels (input or output) that take the tiled path: from 256 on,
/// GEMM's packing is amortised and it was faster.
const TILED_MAX_CHANNELS: usize = 128;

/// The most taps (`C/groups · kh · kw`) for which [`ConvPlan::direct`] holds:
/// LeNet's first layer (1 channel, 5×5) is direct, its second (6 × 5×5 = 150) is not.
const DIRECT_MAX_TAPS: usize = 32;

/// How one convolution runs: its sizes, checked once, and the path its kernels
/// take (direct, or im2col + GEMM per group).
#[derive(Clone, Copy, Debug)]
pub struct ConvPlan {
    window: Window,
    out_channels: usize,
    groups: usize,
    out_size: (usize, usize),
}

impl ConvPlan {
    /// The plan for an `input` `[N, C, H, W]` and a `weight` `[O, C/groups, kh, kw]`;
    /// panics, naming both shapes, if they do not fit together.
    pub fn new(input: &[usize], weight: &[usize], options: Conv2dOptions) -> Self {
        let fail = |why: String| -> ! {
            panic!("conv2d: input of shape {input:?} and weight of shape {weight:?}: {why}")
        };
        let (&[batch, channels, height, width], &[out_channels, group_channels, kh, kw]) =
            (input, weight)
        else {
            fail("expected a 4-D input [N, C, H, W] and a 4-D weight [O, C/groups, kh, kw]".into())
        };
        let groups = options.groups;
        if groups == 0 || channels != group_channels * groups || out_channels % groups != 0 {
            fail(format!(
                "with {groups} groups the weight needs {} input channels per group and a multiple of {groups} output channels",
                channels / groups.max(1)
            ));
        }
        let stride_ok = options.stride.0 > 0 && options.stride.1 > 0;
        let dilation_ok = options.dilation.0 > 0 && options.dilation.1 > 0;
        if !stride_ok || !dilation_ok || kh == 0 || kw == 0 {
            fail("stride, dilation and kernel sizes must be at least 1".into());
        }
        let window = Window {
            batch,
            channels,
            height,
            width,
            kernel: (kh, kw),
            stride: options.stride,
            padding: options.padding,
            dilation: options.dilation,
        };
        let out_size = window
            .output_size()
            .unwrap_or_else(|| fail("the kernel is larger than the padded input".into()));
        ConvPlan {
            window,
            out_channels,
            groups,
            out_size,
        }
    }

    /// The output's shape, `[N, O, OH, OW]`.
    pub fn output_shape(&self) -> Vec<usize> {
        vec![
            self.window.batch,
            self.out_channels,
            self.out_size.0,
            self.out_size.1,
        ]
    }

    /// Input channels, output channels and kernel taps (`C/g · kh · kw`) per group.
    fn per_group(&self) -> (usize, usize, usize) {
        let in_channels = self.window.channels / self.groups;
        let taps = in_channels * self.window.kernel.0 * self.window.kernel.1;
        (in_channels, self.out_channels / self.groups, taps)
    }

    /// Whether to convolve directly rather than through im2col + GEMM: with stride 1
    /// and at most `DIRECT_MAX_TAPS` (32) taps per output, copying every receptive
    /// field costs more than the multiply-adds themselves.
    pub fn direct(&self) -> bool {
        self.window.stride == (1, 1) && self.per_group().2 <= DIRECT_MAX_TAPS
    }

    /// Output pixels per image.
    fn pixels(&self) -> usize {
        self.out_size.0 * self.out_size.1
    }

    /// Input values per image, `C·H·W`.
    fn image_len(&self) -> usize {
        self.window.channels * self.window.height * self.window.width
    }

    /// How an image becomes the columns of its matrix product.
    fn lowering(&self) -> Lowering {
        let w = self.single_image();
        if w.kernel == (1, 1) && w.stride == (1, 1) && w.padding == (0, 0) {
            Lowering::Input
        } else if w.stride == (1, 1) {
            Lowering::Wide(Padded::new(&w))
        } else {
            Lowering::Im2col
        }
    }

    /// Columns of one image's matrix product: its output pixels, or (wide layout)
    /// its output rows at the padded width.
    fn column_len(&self, lowering: &Lowering) -> usize {
        match lowering {
            Lowering::Wide(padded) => padded.wide_len,
            _ => self.pixels(),
        }
    }

    /// The `[C·kh·kw, column_len]` columns of one image.
    fn columns<'a, T: Float>(&self, image: &'a [T], lowering: &Lowering) -> Columns<'a, T> {
        let rows = self.per_group().2 * self.groups;
        let window = self.single_image();
        match lowering {
            Lowering::Input => Columns::Input(image),
            Lowering::Im2col => {
                let mut cols = Scratch::new(rows * self.pixels());
                im2col(image, &window, &mut cols);
                Columns::Scratch(cols)
            }
            Lowering::Wide(padded) => {
                let mut padded_image = Scratch::new(window.channels * padded.plane_len);
                padded.pad_image(image, &window, &mut padded_image);
                let mut cols = Scratch::new(rows * padded.wide_len);
                padded.wide_columns(&padded_image, &window, &mut cols);
                Columns::Scratch(cols)
            }
        }
    }

    /// The window of one image of the batch.
    fn single_image(&self) -> Window {
        Window {
            batch: 1,
            ..self.window
        }
    }

    /// Whether to convolve in place on the padded planes ([`TiledConv`]) rather
    /// than through im2col + GEMM. Where it was measured to win (forward + both
    /// gradients, 2 threads, `examples/conv_shapes.rs`): stride 1, one group, a
    /// kernel larger than 1×1 with more taps than the direct kernel takes, 16 to
    /// `TILED_MAX_CHANNELS` (128) channels on each side, and a batch of at least
    /// `TILED_MIN_BATCH` (8).
    /// Outside it GEMM's packing is amortised (256–512 channels: tiled 10–20%
    /// slower), there is no receptive field to copy (1×1: 2× slower), a partial tile
    /// computes sums that are dropped (LeNet's 6 channels: 10–20% slower), or too
    /// few images to share between threads (batch 1: 1.4× slower). Only on CPUs with
    /// AVX-512 and FMA: the tiles need its 32 vector registers (with AVX2's 16 they
    /// spilled and ran 3–4× slower than GEMM).
    pub fn tiled(&self) -> bool {
        let (channels, out_channels) = (self.window.channels, self.out_channels);
        self.window.stride == (1, 1)
            && self.groups == 1
            && !self.direct()
            && self.window.kernel.0 * self.window.kernel.1 > 1
            && channels.min(out_channels) >= TILE
            && channels.max(out_channels) <= TILED_MAX_CHANNELS
            && self.window.batch >= TILED_MIN_BATCH
            && crate::cpu::has_avx512_fma()
    }

    /// The output values.
    pub fn forward<T: Float>(&self, x: &[T], w: &[T], bias: Option<&[T]>) -> Vec<T> {
        if self.direct() {
            return conv_direct(x, w, bias, &self.window, self.out_channels, self.groups);
        }
        if self.tiled() {
            let parallel =
                self.work() >= crate::cpu::PARALLEL_MIN_ELEMENTS && self.window.batch > 1;
            return TiledConv::new(&self.window, self.out_channels).forward(x, w, bias, parallel);
        }
        self.gemm_forward(x, w, bias)
    }

    /// Multiply-adds of one pass, `N · O · P · taps`.
    fn work(&self) -> usize {
        self.window.batch * self.out_channels * self.pixels() * self.per_group().2
    }

    /// The forward values through im2col + GEMM, image by image.
    fn gemm_forward<T: Float>(&self, x: &[T], w: &[T], bias: Option<&[T]>) -> Vec<T> {
        let (_, group_out, taps) = self.per_group();
        let lowering = self.lowering();
        let columns = self.column_len(&lowering);
        let out_len = self.out_channels * self.pixels();
        let mut out = buffer::take(self.window.batch * out_len);
        let parallel = out.len() * taps >= crate::cpu::PARALLEL_MIN_ELEMENTS;
        // parallel over images, or (a single image) inside its products
        let product = if parallel && self.window.batch > 1 {
            gemm_serial
        } else {
            gemm
        };
        for_each_chunk(&mut out, out_len, parallel, |n, out| {
            let cols = self.columns(&x[n * self.image_len()..][..self.image_len()], &lowering);
            let mut wide = match lowering {
                Lowering::Wide(_) => Some(Scratch::new(self.out_channels * columns)),
                _ => None,
            };
            // the bias is in place before the product only when writing `out` directly
            let accumulate = bias.is_some() && wide.is_none();
            for group in 0..self.groups {
                let rows = group * group_out..(group + 1) * group_out;
                // out_g = W_g · cols_g (+ b_g)
                let target = match &mut wide {
                    Some(wide) => &mut wide[rows.start * columns..rows.end * columns],
                    None => {
                        let out = &mut out[rows.start * columns..rows.end * columns];
                        if let Some(bias) = bias {
                            for (row, &b) in out.chunks_exact_mut(columns).zip(&bias[rows]) {
                                row.fill(b);
                            }
                        }
                        out
                    }
                };
                let (w_group, cols_group) = (
                    block(w, group, group_out, taps),
                    block(&cols, group, taps, columns),
                );
                product(w_group, cols_group, target, accumulate);
            }
            if let (Some(wide), Lowering::Wide(padded)) = (&wide, &lowering) {
                padded.narrow(wide, self.out_size.1, bias, out);
            }
        });
        out
    }

    /// The gradients asked for (`wanted`: input, weight, bias) from the output's
    /// gradient, the input `x` and the weight `w`.
    pub fn backward<T: Float>(
        &self,
        grad_output: &[T],
        x: &[T],
        w: &[T],
        wanted: [bool; 3],
    ) -> [Option<Vec<T>>; 3] {
        let [want_x, want_w, want_b] = wanted;
        if self.tiled() {
            let tiled = TiledConv::new(&self.window, self.out_channels);
            let parallel = self.work() >= crate::cpu::PARALLEL_MIN_ELEMENTS;
            let grad_x = if TiledConv::input_grad_fits(&self.window) {
                want_x.then(|| tiled.input_grad(grad_output, w, parallel))
            } else {
                self.gemm_backward(grad_output, x, w, want_x, false).0
            };
            let grad_w = want_w.then(|| tiled.weight_grad(grad_output, x, parallel));
            let grad_b = want_b.then(|| channel_sums(grad_output, self));
            return [grad_x, grad_w, grad_b];
        }
        let direct_weight = want_w && self.direct();
        let (grad_x, grad_w) =
            self.gemm_backward(grad_output, x, w, want_x, want_w && !direct_weight);
        let grad_w = if direct_weight {
            Some(conv_direct_grad_weight(
                grad_output,
                x,
                &self.window,
                self.out_channels,
                self.groups,
            ))
        } else {
            grad_w
        };
        // dL/db[o] = Σ over images and pixels of G[n, o, p]
        let grad_b = want_b.then(|| channel_sums(grad_output, self));
        [grad_x, grad_w, grad_b]
    }

    /// dL/dx and dL/dW through the columns, image by image. The weight gradient is
    /// summed over fixed chunks of [`IMAGES_PER_PARTIAL`] images, in parallel, and
    /// the chunks' sums are added in order: the same result for any number of threads.
    fn gemm_backward<T: Float>(
        &self,
        grad_output: &[T],
        x: &[T],
        w: &[T],
        want_x: bool,
        want_w: bool,
    ) -> (Option<Vec<T>>, Option<Vec<T>>) {
        if !want_x && !want_w {
            return (None, None);
        }
        let (_, group_out, taps) = self.per_group();
        let lowering = self.lowering();
        let columns = self.column_len(&lowering);
        let (batch, image_len) = (self.window.batch, self.image_len());
        let out_len = self.out_channels * self.pixels();
        let chunks = batch.div_ceil(IMAGES_PER_PARTIAL);
        let weight_len = self.out_channels * taps;
        let mut dx = buffer::take(if want_x { batch * image_len } else { 0 });
        let mut partials = buffer::take(if want_w { chunks * weight_len } else { 0 });
        let work = (batch * out_len * taps) * (want_x as usize + want_w as usize);
        // task c: images c·IMAGES_PER_PARTIAL… of dx, and partial dW number c
        let pieces = (
            pieces_mut(&mut dx, IMAGES_PER_PARTIAL * image_len),
            pieces_mut(&mut partials, weight_len),
        );
        let parallel = work >= crate::cpu::PARALLEL_MIN_ELEMENTS && chunks > 1;
        let product = if parallel { gemm_serial } else { gemm };
        let backward_chunk = |chunk: usize, (dx, dw): (&mut [T], &mut [T])| {
            let first = chunk * IMAGES_PER_PARTIAL;
            for n in first..(first + IMAGES_PER_PARTIAL).min(batch) {
                let image = &x[n * image_len..][..image_len];
                let grads = &grad_output[n * out_len..][..out_len];
                // G in the columns' layout
                let mut wide = None;
                let grads = match &lowering {
                    Lowering::Wide(padded) => {
                        let wide = wide.insert(Scratch::new(self.out_channels * columns));
                        padded.widen(grads, self.out_size.1, wide);
                        &wide[..]
                    }
                    _ => grads,
                };
                if want_w {
                    let cols = self.columns(image, &lowering);
                    for group in 0..self.groups {
                        // dW_g += G_g · cols_gᵀ
                        let (g_group, cols_group) = (
                            block(grads, group, group_out, columns),
                            block(&cols, group, taps, columns),
                        );
                        let dw = &mut dw[group * group_out * taps..][..group_out * taps];
                        product(g_group, cols_group.t(), dw, n > first);
                    }
                }
                if want_x {
                    let dx = &mut dx[(n - first) * image_len..][..image_len];
                    self.grad_image(grads, w, &lowering, dx, product);
                }
            }
        };
        for_each_task(pieces, parallel, &backward_chunk);
        let grad_w = want_w.then(|| {
            let mut dw = buffer::zeroed(weight_len);
            reduce::add_partials(&mut dw, &partials);
            dw
        });
        buffer::give(partials);
        (want_x.then_some(dx), grad_w)
    }

    /// dL/dx of one image from its gradient in the columns' layout: dcols_g =
    /// W_gᵀ · G_g, each column added back onto the pixels it was copied from.
    fn grad_image<T: Float>(
        &self,
        grads: &[T],
        w: &[T],
        lowering: &Lowering,
        dx: &mut [T],
        product: Product<T>,
    ) {
        let (in_channels, group_out, taps) = self.per_group();
        let columns = self.column_len(lowering);
        let plane_len = self.window.height * self.window.width;
        let mut dcols = match lowering {
            Lowering::Input => None,
            _ => Some(Scratch::new(taps * self.groups * columns)),
        };
        for group in 0..self.groups {
            let (w_group, g_group) = (
                block(w, group, group_out, taps),
                block(grads, group, group_out, columns),
            );
            let target = match &mut dcols {
                Some(dcols) => &mut dcols[group * taps * columns..][..taps * columns],
                // 1×1, stride 1: the columns are the image, so dcols is dx
                None => &mut dx[group * in_channels * plane_len..][..in_channels * plane_len],
            };
            product(w_group.t(), g_group, target, false);
        }
        let window = self.single_image();
        match (lowering, dcols) {
            (Lowering::Im2col, Some(dcols)) => {
                dx.fill(T::zero());
                col2im_add(&dcols, &window, dx);
            }
            (Lowering::Wide(padded), Some(dcols)) => {
                let mut padded_dx = Scratch::new(window.channels * padded.plane_len);
                padded.add_wide_columns(&dcols, &window, &mut padded_dx, dx);
            }
            _ => {}
        }
    }
}

/// How an image becomes the columns of its matrix product.
enum Lowering {
    /// A 1×1 kernel at stride 1 without padding: the image is its own columns.
    Input,
    /// Any stride: every receptive field copied into a column (`im2col`).
    Im2col,
    /// Stride 1: each row of the columns is one shifted copy of a padded plane,
    /// and outputs come out at the padded width (the extra columns are dropped).
    Wide(Padded),
}

/// A matrix product: [`gemm`], or [`gemm_serial`] inside a parallel task.
type Product<T> = fn(MatRef<'_, T>, MatRef<'_, T>, &mut [T], bool);

/// Images whose weight gradients are summed into one partial sum (a fixed number,
/// so the summation order does not depend on the thread count).
const IMAGES_PER_PARTIAL: usize = 4;

/// An image's columns: the image itself, or a scratch copy built by im2col.
enum Columns<'a, T: Float> {
    Input(&'a [T]),
    Scratch(Scratch<T>),
}

impl<T: Float> std::ops::Deref for Columns<'_, T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        match self {
            Columns::Input(image) => image,
            Columns::Scratch(cols) => cols,
        }
    }
}

/// `Σ_n Σ_p g[n, o, p]` for each channel `o` of an `[N, O, P]` gradient.
fn channel_sums<T: Float>(g: &[T], geo: &ConvPlan) -> Vec<T> {
    let (channels, pixels) = (geo.out_channels, geo.pixels());
    let mut sums = buffer::zeroed(channels);
    if channels * pixels == 0 {
        return sums;
    }
    for image in g.chunks_exact(channels * pixels) {
        for (sum, plane) in sums.iter_mut().zip(image.chunks_exact(pixels)) {
            *sum += reduce::sum_slice(plane);
        }
    }
    sums
}

/// Matrix `index` of `data` viewed as consecutive row-major `rows × cols` matrices
/// (one per group).
fn block<T: Float>(data: &[T], index: usize, rows: usize, cols: usize) -> MatRef<'_, T> {
    MatRef::row_major(&data[index * rows * cols..][..rows * cols], rows, cols)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::Tensor;

    /// The direct path and im2col + GEMM compute the same forward values and weight
    /// gradients (they only sum in a different order).
    #[test]
    fn direct_convolution_matches_im2col() {
        let cases = [
            (
                [2, 1, 6, 7],
                [3, 1, 5, 5],
                Conv2dOptions::default().padding(2),
            ),
            ([1, 2, 5, 5], [4, 2, 3, 3], Conv2dOptions::default()),
            (
                [2, 4, 5, 6],
                [4, 2, 2, 3],
                Conv2dOptions::default().groups(2).padding(1),
            ),
            (
                [1, 3, 7, 7],
                [2, 3, 3, 3],
                Conv2dOptions::default().dilation(2).padding(1),
            ),
            (
                [1, 1, 3, 3],
                [1, 1, 5, 5],
                Conv2dOptions::default().padding(2),
            ),
        ];
        let mut rng = crate::rng(7);
        for (input, weight, options) in cases {
            let geometry = ConvPlan::new(&input, &weight, options);
            assert!(
                geometry.direct(),
                "{input:?} {weight:?} should be a direct case"
            );
            let x = Tensor::<f64>::randn(&input, 0.0, 1.0, &mut rng).to_vec();
            let w = Tensor::<f64>::randn(&weight, 0.0, 1.0, &mut rng).to_vec();
            let b = Tensor::<f64>::randn(&[weight[0]], 0.0, 1.0, &mut rng).to_vec();
            let via_gemm = geometry.gemm_forward(&x, &w, Some(&b));
            let (window, out_channels, groups) =
                (&geometry.window, geometry.out_channels, geometry.groups);
            let direct = conv_direct(&x, &w, Some(&b), window, out_channels, groups);
            assert_close(&direct, &via_gemm, "forward", &input);

            let g = Tensor::<f64>::randn(&geometry.output_shape(), 0.0, 1.0, &mut rng).to_vec();
            let (_, via_gemm) = geometry.gemm_backward(&g, &x, &w, false, true);
            let direct = conv_direct_grad_weight(&g, &x, window, out_channels, groups);
            assert_close(&direct, &via_gemm.unwrap(), "weight gradient", &input);
        }
    }

    /// The tiled path computes the same forward values and gradients as im2col +
    /// GEMM (sums in a different order, with fused multiply-adds), on shapes with
    /// partial tiles of channels, taps and outputs, tiles by rows and through the
    /// wide layout, padding, dilation, and padding too large for a tiled input gradient.
    #[test]
    fn tiled_convolution_matches_im2col() {
        let cases = [
            (
                [8, 16, 8, 8],
                [16, 16, 3, 3],
                Conv2dOptions::default().padding(1),
            ),
            // rows of 16 and of 30 (a partial tile): tiles by rows, not wide
            (
                [8, 16, 4, 16],
                [16, 16, 3, 3],
                Conv2dOptions::default().padding(1),
            ),
            (
                [8, 16, 3, 30],
                [20, 16, 3, 3],
                Conv2dOptions::default().padding(1),
            ),
            (
                [9, 17, 7, 6],
                [20, 17, 3, 3],
                Conv2dOptions::default().padding(1),
            ),
            ([8, 16, 9, 7], [19, 16, 3, 2], Conv2dOptions::default()),
            (
                [8, 18, 11, 10],
                [33, 18, 3, 3],
                Conv2dOptions::default().dilation(2).padding(2),
            ),
            (
                [8, 16, 6, 6],
                [17, 16, 5, 5],
                Conv2dOptions::default().padding(2),
            ),
            (
                [8, 16, 4, 4],
                [16, 16, 3, 3],
                Conv2dOptions {
                    padding: (3, 1),
                    ..Default::default()
                },
            ),
        ];
        let mut rng = crate::rng(8);
        for (input, weight, options) in cases {
            let plan = ConvPlan::new(&input, &weight, options);
            // the plan takes this path only where the CPU has AVX-512; the kernels
            // themselves run (unvectorised) anywhere
            assert_eq!(
                plan.tiled(),
                crate::cpu::has_avx512_fma(),
                "{input:?} {weight:?}"
            );
            let tiled = TiledConv::new(&plan.window, plan.out_channels);
            let x = Tensor::<f64>::randn(&input, 0.0, 1.0, &mut rng).to_vec();
            let w = Tensor::<f64>::randn(&weight, 0.0, 1.0, &mut rng).to_vec();
            let b = Tensor::<f64>::randn(&[weight[0]], 0.0, 1.0, &mut rng).to_vec();
            assert_close(
                &tiled.forward(&x, &w, Some(&b), true),
                &plan.gemm_forward(&x, &w, Some(&b)),
                "forward",
                &input,
            );
            let g = Tensor::<f64>::randn(&plan.output_shape(), 0.0, 1.0, &mut rng).to_vec();
            let grad_x = if TiledConv::input_grad_fits(&plan.window) {
                Some(tiled.input_grad(&g, &w, true))
            } else {
                plan.gemm_backward(&g, &x, &w, true, false).0
            };
            let grad_w = tiled.weight_grad(&g, &x, true);
            let (via_gemm_x, via_gemm_w) = plan.gemm_backward(&g, &x, &w, true, true);
            assert_close(
                &grad_x.unwrap(),
                &via_gemm_x.unwrap(),
                "input gradient",
                &input,
            );
            assert_close(&grad_w, &via_gemm_w.unwrap(), "weight gradient", &input);
        }
    }

    fn assert_close(a: &[f64], b: &[f64], what: &str, input: &[usize]) {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() < 1e-12, "{what} {input:?}[{i}]: {x} vs {y}");
        }
    }
}
