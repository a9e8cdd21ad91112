//! Adagrad: each weight's step shrinks with the sum of its squared gradients.

use super::{Buffers, Optimizer, export_steps, for_each_with_grad, import_step, unknown_state};
use crate::element::Float;
use crate::tensor::Tensor;

/// Adagrad, PyTorch's form (defaults lr 0.01, ε 1e-10):
///
/// ```text
/// g ← g + weight_decay·w
/// lrₜ = lr / (1 + (t − 1)·lr_decay)
/// s ← s + g²
/// w ← w − lrₜ · g / (√s + ε)
/// ```
pub struct Adagrad<T: Float = f32> {
    params: Vec<(String, Tensor<T>)>,
    /// The base learning rate.
    pub lr: f64,
    /// lrₜ = lr / (1 + (t − 1)·lr_decay).
    pub lr_decay: f64,
    /// Added to √s for stability.
    pub eps: f64,
    /// L2 penalty added to the gradient.
    pub weight_decay: f64,
    /// The starting value of the sum of squares.
    pub initial_accumulator_value: f64,
    steps: Vec<u64>,
    sums: Buffers<T>,
}

impl<T: Float> Adagrad<T> {
    /// Adagrad with no learning-rate decay and a zero initial accumulator.
    pub fn new(params: Vec<(String, Tensor<T>)>, lr: f64) -> Self {
        let count = params.len();
        Adagrad {
            params,
            lr,
            lr_decay: 0.0,
            eps: 1e-10,
            weight_decay: 0.0,
            initial_accumulator_value: 0.0,
            steps: vec![0; count],
            sums: Buffers::new("sum", count),
        }
    }

    /// Sets the learning-rate decay.
    pub fn lr_decay(mut self, lr_decay: f64) -> Self {
        self.lr_decay = lr_decay;
        self
    }

    /// Sets L2 weight decay.
    pub fn weight_decay(mut self, weight_decay: f64) -> Self {
        self.weight_decay = weight_decay;
        self
    }

    /// Sets the accumulator's starting value.
    pub fn initial_accumulator_value(mut self, value: f64) -> Self {
        self.initial_accumulator_value = value;
        self
    }
}

impl<T: Float> Optimizer<T> for Adagrad<T> {
    fn step(&mut self) {
        let (lr, lr_decay, eps, weight_decay) =
            (self.lr, self.lr_decay, T::cast(self.eps), self.weight_decay);
        let initial = T::cast(self.initial_accumulator_value);
        let (steps, sums) = (&mut self.steps, &mut self.sums.values);
        for_each_with_grad(&self.params, |index, weights, grad| {
            steps[index] += 1;
            let step_lr = T::cast(lr / (1.0 + (steps[index] - 1) as f64 * lr_decay));
            let decay = T::cast(weight_decay);
            let sum = sums[index].get_or_insert_with(|| vec![initial; weights.len()]);
            for i in 0..weights.len() {
                let g = if weight_decay != 0.0 {
                    grad[i] + decay * weights[i]
                } else {
                    grad[i]
                };
                sum[i] += g * g;
                weights[i] -= step_lr * (g / (sum[i].sqrt() + eps));
            }
        });
    }

    fn lr(&self) -> f64 {
        self.lr
    }

    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    fn params(&self) -> &[(String, Tensor<T>)] {
        &self.params
    }

    fn state(&self) -> Vec<(String, Tensor<T>)> {
        let mut out = Vec::new();
        export_steps(&self.params, &self.steps, &mut out);
        self.sums.export(&self.params, &mut out);
        out
    }

    fn load_state(&mut self, state: &[(String, Tensor<T>)]) -> crate::Result<()> {
        for (key, value) in state {
            if !(import_step(&self.params, &mut self.steps, key, value)
                || self.sums.import(&self.params, key, value)?)
            {
                return Err(unknown_state(key));
            }
        }
        Ok(())
    }
}
