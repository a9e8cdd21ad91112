//! Activation functions as layers, for `Sequential`. The math (and each
//! derivative) is in `crate::ops::activation`.

use super::Module;
use crate::element::Float;
use crate::onnx::{self, Attribute};
use crate::tensor::Tensor;

macro_rules! activation_layer {
    ($(#[$doc:meta])* $name:ident, $describe:literal, |$x:ident| $body:expr,
     onnx: |$graph:ident, $input:ident| $export:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default)]
        pub struct $name;

        impl<T: Float> Module<T> for $name {
            fn forward(&self, $x: &Tensor<T>) -> Tensor<T> {
                $body
            }
            fn describe(&self) -> String {
                $describe.to_string()
            }
            fn to_onnx(
                &self,
                $graph: &mut onnx::Builder,
                $input: &onnx::Value,
            ) -> Result<String, String> {
                Ok($export)
            }
        }
    };
}

activation_layer!(
    /// `max(0, x)`.
    Relu, "ReLU()", |x| x.relu(),
    onnx: |graph, x| graph.node("Relu", &[&x.name], &[])
);
activation_layer!(
    /// `1 / (1 + e⁻ˣ)`.
    Sigmoid, "Sigmoid()", |x| x.sigmoid(),
    onnx: |graph, x| graph.node("Sigmoid", &[&x.name], &[])
);
activation_layer!(
    /// `tanh(x)`.
    Tanh, "Tanh()", |x| x.tanh(),
    onnx: |graph, x| graph.node("Tanh", &[&x.name], &[])
);
activation_layer!(
    /// `x · σ(x)`.
    Silu, "SiLU()", |x| x.silu(),
    // x·σ(x): ONNX has no single op for it before opset 22
    onnx: |graph, x| {
        let sigmoid = graph.node("Sigmoid", &[&x.name], &[]);
        graph.node("Mul", &[&x.name, &sigmoid], &[])
    }
);
activation_layer!(
    /// `x / (1 + |x|)`.
    Softsign, "Softsign()", |x| x.softsign(),
    onnx: |graph, x| graph.node("Softsign", &[&x.name], &[])
);

/// `x` for positive inputs, `slope · x` otherwise (PyTorch's default slope: 0.01).
#[derive(Clone, Copy, Debug)]
pub struct LeakyRelu {
    /// The slope for negative inputs.
    pub slope: f64,
}

impl Default for LeakyRelu {
    fn default() -> Self {
        LeakyRelu { slope: 0.01 }
    }
}

impl<T: Float> Module<T> for LeakyRelu {
    fn forward(&self, x: &Tensor<T>) -> Tensor<T> {
        x.leaky_relu(T::cast(self.slope))
    }
    fn describe(&self) -> String {
        format!("LeakyReLU(slope={})", self.slope)
    }
    fn to_onnx(&self, graph: &mut onnx::Builder, x: &onnx::Value) -> Result<String, String> {
        let alpha = Attribute::Float(self.slope as f32);
        Ok(graph.node("LeakyRelu", &[&x.name], &[("alpha", alpha)]))
    }
}

/// GELU, exact (`x·Φ(x)`) or with the tanh approximation.
#[derive(Clone, Copy, Debug, Default)]
pub struct Gelu {
    /// Use the tanh approximation instead of the exact erf form.
    pub tanh_approximation: bool,
}

impl<T: Float> Module<T> for Gelu {
    fn forward(&self, x: &Tensor<T>) -> Tensor<T> {
        if self.tanh_approximation {
            x.gelu_tanh()
        } else {
            x.gelu()
        }
    }
    fn describe(&self) -> String {
        if self.tanh_approximation {
            "GELU(approximate='tanh')"
        } else {
            "GELU()"
        }
        .to_string()
    }
    fn to_onnx(&self, graph: &mut onnx::Builder, x: &onnx::Value) -> Result<String, String> {
        // opset 17 has no Gelu: written out as PyTorch's exporter writes it
        let x = x.name.as_str();
        let half = graph.floats(&[0.5], &[]);
        let one = graph.floats(&[1.0], &[]);
        let inner = if self.tanh_approximation {
            // tanh(√(2/π)·(x + 0.044715·x³))
            let cube = graph.node("Mul", &[x, x], &[]);
            let cube = graph.node("Mul", &[&cube, x], &[]);
            let coefficient = graph.floats(&[0.044715], &[]);
            let scaled = graph.node("Mul", &[&cube, &coefficient], &[]);
            let sum = graph.node("Add", &[x, &scaled], &[]);
            let factor = graph.floats(&[(2.0 / std::f64::consts::PI).sqrt() as f32], &[]);
            let argument = graph.node("Mul", &[&sum, &factor], &[]);
            graph.node("Tanh", &[&argument], &[])
        } else {
            // erf(x/√2)
            let root_two = graph.floats(&[std::f32::consts::SQRT_2], &[]);
            let scaled = graph.node("Div", &[x, &root_two], &[]);
            graph.node("Erf", &[&scaled], &[])
        };
        // ½·x·(1 + inner)
        let shifted = graph.node("Add", &[&inner, &one], &[]);
        let product = graph.node("Mul", &[x, &shifted], &[]);
        Ok(graph.node("Mul", &[&product, &half], &[]))
    }
}

/// Softmax along an axis (default: the last).
#[derive(Clone, Copy, Debug)]
pub struct Softmax {
    /// The axis that sums to one (negative counts from the end).
    pub axis: isize,
}

impl Default for Softmax {
    fn default() -> Self {
        Softmax { axis: -1 }
    }
}

impl<T: Float> Module<T> for Softmax {
    fn forward(&self, x: &Tensor<T>) -> Tensor<T> {
        x.softmax(self.axis)
    }
    fn describe(&self) -> String {
        format!("Softmax(axis={})", self.axis)
    }
    fn to_onnx(&self, graph: &mut onnx::Builder, x: &onnx::Value) -> Result<String, String> {
        // the axis of the batched tensor, as in `forward`
        let axis = Attribute::Int(self.axis as i64);
        Ok(graph.node("Softmax", &[&x.name], &[("axis", axis)]))
    }
}
