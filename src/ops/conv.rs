//! 2-D convolution (cross-correlation, as in every deep-learning library) on NCHW
//! tensors, by im2col + GEMM.
//!
//! Forward: every receptive field of the batch becomes a column of `cols`, and
//! `out = W · cols` is one matrix product per group. Backward follows from the
//! matmul rule: `dW = G · colsᵀ` and `dcols = Wᵀ · G`, whose columns are added back
//! onto the pixels they were copied from (`col2im`).

use crate::cpu::buffer::{self, Recycled};
use crate::cpu::conv::{Window, col2im_add, im2col};
use crate::cpu::gemm::{MatRef, gemm};
use crate::cpu::reduce;
use crate::element::Float;
use crate::tensor::Tensor;

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

impl<T: Float> Tensor<T> {
    /// Convolves an `[N, C, H, W]` input with an `[O, C/groups, kh, kw]` weight,
    /// adding `bias` (`[O]`) to each output channel. Output: `[N, O, OH, OW]`.
    pub fn conv2d(
        &self,
        weight: &Tensor<T>,
        bias: Option<&Tensor<T>>,
        options: Conv2dOptions,
    ) -> Tensor<T> {
        let geometry = ConvGeometry::new(self.shape(), weight.shape(), options);
        if let Some(bias) = bias {
            assert_eq!(
                bias.shape(),
                &[geometry.out_channels],
                "conv2d: bias of shape {:?} for {} output channels",
                bias.shape(),
                geometry.out_channels
            );
        }
        let (values, cols) = conv_forward(
            &self.data(),
            &weight.data(),
            bias.map(|b| b.data()).as_deref(),
            &geometry,
        );
        // dW needs the columns again; keep them rather than rebuild them in backward.
        let weight_learns = weight.tracks_grad() && crate::autograd::is_grad_enabled();
        let saved_cols = weight_learns.then_some(cols);
        let inputs: Vec<&Tensor<T>> = match bias {
            Some(b) => vec![self, weight, b],
            None => vec![self, weight],
        };
        Tensor::from_op(
            values,
            &geometry.output_shape(),
            "conv2d",
            &inputs,
            move |ctx| {
                let (x, w) = (ctx.input(0), ctx.input(1));
                let g = grouped_grad(&ctx.grad_output.data(), &geometry);
                let grad_x = ctx.needs_grad(0).then(|| {
                    Tensor::from_vec(conv_grad_input(&g, &w.data(), &geometry), x.shape())
                });
                let grad_w = ctx.needs_grad(1).then(|| {
                    let grad_w = match &saved_cols {
                        Some(cols) => conv_grad_weight(&g, cols, &geometry),
                        None => conv_grad_weight(&g, &all_columns(&x.data(), &geometry), &geometry),
                    };
                    Tensor::from_vec(grad_w, w.shape())
                });
                let mut grads = vec![grad_x, grad_w];
                if ctx.inputs.len() == 3 {
                    // dL/db[o] = Σ over images and pixels of G[n, o, p]
                    let channels = geometry.out_channels;
                    let sums = reduce::sum_axis(
                        &g,
                        channels,
                        geometry.window.batch * geometry.pixels(),
                        1,
                    );
                    grads.push(
                        ctx.needs_grad(2)
                            .then(|| Tensor::from_vec(sums, &[channels])),
                    );
                }
                buffer::give(g);
                grads
            },
        )
    }
}

/// Everything about a convolution's sizes, checked once.
#[derive(Clone, Copy, Debug)]
struct ConvGeometry {
    window: Window,
    out_channels: usize,
    groups: usize,
    out_size: (usize, usize),
}

impl ConvGeometry {
    fn new(input: &[usize], weight: &[usize], options: Conv2dOptions) -> Self {
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
        ConvGeometry {
            window,
            out_channels,
            groups,
            out_size,
        }
    }

    fn output_shape(&self) -> Vec<usize> {
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

    /// Output pixels per image.
    fn pixels(&self) -> usize {
        self.out_size.0 * self.out_size.1
    }
}

/// The columns of every group, one `[taps, N·P]` matrix after another.
fn all_columns<T: Float>(x: &[T], geo: &ConvGeometry) -> Recycled<T> {
    let (in_channels, _, _) = geo.per_group();
    Recycled::new(im2col(x, &geo.window, 0, in_channels * geo.groups))
}

/// out[n, g·og + o, p] = b[g·og + o] + Σ_t W_g[o, t] · cols_g[t, (n, p)];
/// also returns the columns, for dW.
fn conv_forward<T: Float>(
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    geo: &ConvGeometry,
) -> (Vec<T>, Recycled<T>) {
    let (_, group_out, taps) = geo.per_group();
    let (batch, pixels) = (geo.window.batch, geo.pixels());
    let cols = all_columns(x, geo);
    let columns = batch * pixels;
    let mut out = buffer::take(batch * geo.out_channels * pixels);
    let mut product = buffer::take(group_out * columns);
    for group in 0..geo.groups {
        gemm(
            MatRef::row_major(
                &w[group * group_out * taps..][..group_out * taps],
                group_out,
                taps,
            ),
            MatRef::row_major(
                &cols[group * taps * columns..][..taps * columns],
                taps,
                columns,
            ),
            &mut product,
            false,
        );
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

/// The output gradient rearranged from `[N, O, P]` to `[O, N·P]`: for each group an
/// `[og, N·P]` block, the layout of the forward product.
fn grouped_grad<T: Float>(grad_output: &[T], geo: &ConvGeometry) -> Vec<T> {
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

/// dL/dx: dcols = W_gᵀ · G_g, then each column is added back onto its pixels.
fn conv_grad_input<T: Float>(g: &[T], w: &[T], geo: &ConvGeometry) -> Vec<T> {
    let (in_channels, group_out, taps) = geo.per_group();
    let columns = geo.window.batch * geo.pixels();
    let mut dx = buffer::zeroed(
        geo.window.batch * geo.window.channels * geo.window.height * geo.window.width,
    );
    let mut dcols = buffer::take(taps * columns);
    for group in 0..geo.groups {
        let w_group = MatRef::row_major(
            &w[group * group_out * taps..][..group_out * taps],
            group_out,
            taps,
        );
        let g_group = MatRef::row_major(
            &g[group * group_out * columns..][..group_out * columns],
            group_out,
            columns,
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
fn conv_grad_weight<T: Float>(g: &[T], cols: &[T], geo: &ConvGeometry) -> Vec<T> {
    let (_, group_out, taps) = geo.per_group();
    let columns = geo.window.batch * geo.pixels();
    let mut dw = buffer::take(geo.out_channels * taps);
    for group in 0..geo.groups {
        gemm(
            MatRef::row_major(
                &g[group * group_out * columns..][..group_out * columns],
                group_out,
                columns,
            ),
            MatRef::row_major(
                &cols[group * taps * columns..][..taps * columns],
                taps,
                columns,
            )
            .t(),
            &mut dw[group * group_out * taps..][..group_out * taps],
            false,
        );
    }
    dw
}
