//! One convolution, start to finish: sizes checked once, then either the direct
//! kernel (small stride-1 layers) or im2col + one GEMM per group, forward and
//! backward. Ops ask a [`ConvPlan`] for values; the loops, scratch buffers and
//! layout changes stay here.
//!
//! Forward: every receptive field of the batch becomes a column of `cols`, and
//! `out = W · cols` is one matrix product per group. Backward follows from the
//! matmul rule: `dW = G · colsᵀ` and `dcols = Wᵀ · G`, whose columns are added back
//! onto the pixels they were copied from (`col2im`).

use super::buffer::{self, Recycled};
use super::conv::{Window, col2im_add, conv_direct, conv_direct_grad_weight, im2col};
use super::gemm::{MatRef, gemm};
use super::reduce;
use crate::element::Float;

/// Stride, zero padding, dilation and groups of a convolution, as in PyTorch's
/// `nn.Conv2d`. `Conv2dOptions::default()` is stride 1, no padding, dilation 1, one group.
///
/// ```
/// let options = nabla::Conv2dOptions::default().padding(2).stride(1);
/// assert_eq!(options.padding, (2, 2));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dOptions {
    /// Step between receptive fields, (vertical, horizontal).
    pub stride: (usize, usize),
    /// Zeros added on each side, (vertical, horizontal).
    pub padding: (usize, usize),
    /// Spacing between kernel taps, (vertical, horizontal).
    pub dilation: (usize, usize),
    /// Channel groups: input and output channels split into this many independent convolutions.
    pub groups: usize,
}

impl Default for Conv2dOptions {
    fn default() -> Self {
        Conv2dOptions {
            stride: (1, 1),
            padding: (0, 0),
            dilation: (1, 1),
            groups: 1,
        }
    }
}

impl Conv2dOptions {
    /// The same stride on both axes.
    pub fn stride(self, stride: usize) -> Self {
        Conv2dOptions {
            stride: (stride, stride),
            ..self
        }
    }
    /// The same padding on both axes.
    pub fn padding(self, padding: usize) -> Self {
        Conv2dOptions {
            padding: (padding, padding),
            ..self
        }
    }
    /// The same dilation on both axes.
    pub fn dilation(self, dilation: usize) -> Self {
        Conv2dOptions {
            dilation: (dilation, dilation),
            ..self
        }
    }
    /// The number of groups.
    pub fn groups(self, groups: usize) -> Self {
        Conv2dOptions { groups, ..self }
    }
}

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
    /// and at most [`DIRECT_MAX_TAPS`] taps per output, copying every receptive
    /// field costs more than the multiply-adds themselves.
    pub fn direct(&self) -> bool {
        self.window.stride == (1, 1) && self.per_group().2 <= DIRECT_MAX_TAPS
    }

    /// Output pixels per image.
    fn pixels(&self) -> usize {
        self.out_size.0 * self.out_size.1
    }

    /// The output values; with `keep_columns`, also the im2col columns (when that
    /// path is taken), which the weight gradient needs again.
    pub fn forward<T: Float>(
        &self,
        x: &[T],
        w: &[T],
        bias: Option<&[T]>,
        keep_columns: bool,
    ) -> (Vec<T>, Option<Recycled<T>>) {
        if self.direct() {
            let direct = conv_direct(x, w, bias, &self.window, self.out_channels, self.groups);
            return (direct, None);
        }
        let (values, cols) = conv_forward(x, w, bias, self);
        (values, keep_columns.then_some(cols))
    }

    /// The gradients asked for (`wanted`: input, weight, bias) from the output's
    /// gradient, the input `x`, the weight `w` and the columns kept by `forward`
    /// (rebuilt from `x` when none were kept).
    pub fn backward<T: Float>(
        &self,
        grad_output: &[T],
        x: &[T],
        w: &[T],
        saved_cols: Option<&[T]>,
        wanted: [bool; 3],
    ) -> [Option<Vec<T>>; 3] {
        let [want_x, want_w, want_b] = wanted;
        // im2col's products want the gradient as [O, N·P]
        let im2col_weight = want_w && !self.direct();
        let grouped =
            (want_x || im2col_weight).then(|| Recycled::new(grouped_grad(grad_output, self)));
        let grad_x = grouped
            .as_deref()
            .filter(|_| want_x)
            .map(|g| conv_grad_input(g, w, self));
        let grad_w = want_w.then(|| match (&grouped, saved_cols) {
            _ if self.direct() => conv_direct_grad_weight(
                grad_output,
                x,
                &self.window,
                self.out_channels,
                self.groups,
            ),
            (Some(g), Some(cols)) => conv_grad_weight(g, cols, self),
            (Some(g), None) => conv_grad_weight(g, &all_columns(x, self), self),
            (None, _) => unreachable!("grouped above"),
        });
        // dL/db[o] = Σ over images and pixels of G[n, o, p]
        let grad_b = want_b.then(|| channel_sums(grad_output, self));
        [grad_x, grad_w, grad_b]
    }
}

/// The columns of every group, one `[taps, N·P]` matrix after another.
fn all_columns<T: Float>(x: &[T], geo: &ConvPlan) -> Recycled<T> {
    let (in_channels, _, _) = geo.per_group();
    Recycled::new(im2col(x, &geo.window, 0, in_channels * geo.groups))
}

/// out[n, g·og + o, p] = b[g·og + o] + Σ_t W_g[o, t] · cols_g[t, (n, p)];
/// also returns the columns, for dW.
fn conv_forward<T: Float>(
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    geo: &ConvPlan,
) -> (Vec<T>, Recycled<T>) {
    let (_, group_out, taps) = geo.per_group();
    let (batch, pixels) = (geo.window.batch, geo.pixels());
    let cols = all_columns(x, geo);
    let columns = batch * pixels;
    let mut out = buffer::take(batch * geo.out_channels * pixels);
    let mut product = buffer::take(group_out * columns);
    for group in 0..geo.groups {
        let w_group = block(w, group, group_out, taps);
        let cols_group = block(&cols, group, taps, columns);
        gemm(w_group, cols_group, &mut product, false);
        // [og, N, P] → [N, O, P], adding the bias on the way
        for o in 0..group_out {
            let channel = group * group_out + o;
            let b = bias.map_or(T::zero(), |b| b[channel]);
            for n in 0..batch {
                let src = &product[(o * batch + n) * pixels..][..pixels];
                let dst = &mut out[(n * geo.out_channels + channel) * pixels..][..pixels];
                dst.iter_mut().zip(src).for_each(|(d, &s)| *d = s + b);
            }
        }
    }
    buffer::give(product);
    (out, cols)
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

/// The output gradient rearranged from `[N, O, P]` to `[O, N·P]`: for each group an
/// `[og, N·P]` block, the layout of the forward product.
fn grouped_grad<T: Float>(grad_output: &[T], geo: &ConvPlan) -> Vec<T> {
    let (batch, pixels) = (geo.window.batch, geo.pixels());
    let mut out = buffer::take(grad_output.len());
    for channel in 0..geo.out_channels {
        for n in 0..batch {
            out[(channel * batch + n) * pixels..][..pixels].copy_from_slice(
                &grad_output[(n * geo.out_channels + channel) * pixels..][..pixels],
            );
        }
    }
    out
}

/// Matrix `index` of `data` viewed as consecutive row-major `rows × cols` matrices
/// (one per group).
fn block<T: Float>(data: &[T], index: usize, rows: usize, cols: usize) -> MatRef<'_, T> {
    MatRef::row_major(&data[index * rows * cols..][..rows * cols], rows, cols)
}

/// dL/dx: dcols = W_gᵀ · G_g, then each column is added back onto its pixels.
fn conv_grad_input<T: Float>(g: &[T], w: &[T], geo: &ConvPlan) -> Vec<T> {
    let (in_channels, group_out, taps) = geo.per_group();
    let columns = geo.window.batch * geo.pixels();
    let mut dx = buffer::zeroed(
        geo.window.batch * geo.window.channels * geo.window.height * geo.window.width,
    );
    let mut dcols = buffer::take(taps * columns);
    for group in 0..geo.groups {
        let (w_group, g_group) = (
            block(w, group, group_out, taps),
            block(g, group, group_out, columns),
        );
        gemm(w_group.t(), g_group, &mut dcols, false);
        col2im_add(
            &dcols,
            &geo.window,
            group * in_channels,
            in_channels,
            &mut dx,
        );
    }
    buffer::give(dcols);
    dx
}

/// dL/dW: dW_g = G_g · cols_gᵀ, summing over every pixel of every image in one GEMM.
fn conv_grad_weight<T: Float>(g: &[T], cols: &[T], geo: &ConvPlan) -> Vec<T> {
    let (_, group_out, taps) = geo.per_group();
    let columns = geo.window.batch * geo.pixels();
    let mut dw = buffer::take(geo.out_channels * taps);
    for group in 0..geo.groups {
        let (g_group, cols_group) = (
            block(g, group, group_out, columns),
            block(cols, group, taps, columns),
        );
        let dw_group = &mut dw[group * group_out * taps..][..group_out * taps];
        gemm(g_group, cols_group.t(), dw_group, false);
    }
    dw
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
            let (via_gemm, cols) = conv_forward(&x, &w, Some(&b), &geometry);
            let (window, out_channels, groups) =
                (&geometry.window, geometry.out_channels, geometry.groups);
            let direct = conv_direct(&x, &w, Some(&b), window, out_channels, groups);
            assert_close(&direct, &via_gemm, "forward", &input);

            let g = Tensor::<f64>::randn(&geometry.output_shape(), 0.0, 1.0, &mut rng).to_vec();
            let via_gemm = conv_grad_weight(&grouped_grad(&g, &geometry), &cols, &geometry);
            let direct = conv_direct_grad_weight(&g, &x, window, out_channels, groups);
            assert_close(&direct, &via_gemm, "weight gradient", &input);
        }
    }

    fn assert_close(a: &[f64], b: &[f64], what: &str, input: &[usize]) {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() < 1e-12, "{what} {input:?}[{i}]: {x} vs {y}");
        }
    }
}
