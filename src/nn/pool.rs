//! Pooling layers for image models (NCHW) — max, average, adaptive and global
//! average pooling — and Flatten, which hands their output to a linear layer.

use super::Module;
use super::conv::{image, window};
use crate::element::Float;
use crate::onnx::{self, Attribute};
use crate::tensor::Tensor;

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

    fn to_onnx(&self, onnx: &mut onnx::Builder, input: &onnx::Value) -> Result<String, String> {
        let attributes = window_attributes(self.kernel, self.stride, self.padding);
        Ok(onnx.node("MaxPool", &[&input.name], &attributes))
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

    fn to_onnx(&self, onnx: &mut onnx::Builder, input: &onnx::Value) -> Result<String, String> {
        let mut attributes = window_attributes(self.kernel, self.stride, self.padding);
        // padded zeros count in the mean, as in `forward` (PyTorch's default)
        attributes.push(("count_include_pad", Attribute::Int(1)));
        Ok(onnx.node("AveragePool", &[&input.name], &attributes))
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

    fn to_onnx(&self, onnx: &mut onnx::Builder, input: &onnx::Value) -> Result<String, String> {
        let (_, height, width) = image(&input.shape)?;
        let (out_h, out_w) = self.out;
        if height % out_h == 0 && width % out_w == 0 {
            // equal windows: an ordinary average pooling
            let kernel = (height / out_h, width / out_w);
            let attributes = window_attributes(kernel, kernel, (0, 0));
            return Ok(onnx.node("AveragePool", &[&input.name], &attributes));
        }
        // windows of unequal sizes: each output pixel the mean of its own slice,
        // rows ⌊i·H/oh⌋ .. ⌈(i+1)·H/oh⌉ and the columns likewise, put back together
        let bounds =
            |i: usize, size: usize, out: usize| (i * size / out, ((i + 1) * size).div_ceil(out));
        let axes = onnx.int_list(&[2, 3]);
        let mut rows = Vec::new();
        for i in 0..out_h {
            let mut row = Vec::new();
            for j in 0..out_w {
                let (top, bottom) = bounds(i, height, out_h);
                let (left, right) = bounds(j, width, out_w);
                let starts = onnx.int_list(&[top as i64, left as i64]);
                let ends = onnx.int_list(&[bottom as i64, right as i64]);
                let window = onnx.node("Slice", &[&input.name, &starts, &ends, &axes], &[]);
                // the mean of the whole slice (ReduceMean's form changes at opset 18)
                row.push(onnx.node("GlobalAveragePool", &[&window], &[]));
            }
            let row: Vec<&str> = row.iter().map(String::as_str).collect();
            rows.push(onnx.node("Concat", &row, &[("axis", Attribute::Int(3))]));
        }
        let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
        Ok(onnx.node("Concat", &rows, &[("axis", Attribute::Int(2))]))
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

    fn to_onnx(&self, onnx: &mut onnx::Builder, input: &onnx::Value) -> Result<String, String> {
        // [N, C, H, W] → [N, C, 1, 1] → [N, C]
        let pooled = onnx.node("GlobalAveragePool", &[&input.name], &[]);
        Ok(onnx.node("Flatten", &[&pooled], &[("axis", Attribute::Int(1))]))
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

    fn to_onnx(&self, onnx: &mut onnx::Builder, input: &onnx::Value) -> Result<String, String> {
        Ok(onnx.node("Flatten", &[&input.name], &[("axis", Attribute::Int(1))]))
    }

    fn describe(&self) -> String {
        "Flatten()".to_string()
    }
}

/// The output shape of a pooling window, or an error naming the input's shape.
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

/// A pooling window's ONNX attributes: `kernel_shape`, `strides` and `pads` (each
/// axis' start, then each axis' end).
fn window_attributes(
    kernel: (usize, usize),
    stride: (usize, usize),
    padding: (usize, usize),
) -> Vec<(&'static str, Attribute)> {
    let pair = |(a, b): (usize, usize)| vec![a as i64, b as i64];
    let (ph, pw) = (padding.0 as i64, padding.1 as i64);
    vec![
        ("kernel_shape", Attribute::Ints(pair(kernel))),
        ("strides", Attribute::Ints(pair(stride))),
        ("pads", Attribute::Ints(vec![ph, pw, ph, pw])),
    ]
}
