//! Normalisation layers. Batch norm normalises each channel by the batch's mean
//! and variance while training (one fused op, `Tensor::batch_norm`) and keeps
//! running averages for evaluation; layer norm normalises each sample over its last
//! axes (one fused op too, `Tensor::layer_norm`).

use std::cell::{Cell, RefCell};

use super::Module;
use crate::element::Float;
use crate::onnx::{self, Attribute};
use crate::ops::norm::{RunningStatistics, SumAcross};
use crate::tensor::Tensor;

/// The shared machinery of `BatchNorm1d` and `BatchNorm2d`.
struct BatchNorm<T: Float> {
    weight: Tensor<T>,
    bias: Tensor<T>,
    running_mean: Tensor<T>,
    running_var: Tensor<T>,
    num_batches_tracked: Tensor<T>,
    momentum: f64,
    eps: f64,
    training: Cell<bool>,
    /// Synchronised batch norm: statistics over every rank's share of the batch.
    across: RefCell<Option<SumAcross>>,
}

impl<T: Float> BatchNorm<T> {
    fn new(channels: usize) -> Self {
        BatchNorm {
            weight: Tensor::ones(&[channels]).requires_grad(true),
            bias: Tensor::zeros(&[channels]).requires_grad(true),
            running_mean: Tensor::zeros(&[channels]),
            running_var: Tensor::ones(&[channels]),
            num_batches_tracked: Tensor::zeros(&[]),
            momentum: 0.1,
            eps: 1e-5,
            training: Cell::new(true),
            across: RefCell::new(None),
        }
    }

    fn channels(&self) -> usize {
        self.weight.numel()
    }

    /// The evaluation form, `γ·(x − running mean)/√(running var + ε) + β`, which is
    /// ONNX's BatchNormalization in inference mode.
    fn to_onnx(&self, onnx: &mut onnx::Builder, input: &onnx::Value) -> Result<String, String> {
        let inputs = [
            input.name.clone(),
            onnx.parameter("weight", &self.weight),
            onnx.parameter("bias", &self.bias),
            onnx.parameter("running_mean", &self.running_mean),
            onnx.parameter("running_var", &self.running_var),
        ];
        let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        let epsilon = Attribute::Float(self.eps as f32);
        Ok(onnx.node("BatchNormalization", &inputs, &[("epsilon", epsilon)]))
    }

    /// Normalises over every axis but the channel axis (1).
    fn forward(&self, x: &Tensor<T>) -> Tensor<T> {
        if self.training.get() {
            let running = RunningStatistics {
                mean: &self.running_mean,
                var: &self.running_var,
                momentum: self.momentum,
            };
            self.num_batches_tracked.update_data(|n| n[0] += T::one());
            let across = self.across.borrow().clone();
            return x.batch_norm_across(&self.weight, &self.bias, self.eps, Some(running), across);
        }
        let mut channel_shape = vec![1; x.ndim()];
        channel_shape[1] = self.channels();
        let mean = self.running_mean.reshape(&channel_shape);
        let var = self.running_var.reshape(&channel_shape);
        // x̂ = (x − μ) / √(σ² + ε);  y = γ·x̂ + β
        let normalized = (x - &mean) / &(var + T::cast(self.eps)).sqrt();
        normalized * self.weight.reshape(&channel_shape) + self.bias.reshape(&channel_shape)
    }

    fn named_parameters(&self) -> Vec<(String, Tensor<T>)> {
        vec![
            ("weight".into(), self.weight.clone()),
            ("bias".into(), self.bias.clone()),
        ]
    }

    fn named_buffers(&self) -> Vec<(String, Tensor<T>)> {
        vec![
            ("running_mean".into(), self.running_mean.clone()),
            ("running_var".into(), self.running_var.clone()),
            (
                "num_batches_tracked".into(),
                self.num_batches_tracked.clone(),
            ),
        ]
    }
}

macro_rules! batch_norm_layer {
    ($(#[$doc:meta])* $name:ident, $ranks:expr, $expects:literal) => {
        $(#[$doc])*
        pub struct $name<T: Float = f32>(BatchNorm<T>);

        impl<T: Float> $name<T> {
            /// Batch norm over `channels` channels: γ = 1, β = 0, momentum 0.1, ε = 1e-5.
            pub fn new(channels: usize) -> Self {
                $name(BatchNorm::new(channels))
            }
        }

        impl<T: Float> Module<T> for $name<T> {
            fn forward(&self, input: &Tensor<T>) -> Tensor<T> {
                assert!(
                    $ranks.contains(&input.ndim()) && input.shape()[1] == self.0.channels(),
                    "{}({}): expected input {}, got shape {:?}",
                    stringify!($name),
                    self.0.channels(),
                    $expects,
                    input.shape()
                );
                self.0.forward(input)
            }
            fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
                // one sample's shape lacks the batch axis N
                if $ranks.contains(&(input.len() + 1)) && input[0] == self.0.channels() {
                    Ok(input.to_vec())
                } else {
                    Err(format!(
                        "expects input {} with C = {}, but receives a batch of shape {input:?}",
                        $expects,
                        self.0.channels()
                    ))
                }
            }
            fn describe(&self) -> String {
                format!("{}({})", stringify!($name), self.0.channels())
            }
            fn named_parameters(&self) -> Vec<(String, Tensor<T>)> {
                self.0.named_parameters()
            }
            fn to_onnx(
                &self,
                onnx: &mut onnx::Builder,
                input: &onnx::Value,
            ) -> Result<String, String> {
                self.0.to_onnx(onnx, input)
            }
            fn named_buffers(&self) -> Vec<(String, Tensor<T>)> {
                self.0.named_buffers()
            }
            fn set_training(&self, training: bool) {
                self.0.training.set(training);
            }
            fn share_batch_statistics(&self, across: &SumAcross) {
                *self.0.across.borrow_mut() = Some(across.clone());
            }
        }
    };
}

batch_norm_layer!(
    /// Batch norm for `[N, C]` or `[N, C, L]` inputs.
    BatchNorm1d, [2, 3], "[N, C] or [N, C, L]"
);
batch_norm_layer!(
    /// Batch norm for `[N, C, H, W]` inputs.
    BatchNorm2d, [4], "[N, C, H, W]"
);

/// Normalises each sample over its last axes (`normalized_shape`), then scales and
/// shifts elementwise: `y = γ ⊙ (x − μ)/√(σ² + ε) + β`.
pub struct LayerNorm<T: Float = f32> {
    /// γ, the per-element scale (starts at 1).
    pub weight: Tensor<T>,
    /// β, the per-element shift (starts at 0).
    pub bias: Tensor<T>,
    /// Added to the variance before the square root.
    pub eps: f64,
}

impl<T: Float> LayerNorm<T> {
    /// Layer norm over trailing axes of the given shape; γ = 1, β = 0, ε = 1e-5.
    pub fn new(normalized_shape: &[usize]) -> Self {
        LayerNorm {
            weight: Tensor::ones(normalized_shape).requires_grad(true),
            bias: Tensor::zeros(normalized_shape).requires_grad(true),
            eps: 1e-5,
        }
    }
}

impl<T: Float> Module<T> for LayerNorm<T> {
    fn forward(&self, x: &Tensor<T>) -> Tensor<T> {
        let normalized_shape = self.weight.shape();
        let k = normalized_shape.len();
        assert!(
            x.ndim() >= k && &x.shape()[x.ndim() - k..] == normalized_shape,
            "LayerNorm({normalized_shape:?}): input of shape {:?} does not end in {normalized_shape:?}",
            x.shape()
        );
        x.layer_norm(&self.weight, &self.bias, self.eps)
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        if input.ends_with(self.weight.shape()) {
            Ok(input.to_vec())
        } else {
            Err(format!(
                "expects inputs ending in {:?}, but receives shape {input:?}",
                self.weight.shape()
            ))
        }
    }

    fn describe(&self) -> String {
        format!("LayerNorm({:?})", self.weight.shape())
    }

    fn to_onnx(&self, onnx: &mut onnx::Builder, input: &onnx::Value) -> Result<String, String> {
        let scale = onnx.parameter("weight", &self.weight);
        let bias = onnx.parameter("bias", &self.bias);
        // normalised over the last axes, as many as γ has
        let axis = -(self.weight.ndim() as i64);
        let attributes = [
            ("axis", Attribute::Int(axis)),
            ("epsilon", Attribute::Float(self.eps as f32)),
        ];
        Ok(onnx.node(
            "LayerNormalization",
            &[&input.name, &scale, &bias],
            &attributes,
        ))
    }

    fn named_parameters(&self) -> Vec<(String, Tensor<T>)> {
        vec![
            ("weight".into(), self.weight.clone()),
            ("bias".into(), self.bias.clone()),
        ]
    }
}
