//! The convolution layer for image models (NCHW); pooling is `nn/pool.rs`.

use rand::Rng;

use super::Module;
use super::init::{Init, default_bias, fans};
use crate::cpu::conv::Window;
use crate::element::Float;
use crate::onnx::{self, Attribute};
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

    fn to_onnx(&self, onnx: &mut onnx::Builder, input: &onnx::Value) -> Result<String, String> {
        let o = self.options;
        let [_, _, kh, kw] = self.weight.shape()[..] else {
            unreachable!("a Conv2d weight has 4 axes")
        };
        let pair = |(a, b): (usize, usize)| vec![a as i64, b as i64];
        let weight = onnx.parameter("weight", &self.weight);
        let mut inputs = vec![input.name.clone(), weight];
        inputs.extend(self.bias.as_ref().map(|bias| onnx.parameter("bias", bias)));
        let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        let (ph, pw) = o.padding;
        let attributes = [
            ("kernel_shape", Attribute::Ints(pair((kh, kw)))),
            ("strides", Attribute::Ints(pair(o.stride))),
            // ONNX pads: every axis' start, then every axis' end
            (
                "pads",
                Attribute::Ints(vec![ph as i64, pw as i64, ph as i64, pw as i64]),
            ),
            ("dilations", Attribute::Ints(pair(o.dilation))),
            ("group", Attribute::Int(o.groups as i64)),
        ];
        Ok(onnx.node("Conv", &inputs, &attributes))
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

/// One sample's `[channels, height, width]`, or an error naming the shape received.
pub(super) fn image(input: &[usize]) -> Result<(usize, usize, usize), String> {
    match *input {
        [c, h, w] => Ok((c, h, w)),
        _ => Err(format!(
            "expects an image input [channels, height, width], but receives shape {input:?}"
        )),
    }
}

/// Output height and width of a sliding window, as the kernels compute them.
pub(super) fn window(
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
