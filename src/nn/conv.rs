//! Convolution and pooling layers, and Flatten, for image models (NCHW).

use rand::Rng;

use super::Module;
use super::init::{Init, default_bias, fans};
use crate::cpu::conv::Window;
use crate::element::Float;
use crate::ops::conv::Conv2dOptions;
use crate::tensor::Tensor;

/// A 2-D convolution layer with weight `[out, in/groups, k, k]` and bias `[out]`.
pub struct Conv2d<T: Float = f32> {
    /// `[out_channels, in_channels/groups, kh, kw]`.
    pub weight: Tensor<T>,
    /// `[out_channels]`, if any.
    pub bias: Option<Tensor<T>>,
    /// Stride, padding, dilation and groups.
    pub options: Conv2dOptions,
}

impl<T: Float> Conv2d<T> {
    /// A square-kernel convolution with PyTorch's default initialisation and a bias.
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        options: Conv2dOptions,
        rng: &mut impl Rng,
    ) -> Self {
        Self::with_init(
            in_channels,
            out_channels,
            (kernel, kernel),
            options,
            true,
            Init::PyTorchDefault,
            rng,
        )
    }

    /// Any kernel shape, bias choice and weight initialisation.
    pub fn with_init(
        in_channels: usize,
        out_channels: usize,
        kernel: (usize, usize),
        options: Conv2dOptions,
        bias: bool,
        init: Init,
        rng: &mut impl Rng,
    ) -> Self {
        let groups = options.groups.max(1);
        assert!(
            in_channels.is_multiple_of(groups) && out_channels.is_multiple_of(groups),
            "Conv2d: {in_channels} input and {out_channels} output channels are not divisible into {groups} groups"
        );
        let shape = [out_channels, in_channels / groups, kernel.0, kernel.1];
        let weight = init.tensor(&shape, rng).requires_grad(true);
        let bias =
            bias.then(|| default_bias(out_channels, fans(&shape).0, rng).requires_grad(true));
        Conv2d {
            weight,
            bias,
            options,
        }
    }
}

impl<T: Float> Module<T> for Conv2d<T> {
    fn forward(&self, input: &Tensor<T>) -> Tensor<T> {
        input.conv2d(&self.weight, self.bias.as_ref(), self.options)
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        let [out_channels, group_channels, kh, kw] = self.weight.shape()[..] else {
            unreachable!("a Conv2d weight has 4 axes")
        };
        let o = self.options;
        let channels = group_channels * o.groups;
        let (c, h, w) = image(input)?;
        if c != channels {
            return Err(format!(
                "expects {channels} input channels, but receives shape {input:?}"
            ));
        }
        let size = window(h, w, (kh, kw), o.stride, o.padding, o.dilation).ok_or_else(|| {
            format!(
                "a {kh}×{kw} kernel (dilation {:?}) does not fit the input of shape {input:?}",
                o.dilation
            )
        })?;
        Ok(vec![out_channels, size.0, size.1])
    }

    fn describe(&self) -> String {
        let s = self.weight.shape();
        let o = self.options;
        format!(
            "Conv2d({}, {}, kernel=({}, {}), stride={:?}, padding={:?}{}{})",
            s[1] * o.groups,
            s[0],
            s[2],
            s[3],
            o.stride,
            o.padding,
            if o.dilation != (1, 1) {
                format!(", dilation={:?}", o.dilation)
            } else {
                String::new()
            },
            if o.groups != 1 {
                format!(", groups={}", o.groups)
            } else {
                String::new()
            },
        )
    }

    fn named_parameters(&self) -> Vec<(String, Tensor<T>)> {
        let mut params = vec![("weight".to_string(), self.weight.clone())];
        if let Some(bias) = &self.bias {
            params.push(("bias".to_string(), bias.clone()));
        }
        params
    }
}

/// Max pooling over `kernel × kernel` windows (stride defaults to the kernel, as PyTorch).
#[derive(Clone, Copy, Debug)]
pub struct MaxPool2d {
    /// Window size, (rows, columns).
    pub kernel: (usize, usize),
    /// Step between windows, (rows, columns).
    pub stride: (usize, usize),
    /// Padding on each side, (rows, columns).
    pub padding: (usize, usize),
}

impl MaxPool2d {
    /// Non-overlapping square windows: `MaxPool2d::new(2)` halves height and width.
    pub fn new(kernel: usize) -> Self {
        MaxPool2d {
            kernel: (kernel, kernel),
            stride: (kernel, kernel),
            padding: (0, 0),
        }
    }
}

impl<T: Float> Module<T> for MaxPool2d {
    fn forward(&self, input: &Tensor<T>) -> Tensor<T> {
        input.max_pool2d(self.kernel, self.stride, self.padding)
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        pooled_shape(input, self.kernel, self.stride, self.padding)
    }

    fn describe(&self) -> String {
        format!(
            "MaxPool2d(kernel={:?}, stride={:?}, padding={:?})",
            self.kernel, self.stride, self.padding
        )
    }
}

/// Average pooling over `kernel × kernel` windows (stride defaults to the kernel).
#[derive(Clone, Copy, Debug)]
pub struct AvgPool2d {
    /// Window size, (rows, columns).
    pub kernel: (usize, usize),
    /// Step between windows, (rows, columns).
    pub stride: (usize, usize),
    /// Padding on each side, (rows, columns).
    pub padding: (usize, usize),
}

impl AvgPool2d {
    /// Non-overlapping square windows.
    pub fn new(kernel: usize) -> Self {
        AvgPool2d {
            kernel: (kernel, kernel),
            stride: (kernel, kernel),
            padding: (0, 0),
        }
    }
}

impl<T: Float> Module<T> for AvgPool2d {
    fn forward(&self, input: &Tensor<T>) -> Tensor<T> {
        input.avg_pool2d(self.kernel, self.stride, self.padding)
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        pooled_shape(input, self.kernel, self.stride, self.padding)
    }

    fn describe(&self) -> String {
        format!(
            "AvgPool2d(kernel={:?}, stride={:?}, padding={:?})",
            self.kernel, self.stride, self.padding
        )
    }
}

/// Average pooling to a fixed `(height, width)` whatever the input's size
/// (PyTorch's `AdaptiveAvgPool2d`).
#[derive(Clone, Copy, Debug)]
pub struct AdaptiveAvgPool2d {
    /// Output (height, width).
    pub out: (usize, usize),
}

impl<T: Float> Module<T> for AdaptiveAvgPool2d {
    fn forward(&self, input: &Tensor<T>) -> Tensor<T> {
        input.adaptive_avg_pool2d(self.out)
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        match image(input)? {
            (_, 0, _) | (_, _, 0) => Err(format!(
                "has no pixels to average in an input of shape {input:?}"
            )),
            _ if self.out.0 == 0 || self.out.1 == 0 => {
                Err(format!("cannot pool to an empty size {:?}", self.out))
            }
            (c, _, _) => Ok(vec![c, self.out.0, self.out.1]),
        }
    }

    fn describe(&self) -> String {
        format!("AdaptiveAvgPool2d(output_size={:?})", self.out)
    }
}

/// The mean of each channel over the whole image: `[N, C, H, W]` → `[N, C]`, the
/// head of ResNets (PyTorch's `AdaptiveAvgPool2d(1)` followed by `Flatten()`).
#[derive(Clone, Copy, Debug, Default)]
pub struct GlobalAvgPool2d;

impl<T: Float> Module<T> for GlobalAvgPool2d {
    fn forward(&self, input: &Tensor<T>) -> Tensor<T> {
        input.global_avg_pool2d()
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        match image(input)? {
            (_, 0, _) | (_, _, 0) => Err(format!(
                "has no pixels to average in an input of shape {input:?}"
            )),
            (c, _, _) => Ok(vec![c]),
        }
    }

    fn describe(&self) -> String {
        "GlobalAvgPool2d()".to_string()
    }
}

/// Flattens every axis after the batch axis: `[N, C, H, W]` → `[N, C·H·W]`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Flatten;

impl<T: Float> Module<T> for Flatten {
    fn forward(&self, input: &Tensor<T>) -> Tensor<T> {
        if input.ndim() <= 1 {
            input.clone()
        } else {
            input.flatten(1, -1)
        }
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        Ok(vec![input.iter().product()])
    }

    fn describe(&self) -> String {
        "Flatten()".to_string()
    }
}

/// One sample's `[channels, height, width]`, or an error naming the shape received.
fn image(input: &[usize]) -> Result<(usize, usize, usize), String> {
    match *input {
        [c, h, w] => Ok((c, h, w)),
        _ => Err(format!(
            "expects an image input [channels, height, width], but receives shape {input:?}"
        )),
    }
}

/// Output height and width of a sliding window, as the kernels compute them.
fn window(
    height: usize,
    width: usize,
    kernel: (usize, usize),
    stride: (usize, usize),
    padding: (usize, usize),
    dilation: (usize, usize),
) -> Option<(usize, usize)> {
    let window = Window {
        batch: 1,
        channels: 1,
        height,
        width,
        kernel,
        stride,
        padding,
        dilation,
    };
    window.output_size()
}

fn pooled_shape(
    input: &[usize],
    kernel: (usize, usize),
    stride: (usize, usize),
    padding: (usize, usize),
) -> Result<Vec<usize>, String> {
    let (c, h, w) = image(input)?;
    let fits = padding.0 * 2 <= kernel.0 && padding.1 * 2 <= kernel.1;
    match window(h, w, kernel, stride, padding, (1, 1)).filter(|_| fits) {
        Some((out_h, out_w)) => Ok(vec![c, out_h, out_w]),
        None => Err(format!(
            "a {}×{} window with padding {padding:?} does not fit the input of shape {input:?}",
            kernel.0, kernel.1
        )),
    }
}
