//! Activation functions as layers, for `Sequential`. The math (and each
//! derivative) is in `crate::ops::activation`.

use super::Module;
use crate::element::Float;
use crate::tensor::Tensor;

macro_rules! activation_layer {
    ($(#[$doc:meta])* $name:ident, $describe:literal, |$x:ident| $body:expr) => {
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
        }
    };
}

activation_layer!(
    /// `max(0, x)`.
    Relu, "ReLU()", |x| x.relu()
);
activation_layer!(
    /// `1 / (1 + e⁻ˣ)`.
    Sigmoid, "Sigmoid()", |x| x.sigmoid()
);
activation_layer!(
    /// `tanh(x)`.
    Tanh, "Tanh()", |x| x.tanh()
);
activation_layer!(
    /// `x · σ(x)`.
    Silu, "SiLU()", |x| x.silu()
);
activation_layer!(
    /// `x / (1 + |x|)`.
    Softsign, "Softsign()", |x| x.softsign()
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
}
