//! Max and average pooling over 2-D windows of NCHW tensors.

use crate::device::Window;
use crate::device::pool as kernels;
use crate::element::Float;
use crate::tensor::Tensor;

/// The forward formula and backward rule of each op in this file, as `nabla explain`
/// shows them.
pub(crate) const RULES: &[super::Rule] = &[
    super::Rule {
        op: "max_pool2d",
        forward: "y = max over each window",
        backward: "dL/dx = G at the window's maximum, 0 elsewhere",
    },
    super::Rule {
        op: "avg_pool2d",
        forward: "y = mean over each window",
        backward: "dL/dx = G / (window size), spread over the window",
    },
    super::Rule {
        op: "adaptive_avg_pool2d",
        forward: "y = mean over each of the output's windows",
        backward: "dL/dx = G / (window size), spread over the window",
    },
    super::Rule {
        op: "global_avg_pool2d",
        forward: "y[n,c] = mean over H×W of x[n,c]",
        backward: "dL/dx = G / (H·W) at every pixel",
    },
];

impl<T: Float> Tensor<T> {
    /// The largest value of each `kernel` window, moving by `stride`, over an
    /// `[N, C, H, W]` input padded with `padding` (padding never wins).
    pub fn max_pool2d(
        &self,
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
    ) -> Tensor<T> {
        let window = pool_window(self.shape(), kernel, stride, padding, "max_pool2d");
        let (values, arg_max) = kernels::max_pool2d(&self.data(), &window);
        let arg_max = crate::device::buffer::Recycled::new(arg_max);
        let out_shape = pooled_shape(&window);
        // d max/dxᵢ = 1 for the window's arg-max, 0 elsewhere: route each gradient there
        Tensor::from_op(values, &out_shape, "max_pool2d", &[self], move |ctx| {
            let grad = kernels::max_pool2d_backward(&ctx.grad_output.data(), &arg_max, &window);
            vec![Some(Tensor::from_vec(grad, ctx.input(0).shape()))]
        })
    }

    /// The mean of each `kernel` window, moving by `stride`, over an `[N, C, H, W]`
    /// input zero-padded with `padding` (zeros count, as PyTorch's default).
    pub fn avg_pool2d(
        &self,
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
    ) -> Tensor<T> {
        let window = pool_window(self.shape(), kernel, stride, padding, "avg_pool2d");
        let values = kernels::avg_pool2d(&self.data(), &window);
        let out_shape = pooled_shape(&window);
        // d mean/dxᵢ = 1/(kh·kw) for every xᵢ in the window
        Tensor::from_op(values, &out_shape, "avg_pool2d", &[self], move |ctx| {
            let grad = kernels::avg_pool2d_backward(&ctx.grad_output.data(), &window);
            vec![Some(Tensor::from_vec(grad, ctx.input(0).shape()))]
        })
    }

    /// Average pooling to a fixed output size `(oh, ow)` whatever the input's size:
    /// output (i, j) averages input rows `⌊i·H/oh⌋ .. ⌈(i+1)·H/oh⌉` and the
    /// columns likewise (PyTorch's `adaptive_avg_pool2d`).
    pub fn adaptive_avg_pool2d(&self, out: (usize, usize)) -> Tensor<T> {
        let &[batch, channels, height, width] = self.shape() else {
            panic!(
                "adaptive_avg_pool2d: expects a 4-D input [N, C, H, W], got shape {:?}",
                self.shape()
            );
        };
        assert!(
            out.0 > 0 && out.1 > 0 && height > 0 && width > 0,
            "adaptive_avg_pool2d: cannot pool an input of shape {:?} to {out:?}",
            self.shape()
        );
        let size = (height, width);
        let values = kernels::adaptive_avg_pool2d(&self.data(), size, out);
        let shape = [batch, channels, out.0, out.1];
        // d mean/dxᵢ = 1/|window| for every xᵢ in the window
        Tensor::from_op(values, &shape, "adaptive_avg_pool2d", &[self], move |ctx| {
            let grad = kernels::adaptive_avg_pool2d_backward(&ctx.grad_output.data(), size, out);
            vec![Some(Tensor::from_vec(grad, ctx.input(0).shape()))]
        })
    }

    /// The mean of each channel's whole `H × W` plane: `[N, C, H, W]` → `[N, C]`
    /// (PyTorch's `adaptive_avg_pool2d(x, 1)` followed by `flatten(1)`).
    pub fn global_avg_pool2d(&self) -> Tensor<T> {
        let &[batch, channels, height, width] = self.shape() else {
            panic!(
                "global_avg_pool2d: expects a 4-D input [N, C, H, W], got shape {:?}",
                self.shape()
            );
        };
        let pixels = height * width;
        assert!(
            pixels > 0,
            "global_avg_pool2d: an input of shape {:?} has no pixels to average",
            self.shape()
        );
        let means = kernels::plane_means(&self.data(), pixels);
        // d mean/dxᵢ = 1/(H·W) for every pixel of the plane
        Tensor::from_op(
            means,
            &[batch, channels],
            "global_avg_pool2d",
            &[self],
            move |ctx| {
                let grad = kernels::plane_means_backward(&ctx.grad_output.data(), pixels);
                vec![Some(Tensor::from_vec(grad, ctx.input(0).shape()))]
            },
        )
    }
}

fn pool_window(
    input: &[usize],
    kernel: (usize, usize),
    stride: (usize, usize),
    padding: (usize, usize),
    op: &str,
) -> Window {
    let &[batch, channels, height, width] = input else {
        panic!("{op}: expects a 4-D input [N, C, H, W], got shape {input:?}");
    };
    assert!(
        kernel.0 > 0 && kernel.1 > 0 && stride.0 > 0 && stride.1 > 0,
        "{op}: kernel {kernel:?} and stride {stride:?} must be at least 1"
    );
    assert!(
        padding.0 * 2 <= kernel.0 && padding.1 * 2 <= kernel.1,
        "{op}: padding {padding:?} must be at most half the kernel {kernel:?}"
    );
    let window = Window {
        batch,
        channels,
        height,
        width,
        kernel,
        stride,
        padding,
        dilation: (1, 1),
    };
    assert!(
        window.output_size().is_some(),
        "{op}: kernel {kernel:?} is larger than the padded input of shape {input:?}"
    );
    window
}

fn pooled_shape(window: &Window) -> Vec<usize> {
    let (oh, ow) = window.output_size().expect("checked in pool_window");
    vec![window.batch, window.channels, oh, ow]
}
